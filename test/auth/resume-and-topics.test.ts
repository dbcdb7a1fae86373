import { afterAll, beforeAll, expect, test } from "bun:test";
import { Packr, Unpackr } from "msgpackr";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { freshTopic, kafkaBrokers } from "../support/kafka";
import { type GatewayClient, type Subscription, connect } from "../../src/client";

const KEY_A = "resume-key-a-0123456789abcdef0123456789";
const KEY_B = "resume-key-b-0123456789abcdef0123456789";
const packr = new Packr({ useRecords: false });
const unpackr = new Unpackr({ useRecords: false, int64AsType: "number" });

/** A resume token, as subscribed returns it, for `topic` on a gateway. */
async function tokenFrom(gw: GatewayProcess, topic: string): Promise<string> {
  const c = await connect({ url: gw.wsUrl });
  for (const r of await c.publishBatch([{ type: "a" }, { type: "b" }, { type: "c" }], { topic })) expect(r.status).toBe("fulfilled");
  const sub = await c.subscribe(topic, { start: "earliest" });
  c.close();
  expect(sub.token).toEqual(expect.any(String));
  return sub.token!;
}

/** "subscribed", or the refusal's code and number. */
const outcome = (s: Promise<Subscription>) =>
  s.then(
    () => "subscribed" as const,
    (e: { code: string; num: number }) => ({ code: e.code, num: e.num }),
  );

async function resumeWith(gw: GatewayProcess, topic: string, token: string) {
  const c = await connect({ url: gw.wsUrl });
  const reply = await outcome(c.subscribe(topic, { start: { token } }));
  c.close();
  return reply;
}

let a: GatewayProcess;
beforeAll(async () => {
  a = await startGateway({ KAFKA_BROKERS: "", RESUME_TOKEN_KEYS: KEY_A });
}, 60_000);
afterAll(async () => {
  await a.stop();
});

test("resume tokens are signed: an altered or forged one gets INVALID_POSITION, never a seek", async () => {
  const token = await tokenFrom(a, "resume-t");
  expect(await resumeWith(a, "resume-t", token)).toBe("subscribed");
  const [payload, mac] = token.split(".");
  expect(mac).toBeDefined();
  // The same payload with other offsets, the old MAC kept.
  const decoded = unpackr.unpack(Buffer.from(payload!, "base64url")) as { p: Array<[string, number[]]> };
  decoded.p = decoded.p.map(([topic, offsets]) => [topic, offsets.map((o) => o + 2)]);
  const altered = `${Buffer.from(packr.pack(decoded)).toString("base64url")}.${mac}`;
  // An unsigned token of the old format, and one with a made-up MAC.
  const unsigned = payload!;
  const madeUp = `${payload}.${Buffer.alloc(16, 7).toString("base64url")}`;
  for (const bad of [altered, unsigned, madeUp, `${payload}.`, "garbage"]) {
    expect(await resumeWith(a, "resume-t", bad)).toMatchObject({ code: "INVALID_POSITION" });
  }
});

test("key rotation: a gateway holding the old key as its second verifies old tokens; one without it refuses them", async () => {
  const token = await tokenFrom(a, "resume-r");
  const rotated = await startGateway({ KAFKA_BROKERS: "", RESUME_TOKEN_KEYS: `${KEY_B},${KEY_A}` });
  const other = await startGateway({ KAFKA_BROKERS: "", RESUME_TOKEN_KEYS: KEY_B });
  try {
    expect(await resumeWith(rotated, "resume-r", token)).toBe("subscribed");
    expect(await resumeWith(other, "resume-r", token)).toMatchObject({ code: "INVALID_POSITION" });
    // The rotated gateway signs with its newest key: the other one (KEY_B only) accepts its tokens.
    const fresh = await tokenFrom(rotated, "resume-r");
    expect(await resumeWith(other, "resume-r", fresh)).toBe("subscribed");
  } finally {
    await rotated.stop();
    await other.stop();
  }
}, 60_000);

test("without RESUME_TOKEN_KEYS: a warning at start, and tokens of another process are refused", async () => {
  const token = await tokenFrom(a, "resume-w");
  const g = await startGateway({ KAFKA_BROKERS: "" });
  try {
    expect(g.lines.some((l) => l.includes('"level":"warn"') && l.includes("RESUME_TOKEN_KEYS is not set"))).toBe(true);
    expect(await resumeWith(g, "resume-w", token)).toMatchObject({ code: "INVALID_POSITION" });
  } finally {
    await g.stop();
  }
}, 60_000);

test("an embedded log's token resumed in another process, whose log is not that one, gets log_reset gaps and all of the new log", async () => {
  const topic = freshTopic("resume-e");
  const events = (type: string, n: number) => Array.from({ length: n }, (_, i) => ({ type, key: "k", data: { i } }));
  const c = await connect({ url: a.wsUrl });
  for (const r of await c.publishBatch(events("old", 5), { topic })) expect(r.status).toBe("fulfilled");
  const sub = await c.subscribe(topic, { start: "earliest" });
  let n = 0;
  for await (const _ of sub) if (++n === 5) break;
  const token = sub.token!;
  c.close();
  const b = await startGateway({ KAFKA_BROKERS: "", RESUME_TOKEN_KEYS: KEY_A });
  try {
    const cb = await connect({ url: b.wsUrl });
    for (const r of await cb.publishBatch(events("new", 8), { topic })) expect(r.status).toBe("fulfilled");
    // Before, the token's offset 5 was read as one in b's log: its first 5 records were skipped, unsaid.
    const resumed = await cb.subscribe(topic, { start: { token } });
    const got: string[] = [];
    for await (const e of resumed) if (got.push(`${e.event.type}${(e.event.data as { i: number }).i}`) === 8) break;
    expect(got).toEqual(events("new", 8).map((e) => `new${e.data.i}`));
    expect(resumed.gaps).toEqual([expect.objectContaining({ topic, reason: "log_reset", from: 5, to: 0 })]);
    cb.close();
  } finally {
    await b.stop();
  }
}, 60_000);

test("a short resume key refuses to start", async () => {
  const proc = Bun.spawn([process.execPath, "src/main.ts"], { env: { ...process.env, KAFKA_BROKERS: "", PORT: "0", RESUME_TOKEN_KEYS: `${KEY_A},short` }, stdout: "pipe", stderr: "pipe" });
  expect(await proc.exited).toBe(2);
  const err = await new Response(proc.stderr).text();
  expect(err).toContain("RESUME_TOKEN_KEYS");
  expect(err).not.toContain(KEY_A);
});

test("Kafka: subscribing to a missing topic gets UNKNOWN_TOPIC and does not create it (live, replay, share)", async () => {
  const brokers = await kafkaBrokers();
  const g = await startGateway({ KAFKA_BROKERS: brokers, KAFKA_WORKERS: "1" });
  try {
    const c = await connect({ url: g.wsUrl });
    const topic = freshTopic("nocreate");
    expect(await outcome(c.subscribe(topic))).toEqual({ code: "UNKNOWN_TOPIC", num: 1022 });
    expect(await outcome(c.subscribe(topic, { start: "earliest" }))).toMatchObject({ code: "UNKNOWN_TOPIC" });
    expect(await outcome(c.subscribe(topic, { share: "g1" }))).toMatchObject({ code: "UNKNOWN_TOPIC" });
    await Bun.sleep(1000);
    const md = Bun.spawnSync(["kcat", "-L", "-J", "-b", brokers], { stdout: "pipe", stderr: "pipe" });
    const names = (JSON.parse(md.stdout.toString()).topics as Array<{ topic: string }>).map((t) => t.topic);
    expect(names).not.toContain(topic);
    // Publishing may create it (broker auto-create); then subscribing works.
    expect(await c.publish({ type: "first" }, { topic })).toMatchObject({ topic, offset: 0 });
    expect(await outcome(c.subscribe(topic))).toBe("subscribed");
    c.close();
  } finally {
    await g.stop();
  }
}, 120_000);

test("embedded log: subscribing to many made-up topics creates none of them", async () => {
  const c: GatewayClient = await connect({ url: a.wsUrl });
  const before = (await a.health()).log.topics;
  for (let i = 0; i < 50; i++) {
    const sub = await c.subscribe(`made-up-${i}`, { start: "earliest" });
    await sub.close();
  }
  expect((await a.health()).log.topics).toBe(before);
  // A subscription to a topic not written yet still gets its first events.
  const events: unknown[] = [];
  (await c.subscribe("written-later")).onEvent((e) => events.push(e));
  expect(await c.publish({ type: "first" }, { topic: "written-later" })).toMatchObject({ topic: "written-later", offset: 0 });
  const deadline = Date.now() + 10_000;
  while (events.length === 0 && Date.now() < deadline) await Bun.sleep(20);
  expect(events.length).toBe(1);
  c.close();
});
