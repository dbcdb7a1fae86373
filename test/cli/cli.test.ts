import { afterAll, beforeAll, expect, test } from "bun:test";
import { deadUrl } from "../support/dead-url";
import { resolve } from "node:path";
import { type GatewayProcess, startGateway } from "../support/gateway";

// test-plan: shards: its one time bound (30 s for three rounds of backoff from 100 ms) tells
// "gives up" from "retries for ever".

/** kgw, the CLI, run as a user runs it: a process with stdin and stdout, against a real gateway. */
const CLI = resolve(import.meta.dir, "../../src/cli/main.ts");
let gw: GatewayProcess;
beforeAll(async () => {
  gw = await startGateway({ KAFKA_BROKERS: "" });
}, 60_000);
afterAll(async () => {
  await gw.stop();
});

/** Runs kgw with `--url` the test gateway, unless `urlArgs` (or `env`) says otherwise. */
async function kgw(args: string[], stdin?: string, urlArgs = ["--url", gw.wsUrl], env: Record<string, string> = {}): Promise<{ code: number; out: string; err: string }> {
  const p = Bun.spawn([process.execPath, CLI, ...args, ...urlArgs], { stdin: stdin === undefined ? "ignore" : new Blob([stdin]), stdout: "pipe", stderr: "pipe", env: { ...process.env, KGW_URL: "", ...env } });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, out, err };
}

test("pub reads 10,000 JSON lines from stdin; tail --from earliest reads them all back, once each", async () => {
  const lines = Array.from({ length: 10_000 }, (_, i) => JSON.stringify({ type: "cli.line", key: `k${i % 13}`, data: { i } })).join("\n");
  const pub = await kgw(["pub", "--topic", "cli-lines"], `${lines}\n`);
  expect(pub.err).toContain("published 10000");
  expect(pub.code).toBe(0);
  const tail = await kgw(["tail", "--topic", "cli-lines", "--from", "earliest", "--count", "10000", "--json"]);
  expect(tail.code).toBe(0);
  const got = tail.out.trim().split("\n").map((l) => JSON.parse(l).event.data.i as number);
  expect(got.toSorted((a, b) => a - b)).toEqual(Array.from({ length: 10_000 }, (_, i) => i));
}, 120_000);

test("pub from arguments with --type and --json; tail with a filter prints partition:offset, type, key and data", async () => {
  const pub = await kgw(["pub", "--topic", "cli-args", "--type", "cli.args", "--json", '{"n":1}', '{"n":2}', "3"]);
  expect(pub.code).toBe(0);
  const acks = pub.out.trim().split("\n").map((l) => JSON.parse(l));
  expect(acks).toHaveLength(3);
  expect(acks[0]).toMatchObject({ topic: "cli-args", partition: expect.any(Number), offset: expect.any(Number) });
  await kgw(["pub", "--topic", "cli-args", '{"type":"other","data":{"n":4}}']);
  const tail = await kgw(["tail", "--topic", "cli-args", "--from", "earliest", "--filter", '{"types":["cli.*"]}', "--count", "3"]);
  const rows = tail.out.trim().split("\n").map((l) => l.split("\t"));
  expect(rows.map((r) => r[1])).toEqual(["cli.args", "cli.args", "cli.args"]);
  expect(rows.map((r) => r[3]).toSorted()).toEqual(['3', '{"n":1}', '{"n":2}']);
}, 60_000);

test("a line that is no event is refused alone, as the gateway refuses one: said with its number, counted in the summary, exit 1; every other line is published", async () => {
  const good = (from: number, n: number) => Array.from({ length: n }, (_, i) => JSON.stringify({ type: "cli.mixed", data: { i: from + i } }));
  // Before, kgw exited 2 at the bad line: the lines read with it were never sent, and nothing said how
  // many of those before it had been published.
  // And one the gateway refuses (a type longer than 256 characters) is named by its line too (outside probe Z).
  const lines = [...good(0, 3000), "not json", ...good(3000, 2000), '{"data":"no type"}', ...good(5000, 1000), JSON.stringify({ type: "t".repeat(300) })];
  const pub = await kgw(["pub", "--topic", "cli-mixed"], `${lines.join("\n")}\n`);
  expect(pub.code).toBe(1);
  expect(pub.err).toContain("kgw: line 3001: not JSON: not json");
  expect(pub.err).toContain('kgw: line 5002: an event needs a "type"');
  expect(pub.err).toMatch(/kgw: line 6003: INVALID_EVENT /);
  expect(pub.err).toContain("kgw: published 6000, 3 failed");
  const tail = await kgw(["tail", "--topic", "cli-mixed", "--from", "earliest", "--count", "6000", "--json"]);
  expect(tail.out.trim().split("\n").map((l) => JSON.parse(l).event.data.i as number).toSorted((a, b) => a - b)).toEqual(Array.from({ length: 6000 }, (_, i) => i));
}, 120_000);

test("bad input: a clear one-line error and exit 2, never a stack trace", async () => {
  const noType = await kgw(["pub", '{"data":1}']);
  expect(noType.code).toBe(1);
  expect(noType.err).toMatch(/^kgw: argument 1: an event needs a "type"/);
  const badFilter = await kgw(["tail", "--filter", "{nope"]);
  expect(badFilter.code).toBe(2);
  expect(badFilter.err).toMatch(/^kgw: --filter must be JSON/);
  const refused = await kgw(["tail", "--topic", "x", "--filter", '{"types":5}']);
  expect(refused.code).toBe(2);
  expect(refused.err).toMatch(/^kgw: subscribe refused: INVALID_FILTER/);
  const usage = await kgw(["frobnicate"]);
  expect(usage.code).toBe(2);
  expect(usage.out).toContain("usage:");
}, 60_000);

test("several gateway URLs: with the first one down, pub and tail go to the next (--url a,b, repeated --url, KGW_URL=a,b)", async () => {
  const down = await deadUrl();
  const forms: Array<{ name: string; urlArgs: string[]; env?: Record<string, string> }> = [
    { name: "comma", urlArgs: ["--url", `${down},${gw.wsUrl}`] },
    { name: "repeated", urlArgs: ["--url", down, "--url", gw.wsUrl] },
    { name: "env", urlArgs: [], env: { KGW_URL: `${down}, ${gw.wsUrl}` } },
  ];
  for (const f of forms) {
    const topic = `cli-failover-${f.name}`;
    const pub = await kgw(["pub", "--topic", topic, "--type", "cli.failover", "--json", '{"n":1}', '{"n":2}'], undefined, f.urlArgs, f.env);
    expect({ form: f.name, code: pub.code, err: pub.err.trim() }).toEqual({ form: f.name, code: 0, err: "kgw: published 2" });
    const tail = await kgw(["tail", "--topic", topic, "--from", "earliest", "--count", "2", "--json"], undefined, f.urlArgs, f.env);
    expect({ form: f.name, code: tail.code }).toEqual({ form: f.name, code: 0 });
    expect(tail.out.trim().split("\n").map((l) => JSON.parse(l).event.data.n).toSorted()).toEqual([1, 2]);
  }
}, 90_000);

test("every gateway down: kgw says which it tried and exits 2 instead of waiting for ever", async () => {
  const [a, b] = [await deadUrl(), await deadUrl()];
  const started = performance.now();
  const r = await kgw(["tail", "--topic", "x"], undefined, ["--url", `${a},${b}`]);
  expect(r.code).toBe(2);
  expect(r.err).toStartWith(`kgw: cannot connect to ${a}, ${b}:`);
  expect(r.err.trim().split("\n")).toHaveLength(1);
  // Three rounds of backoff from 100 ms: seconds, not the SDK's endless retrying.
  expect(performance.now() - started).toBeLessThan(30_000);
  const bad = await kgw(["tail"], undefined, ["--url", "http://nope"]);
  expect(bad.code).toBe(2);
  expect(bad.err).toMatch(/^kgw: --url takes ws:\/\/ or wss:\/\/ URLs/);
}, 60_000);

test("control characters from the gateway or other producers reach the terminal as \\u escapes, never as commands", async () => {
  const ESC = "\u001b";
  const raw = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/; // tab and newline belong to kgw's own output
  // An error message that echoes a client's header name (the hostile tester's ESC]0;PWNED BEL).
  const hostileHeader = `ce_${ESC}]0;PWNED\u0007${ESC}[31mRED`;
  const pub = await kgw(["pub", "--topic", "cli-ctl"], `${JSON.stringify({ type: "x", headers: { [hostileHeader]: "v" } })}\n`);
  expect(pub.err).toContain("\\u001b]0;PWNED\\u0007");
  expect(pub.err).not.toMatch(raw);
  // An event another client wrote with escapes in its type's neighbours: key and data (and C1's CSI).
  const key = `k${ESC}[2J\u009b31m`;
  expect((await kgw(["pub", "--topic", "cli-ctl", JSON.stringify({ type: "t", key, data: { s: `${ESC}]0;x\u0007\u009b` } })])).code).toBe(0);
  const plain = await kgw(["tail", "--topic", "cli-ctl", "--from", "earliest", "--count", "1"]);
  expect(plain.out).not.toMatch(raw);
  expect(plain.out).toContain("k\\u001b[2J\\u009b31m");
  const json = await kgw(["tail", "--topic", "cli-ctl", "--from", "earliest", "--count", "1", "--json"]);
  expect(json.out).not.toMatch(raw);
  expect(JSON.parse(json.out).event).toMatchObject({ key, data: { s: `${ESC}]0;x\u0007\u009b` } });
}, 60_000);

test("integers past 2^53 go through pub and tail exactly, in both of tail's forms", async () => {
  const line = '{"type":"cli.int","data":{"max":9223372036854775807,"min":-9223372036854775808,"past":9007199254740993,"safe":42}}';
  expect((await kgw(["pub", "--topic", "cli-int"], `${line}\n`)).code).toBe(0);
  const json = await kgw(["tail", "--topic", "cli-int", "--from", "earliest", "--count", "1", "--json"]);
  expect(json.code).toBe(0);
  expect(json.out).toContain('"data":{"max":9223372036854775807,"min":-9223372036854775808,"past":9007199254740993,"safe":42}');
  const plain = await kgw(["tail", "--topic", "cli-int", "--from", "earliest", "--count", "1"]);
  expect(plain.out.trim().split("\t")[3]).toBe('{"max":9223372036854775807,"min":-9223372036854775808,"past":9007199254740993,"safe":42}');
}, 60_000);
