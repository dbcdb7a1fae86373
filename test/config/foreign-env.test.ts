import { expect, test } from "bun:test";
import { resolve } from "node:path";
import { ConfigError, loadConfig } from "../../src/config/load";
import { FOREIGN_SETTINGS } from "../../src/config/foreign";
import { writeFileSync } from "node:fs";
import { startGateway } from "../support/gateway";

const root = resolve(import.meta.dir, "../..");

/**
 * Runs `bun src/main.ts` as users do with `env` added. Returns its exit code and output, or
 * "listening" (after killing it) when it started instead of refusing.
 */
async function run(env: Record<string, string>): Promise<{ code: number | "listening"; stdout: string; stderr: string }> {
  const proc = Bun.spawn([process.execPath, "src/main.ts"], {
    cwd: root,
    env: { ...process.env, HOST: "127.0.0.1", PORT: "0", KAFKA_BROKERS: "", ...env },
    stdout: "pipe",
    stderr: "pipe",
  });
  let stdout = "";
  const decoder = new TextDecoder();
  const reading = (async () => {
    for await (const chunk of proc.stdout as ReadableStream<Uint8Array>) stdout += decoder.decode(chunk, { stream: true });
  })();
  const stderr = new Response(proc.stderr).text();
  const deadline = Date.now() + 60_000;
  while (proc.exitCode === null && !stdout.includes('"msg":"listening"') && Date.now() < deadline) await Bun.sleep(20);
  if (proc.exitCode === null) {
    proc.kill("SIGKILL");
    await proc.exited;
    return { code: "listening", stdout, stderr: await stderr };
  }
  await reading;
  return { code: proc.exitCode, stdout, stderr: await stderr };
}

const refused: Array<[Record<string, string>, RegExp]> = [
  [{ GATEWAY_KAFKA_BROKERS: "127.0.0.1:9092" }, /^config: GATEWAY_KAFKA_BROKERS .*use KAFKA_BROKERS/],
  [{ KAFKA_BOOTSTRAP_SERVERS: "127.0.0.1:9092" }, /^config: KAFKA_BOOTSTRAP_SERVERS .*use KAFKA_BROKERS/],
  [{ BROKERS: "127.0.0.1:9092" }, /^config: BROKERS .*use KAFKA_BROKERS/],
  [{ KAFKA_TOPIC: "orders" }, /^config: KAFKA_TOPIC .*use DEFAULT_TOPIC/],
  [{ TOPIC: "orders" }, /^config: TOPIC .*use DEFAULT_TOPIC/],
  [{ HTTP_PORT: "9000" }, /^config: HTTP_PORT .*use PORT/],
  [{ WS_PORT: "9001" }, /^config: WS_PORT .*use PORT/],
  [{ LISTEN_ADDR: "0.0.0.0:9000" }, /^config: LISTEN_ADDR .*use HOST and PORT/],
  [{ AUTH_ENABLED: "true" }, /^config: AUTH_ENABLED .*not supported/],
  [{ JWT_SECRET: "hunter2-very-secret" }, /^config: JWT_SECRET .*not supported/],
  [{ RATE_LIMIT_RPS: "100" }, /^config: RATE_LIMIT_RPS is not a setting of this gateway: use RATE_LIMIT_EVENTS/],
  [{ RATE_LIMIT_BURST: "10" }, /^config: RATE_LIMIT_BURST is not a setting of this gateway: use RATE_LIMIT_BURST_SECONDS/],
  // The rules, not just the table: any unknown KAFKA_/GATEWAY_ name, typos and case variants of ours.
  [{ KAFKA_BROKER: "127.0.0.1:9092" }, /^config: KAFKA_BROKER .*use KAFKA_BROKERS, if that is what you meant/],
  [{ kafka_brokers: "127.0.0.1:9092" }, /^config: kafka_brokers .*use KAFKA_BROKERS/],
  [{ KAFKA_SASL_USERNAME: "alice" }, /^config: KAFKA_SASL_USERNAME .*KAFKA_PROPERTIES=sasl\.username=/],
  [{ GATEWAY_PORT: "9000" }, /^config: GATEWAY_PORT .*use PORT/],
  [{ GATEWAY_AUTH_ENABLED: "true" }, /^config: GATEWAY_AUTH_ENABLED .*not supported/],
  [{ GATEWAY_SOMETHING_NEW: "1" }, /^config: GATEWAY_SOMETHING_NEW is not a setting of this gateway/],
];

test("a variable that looks like configuration but is not ours stops the start: exit 2, one line naming it and what to use", async () => {
  const results = await Promise.all(refused.map(([env]) => run(env)));
  for (const [i, [env, expected]] of refused.entries()) {
    const { code, stdout, stderr } = results[i]!;
    const name = Object.keys(env)[0]!;
    expect({ name, code }).toEqual({ name, code: 2 });
    expect(stdout).toBe("");
    const lines = stderr.trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]!).toMatch(expected);
    // A foreign variable's value is never repeated: it may be a secret.
    expect(lines[0]!).not.toContain(Object.values(env)[0]!);
  }
}, 120_000);

test("every refusal in the table names the variable, and the others' variables are left alone", () => {
  for (const [name, verdict] of Object.entries(FOREIGN_SETTINGS)) {
    const env = { [name]: "x" };
    if ("notOurs" in verdict) {
      expect(() => loadConfig(env)).not.toThrow();
      continue;
    }
    let message = "";
    try {
      loadConfig(env);
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      message = (e as Error).message;
    }
    expect(message).toStartWith(`config: ${name} ${"use" in verdict ? `is not a setting of this gateway: use ${verdict.use}` : `is not supported (${verdict.unsupported}): unset it to start`}`);
    expect(message).not.toContain("\n");
  }
});

test("the rules beyond the table: service links are recognised by shape and value, prefixes by name", () => {
  const refused = (env: Record<string, string>) => {
    try {
      loadConfig(env);
      return false;
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      return true;
    }
  };
  expect(refused({ KAFKA_PORT: "9092" })).toBe(true);
  expect(refused({ KAFKA_PORT: "tcp://10.0.0.5:9092" })).toBe(false); // Kubernetes, for a service named kafka
  expect(refused({ HTTP_PORT: "8080" })).toBe(true);
  expect(refused({ HTTP_PORT: "tcp://10.0.0.7:80" })).toBe(false); // … and for one named http
  expect(refused({ KAFKA_NAME: "/gateway/kafka", KAFKA_ENV_KAFKA_NODE_ID: "1" })).toBe(false); // Docker's legacy links
  expect(refused({ kafka_home: "/opt/kafka" })).toBe(false);
  expect(refused({ GATEWAY_KAFKA_HOME: "/opt/kafka" })).toBe(true);
  expect(refused({ KAFKA_WORKER_NODE_ARG: "--x" })).toBe(true);
  expect(refused({ NODE_OPTIONS: "--max-old-space-size=512", BUN_INSTALL: "/root/.bun", KGW_WORKER_CONFIG: "{}", HOSTNAME: "gw-1" })).toBe(false);
});

test("a CONFIG_FILE key that is another gateway's setting says what to use", () => {
  const file = `/tmp/kgw-foreign-${process.pid}.json`;
  writeFileSync(file, JSON.stringify({ KAFKA_BOOTSTRAP_SERVERS: "127.0.0.1:9092" }));
  expect(() => loadConfig({ CONFIG_FILE: file })).toThrow(/unknown setting KAFKA_BOOTSTRAP_SERVERS, which is not a setting of this gateway: use KAFKA_BROKERS/);
});

test("variables of Bun, Node, Kafka's tools, Kubernetes service links and our workers do not stop the start; the embedded log says it is not durable", async () => {
  const gw = await startGateway({
    NODE_ENV: "production",
    NODE_PATH: "/nonexistent",
    BUN_CONFIG_NO_CLEAR_TERMINAL_ON_RELOAD: "1",
    KGW_WORKER_CONFIG: "{}",
    KAFKA_HOME: "/opt/kafka",
    KAFKA_OPTS: "-Dx=y",
    KAFKA_HEAP_OPTS: "-Xmx1g",
    // What Kubernetes puts in every pod for services named kafka and gateway.
    KAFKA_SERVICE_HOST: "10.0.0.5",
    KAFKA_SERVICE_PORT: "9092",
    KAFKA_PORT: "tcp://10.0.0.5:9092",
    KAFKA_PORT_9092_TCP: "tcp://10.0.0.5:9092",
    KAFKA_PORT_9092_TCP_ADDR: "10.0.0.5",
    KAFKA_PORT_9092_TCP_PORT: "9092",
    KAFKA_PORT_9092_TCP_PROTO: "tcp",
    GATEWAY_SERVICE_HOST: "10.0.0.6",
    GATEWAY_SERVICE_PORT_HTTP: "8080",
    GATEWAY_PORT: "tcp://10.0.0.6:8080",
    KAFKA_BROKERS: "",
  });
  try {
    const listening = gw.lines.map((l) => JSON.parse(l)).find((l) => l.msg === "listening");
    expect(listening).toMatchObject({ log: "memory", durable: false });
    const warning = gw.lines.map((l) => JSON.parse(l)).find((l) => l.level === "warn" && /not durable/.test(l.msg));
    expect(warning?.msg).toMatch(/KAFKA_BROKERS/);
    const health = await gw.health();
    expect(health.durable).toBe(false);
    expect(health.warnings.join(" ")).toMatch(/in memory.*KAFKA_BROKERS/);
  } finally {
    await gw.stop();
  }
}, 120_000);
