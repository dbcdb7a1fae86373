import { expect, test } from "bun:test";
import { LostKeys as Keys } from "../../src/log/lost-keys";
import { GatewayError } from "../../src/protocol/errors";

/**
 * LostKeys alone: what a worker slot refuses behind an event of the same key it refused or lost
 * (over Kafka: restart-hold-order.test.ts, overload-order.test.ts).
 */
const rec = (key: string | Uint8Array | null, id?: string, topic = "t") => ({ topic, key, headers: id === undefined ? [["ce_type", "x"]] : ([["ce_id", id]] as Array<[string, string]>) }) as { topic: string; key: string | Uint8Array | null; headers: Array<[string, string | Uint8Array]> };
const T = 1_000;
const WAIT = new GatewayError("UNAVAILABLE", "behind an earlier event of its key");
/** The class, with block's refusal fixed and refusal() as a yes or no. */
class LostKeys extends Keys {
  override block(r: Parameters<Keys["block"]>[0], until: number): void {
    super.block(r, until, WAIT);
  }
  refuses(r: Parameters<Keys["block"]>[0], now: number): boolean {
    const refusal = this.refusal(r, now);
    if (refusal !== null) expect(refusal).toBe(WAIT);
    return refusal !== null;
  }
}
const UNTIL = T + 1_000;

test("a later event of a blocked key is refused until the earlier one comes again; other keys, topics and keyless events pass", () => {
  const lost = new LostKeys(100);
  expect(lost.empty).toBe(true);
  lost.block(rec("k", "a"), UNTIL);
  expect(lost.refuses(rec("k", "b"), T)).toBe(true);
  expect(lost.refuses(rec("other", "c"), T)).toBe(false);
  expect(lost.refuses(rec("k", "d", "another-topic"), T)).toBe(false);
  expect(lost.refuses(rec(null, "e"), T)).toBe(false);
  // a passes; b, refused behind it, is waited for in turn, then the key is free.
  expect(lost.refuses(rec("k", "a"), T)).toBe(false);
  expect(lost.refuses(rec("k", "f"), T)).toBe(true);
  expect(lost.refuses(rec("k", "b"), T)).toBe(false);
  expect(lost.refuses(rec("k", "f"), T)).toBe(false);
  expect(lost.refuses(rec("k", "g"), T)).toBe(false);
  expect(lost.empty).toBe(true);
});

test("re-sends pass in whatever order they come; the key is free once each has", () => {
  const lost = new LostKeys(100);
  lost.block(rec("k", "a"), UNTIL);
  expect(lost.refuses(rec("k", "b"), T)).toBe(true);
  expect(lost.refuses(rec("k", "b"), T)).toBe(false);
  expect(lost.refuses(rec("k", "c"), T)).toBe(true);
  expect(lost.refuses(rec("k", "a"), T)).toBe(false);
  expect(lost.refuses(rec("k", "c"), T)).toBe(false);
  expect(lost.empty).toBe(true);
});

test("a text key and a byte key with the same UTF-8 bytes are one key", () => {
  const lost = new LostKeys(100);
  lost.block(rec("é", "a"), UNTIL);
  expect(lost.refuses(rec(new TextEncoder().encode("é"), "b"), T)).toBe(true);
  expect(lost.blocks(rec(Buffer.from("é")), T)).toBe(true);
});

test("a block ends at its time, whatever has not come again: a client that gave up is not refused for long", () => {
  const lost = new LostKeys(100);
  lost.block(rec("k", "a"), UNTIL);
  expect(lost.refuses(rec("k", "b"), UNTIL - 1)).toBe(true);
  expect(lost.refuses(rec("k", "c"), UNTIL)).toBe(false);
  lost.block(rec("j", "a"), UNTIL);
  lost.sweep(UNTIL);
  expect(lost.empty).toBe(true);
});

test("an event without an id blocks its key to the end; past the bound every keyed event is refused, to the end", () => {
  const lost = new LostKeys(2);
  lost.block(rec("k"), UNTIL);
  expect(lost.refuses(rec("k", "x"), T)).toBe(true);
  expect(lost.refuses(rec("k"), T)).toBe(true);
  lost.block(rec("j", "a"), UNTIL);
  expect(lost.refuses(rec("free", "z"), T)).toBe(false);
  lost.block(rec("i", "b"), UNTIL); // a third key: more than it may name
  expect(lost.refuses(rec("free", "z"), T)).toBe(true);
  expect(lost.refuses(rec(null, "z"), T)).toBe(false);
  lost.sweep(UNTIL);
  expect(lost.empty).toBe(true);
  expect(lost.refuses(rec("k", "x"), UNTIL)).toBe(false);
});
