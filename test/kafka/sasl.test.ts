import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { freshTopic } from "../support/kafka";
import { type Broker, consumeAll, ensureTopic, startBroker } from "../support/kafka-broker";
import { PublishError, type PublishResult, connect } from "../../src/client";
import { collect } from "../support/sdk-collector";
import { ConfigError, loadConfig } from "../../src/config/load";

// test-plan: shards: its one time bound (a refusal within 5 s) tells "at once" from the 30 s
// message timeout, which load on the other shards does not come near.

/**
 * The gateway authenticating to Kafka with SASL/SCRAM through KAFKA_PROPERTIES (librdkafka's own
 * properties), over SASL_PLAINTEXT and SASL_SSL, against a broker of its own whose SCRAM users are
 * made when its storage is formatted. What landed is read back over the broker's PLAINTEXT listener.
 */
const PASSWORD = "s3cret-gw-Pa55word-41c7";
const WRONG = "not-the-password-9d2e";
const dir = mkdtempSync(join(tmpdir(), "kgw-sasl-"));
let broker: Broker;
let caFile = "";

beforeAll(async () => {
  // The broker's certificate, for 127.0.0.1, self-signed: the gateway trusts it through ssl.ca.location.
  const r = Bun.spawnSync(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "broker.key", "-out", "broker.crt", "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"], { cwd: dir, stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`openssl failed: ${r.stderr.toString()}`);
  await Bun.write(join(dir, "broker.pem"), (await Bun.file(join(dir, "broker.key")).text()) + (await Bun.file(join(dir, "broker.crt")).text()));
  caFile = join(dir, "broker.crt");
  broker = await startBroker({ env: { KAFKA_SCRAM_USERS: `gateway:${PASSWORD} someone-else:other-password`, KAFKA_SSL_PEM: join(dir, "broker.pem") } });
}, 120_000);
afterAll(async () => {
  await broker?.stop();
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

const scram = (password: string, extra = "") => `sasl.mechanism=SCRAM-SHA-512,sasl.username=gateway,sasl.password=${password}${extra}`;

/** Every text the gateway has put out or serves that could carry a secret. */
async function everythingSaid(gw: GatewayProcess): Promise<string> {
  const served = await Promise.all(["/health", "/health/ready", "/health/live", "/metrics"].map(async (p) => (await fetch(`${gw.url}${p}`)).text()));
  return [...gw.lines, ...gw.errLines, ...served].join("\n");
}

/** Whether the gateway never said the password anywhere: logs, worker stderr, /health, /metrics. */
async function expectNoSecret(gw: GatewayProcess, secret: string): Promise<void> {
  const said = await everythingSaid(gw);
  expect(said.length).toBeGreaterThan(0);
  expect(said.includes(secret)).toBe(false);
}

/**
 * Publishes through `gw` (a live subscriber watching), checks every ack against what Kafka holds,
 * then replays the topic from the start through a second subscription.
 */
async function roundTrip(gw: GatewayProcess, label: string): Promise<void> {
  const topic = freshTopic(`sasl-${label}`);
  await ensureTopic(broker.brokers, topic, 3);
  const client = await connect({ url: gw.wsUrl });
  const live = collect(await client.subscribe(topic));
  const events = Array.from({ length: 30 }, (_, i) => ({ id: `${label}-${i}`, type: "t.sasl", key: `k${i % 5}`, data: { i } }));
  const batch = await client.publishBatch(events.slice(0, 29), { topic });
  const refused = batch.filter((r) => r.status === "rejected");
  expect(refused).toEqual([]);
  const one = await client.publish(events[29]!, { topic });
  expect(one).toMatchObject({ id: `${label}-29`, topic });
  const acked = new Map<string, string>();
  for (const r of [...batch.map((b) => (b as PromiseFulfilledResult<PublishResult>).value), one]) acked.set(r.id, `${r.partition}/${r.offset}`);
  expect(acked.size).toBe(events.length);

  const records = await consumeAll(broker.brokers, topic, { expect: events.length });
  expect(new Map(records.map((r) => [r.headers.ce_id!, `${r.partition}/${r.offset}`]))).toEqual(acked);

  await live.waitFor(events.length);
  expect(new Map(live.events.map((e) => [e.event.id, `${e.partition}/${e.offset}`]))).toEqual(acked);
  const replay = collect(await client.subscribe(topic, { start: "earliest" }));
  await replay.waitFor(events.length);
  expect(new Map(replay.events.map((e) => [e.event.id, `${e.partition}/${e.offset}`]))).toEqual(acked);
  client.close();
}

test("SASL_PLAINTEXT with SCRAM-SHA-512: events are acked, land in Kafka, reach a live and a replaying subscriber; the password is never shown", async () => {
  const gw = await startGateway({ KAFKA_BROKERS: broker.saslBrokers!, KAFKA_WORKERS: "2", KAFKA_PROPERTIES: `security.protocol=SASL_PLAINTEXT,${scram(PASSWORD)}` }, { captureStderr: true });
  try {
    await roundTrip(gw, "plain");
    await expectNoSecret(gw, PASSWORD);
  } finally {
    expect(await gw.stop()).toBe(0);
  }
  expect([...gw.lines, ...gw.errLines].join("\n")).not.toContain(PASSWORD);
}, 120_000);

test("librdkafka's debug log, asked for with debug= in KAFKA_PROPERTIES as the README says, reaches the gateway's stderr, and never with the password", async () => {
  // debug=conf prints every property of every client: the password must come out redacted.
  const gw = await startGateway({ KAFKA_BROKERS: broker.saslBrokers!, KAFKA_WORKERS: "1", KAFKA_PROPERTIES: `security.protocol=SASL_PLAINTEXT,${scram(PASSWORD)},debug=conf\\,broker\\,security` }, { captureStderr: true });
  try {
    await roundTrip(gw, "debug");
    await expectNoSecret(gw, PASSWORD);
  } finally {
    expect(await gw.stop()).toBe(0);
  }
  const debug = gw.errLines.filter((l) => l.startsWith("%7|"));
  expect(debug.some((l) => /\|CONF\|/.test(l) && l.includes("sasl.mechanisms"))).toBe(true);
  expect(debug.some((l) => /\|(STATE|CONNECT|BROKER)\|/.test(l))).toBe(true);
  expect(gw.errLines.join("\n")).not.toContain(PASSWORD);
  // The gateway's own log stays JSON, line for line: librdkafka writes to stderr only.
  for (const l of gw.lines) expect(() => JSON.parse(l)).not.toThrow();
}, 120_000);

test("SASL_SSL (the broker's certificate trusted through ssl.ca.location): the same round trip", async () => {
  const gw = await startGateway({ KAFKA_BROKERS: broker.saslSslBrokers!, KAFKA_WORKERS: "1", KAFKA_PROPERTIES: `security.protocol=SASL_SSL,ssl.ca.location=${caFile},${scram(PASSWORD)}` }, { captureStderr: true });
  try {
    await roundTrip(gw, "ssl");
    await expectNoSecret(gw, PASSWORD);
  } finally {
    expect(await gw.stop()).toBe(0);
  }
}, 120_000);

/**
 * A gateway that cannot log in: it serves, says not ready, and refuses work at once with a
 * retriable UNAVAILABLE that names the cause; nothing waits for a deadline, nothing crashes.
 */
async function expectRefusesWork(gw: GatewayProcess, cause: RegExp): Promise<void> {
  // The worker's last error is the cause, once librdkafka has reported it (a second or so).
  const deadline = Date.now() + 30_000;
  let health: any;
  do {
    await Bun.sleep(250);
    health = await gw.health();
  } while (!cause.test(JSON.stringify(health.log)) && Date.now() < deadline);
  expect(health).toMatchObject({ status: "degraded", log: { ready: false } });
  expect(health.log.workers[0].lastError).toMatch(cause);
  expect((await fetch(`${gw.url}/health/ready`)).status).toBe(503);
  expect((await fetch(`${gw.url}/health/live`)).status).toBe(200);

  // One attempt: the refusal itself is under test, not the SDK's retries of it.
  const client = await connect({ url: gw.wsUrl, maxAttempts: 1 });
  for (let i = 0; i < 5; i++) {
    const started = Date.now();
    const nack = await client.publish({ id: `refused-${i}`, type: "t.sasl", data: { i } }, { topic: "sasl-refused" }).catch((e: unknown) => e);
    expect(nack).toBeInstanceOf(PublishError);
    expect(nack).toMatchObject({ id: `refused-${i}`, code: "UNAVAILABLE", retriable: true, mayBePersisted: false });
    expect((nack as PublishError).message).toMatch(cause);
    expect(Date.now() - started).toBeLessThan(5000); // refused, not left to time out
  }
  const batch = await client.publishBatch([{ id: "b0", type: "t", data: {} }, { id: "b1", type: "t", data: {} }], { topic: "sasl-refused" });
  expect(batch.map((r) => (r.status === "rejected" ? (r.reason as PublishError).code : "acked"))).toEqual(["UNAVAILABLE", "UNAVAILABLE"]);
  expect(await client.subscribe("sasl-refused").catch((e: unknown) => e)).toMatchObject({ code: "UNAVAILABLE" });
  const http = await fetch(`${gw.url}/api/v1/events?topic=sasl-refused`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ id: "h", type: "t", data: {} }) });
  expect(http.status).toBe(503);
  client.close();
  expect(gw.proc.exitCode).toBeNull();
}

/** Sets a SCRAM user's password on the broker (Kafka's ConfigCommand, over the PLAINTEXT listener). */
function setScramPassword(user: string, password: string): void {
  const cp = join(import.meta.dir, "../../.cache/kafka/libs/*");
  const args = ["--bootstrap-server", broker.brokers, "--alter", "--entity-type", "users", "--entity-name", user, "--add-config", `SCRAM-SHA-512=[password=${password}]`];
  const r = Bun.spawnSync(["java", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-cp", cp, "kafka.admin.ConfigCommand", ...args], { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`ConfigCommand failed: ${r.stderr.toString()}${r.stdout.toString()}`);
}

test("a wrong password: not ready (503), every publish nacked UNAVAILABLE naming the authentication failure, no crash, no hang; neither password is shown; ready once the broker accepts it", async () => {
  const gw = await startGateway(
    { KAFKA_BROKERS: broker.saslBrokers!, KAFKA_WORKERS: "1", KAFKA_PROPERTIES: `security.protocol=SASL_PLAINTEXT,${scram(WRONG, "").replace("sasl.username=gateway", "sasl.username=someone-else")}`, KAFKA_CONNECT_TIMEOUT_MS: "2000" },
    { waitReady: false, captureStderr: true },
  );
  try {
    await expectRefusesWork(gw, /authentication/i);
    await expectNoSecret(gw, WRONG);
    // The gateway keeps trying: once the broker takes this password, it becomes ready by itself.
    setScramPassword("someone-else", WRONG);
    const deadline = Date.now() + 90_000;
    while ((await fetch(`${gw.url}/health/ready`)).status !== 200 && Date.now() < deadline) await Bun.sleep(250);
    expect((await fetch(`${gw.url}/health/ready`)).status).toBe(200);
    const client = await connect({ url: gw.wsUrl });
    expect(await client.publish({ id: "after-fix", type: "t.sasl", data: {} }, { topic: "sasl-after-fix" })).toMatchObject({ id: "after-fix", topic: "sasl-after-fix" });
    client.close();
    await expectNoSecret(gw, WRONG);
  } finally {
    expect(await gw.stop()).toBe(0);
  }
  expect([...gw.lines, ...gw.errLines].join("\n")).not.toContain(WRONG);
}, 120_000);

test("SASL_SSL without trusting the broker's certificate: not ready, nacks name the TLS failure", async () => {
  const gw = await startGateway(
    { KAFKA_BROKERS: broker.saslSslBrokers!, KAFKA_WORKERS: "1", KAFKA_PROPERTIES: `security.protocol=SASL_SSL,${scram(PASSWORD)}`, KAFKA_CONNECT_TIMEOUT_MS: "2000" },
    { waitReady: false, captureStderr: true },
  );
  try {
    await expectRefusesWork(gw, /ssl|certificate|handshake/i);
    await expectNoSecret(gw, PASSWORD);
  } finally {
    expect(await gw.stop()).toBe(0);
  }
}, 120_000);

test("a secret with a comma in KAFKA_PROPERTIES is refused at start without showing any part of it", () => {
  for (const [name, value] of [["sasl.password", "abc,def-tail-3f9"], ["ssl.key.password", "x,def-tail-3f9"], ["sasl.oauthbearer.client.secret", "y,def-tail-3f9"], ["sasl.oauthbearer.config", "principal=admin,def-tail-3f9"], ["sasl.username", "gw,def-tail-3f9"], ["sasl.oauthbearer.assertion.private.key.passphrase", "p,def-tail-3f9"], ["ssl.keystore.password", "k,def-tail-3f9"]]) {
    let message = "";
    try {
      loadConfig({ KAFKA_PROPERTIES: `security.protocol=SASL_SSL,${name}=${value},sasl.username=gw` });
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      message = (e as Error).message;
    }
    expect(message).toStartWith(`config: KAFKA_PROPERTIES entry after ${name} (not shown`);
    expect(message).not.toContain("def-tail-3f9");
  }
  // Not after a secret: the entry is shown, so a typo is easy to find.
  expect(() => loadConfig({ KAFKA_PROPERTIES: "linger.ms=5,novalue" })).toThrow('KAFKA_PROPERTIES entry "novalue" is not of the form name=value');
});
