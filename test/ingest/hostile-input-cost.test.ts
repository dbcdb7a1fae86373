import { describe, expect, test } from "bun:test";
import { consumeAll } from "../support/kafka-broker";
import { freshTopic } from "../support/kafka";
import { underControl } from "./control";
import { concat, hostileGatewayForFile, manyKeys, pack, replyTo } from "./hostile.support";
import { RawSocket } from "./wire";

/**
 * Finding 7 of hostile-input.test.ts (hostile and unusual input on the ingest side): refusing a frame
 * costs about what reading it does. A file of its own because it times that, so it runs alone
 * (scripts/test-plan.ts) and the rest of hostile-input need not. Against the Kafka-backed gateway
 * with its default limits, a control connection publishing throughout.
 */
const file = hostileGatewayForFile();

describe("finding 7: refusing a frame costs about what reading it does", () => {
  // ~240 KB of one-byte integers, 4 events of 60,000: under MAX_FRAME_BYTES (1 MiB), MAX_EVENT_VALUES
  // and MAX_FRAME_VALUES, and the shape that cost most to refuse (msgpackr's error path serialised
  // every value through a replacer). The finding's frames were 16 such events, which MAX_FRAME_VALUES
  // now refuses whole before any decoding (below).
  const data = new Array(60_000).fill(1);
  const frame = (cid: number, tail: unknown[] = []) =>
    pack({ cid, t: 11, topic: "hostile-cost", events: Array.from({ length: 4 }, (_, i) => ({ type: "big", data: i === 3 ? [...data, ...tail] : data })) });

  async function nackMs(s: RawSocket, cid: number, raw: Uint8Array, code: string): Promise<number> {
    const t0 = performance.now();
    s.send(raw);
    expect(await replyTo(s, cid)).toMatchObject({ t: 21, cid, code });
    return performance.now() - t0;
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

  test("a valid 1 MiB frame plus one trailing byte is refused at the cost of a read, not of serialising it", async () => {
    const s = await RawSocket.connect(file.gw.wsUrl, "msgpack");
    const trailing: number[] = [];
    const nanAtEnd: number[] = [];
    // Refused only once the whole value is decoded (a NaN at its very end): the cost of reading it.
    const nans = Array.from({ length: 5 }, (_, i) => frame(100 + i, [Number.NaN]));
    const trailers = Array.from({ length: 5 }, (_, i) => concat(frame(200 + i), [0xc0]));
    const many = Array.from({ length: 20 }, (_, i) => concat(frame(300 + i), [0xc0]));
    await underControl(file.gw, "20 frames with a trailing byte", async () => {
      for (let i = 0; i < 5; i++) {
        nanAtEnd.push(await nackMs(s, 100 + i, nans[i]!, "BAD_FRAME"));
        trailing.push(await nackMs(s, 200 + i, trailers[i]!, "BAD_FRAME"));
      }
      // Twenty at once, as in the finding, while the control publishes.
      for (const raw of many) s.send(raw);
      await s.waitFor((r) => r.frame.cid >= 300 && r.frame.cid < 320, 20, 120_000);
    });
    console.log(`[cost] nack of a 1 MiB frame: NaN at its end (full decode) median ${median(nanAtEnd).toFixed(1)} ms; one trailing byte median ${median(trailing).toFixed(1)} ms`);
    // Before the pre-scan the trailing byte cost several times the full decode; now a read. A ratio
    // with room for a shared machine, not a wall-clock bound.
    expect(median(trailing)).toBeLessThan(Math.max(1.5 * median(nanAtEnd), 50));
    s.close();
  }, 180_000);

  test("a JSON integer of more than 1,000 digits is refused EVENT_TOO_LARGE with its cid, over the socket and HTTP, at the cost of a read; one of 1,000 is stored exactly", async () => {
    // The outside tester's frame: one integer of 900,000 digits (900 KB, under every other limit).
    // Made into a BigInt and written out again, each cost 0.3-0.5 s in one piece, and the control's
    // p50 went from 7 ms to 3.6 s while a client sent four a second.
    const topic = freshTopic("hostile-digits");
    const long = "9".repeat(900_000);
    const frames = Array.from({ length: 8 }, (_, i) => `{"cid":${10 + i},"t":10,"topic":"${topic}","event":{"type":"big","data":${long}}}`);
    const s = await RawSocket.connect(file.gw.wsUrl, "json");
    await underControl(
      file.gw,
      "900,000-digit integers",
      async () => {
        for (const f of frames) s.send(f);
        await s.waitFor((r) => r.frame.cid >= 10 && r.frame.cid < 18, 8, 120_000);
        for (let i = 0; i < 8; i++) expect(s.withCid(10 + i).map((r) => [r.frame.t, r.frame.code])).toEqual([[21, "EVENT_TOO_LARGE"]]);
        for (let i = 0; i < 4; i++) {
          const res = await fetch(`${file.gw.url}/api/v1/events?topic=${topic}`, { method: "POST", headers: { "content-type": "application/json" }, body: `{"type":"big","data":-${long}}` });
          expect([res.status, ((await res.json()) as { error: { code: string } }).error.code]).toEqual([413, "EVENT_TOO_LARGE"]);
        }
      },
      { p50UnderMs: 250 },
    );
    const edge = `${"9".repeat(1000)}`;
    s.send(`{"cid":1,"t":10,"topic":"${topic}","event":{"type":"big","data":${edge}}}`);
    expect(await replyTo(s, 1)).toMatchObject({ t: 20, cid: 1 });
    s.close();
    const [rec] = await consumeAll(file.brokers, topic, { expect: 1 });
    expect(new TextDecoder().decode(rec!.value!)).toBe(edge);
  }, 180_000);

  test("a msgpack frame of a million values, each event within MAX_EVENT_VALUES, is refused FRAME_TOO_LARGE before msgpackr builds it (outside tester)", async () => {
    // 20 events of 52,000 zeros: 1.04 MB, within MAX_FRAME_BYTES. Decoded, one such frame every two
    // seconds put the control's worst at 86-97 ms, and three connections sending them its p50 at 118 ms.
    const s = await RawSocket.connect(file.gw.wsUrl, "msgpack");
    const zeros = new Array(52_000).fill(0);
    const frames = Array.from({ length: 20 }, (_, i) => pack({ cid: 400 + i, t: 11, topic: "hostile-cost", events: Array.from({ length: 20 }, () => ({ type: "wide", data: zeros })) }));
    // At the bound's edge the frame is read: 5 events of 52,000 values (260,000 and the envelopes' own).
    const edge = pack({ cid: 500, t: 11, topic: "hostile-cost", events: Array.from({ length: 5 }, () => ({ type: "wide", data: zeros })) });
    await underControl(file.gw, "million-value frames", async () => {
      for (const raw of frames) s.send(raw);
      await s.waitFor((r) => r.frame.cid >= 400 && r.frame.cid < 420, 20, 120_000);
      expect(new Set(s.received.filter((r) => r.frame.cid >= 400 && r.frame.cid < 420).map((r) => `${r.frame.t} ${r.frame.code}`))).toEqual(new Set(["21 FRAME_TOO_LARGE"]));
      s.send(edge);
      expect(await replyTo(s, 500)).toMatchObject({ t: 22, cid: 500 });
    });
    s.close();
  }, 180_000);

  test("an event with 100,000 keys is refused before msgpackr builds it", async () => {
    const s = await RawSocket.connect(file.gw.wsUrl, "msgpack");
    const raw = pack({ cid: 1, t: 10, topic: "hostile-cost", event: { type: "wide", data: manyKeys(100_000, 0) } });
    await underControl(file.gw, "100k-key events", async () => {
      for (let i = 0; i < 5; i++) s.send(raw);
      await s.waitFor((r) => r.frame.cid === 1, 5, 120_000);
      expect(s.withCid(1).map((r) => r.frame.code)).toEqual(Array(5).fill("EVENT_TOO_LARGE"));
    });
    s.close();
  }, 180_000);
});
