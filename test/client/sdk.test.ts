import { afterAll, beforeAll, expect, test } from "bun:test";
import { pack, unpack } from "msgpackr";
import { type DeliveredEvent, type GatewayClient, SubscribeError, connect } from "../../src/client";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { freshTopic, kafkaBrokers } from "../support/kafka";
import { ensureTopic } from "../support/kafka-broker";
import { until } from "../support/until";
import { record, startLoad, verify } from "./failover.support";

/** The client SDK (src/client) against real gateways: batching under the window, subscriptions, and a gateway killed under it. */
beforeAll(() => kafkaBrokers(), 180_000); // the broker's JVM start-up is not part of the kill test's time
const gateways: GatewayProcess[] = [];
const clients: GatewayClient[] = [];
afterAll(async () => {
  for (const c of clients) c.close();
  for (const g of gateways) await g.stop();
}, 60_000);

async function gateway(env: Record<string, string>): Promise<GatewayProcess> {
  const gw = await startGateway(env);
  gateways.push(gw);
  return gw;
}

async function client(url: string, extra: Partial<Parameters<typeof connect>[0]> = {}): Promise<GatewayClient> {
  const c = await connect({ url, ...extra });
  clients.push(c);
  return c;
}

test("publishes made together share frames, stay within the window, and are all acked; a subscription iterates them", async () => {
  const gw = await gateway({ KAFKA_BROKERS: "", PUBLISH_WINDOW: "50" });
  for (const codec of ["msgpack", "json"] as const) {
    const c = await client(gw.wsUrl, { codec });
    expect(c.limits.window).toBe(50);
    const topic = `sdk-${codec}`;
    const sub = await c.subscribe(topic, { filter: { types: ["sdk.keep"] } });
    const acks = await Promise.all(Array.from({ length: 2000 }, (_, i) => c.publish({ type: i % 2 ? "sdk.keep" : "sdk.drop", key: `k${i % 7}`, data: { i } }, { topic })));
    // Never more than the window in flight, so never refused WINDOW_EXCEEDED: all 2,000 acked.
    expect(acks).toHaveLength(2000);
    expect(new Set(acks.map((a) => a.id)).size).toBe(2000);
    const got: DeliveredEvent[] = [];
    for await (const e of sub) {
      got.push(e);
      if (got.length === 1000) break;
    }
    // In order within each partition; across them, as the partitions interleave.
    expect(got.map((e) => (e.event.data as { i: number }).i).toSorted((a, b) => a - b)).toEqual(Array.from({ length: 1000 }, (_, k) => 2 * k + 1));
  }
  // Each event reached the gateway once: none was refused for the window and sent again.
  const metrics = await (await fetch(`${gw.url}/metrics`)).text();
  const received = Number(/gateway_events_received_total\{transport="ws"\} (\d+)/.exec(metrics)?.[1]);
  expect(received).toBe(4000);
}, 60_000);

test("a refusal that is not retriable rejects that publish only, with the gateway's code and the event's id", async () => {
  const gw = await gateway({ KAFKA_BROKERS: "" });
  const c = await client(gw.wsUrl);
  const [bad, good] = await Promise.allSettled([c.publish({ type: "" }), c.publish({ type: "fine" })]);
  expect(bad.status).toBe("rejected");
  expect((bad as PromiseRejectedResult).reason).toMatchObject({ code: "INVALID_EVENT", num: 1005, retriable: false, id: expect.any(String) });
  expect(good).toMatchObject({ status: "fulfilled", value: { offset: expect.any(Number) } });
}, 60_000);

test("the gateway is SIGKILLed and restarted under load: the client reconnects, every publish settles, every acked event is in Kafka, and the subscription resumes with no gap and no repeat", async () => {
  const brokers = await kafkaBrokers();
  const env = { KAFKA_BROKERS: brokers, KAFKA_WORKERS: "1", RESUME_TOKEN_KEYS: "sdk-test-resume-key-of-at-least-32-bytes" };
  const topic = freshTopic("sdk-kill");
  await ensureTopic(brokers, topic, 3);
  const first = await gateway(env);
  const opts = { reconnect: { minMs: 50, maxMs: 500 }, maxAttempts: 40 };
  const pub = await client(first.wsUrl, opts);
  // Another client reads, so publishing and reading each go through a kill of their own socket.
  const reader = await client(first.wsUrl, opts);
  const seen = record(await reader.subscribe(topic, { start: "earliest" }));
  const load = startLoad(pub, topic);
  await Bun.sleep(1500);
  const before = load.acked.length;
  first.proc.kill("SIGKILL");
  await first.proc.exited;
  await Bun.sleep(300);
  await gateway({ ...env, PORT: String(first.port) });
  for (const t = Date.now(); load.acked.length < before + 200 && Date.now() - t < 30_000; ) await Bun.sleep(100);
  await load.stop();
  expect(load.acked.length).toBeGreaterThan(before);
  const { duplicateIds } = await verify(brokers, topic, load, seen);
  console.log(`SIGKILL + restart: ${load.acked.length} acked, ${duplicateIds} ids written more than once`);
  expect(duplicateIds).toBe(0); // re-sends of what the killed gateway wrote get their original acks
}, 120_000);

test("events refused for a rate are retried in the order they were published, and count as pending until they settle", async () => {
  const gw = await gateway({ KAFKA_BROKERS: "", RATE_LIMIT_EVENTS: "0", RATE_LIMIT_PRINCIPAL_EVENTS: "100", RATE_LIMIT_BURST_SECONDS: "1", RATE_LIMIT_CLOSE_AFTER: "0", EMBEDDED_PARTITIONS: "1" });
  const c = await client(gw.wsUrl);
  // Another connection of the same principal (the address) overdraws its bucket (300 against 100)
  // for two seconds; c, which paces itself to the principal's rate as if it were its only
  // connection, sends its next frame of 50, which is refused RATE_LIMITED and retried.
  const spender = await client(gw.wsUrl);
  await Promise.all(Array.from({ length: 300 }, (_, i) => spender.publish({ type: "spend", key: "k", data: { i } })));
  const pending = Array.from({ length: 50 }, (_, i) => c.publish({ type: "retried", key: "k", data: { i } }));
  await Bun.sleep(50);
  expect(c.pendingPublishes).toBe(50); // waiting out retryAfterMs, not forgotten
  const acks = await Promise.all(pending);
  // One key, one partition: offsets follow the order of publish.
  for (let i = 1; i < acks.length; i++) expect(acks[i]!.offset).toBeGreaterThan(acks[i - 1]!.offset);
  const metrics = await (await fetch(`${gw.url}/metrics`)).text();
  expect(Number(/gateway_rate_limited_total\{transport="ws",scope="principal",unit="events"\} (\d+)/.exec(metrics)?.[1])).toBeGreaterThan(0);
}, 60_000);

/**
 * 40 request handlers, each awaiting its publish 40 times (two topics, so their events cannot share
 * frames): what they got acked, and how each that failed failed.
 */
async function fortyHandlers(c: GatewayClient, prefix: string): Promise<{ acked: number; failures: string[] }> {
  let acked = 0;
  const handlers = Array.from({ length: 40 }, async (_, h) => {
    for (let i = 0; i < 40; i++) {
      await c.publish({ type: prefix, key: `h${h}`, data: { h, i } }, { topic: h % 2 ? `sdk-${prefix}-a` : `sdk-${prefix}-b` });
      acked++;
    }
  });
  const settled = await Promise.allSettled(handlers);
  return { acked, failures: settled.filter((s) => s.status === "rejected").map((s) => String((s as PromiseRejectedResult).reason)).slice(0, 3) };
}

test("a client publishing faster than its rate paces itself to the rates welcome advertised: all acked, hardly a refusal, never closed 4429", async () => {
  // The gateway's defaults for closing, a low rate: a service whose 40 request handlers each await
  // their publish sends one-event frames faster than 400 events/s. Before, each of those frames went out and was refused RATE_LIMITED, past
  // RATE_LIMIT_CLOSE_AFTER's 200 refusals in a few seconds: closed 4429, its address penalised.
  const gw = await gateway({ KAFKA_BROKERS: "", RATE_LIMIT_EVENTS: "400", RATE_LIMIT_BURST_SECONDS: "0.5" });
  const c = await client(gw.wsUrl);
  expect(c.limits).toMatchObject({ eventsPerSec: 400, burstSeconds: 0.5 });
  const started = performance.now();
  expect(await fortyHandlers(c, "paced")).toEqual({ acked: 1600, failures: [] });
  // 1,600 events at 400/s, 200 of them the burst: about 3.5 s, and not much more.
  expect(performance.now() - started).toBeGreaterThan(3000);
  const metrics = await (await fetch(`${gw.url}/metrics`)).text();
  expect(Number(/gateway_rate_limit_closes_total (\d+)/.exec(metrics)?.[1])).toBe(0);
  // A few, at most, when the gateway reads two frames in one turn that were sent apart (jitter).
  expect(Number(/gateway_rate_limited_total\{transport="ws",scope="connection",unit="events"\} (\d+)/.exec(metrics)?.[1] ?? 0)).toBeLessThan(40);
}, 60_000);

test("a client alone on its principal paces itself to the principal's rate too: all acked, never closed 4429", async () => {
  // No connection rate, but the principal's (the client address, authentication being off): welcome
  // advertises both, and the principal's only connection keeps both. Before, it sent on into
  // refusals as in the test above, and was closed 4429.
  const gw = await gateway({ KAFKA_BROKERS: "", RATE_LIMIT_EVENTS: "0", RATE_LIMIT_BYTES: "0", RATE_LIMIT_PRINCIPAL_EVENTS: "400", RATE_LIMIT_BURST_SECONDS: "0.5" });
  const c = await client(gw.wsUrl);
  expect(await fortyHandlers(c, "principal")).toEqual({ acked: 1600, failures: [] });
  const metrics = await (await fetch(`${gw.url}/metrics`)).text();
  expect(Number(/gateway_rate_limit_closes_total (\d+)/.exec(metrics)?.[1])).toBe(0);
  expect(Number(/gateway_rate_limited_total\{transport="ws",scope="principal",unit="events"\} (\d+)/.exec(metrics)?.[1] ?? 0)).toBeLessThan(40);
}, 60_000);

test("a client publishing to two topics in turn sends a frame per topic, not one per event", async () => {
  // 40 handlers, alternately on two topics: queued a, b, a, b... Before, a frame took only the run
  // of one topic at the head of the queue, one event each: 1,600 frames for 1,600 events.
  const gw = await gateway({ KAFKA_BROKERS: "" });
  const c = await client(gw.wsUrl);
  expect(await fortyHandlers(c, "topics")).toEqual({ acked: 1600, failures: [] });
  const metrics = await (await fetch(`${gw.url}/metrics`)).text();
  const frames = Number(/gateway_publish_latency_seconds_count\{transport="ws"\} (\d+)/.exec(metrics)?.[1]);
  console.log(`40 handlers on two topics: 1,600 events in ${frames} frames`);
  expect(frames).toBeGreaterThan(0);
  expect(frames).toBeLessThan(800);
}, 60_000);

test("two clients sharing a principal find their share of its rate: all acked, few refusals, never closed 4429", async () => {
  // One principal (the client address, authentication being off) over two connections, each keeping
  // 40 handlers busy. welcome advertises the principal's rate, which each takes as its own, so
  // together they send twice it. Before, each paused for retryAfterMs after a refusal and then sent
  // on at the full rate: refusals came faster than RATE_LIMIT_CLOSE_AFTER allows, and one was
  // closed 4429 within seconds, its address penalised.
  const gw = await gateway({ KAFKA_BROKERS: "", RATE_LIMIT_EVENTS: "0", RATE_LIMIT_BYTES: "0", RATE_LIMIT_PRINCIPAL_EVENTS: "400", RATE_LIMIT_BURST_SECONDS: "0.5" });
  const [a, b] = await Promise.all([client(gw.wsUrl), client(gw.wsUrl)]);
  const started = performance.now();
  const [ra, rb] = await Promise.all([fortyHandlers(a, "shared-a"), fortyHandlers(b, "shared-b")]);
  expect([ra, rb]).toEqual([{ acked: 1600, failures: [] }, { acked: 1600, failures: [] }]);
  // 3,200 events at 400/s together: at least 7.5 s; and not far beyond (each finds about half).
  expect(performance.now() - started).toBeGreaterThan(7000);
  const metrics = await (await fetch(`${gw.url}/metrics`)).text();
  expect(Number(/gateway_rate_limit_closes_total (\d+)/.exec(metrics)?.[1])).toBe(0);
  const refusals = Number(/gateway_rate_limited_total\{transport="ws",scope="principal",unit="events"\} (\d+)/.exec(metrics)?.[1] ?? 0);
  console.log(`two connections, one principal at 400 events/s: 3,200 events in ${((performance.now() - started) / 1000).toFixed(1)} s, ${refusals} refusals`);
  expect(refusals).toBeLessThan(40);
}, 90_000);

test("closing the client fails the publishes still waiting to be retried", async () => {
  const gw = await gateway({ KAFKA_BROKERS: "", RATE_LIMIT_EVENTS: "0", RATE_LIMIT_PRINCIPAL_EVENTS: "100", RATE_LIMIT_BURST_SECONDS: "1", RATE_LIMIT_CLOSE_AFTER: "0" });
  const c = await connect({ url: gw.wsUrl });
  const spender = await client(gw.wsUrl); // the same principal: its bucket is c's too
  await Promise.all(Array.from({ length: 300 }, () => spender.publish({ type: "spend" })));
  const waiting = Promise.allSettled(Array.from({ length: 10 }, () => c.publish({ type: "retried" })));
  await Bun.sleep(50);
  c.close();
  const settled = await Promise.race([waiting, Bun.sleep(5000).then(() => null)]);
  expect(settled).not.toBeNull();
  for (const s of settled!) expect(s).toMatchObject({ status: "rejected", reason: { code: "CLIENT_CLOSED" } });
}, 60_000);

test("sub.token covers only the events the application was handed: an iterator that stops early, resumed from it, misses nothing", async () => {
  // 500 events on one partition, read from earliest: they arrive in frames of many events, and
  // the iterator is handed them one at a time. Before, sub.token was the last frame's, past
  // events still waiting in the iterator's buffer: an application that checkpointed it after
  // each event, and stopped, lost those on resume.
  const gw = await gateway({ KAFKA_BROKERS: "", EMBEDDED_PARTITIONS: "1" });
  const c = await client(gw.wsUrl);
  const topic = "sdk-checkpoint";
  await c.publishBatch(Array.from({ length: 500 }, (_, i) => ({ type: "n", data: { i } })), { topic });
  const sub = await c.subscribe(topic, { start: "earliest" });
  const seen: number[] = [];
  let checkpoint: string | undefined;
  for await (const e of sub) {
    seen.push(e.offset);
    checkpoint = sub.token; // what an application stores after handling each event
    if (seen.length === 10) break;
  }
  expect(seen).toEqual(Array.from({ length: 10 }, (_, i) => i));
  // Resumed from the checkpoint: the next event is at most the 11th (a frame's events already
  // handed over may come again), never a later one.
  const resumed = await c.subscribe(topic, { start: { token: checkpoint! } });
  const first = async (s: typeof sub) => {
    for await (const e of s) return e.offset;
  };
  expect(await Promise.race([first(resumed), Bun.sleep(3000).then(() => "nothing within 3 s")])).toBeLessThanOrEqual(10);
  // And with callbacks every event is handed over as it comes: the token is the last frame's.
  const all = await c.subscribe(topic, { start: "earliest" });
  let n = 0;
  await new Promise<void>((r) => all.onEvent(() => ++n === 500 && r()));
  const after = await c.subscribe(topic, { start: { token: all.token! } });
  await c.publish({ type: "n", data: { i: 500 } }, { topic });
  expect(await first(after)).toBe(500);
}, 60_000);

test("events that came before onEvent was given are handed to it first, in order, and sub.token covers them", async () => {
  // Before: they stayed in the iterator's buffer, which a callback user never reads, so an
  // application attaching its handler after another await was silently short (outside probe).
  const gw = await gateway({ KAFKA_BROKERS: "", EMBEDDED_PARTITIONS: "1" });
  const c = await client(gw.wsUrl);
  const topic = "sdk-late-handler";
  await c.publishBatch(Array.from({ length: 30 }, (_, i) => ({ type: "n", data: { i } })), { topic });
  const sub = await c.subscribe(topic, { start: "earliest" });
  let noticedLive = false;
  sub.onNotice((n) => n.kind === "live" && (noticedLive = true));
  await until("the replay is live", () => noticedLive, 10_000);
  const seen: number[] = [];
  sub.onEvent((e) => seen.push(e.offset));
  await c.publish({ type: "n", data: { i: 30 } }, { topic });
  await until("31 events handed over", () => seen.length === 31, 10_000).catch(() => {});
  expect(seen).toEqual(Array.from({ length: 31 }, (_, i) => i));
  const after = await c.subscribe(topic, { start: { token: sub.token! } });
  await c.publish({ type: "n", data: { i: 31 } }, { topic });
  for await (const e of after) {
    expect(e.offset).toBe(31);
    break;
  }
}, 60_000);

test("subscribes made faster than the gateway's subscribe rate wait their turn: all are confirmed, the connection is never closed", async () => {
  // A bucket of 5 at 20/s: of 40 subscribes in a row, those past the fifth are refused RATE_LIMITED,
  // and the SDK sends each again after the gateway's retryAfterMs, as it does for publishes.
  const gw = await gateway({ KAFKA_BROKERS: "", SUBSCRIBE_RATE_LIMIT: "20", MAX_SUBSCRIPTIONS_PER_CONNECTION: "5" });
  const c = await client(gw.wsUrl);
  const started = performance.now();
  for (let i = 0; i < 40; i++) {
    const s = await c.subscribe(`paced-${i}`);
    await s.close();
  }
  // Paced, not refused: 35 past the bucket at 20/s take at least 1.5 s.
  expect(performance.now() - started).toBeGreaterThan(1500);
  expect((await c.subscribe("paced-last")).live).toBe(true);
}, 60_000);

test("a refused subscribe rejects with the gateway's code, num and retriable; subscribed's live and gaps are on the subscription", async () => {
  const gw = await gateway({ KAFKA_BROKERS: "", EMBEDDED_PARTITIONS: "1", EMBEDDED_RETENTION_RECORDS: "10" });
  const c = await client(gw.wsUrl);
  const refused = await c.subscribe("sdk-sub", { filter: { where: "data.x ==" } }).catch((e) => e);
  expect(refused).toBeInstanceOf(SubscribeError);
  expect(refused).toMatchObject({ code: "INVALID_FILTER", num: 1013, retriable: false });
  expect((await c.subscribe("sdk-sub", { start: { token: "bm9wZQ" } }).catch((e) => e)) as SubscribeError).toMatchObject({ code: "INVALID_POSITION" });
  // From latest it is live at once; from earliest only once history is read.
  expect((await c.subscribe("sdk-sub")).live).toBe(true);
  for (let i = 0; i < 10; i++) await c.publish({ type: "n", data: { i } }, { topic: "sdk-sub" });
  const old = await c.subscribe("sdk-sub", { start: "earliest" });
  expect(old.live).toBe(false);
  const first: DeliveredEvent[] = [];
  for await (const e of old) if (first.push(e) === 10) break;
  const token = old.token!;
  expect((await c.subscribe("sdk-sub", { start: { token } })).gaps).toEqual([]);
  // 20 more: retention (10 records) deletes offsets 10 to 19, after the token and before what is kept.
  for (let i = 10; i < 30; i++) await c.publish({ type: "n", data: { i } }, { topic: "sdk-sub" });
  const resumed = await c.subscribe("sdk-sub", { start: { token } });
  expect(resumed.gaps).toEqual([{ topic: "sdk-sub", partition: 0, from: 10, to: 20, reason: "retention" }]);
}, 60_000);

test("publishes that together would exceed the gateway's maxFrameBytes go in frames under it, and all are acked; an event too large alone is refused by itself", async () => {
  const gw = await gateway({ KAFKA_BROKERS: "", MAX_FRAME_BYTES: "65536" });
  for (const codec of ["msgpack", "json"] as const) {
    const c = await client(gw.wsUrl, { codec });
    expect(c.limits.maxFrameBytes).toBe(65536);
    const pad = "é".repeat(500); // 1,000 bytes in UTF-8, 500 characters in a JSON string
    // Past 4 × maxFrameBytes the WebSocket layer closes the socket (1009), losing every reply in
    // flight with it: the SDK refuses such an event itself, never sending it.
    const [huge, giant, ...rest] = await Promise.allSettled([
      c.publish({ type: "huge", data: "x".repeat(70_000) }),
      c.publish({ type: "giant", data: "x".repeat(300_000) }),
      ...Array.from({ length: 600 }, (_, i) => c.publish({ type: "padded", data: { i, pad } })),
    ]);
    expect(huge).toMatchObject({ status: "rejected", reason: { code: "FRAME_TOO_LARGE" } });
    expect(giant).toMatchObject({ status: "rejected", reason: { code: "FRAME_TOO_LARGE" } });
    expect(rest.filter((r) => r.status !== "fulfilled")).toEqual([]);
  }
}, 60_000);

test("a frame the client cannot decode is never dropped in silence: the client drops the connection and resumes on a new one", async () => {
  // A peer that breaks the protocol on purpose (a gateway of another version, a proxy mangling
  // frames): it welcomes, then sends bytes that are not msgpack. Dropping that frame would lose what
  // it carried (an ack, or events of a subscription: a gap nobody sees); reconnecting re-sends the
  // publishes in flight and resumes subscriptions from their last token.
  let connections = 0;
  const peer = Bun.serve({
    port: 0,
    fetch: (req, srv) => (srv.upgrade(req) ? undefined : new Response("no", { status: 400 })),
    websocket: {
      open: () => void connections++,
      message(ws) {
        ws.send(pack({ t: 2, v: 1, session: `s${connections}`, limits: { window: 1000, maxBatchEvents: 100, maxFrameBytes: 1 << 20 } }));
        ws.send(new Uint8Array([0xc1, 0xc1, 0xc1])); // 0xc1 is never used in msgpack
      },
    },
  });
  const states: string[] = [];
  const c = await connect({ url: `ws://127.0.0.1:${peer.port}`, reconnect: { minMs: 20, maxMs: 50 }, onState: (s, d) => states.push(`${s}:${d?.reason ?? ""}`) });
  const deadline = Date.now() + 5000;
  while (connections < 2 && Date.now() < deadline) await Bun.sleep(10);
  c.close();
  peer.stop(true);
  expect(connections).toBeGreaterThanOrEqual(2);
  expect(states.some((s) => s.startsWith("reconnecting:") && s.includes("could not decode"))).toBe(true);
}, 20_000);

test("a peer whose welcome advertises limits the client cannot follow (a batch of 0 events, a negative window) is left for the next attempt, never obeyed", async () => {
  // Before, maxBatchEvents 0 made publish() send empty publish_batch frames in a synchronous loop
  // (the hostile tester counted 1.6M in 8 s), and no timer of the process ever ran again.
  const hostile = [{ window: 1000, maxBatchEvents: 0 }, { window: -1, maxBatchEvents: 100 }, { window: 1000, maxBatchEvents: 100, maxFrameBytes: 0 }, { window: Number.POSITIVE_INFINITY, maxBatchEvents: 100 }];
  for (const limits of hostile) {
    // The first connection is welcomed with the hostile limits, the next ones with sound ones.
    let welcomes = 0;
    let framesAfterHostileWelcome = 0;
    const peer = Bun.serve({
      port: 0,
      fetch: (req, srv) => (srv.upgrade(req) ? undefined : new Response("no", { status: 400 })),
      websocket: {
        message(ws, data) {
          const f = unpack(data as Uint8Array) as { t: number };
          if (f.t === 1) ws.send(pack({ t: 2, v: 1, session: `s${++welcomes}`, limits: welcomes === 1 ? limits : { window: 1000, maxBatchEvents: 100 } }));
          else if (welcomes === 1) framesAfterHostileWelcome++;
        },
      },
    });
    const states: string[] = [];
    const c = await connect({ url: `ws://127.0.0.1:${peer.port}`, reconnect: { minMs: 20, maxMs: 50 }, onState: (s, d) => states.push(`${s}:${d?.reason ?? ""}`) });
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    void c.publish({ type: "x" }).catch(() => {});
    await Bun.sleep(100);
    clearInterval(timer);
    c.close();
    peer.stop(true);
    expect(welcomes).toBe(2);
    expect(framesAfterHostileWelcome).toBe(0);
    expect(ticks).toBeGreaterThan(5); // the event loop ran
    expect(states.some((s) => s.includes("cannot follow"))).toBe(true);
  }
}, 30_000);

test("undefined fields are left out as JSON leaves them; an event the gateway would refuse for its shape, or that cannot be encoded, is refused alone and never fails the events sent with it", async () => {
  const gw = await gateway({ KAFKA_BROKERS: "", MAX_DEPTH: "16" });
  const uncaught: unknown[] = [];
  const onUncaught = (e: unknown) => void uncaught.push(e);
  process.on("uncaughtException", onUncaught);
  try {
    for (const codec of ["msgpack", "json"] as const) {
      const c = await client(gw.wsUrl, { codec });
      const topic = `sdk-shapes-${codec}`;
      const sub = await c.subscribe(topic, { start: "earliest" });
      let deep: unknown = 1;
      for (let i = 0; i < 20; i++) deep = [deep];
      const bad: Array<[string, Record<string, unknown>, string]> = [
        ["nested past maxDepth", { data: { deep } }, "NESTING_TOO_DEEP"],
        ["a BigInt beyond 64 bits", { data: { n: 2n ** 70n } }, "CLIENT_UNENCODABLE"],
        ["an id that is not a string", { id: Symbol("x") }, "INVALID_EVENT"],
        ...(codec === "msgpack"
          ? ([
              ["a lone surrogate (not UTF-8)", { data: { s: "\ud800" } }, "BAD_FRAME"],
              ["a Map (its key is not a string either)", { data: new Map([[{ a: 1 }, 1]]) }, "CLIENT_UNENCODABLE"],
              ["a NaN (JSON writes it as null)", { data: { total: 0 / 0 } }, "BAD_FRAME"],
              ["an Infinity", { subject: "s", data: [Number.POSITIVE_INFINITY] }, "BAD_FRAME"],
            ] as Array<[string, Record<string, unknown>, string]>)
          : []),
      ];
      const settled = await Promise.allSettled([
        c.publish({ type: "shape.ok", key: undefined, subject: undefined, data: { x: undefined, y: 1, list: [undefined, 2] } }, { topic }),
        ...bad.map(([, e]) => c.publish({ type: "shape.bad", ...e } as never, { topic })),
        ...Array.from({ length: 5 }, (_, i) => c.publish({ type: "shape.ok", key: `k${i}`, data: { i } }, { topic })),
      ]);
      const [first, ...others] = settled;
      const refused = others.slice(0, bad.length);
      const good = others.slice(bad.length);
      expect({ codec, first: first.status, good: good.map((g) => g.status) }).toEqual({ codec, first: "fulfilled", good: Array(5).fill("fulfilled") });
      refused.forEach((r, i) => expect({ codec, what: bad[i]![0], status: r.status, code: (r as PromiseRejectedResult).reason?.code }).toEqual({ codec, what: bad[i]![0], status: "rejected", code: bad[i]![2] }));
      for (const r of refused) expect((r as PromiseRejectedResult).reason).toMatchObject({ retriable: false, mayBePersisted: false, code: expect.any(String) });
      const got: DeliveredEvent[] = [];
      for await (const e of sub) if (got.push(e) === 6) break;
      expect(got.filter((e) => e.event.type !== "shape.ok")).toEqual([]);
      const withUndefined = got.find((e) => (e.event.data as { y?: number }).y === 1)!;
      expect(withUndefined.event.data).toEqual({ y: 1, list: [null, 2] });
      expect("key" in withUndefined.event && withUndefined.event.key !== undefined).toBe(false);
      expect("subject" in withUndefined.event).toBe(false);
    }
  } finally {
    process.off("uncaughtException", onUncaught);
  }
  expect(uncaught).toEqual([]);
}, 60_000);

test("typed arrays go as their bytes; closing the client answers a subscribe still waiting", async () => {
  const gw = await gateway({ KAFKA_BROKERS: "" });
  const c = await client(gw.wsUrl);
  const topic = "sdk-typed";
  const sub = await c.subscribe(topic, { start: "earliest" });
  const f = new Float64Array([1.5, -2, 1e300]);
  const i = new Int32Array([-1, 7]);
  await c.publish({ type: "typed", data: { f, i, view: new DataView(f.buffer, 8, 8) } }, { topic });
  for await (const e of sub) {
    const d = e.event.data as Record<string, Uint8Array>;
    expect([...d.f!]).toEqual([...new Uint8Array(f.buffer)]);
    expect([...d.i!]).toEqual([...new Uint8Array(i.buffer)]);
    expect([...d.view!]).toEqual([...new Uint8Array(f.buffer, 8, 8)]);
    break;
  }
  // A subscribe sent just before close() is answered by close(), not left pending forever.
  const other = await connect({ url: gw.wsUrl });
  const pending = other.subscribe(topic, { start: "earliest" });
  other.close();
  expect(await Promise.race([pending.then(() => "resolved", (e: { code?: string }) => `rejected ${e.code}`), Bun.sleep(3000).then(() => "pending")])).toMatch(/^(resolved|rejected CLIENT_CLOSED)$/);
}, 60_000);

test("at the per-connection limit, subscriptions closed and made again from their tokens one after another are all taken", async () => {
  for (const brokers of ["", await kafkaBrokers()]) {
    const gw = await gateway({ KAFKA_BROKERS: brokers, MAX_SUBSCRIPTIONS_PER_CONNECTION: "4" });
    const c = await client(gw.wsUrl);
    const topic = freshTopic("sdk-limit");
    if (brokers) await ensureTopic(brokers, topic, 3);
    else await c.publish({ type: "seed" }, { topic });
    const subs = await Promise.all(Array.from({ length: 4 }, () => c.subscribe(topic, { start: "earliest" })));
    for (let i = 0; i < 4; i++) {
      const token = await subs[i]!.close();
      // A subscription made again counts once, whether or not it has finished starting.
      subs[i] = await c.subscribe(topic, { start: { token: token! } });
    }
  }
}, 120_000);

test("a filter the codec cannot carry as written (a Map, a Set, a BigInt in JSON, a cycle, a symbol, a getter that throws) is refused INVALID_FILTER by the client, never sent as something else", async () => {
  const gw = await gateway({ KAFKA_BROKERS: "" });
  const topic = "sdk-filter-shape";
  const cyclic: Record<string, unknown> = { types: ["a"] };
  cyclic.self = cyclic;
  const throwing = new Proxy({}, { ownKeys: () => { throw new Error("boom"); } });
  for (const codec of ["json", "msgpack"] as const) {
    const c = await client(gw.wsUrl, { codec });
    const bad: unknown[] = [
      // JSON writes a Map as {}: an empty filter, which matches every event.
      new Map([["types", ["a"]]]),
      { types: new Set(["a"]) },
      { types: ["a"], where: 1n },
      cyclic,
      { types: [Symbol("a")] },
      { types: ["a"], when: new Date(0) },
      throwing,
    ];
    for (const filter of bad) {
      const refused = await c.subscribe(topic, { filter: filter as Record<string, unknown> }).catch((e) => e);
      expect(refused).toBeInstanceOf(SubscribeError);
      expect(refused).toMatchObject({ code: "INVALID_FILTER", retriable: false });
    }
    // The connection is unharmed, and a plain filter still filters.
    const sub = await c.subscribe(topic, { filter: { types: ["a"] } });
    await c.publish({ type: "b" }, { topic });
    await c.publish({ type: "a" }, { topic });
    for await (const e of sub) {
      expect(e.event.type).toBe("a");
      break;
    }
    await sub.close();
  }
}, 60_000);

test("integers past 2^53 reach a subscriber of the SDK exactly, as BigInt, in both codecs; those within stay numbers", async () => {
  const gw = await gateway({ KAFKA_BROKERS: "" });
  const topic = "sdk-int64";
  const data = { max: 2n ** 63n - 1n, min: -(2n ** 63n), umax: 2n ** 64n - 1n, past: 2n ** 53n + 1n, safe: 2 ** 53 - 1, small: -5, ms: 1764600000000, f: 1.5, id: "12345678901234567890" };
  const publisher = await client(gw.wsUrl);
  await publisher.publish({ type: "ints", data }, { topic });
  for (const codec of ["msgpack", "json"] as const) {
    const c = await client(gw.wsUrl, { codec });
    const sub = await c.subscribe(topic, { start: "earliest" });
    for await (const e of sub) {
      expect(e.event.data).toEqual(data);
      expect(e.offset).toBe(0);
      break;
    }
  }
}, 60_000);

test("an event handed over has one shape whether it came alone or in a batch: topic, partition, offset, event, and nothing of the frame", async () => {
  const gw = await gateway({ KAFKA_BROKERS: "" });
  const topic = "sdk-shape";
  const c = await client(gw.wsUrl);
  const sub = await c.subscribe(topic);
  await c.publish({ type: "alone" }, { topic }); // sent on its own: an `event` frame
  await c.publishBatch(Array.from({ length: 20 }, (_, i) => ({ type: "many", data: { i } })), { topic }); // in `event_batch` frames
  const keys = new Set<string>();
  let n = 0;
  for await (const e of sub) {
    keys.add(Object.keys(e).sort().join(","));
    if (++n === 21) break;
  }
  expect([...keys]).toEqual(["event,offset,partition,topic"]);
}, 60_000);

test("data the codec would not carry as written (a Map, a Set, a RegExp, a class instance, a function, a symbol; bytes in JSON) is refused alone, CLIENT_UNENCODABLE, in both codecs", async () => {
  const gw = await gateway({ KAFKA_BROKERS: "" });
  const topic = "sdk-carried";
  class Point {
    constructor(readonly x: number) {}
  }
  const bad: Array<[string, unknown]> = [
    ["map", new Map([["a", 1]])],
    ["set", new Set([1])],
    ["regexp", /x/],
    ["instance", new Point(1)],
    ["function", { f: () => 1 }],
    ["symbol", [Symbol("s")]],
    ["boxed", { s: new String("s") }],
  ];
  for (const codec of ["json", "msgpack"] as const) {
    const c = await client(gw.wsUrl, { codec });
    const cases = codec === "json" ? [...bad, ["bytes", { b: new Uint8Array([1, 2]) }] as [string, unknown]] : bad;
    const results = await Promise.allSettled([
      c.publish({ type: "good", data: { ok: 1, when: new Date(0), nothing: null } }, { topic }),
      ...cases.map(([name, data]) => c.publish({ type: name, data }, { topic })),
      c.publish({ type: "good", data: [1, "two", true] }, { topic }),
    ]);
    expect({ codec, outcomes: results.map((r) => (r.status === "fulfilled" ? "acked" : (r.reason as { code: string }).code)) }).toEqual({ codec, outcomes: ["acked", ...cases.map(() => "CLIENT_UNENCODABLE"), "acked"] });
  }
  // Bytes are carried by msgpack.
  const m = await client(gw.wsUrl);
  expect(await m.publish({ type: "bytes", data: { b: new Uint8Array([1, 2]) } }, { topic })).toMatchObject({ topic });
}, 60_000);

test("a subscription's end is heard once by each notice handler: one given before, one added by a handler while the end is told, one given after", async () => {
  const gw = await gateway({ KAFKA_BROKERS: "" });
  const c = await connect({ url: gw.wsUrl });
  const sub = await c.subscribe("sdk-ended");
  const heard: string[] = [];
  sub.onNotice((n) => {
    if (n.kind !== "ended") return;
    heard.push(`before ${n.code}`);
    sub.onNotice((m) => m.kind === "ended" && heard.push(`during ${m.code}`));
  });
  c.close();
  sub.onNotice((n) => n.kind === "ended" && heard.push(`after ${n.code}`));
  await Bun.sleep(50);
  expect(heard.sort()).toEqual(["after CLIENT_CLOSED", "before CLIENT_CLOSED", "during CLIENT_CLOSED"]);
}, 60_000);
