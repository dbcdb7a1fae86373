import { expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { ConfigError, loadConfig, parseKafkaProperties } from "../../src/config/load";
import { settings } from "../../src/config/schema";
import { configTable } from "../../src/config/table";

const root = resolve(import.meta.dir, "../..");
const fails = (env: Record<string, string>) => {
  try {
    loadConfig(env);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as Error).message;
  }
  throw new Error("expected a ConfigError");
};

test("defaults give a working embedded gateway", () => {
  const c = loadConfig({});
  expect(c.KAFKA_BROKERS).toBe("");
  expect(c.PORT).toBe(8080);
  expect(Object.isFrozen(c)).toBe(true);
});

test("a refused value is named as the schema spells what it takes, and hidden only where it is a secret (outside security tester)", () => {
  // Before, the message was lower-cased whole ("rs*, ps*, es*, eddsa", which the check then refused),
  // and any name with SECRET or KEYS in it was hidden: an algorithm's name, a count of map keys.
  expect(fails({ AUTH_JWT_PUBLIC_KEY_ALG: "rs256" })).toBe('config: AUTH_JWT_PUBLIC_KEY_ALG must be an asymmetric algorithm (RS*, PS*, ES*, EdDSA) (got "rs256")');
  expect(fails({ AUTH_JWT_SECRET_ALG: "RS256" })).toMatch(/^config: AUTH_JWT_SECRET_ALG invalid option: expected one of "HS256"\|"HS384"\|"HS512" \(got "RS256"\)$/);
  expect(fails({ MAX_MAP_KEYS: "-1" })).toContain('(got "-1")');
  expect(fails({ AUTH_JWT_SECRET: "short-secret-tail-3f9" })).not.toContain("tail-3f9");
  expect(fails({ RESUME_TOKEN_KEYS: "short-key-tail-3f9" })).not.toContain("tail-3f9");
  // A URL may carry credentials (user:pass@, ?api_key=).
  const file = `/tmp/kgw-config-url-${process.pid}.json`;
  writeFileSync(file, JSON.stringify({ AUTH_JWKS_URL: ["https://user:pass-tail-3f9@keys.example/"] }));
  expect(fails({ CONFIG_FILE: file })).not.toContain("tail-3f9");
});

test("a bad value fails with one line naming the variable", () => {
  expect(fails({ KAFKA_WORKERS: "abc" })).toMatch(/^config: KAFKA_WORKERS .*"abc"/);
  expect(fails({ PORT: "70000" })).toMatch(/^config: PORT /);
  expect(fails({ KAFKA_COMPRESSION: "brotli" })).toMatch(/^config: KAFKA_COMPRESSION /);
  expect(fails({ TOPIC_ALLOW: "(" })).toMatch(/^config: TOPIC_ALLOW /);
  expect(fails({ KAFKA_PROPERTIES: "novalue" })).toMatch(/^config: KAFKA_PROPERTIES /);
});

test("CONFIG_FILE is read, and the environment wins over it", () => {
  const file = `/tmp/kgw-config-${process.pid}.json`;
  writeFileSync(file, JSON.stringify({ PORT: 9000, DEFAULT_TOPIC: "from-file" }));
  expect(loadConfig({ CONFIG_FILE: file, PORT: "9001" })).toMatchObject({ PORT: 9001, DEFAULT_TOPIC: "from-file" });
  writeFileSync(file, JSON.stringify({ PROT: 1 }));
  expect(fails({ CONFIG_FILE: file })).toMatch(/unknown setting PROT/);
  // Bun's parser quotes the token it stumbled on, here a secret written without its quotes.
  writeFileSync(file, `{"AUTH_JWT_SECRET": secret-tail-3f9-and-more-than-32-bytes}`);
  const unparsed = fails({ CONFIG_FILE: file });
  expect(unparsed).toStartWith(`config: CONFIG_FILE ${file} could not be read as JSON`);
  expect(unparsed).not.toContain("tail-3f9");
  expect(fails({ CONFIG_FILE: `${file}.missing` })).toStartWith(`config: CONFIG_FILE ${file}.missing could not be read`);
});

test("the gateway refuses to start on bad config, with one readable line and exit code 2", async () => {
  const proc = Bun.spawn([process.execPath, "src/main.ts"], { cwd: root, env: { ...process.env, MAX_FRAME_BYTES: "tiny" }, stdout: "pipe", stderr: "pipe" });
  expect(await proc.exited).toBe(2);
  const err = (await new Response(proc.stderr).text()).trim();
  expect(err.split("\n")).toHaveLength(1);
  expect(err).toMatch(/^config: MAX_FRAME_BYTES /);
});

// An unknown debug context passed every check of the gateway's own, and the workers then exited 3
// and were restarted in a loop (~38 lines in 12 s; outside hostile tester). A value only a consumer
// refuses passed the workers' start too (they made their producer only): the gateway was ready,
// acked publishes, and every subscription was answered and never delivered.
test.each([
  [String.raw`debug=broker\,no-such-context`, "invalid Kafka setting debug"],
  ["receive.message.max.bytes=100000", "`receive.message.max.bytes` must be >= `fetch.max.bytes` + 512"],
])("a librdkafka property the Kafka workers refuse fails the start with exit code 2, instead of restarting them forever or leaving subscriptions unread: %s", async (properties, reason) => {
  const proc = Bun.spawn([process.execPath, "src/main.ts"], { cwd: root, env: { ...process.env, PORT: "0", INTERNAL_PORT: "0", KAFKA_BROKERS: "127.0.0.1:9", KAFKA_PROPERTIES: properties }, stdout: "pipe", stderr: "pipe" });
  const code = await Promise.race([proc.exited, Bun.sleep(20_000).then(() => "still running")]);
  if (code === "still running") proc.kill("SIGKILL");
  expect(code).toBe(2);
  const err = (await new Response(proc.stderr).text()).trim();
  expect(err).toContain(reason);
  expect(err.split("\n").at(-1)).toMatch(/^config: the Kafka workers cannot start/);
}, 30_000);

test("the README documents every setting", () => {
  const readme = readFileSync(resolve(root, "README.md"), "utf8");
  for (const name of Object.keys(settings)) expect(readme).toContain(`\`${name}\``);
});

test("the README's configuration table is the one the schema generates", () => {
  const readme = readFileSync(resolve(root, "README.md"), "utf8");
  const section = readme.split("<!-- config-table")[1]!.split("<!-- /config-table -->")[0]!;
  expect(section.slice(section.indexOf("\n") + 1).trim()).toBe(configTable());
});

test("KAFKA_PROPERTIES: a value may hold a comma written as \\, (librdkafka's lists: debug contexts, cipher suites)", () => {
  expect(parseKafkaProperties(String.raw`debug=broker\,topic, linger.ms=3,ssl.cipher.suites=A\,B\,C`)).toEqual({ debug: "broker,topic", "linger.ms": "3", "ssl.cipher.suites": "A,B,C" });
  expect(parseKafkaProperties(String.raw`sasl.password=a\\b`)).toEqual({ "sasl.password": String.raw`a\b` });
  expect(fails({ KAFKA_PROPERTIES: "debug=broker,topic" })).toMatch(/"topic" is not of the form name=value.*\\,/);
});

test("TRUSTED_PROXIES takes addresses and CIDR blocks, and names an entry that is neither", () => {
  expect(loadConfig({ TRUSTED_PROXIES: " 10.0.0.0/8, fd00::/8 ,127.0.0.1, 10.1.0.0/016" }).TRUSTED_PROXIES).toEqual([
    { address: "10.0.0.0", bits: 8, family: "ipv4" },
    { address: "fd00::", bits: 8, family: "ipv6" },
    { address: "127.0.0.1", bits: 32, family: "ipv4" },
    { address: "10.1.0.0", bits: 16, family: "ipv4" },
  ]);
  for (const bad of ["10.0.0.0/33", "fd00::/129", "proxy.local", "10.0.0.0/8/1", "10.0.0.0/x", "10.0.0.256"]) {
    expect(fails({ TRUSTED_PROXIES: bad })).toMatch(new RegExp(`^config: TRUSTED_PROXIES .*${bad.replace(/[./]/g, "\\$&")}`));
  }
});
