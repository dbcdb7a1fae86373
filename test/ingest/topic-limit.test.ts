import { afterEach, describe, expect, test } from "bun:test";
import { connect } from "../../src/client";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { freshTopic, kafkaBrokers } from "../support/kafka";
import { underControl } from "./control";
import { RawSocket } from "./wire";
import { SECRET, hsToken } from "../auth/support";

/**
 * Every topic a client names costs the gateway state (a partition set in the embedded log, a topic
 * handle in each Kafka worker, the ids reader following it) and, where brokers auto-create, a topic in
 * the cluster. So the topics one instance publishes to are bounded (MAX_TOPICS): past it, a publish
 * naming one more is refused TOO_MANY_TOPICS before any work, and the topics already known go on.
 */
let gw: GatewayProcess | null = null;
afterEach(async () => {
  await gw?.stop();
  gw = null;
}, 60_000);

/** Publishes one event to each of `names` over one raw socket, pipelined; returns the code (or "ack") of each. */
async function publishToEach(url: string, names: string[]): Promise<string[]> {
  const s = await RawSocket.connect(url, "json");
  for (let i = 0; i < names.length; i++) s.send(JSON.stringify({ t: 10, cid: i + 1, topic: names[i], event: { type: "spray", data: { i } } }));
  const replies = await s.waitFor((r) => typeof r.frame.cid === "number", names.length, 60_000);
  s.close();
  const byCid = new Map(replies.map((r) => [r.frame.cid as number, r.frame]));
  return names.map((_, i) => {
    const f = byCid.get(i + 1)!;
    return f.t === 20 ? "ack" : String(f.code);
  });
}

describe("MAX_TOPICS", () => {
  test("embedded log: a client naming a new topic per event is refused TOO_MANY_TOPICS past the bound; what was written stays", async () => {
    // The default bytes retention: every one of these tiny events must stay (before, each partition
    // written to was charged a 1 MiB chunk, so 256 topics filled 256 MiB and older events were dropped).
    // One client stands for many addresses here: the instance's bound, not an address's share of it.
    gw = await startGateway({ MAX_TOPICS: "600", MAX_TOPICS_PER_PRINCIPAL: "1000" });
    const g = gw;
    const names = Array.from({ length: 700 }, (_, i) => `spray-${i}`);
    const codes = await underControl(g, "a new topic per event (embedded)", () => publishToEach(g.wsUrl, names));
    expect(codes.slice(0, 599).every((c) => c === "ack")).toBe(true); // the control's topic is one of the 600
    expect(new Set(codes.slice(599))).toEqual(new Set(["TOO_MANY_TOPICS"]));
    expect((await g.health()).log.topics).toBe(600);
    // A topic already known still takes events, and the first one written still holds its event.
    expect(await publishToEach(g.wsUrl, ["spray-0", "spray-1"])).toEqual(["ack", "ack"]);
    const client = await connect({ url: g.wsUrl });
    const sub = await client.subscribe("spray-0", { start: "earliest" });
    const it = sub[Symbol.asyncIterator]();
    const first = await Promise.race([it.next(), Bun.sleep(10_000).then(() => null)]);
    expect(first?.value?.event.data).toEqual({ i: 0 });
    client.close();
  }, 120_000);

  test("Kafka: past MAX_TOPICS a publish to one more topic is refused before it reaches the workers (no topic is created)", async () => {
    gw = await startGateway({ KAFKA_BROKERS: await kafkaBrokers(), KAFKA_WORKERS: "1", MAX_TOPICS: "6" });
    const g = gw;
    const names = Array.from({ length: 8 }, () => freshTopic("spray"));
    const codes = await underControl(g, "a new topic per event (Kafka)", () => publishToEach(g.wsUrl, names));
    // The control's topic is the first of the six.
    expect(codes).toEqual(["ack", "ack", "ack", "ack", "ack", "TOO_MANY_TOPICS", "TOO_MANY_TOPICS", "TOO_MANY_TOPICS"]);
    const http = await fetch(`${g.url}/api/v1/events?topic=${names[7]}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ type: "x" }) });
    expect(http.status).toBe(422);
    expect(((await http.json()) as { error: { code: string } }).error.code).toBe("TOO_MANY_TOPICS");
    expect(await publishToEach(g.wsUrl, [names[0]!])).toEqual(["ack"]);
  }, 120_000);

  test("requests that write nothing take no place: empty batches, invalid events and dry runs to new names leave room for a real publish", async () => {
    // Before, a topic was taken before its events were checked: one client's empty publish_batch
    // frames to 989 new names (or 999 dry runs) refused everyone else's new topics until a restart.
    gw = await startGateway({ KAFKA_BROKERS: await kafkaBrokers(), KAFKA_WORKERS: "1", MAX_TOPICS: "20" });
    const g = gw;
    const s = await RawSocket.connect(g.wsUrl, "json");
    const n = 60;
    for (let i = 0; i < n; i++) {
      s.send(JSON.stringify({ t: 11, cid: 2 * i + 1, topic: freshTopic("empty"), events: [] }));
      s.send(JSON.stringify({ t: 11, cid: 2 * i + 2, topic: freshTopic("invalid"), events: [{ data: { no: "type" } }] }));
    }
    const replies = await s.waitFor((r) => typeof r.frame.cid === "number", 2 * n, 60_000);
    s.close();
    expect(replies.map((r) => r.frame.code ?? r.frame.errors?.[0]?.code).filter((c) => c === "TOO_MANY_TOPICS")).toEqual([]);
    for (let i = 0; i < n; i++) {
      const dry = await fetch(`${g.url}/api/v1/events/validate?topic=${freshTopic("dry")}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ type: "x" }) });
      expect(dry.status).toBe(200);
    }
    // Every one of the 20 places is still free: 20 new topics take events.
    expect(await publishToEach(g.wsUrl, Array.from({ length: 20 }, () => freshTopic("real")))).toEqual(Array(20).fill("ack"));
    expect(await publishToEach(g.wsUrl, [freshTopic("one-more")])).toEqual(["TOO_MANY_TOPICS"]);
  }, 120_000);
});

test("with authentication on, one principal makes at most MAX_TOPICS_PER_PRINCIPAL topics new; other principals still may", async () => {
  // Without a share per principal, one client writing an event to each of 1,010 new names refused
  // every other client's new topics until a restart (outside hostile and security testers).
  gw = await startGateway({ KAFKA_BROKERS: "", AUTH_JWT_SECRET: SECRET, MAX_TOPICS: "50", MAX_TOPICS_PER_PRINCIPAL: "5" });
  const g = gw;
  const grants = { kgw: { publish: ["*"], subscribe: ["*"] } };
  const post = async (sub: string, topic: string) => {
    const r = await fetch(`${g.url}/api/v1/events?topic=${topic}`, { method: "POST", headers: { authorization: `Bearer ${await hsToken({ sub, ...grants })}`, "content-type": "application/json" }, body: '{"type":"x"}' });
    return r.status === 202 ? "ack" : (((await r.json()) as { error: { code: string; message: string } }).error.message.includes("MAX_TOPICS_PER_PRINCIPAL") ? "per principal" : "other");
  };
  const mallory: string[] = [];
  for (let i = 0; i < 8; i++) mallory.push(await post("mallory", `m-${i}`));
  expect(mallory).toEqual(["ack", "ack", "ack", "ack", "ack", "per principal", "per principal", "per principal"]);
  // Her topics still take her events; another principal still makes new ones.
  expect(await post("mallory", "m-0")).toBe("ack");
  expect(await post("alice", "a-0")).toBe("ack");
  // Over WebSocket the same share.
  const ws = await RawSocket.connect(g.wsUrl);
  ws.send(JSON.stringify({ t: 1, v: 1, token: await hsToken({ sub: "mallory", ...grants }) }));
  ws.send(JSON.stringify({ t: 10, cid: 1, topic: "m-ws", event: { type: "x" } }));
  const [reply] = await ws.waitFor((r) => r.frame.cid === 1, 1, 10_000);
  ws.close();
  expect(reply!.frame).toMatchObject({ t: 21, code: "TOO_MANY_TOPICS" });
}, 60_000);

test("with authentication off, one client address makes at most MAX_TOPICS_PER_PRINCIPAL topics new, over HTTP and WebSocket; other addresses still may", async () => {
  // The share was kept only for principals: without authentication one connection made 995 new
  // topics in a second, and every other client's new topic was refused until a restart (outside hostile tester).
  gw = await startGateway({ KAFKA_BROKERS: "", MAX_TOPICS: "50", MAX_TOPICS_PER_PRINCIPAL: "5", TRUSTED_PROXIES: "127.0.0.1" });
  const g = gw;
  const post = async (address: string, topic: string) => {
    const r = await fetch(`${g.url}/api/v1/events?topic=${topic}`, { method: "POST", headers: { "x-forwarded-for": address, "content-type": "application/json" }, body: '{"type":"x"}' });
    return r.status === 202 ? "ack" : (((await r.json()) as { error: { code: string; message: string } }).error.message.includes("MAX_TOPICS_PER_PRINCIPAL") ? "per address" : "other");
  };
  const flood: string[] = [];
  for (let i = 0; i < 7; i++) flood.push(await post("10.9.9.9", `f-${i}`));
  expect(flood).toEqual(["ack", "ack", "ack", "ack", "ack", "per address", "per address"]);
  expect(await post("10.9.9.9", "f-0")).toBe("ack");
  expect(await post("10.8.8.8", "o-0")).toBe("ack");
  // Over WebSocket, from the address its TCP peer is (127.0.0.1, a trusted proxy without X-Forwarded-For: itself).
  const ws = await RawSocket.connect(g.wsUrl);
  ws.send(JSON.stringify({ t: 1, v: 1 }));
  for (let i = 0; i < 7; i++) ws.send(JSON.stringify({ t: 10, cid: i + 1, topic: `w-${i}`, event: { type: "x" } }));
  const replies = await ws.waitFor((r) => typeof r.frame.cid === "number", 7, 10_000);
  ws.close();
  // In the order they are answered: a refusal goes before the log's acks.
  expect(replies.map((r) => (r.frame.t === 20 ? "ack" : r.frame.code)).sort()).toEqual(["TOO_MANY_TOPICS", "TOO_MANY_TOPICS", "ack", "ack", "ack", "ack", "ack"]);
}, 60_000);
