import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { connect } from "../../src/client";

/**
 * The gateway's own listener over TLS (TLS_CERT_FILE, TLS_KEY_FILE, TLS_KEY_PASSPHRASE, TLS_CA_FILE),
 * with certificates made here by openssl: a CA, a server certificate it signs for 127.0.0.1, a client
 * certificate it signs, and a stranger's self-signed pair.
 */
const root = resolve(import.meta.dir, "../..");
const dir = mkdtempSync(join(tmpdir(), "kgw-tls-"));
const f = (name: string) => join(dir, name);
const PASSPHRASE = "correct-horse-battery-staple-7f3a";
let ca = "";

function openssl(...args: string[]): void {
  const r = Bun.spawnSync(["openssl", ...args], { cwd: dir, stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`openssl ${args.join(" ")} failed: ${r.stderr.toString()}`);
}

beforeAll(() => {
  const newKey = (out: string) => openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", out);
  newKey("ca.key");
  openssl("req", "-x509", "-new", "-key", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=kgw test CA");
  const signed = (name: string, subj: string, ext: string) => {
    newKey(`${name}.key`);
    openssl("req", "-new", "-key", `${name}.key`, "-out", `${name}.csr`, "-subj", subj);
    writeFileSync(f(`${name}.ext`), ext);
    openssl("x509", "-req", "-in", `${name}.csr`, "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", `${name}.pem`, "-days", "2", "-extfile", `${name}.ext`);
  };
  signed("server", "/CN=127.0.0.1", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n");
  signed("client", "/CN=test-client", "extendedKeyUsage=clientAuth\n");
  openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "stranger.key", "-out", "stranger.pem", "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1");
  openssl("pkey", "-in", "server.key", "-aes256", "-passout", `pass:${PASSPHRASE}`, "-out", "server-encrypted.key");
  writeFileSync(f("not-pem.txt"), "this is not a certificate\n");
  ca = readFileSync(f("ca.pem"), "utf8");
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Whether a WebSocket to `url` opens; a refused handshake (TLS or HTTP) is `false`, never a hang. */
function wsOpens(url: string, tls?: Record<string, string>): Promise<boolean> {
  return new Promise((done) => {
    const ws = tls ? new WebSocket(url, { tls } as never) : new WebSocket(url);
    const timer = setTimeout(() => (ws.close(), done(false)), 10_000);
    ws.onopen = () => (clearTimeout(timer), ws.close(), done(true));
    ws.onerror = () => (clearTimeout(timer), done(false));
  });
}

async function fetchFails(url: string, init: RequestInit = {}): Promise<boolean> {
  try {
    await fetch(url, { ...init, signal: AbortSignal.timeout(10_000) });
    return false;
  } catch {
    return true;
  }
}

/**
 * Publishes through the SDK over wss://, as a Bun service trusting a private CA (and presenting a
 * client certificate) would: Bun's WebSocket takes `tls` options, and the SDK takes the class.
 */
async function publishesOverWss(gw: GatewayProcess, tls: { ca: string; cert?: string; key?: string }): Promise<void> {
  class TlsWebSocket extends WebSocket {
    constructor(url: string | URL, protocols?: string | string[]) {
      super(url, { protocols, tls } as never);
    }
  }
  for (const codec of ["msgpack", "json"] as const) {
    const c = await connect({ url: gw.wsUrl, codec, WebSocket: TlsWebSocket as typeof WebSocket });
    const ack = await c.publish({ id: `tls-${codec}`, type: "t.tls", data: { over: "wss" } }, { topic: "tls-test" });
    expect(ack).toMatchObject({ id: `tls-${codec}`, topic: "tls-test" });
    c.close();
  }
}

describe("TLS_CERT_FILE and TLS_KEY_FILE", () => {
  let gw: GatewayProcess;
  beforeAll(async () => {
    gw = await startGateway({ TLS_CERT_FILE: f("server.pem"), TLS_KEY_FILE: f("server.key") }, { ca });
  }, 60_000);
  afterAll(async () => {
    expect(await gw.stop()).toBe(0);
  }, 60_000);

  test("serve HTTPS and WSS on PORT: /health, a publish acked over wss://, an event POSTed over https://", async () => {
    expect(gw.url).toStartWith("https://");
    expect(JSON.parse(gw.lines.find((l) => l.includes('"msg":"listening"'))!)).toMatchObject({ tls: true });
    const health = await fetch(`${gw.url}/health`, { tls: { ca } });
    expect(health.status).toBe(200);
    await publishesOverWss(gw, { ca });
    const post = await fetch(`${gw.url}/api/v1/events?topic=tls-test`, { method: "POST", tls: { ca }, headers: { "content-type": "application/json" }, body: JSON.stringify({ id: "tls-http", type: "t.tls", data: {} }) });
    expect(post.status).toBe(202);
    expect(await post.json()).toMatchObject({ id: "tls-http", topic: "tls-test" });
  });

  test("plain ws:// and http:// to the TLS port fail; so does wss:// by a client that does not trust the certificate", async () => {
    const plainPort = `127.0.0.1:${gw.port}`;
    expect(await wsOpens(`ws://${plainPort}/ws`)).toBe(false);
    expect(await fetchFails(`http://${plainPort}/health`)).toBe(true);
    expect(await wsOpens(gw.wsUrl)).toBe(false);
    expect(await fetchFails(`${gw.url}/health`)).toBe(true);
    // The gateway is unharmed by the refused handshakes.
    expect(await wsOpens(gw.wsUrl, { ca })).toBe(true);
  });
});

test("an encrypted key with TLS_KEY_PASSPHRASE serves, and the passphrase appears in no output", async () => {
  const gw = await startGateway({ TLS_CERT_FILE: f("server.pem"), TLS_KEY_FILE: f("server-encrypted.key"), TLS_KEY_PASSPHRASE: PASSPHRASE }, { ca, captureStderr: true });
  try {
    await publishesOverWss(gw, { ca });
    expect(JSON.stringify(await gw.health())).not.toContain(PASSPHRASE);
  } finally {
    expect(await gw.stop()).toBe(0);
  }
  expect([...gw.lines, ...gw.errLines].join("\n")).not.toContain(PASSPHRASE);
}, 60_000);

test("TLS_CA_FILE requires a client certificate that CA signed (mutual TLS)", async () => {
  const gw = await startGateway({ TLS_CERT_FILE: f("server.pem"), TLS_KEY_FILE: f("server.key"), TLS_CA_FILE: f("ca.pem") }, { waitReady: false });
  try {
    const client = { ca, cert: readFileSync(f("client.pem"), "utf8"), key: readFileSync(f("client.key"), "utf8") };
    const stranger = { ca, cert: readFileSync(f("stranger.pem"), "utf8"), key: readFileSync(f("stranger.key"), "utf8") };
    expect(await wsOpens(gw.wsUrl, { ca })).toBe(false);
    expect(await wsOpens(gw.wsUrl, stranger)).toBe(false);
    expect(await fetchFails(`${gw.url}/health`, { tls: { ca } } as RequestInit)).toBe(true);
    expect((await fetch(`${gw.url}/health`, { tls: client })).status).toBe(200);
    await publishesOverWss(gw, client);
  } finally {
    expect(await gw.stop()).toBe(0);
  }
}, 60_000);

describe("a TLS setting that cannot work refuses to start: exit 2, one line on stderr naming it, nothing listening", () => {
  const cases: Array<[string, Record<string, string>, RegExp]> = [
    ["a certificate path that does not exist", { TLS_CERT_FILE: "/nonexistent/cert.pem", TLS_KEY_FILE: "server.key" }, /^config: TLS_CERT_FILE \/nonexistent\/cert\.pem could not be read: .*(ENOENT|no such file)/i],
    ["a key path that does not exist", { TLS_CERT_FILE: "server.pem", TLS_KEY_FILE: "/nonexistent/key.pem" }, /^config: TLS_KEY_FILE \/nonexistent\/key\.pem could not be read/],
    ["a certificate without a key", { TLS_CERT_FILE: "server.pem" }, /^config: TLS_CERT_FILE and TLS_KEY_FILE must be set together \(only TLS_CERT_FILE is set\)/],
    ["a key without a certificate", { TLS_KEY_FILE: "server.key" }, /^config: TLS_CERT_FILE and TLS_KEY_FILE must be set together \(only TLS_KEY_FILE is set\)/],
    ["a CA without a certificate", { TLS_CA_FILE: "ca.pem" }, /^config: TLS_CA_FILE needs TLS_CERT_FILE and TLS_KEY_FILE/],
    // Read without a bound, /dev/zero grew the gateway to 870 MB in 6 s with nothing said (outside security tester).
    ["a file without end (/dev/zero)", { TLS_CERT_FILE: "/dev/zero", TLS_KEY_FILE: "server.key" }, /^config: TLS_CERT_FILE \/dev\/zero could not be read: it is larger than 1048576 bytes/],
    ["a file that is not PEM", { TLS_CERT_FILE: "not-pem.txt", TLS_KEY_FILE: "server.key" }, /^config: TLS_CERT_FILE .*not-pem\.txt is not a PEM file/],
    ["a key that is not the certificate's", { TLS_CERT_FILE: "server.pem", TLS_KEY_FILE: "client.key" }, /^config: TLS_CERT_FILE .* cannot be used together: the key is not the certificate's key/],
    ["a key of another type than the certificate's", { TLS_CERT_FILE: "server.pem", TLS_KEY_FILE: "stranger.key" }, /^config: TLS_CERT_FILE .* cannot be used together: the key is not the certificate's key/],
    ["a certificate given as the key", { TLS_CERT_FILE: "server.pem", TLS_KEY_FILE: "server.pem" }, /^config: TLS_KEY_FILE .*server\.pem holds no PEM PRIVATE KEY block/],
    ["an encrypted key without its passphrase", { TLS_CERT_FILE: "server.pem", TLS_KEY_FILE: "server-encrypted.key" }, /^config: .*cannot be used together: the key is encrypted and TLS_KEY_PASSPHRASE is missing or wrong/],
    ["a wrong passphrase", { TLS_CERT_FILE: "server.pem", TLS_KEY_FILE: "server-encrypted.key", TLS_KEY_PASSPHRASE: "wrong-passphrase-0451" }, /TLS_KEY_PASSPHRASE is missing or wrong/],
    ["a CA file that holds a key, not a certificate", { TLS_CERT_FILE: "server.pem", TLS_KEY_FILE: "server.key", TLS_CA_FILE: "ca.key" }, /^config: TLS_CA_FILE .*ca\.key holds no PEM CERTIFICATE block/],
    ["another gateway's TLS_ENABLED", { TLS_ENABLED: "true" }, /^config: TLS_ENABLED is not a setting of this gateway: use TLS_CERT_FILE and TLS_KEY_FILE/],
    ["TLS_CERT (a name for the PEM text elsewhere)", { TLS_CERT: "-----BEGIN CERTIFICATE-----" }, /^config: TLS_CERT is not a setting of this gateway: use TLS_CERT_FILE/],
  ];
  for (const [name, env, expected] of cases) {
    test(name, async () => {
      // Relative names are files of this test's directory.
      const resolved = Object.fromEntries(Object.entries(env).map(([k, v]) => [k, k.endsWith("_FILE") && !v.startsWith("/") ? f(v) : v]));
      const proc = Bun.spawn([process.execPath, "src/main.ts"], { cwd: root, env: { ...process.env, HOST: "127.0.0.1", PORT: "0", ...resolved }, stdout: "pipe", stderr: "pipe", timeout: 20_000 });
      const [code, out, err] = await Promise.all([proc.exited, new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
      expect({ code, err: err.trim() }).toMatchObject({ code: 2, err: expect.stringMatching(expected) });
      expect(err.trim().split("\n")).toHaveLength(1);
      expect(out).not.toContain('"msg":"listening"');
      expect(err + out).not.toContain("wrong-passphrase-0451");
    }, 30_000);
  }
});
