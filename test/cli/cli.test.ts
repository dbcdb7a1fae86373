import { afterAll, beforeAll, expect, test } from "bun:test";
import { resolve } from "node:path";
import { type GatewayProcess, startGateway } from "../support/gateway";

/** kgw, the CLI, run as a user runs it: a process with stdin and stdout, against a real gateway. */
const CLI = resolve(import.meta.dir, "../../src/cli/main.ts");
let gw: GatewayProcess;
beforeAll(async () => {
  gw = await startGateway({ KAFKA_BROKERS: "" });
}, 60_000);
afterAll(async () => {
  await gw.stop();
});

async function kgw(args: string[], stdin?: string): Promise<{ code: number; out: string; err: string }> {
  const p = Bun.spawn([process.execPath, CLI, ...args, "--url", gw.wsUrl], { stdin: stdin === undefined ? "ignore" : new Blob([stdin]), stdout: "pipe", stderr: "pipe" });
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

test("bad input: a clear one-line error and exit 2, never a stack trace", async () => {
  const noType = await kgw(["pub", '{"data":1}']);
  expect(noType.code).toBe(2);
  expect(noType.err).toMatch(/^kgw: an event needs a "type"/);
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
