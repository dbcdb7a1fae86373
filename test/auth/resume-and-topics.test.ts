import { afterAll, beforeAll, expect, test } from "bun:test";
import { Packr, Unpackr } from "msgpackr";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { freshTopic, kafkaBrokers } from "../support/kafka";
import { GatewayClient } from "../support/ws-client";

const KEY_A = "resume-key-a-0123456789abcdef0123456789";
const KEY_B = "resume-key-b-0123456789abcdef0123456789";
const packr = new Packr({ useRecords: false });
const unpackr = new Unpackr({ useRecords: false, int64AsType: "number" });

/** A resume token, as subscribed returns it, for `topic` on a gateway. */
async function tokenFrom(gw: GatewayProcess, topic: string): Promise<string> {
  const c = await GatewayClient.connect(gw.wsUrl);
  expect(await c.publishBatch([{ type: "a" }, { type: "b" }, { type: "c" }], topic)).toMatchObject({ t: 22 });
  const sub = await c.subscribe({ sub: "t", topic, start: "earliest" }, () => {});
  expect(sub).toMatchObject({ t: 23 });
  c.close();
  return sub.token;
}

async function resumeWith(gw: GatewayProcess, topic: string, token: string) {
  const c = await GatewayClient.connect(gw.wsUrl);
  const reply = await c.subscribe({ sub: "r", topic, start: { token } }, () => {});
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
  expect(await resumeWith(a, "resume-t", token)).toMatchObject({ t: 23 });
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
    expect(await resumeWith(a, "resume-t", bad)).toMatchObject({ t: 21, code: "INVALID_POSITION" });
  }
});

test("key rotation: a gateway holding the old key as its second verifies old tokens; one without it refuses them", async () => {
  const token = await tokenFrom(a, "resume-r");
  const rotated = await startGateway({ KAFKA_BROKERS: "", RESUME_TOKEN_KEYS: `${KEY_B},${KEY_A}` });
  const other = await startGateway({ KAFKA_BROKERS: "", RESUME_TOKEN_KEYS: KEY_B });
  try {
    expect(await resumeWith(rotated, "resume-r", token)).toMatchObject({ t: 23 });
    expect(await resumeWith(other, "resume-r", token)).toMatchObject({ t: 21, code: "INVALID_POSITION" });
    // The rotated gateway signs with its newest key: the other one (KEY_B only) accepts its tokens.
    const fresh = await tokenFrom(rotated, "resume-r");
    expect(await resumeWith(other, "resume-r", fresh)).toMatchObject({ t: 23 });
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
    expect(await resumeWith(g, "resume-w", token)).toMatchObject({ t: 21, code: "INVALID_POSITION" });
  } finally {
    await g.stop();
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
    const c = await GatewayClient.connect(g.wsUrl);
    const topic = freshTopic("nocreate");
    expect(await c.subscribe({ sub: "live", topic }, () => {})).toMatchObject({ t: 21, code: "UNKNOWN_TOPIC", num: 1022 });
    expect(await c.subscribe({ sub: "old", topic, start: "earliest" }, () => {})).toMatchObject({ t: 21, code: "UNKNOWN_TOPIC" });
    expect(await c.subscribe({ sub: "grp", topic, share: "g1" }, () => {})).toMatchObject({ t: 21, code: "UNKNOWN_TOPIC" });
    await Bun.sleep(1000);
    const md = Bun.spawnSync(["kcat", "-L", "-J", "-b", brokers], { stdout: "pipe", stderr: "pipe" });
    const names = (JSON.parse(md.stdout.toString()).topics as Array<{ topic: string }>).map((t) => t.topic);
    expect(names).not.toContain(topic);
    // Publishing may create it (broker auto-create); then subscribing works.
    expect(await c.publish({ type: "first" }, topic)).toMatchObject({ t: 20 });
    expect(await c.subscribe({ sub: "live2", topic }, () => {})).toMatchObject({ t: 23 });
    c.close();
  } finally {
    await g.stop();
  }
}, 120_000);

test("embedded log: subscribing to many made-up topics creates none of them", async () => {
  const c = await GatewayClient.connect(a.wsUrl);
  const before = (await a.health()).log.topics;
  for (let i = 0; i < 50; i++) {
    const r = await c.subscribe({ sub: `m${i}`, topic: `made-up-${i}`, start: "earliest" }, () => {});
    expect(r).toMatchObject({ t: 23 });
    await c.request({ t: 13, sub: `m${i}` });
  }
  expect((await a.health()).log.topics).toBe(before);
  // A subscription to a topic not written yet still gets its first events.
  const events: unknown[] = [];
  expect(await c.subscribe({ sub: "later", topic: "written-later" }, (f) => f.t === 24 && events.push(f))).toMatchObject({ t: 23 });
  expect(await c.publish({ type: "first" }, "written-later")).toMatchObject({ t: 20 });
  const deadline = Date.now() + 10_000;
  while (events.length === 0 && Date.now() < deadline) await Bun.sleep(20);
  expect(events.length).toBe(1);
  c.close();
});
