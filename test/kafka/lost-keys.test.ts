import { expect, test } from "bun:test";
import { LostKeys } from "../../src/kafka/lost-keys";

/** LostKeys alone: what the pool refuses while a worker's replacement is awaited (restart-hold-order.test.ts over Kafka). */
const rec = (key: string | Uint8Array | null, id?: string, topic = "t") => ({ topic, key, headers: id === undefined ? [["ce_type", "x"]] : ([["ce_id", id]] as Array<[string, string]>) }) as { topic: string; key: string | Uint8Array | null; headers: Array<[string, string | Uint8Array]> };

test("a later event of a lost key is refused until the lost one comes again; other keys, topics and keyless events pass", () => {
  const lost = new LostKeys(100);
  expect(lost.empty).toBe(true);
  lost.add(rec("k", "a"));
  expect(lost.refuses(rec("k", "b"))).toBe(true);
  expect(lost.refuses(rec("other", "c"))).toBe(false);
  expect(lost.refuses(rec("k", "d", "another-topic"))).toBe(false);
  expect(lost.refuses(rec(null, "e"))).toBe(false);
  // The lost one, sent again, passes, and with it the key (b, refused, is added by the pool: see below).
  expect(lost.refuses(rec("k", "a"))).toBe(false);
  expect(lost.refuses(rec("k", "f"))).toBe(false);
  expect(lost.empty).toBe(true);
});

test("a refused event is waited for too, so the key opens only once each has come again, in any order", () => {
  const lost = new LostKeys(100);
  lost.add(rec("k", "a"));
  expect(lost.refuses(rec("k", "b"))).toBe(true);
  lost.add(rec("k", "b"));
  expect(lost.refuses(rec("k", "a"))).toBe(false);
  expect(lost.refuses(rec("k", "c"))).toBe(true);
  expect(lost.refuses(rec("k", "b"))).toBe(false);
  expect(lost.refuses(rec("k", "c"))).toBe(false);
});

test("a text key and a byte key with the same UTF-8 bytes are one key", () => {
  const lost = new LostKeys(100);
  lost.add(rec("é", "a"));
  expect(lost.refuses(rec(new TextEncoder().encode("é"), "b"))).toBe(true);
  expect(lost.blocks(rec(Buffer.from("é")))).toBe(true);
});

test("an event without an id blocks its key until clear(); past the bound every keyed event is refused", () => {
  const lost = new LostKeys(2);
  lost.add(rec("k"));
  expect(lost.refuses(rec("k", "x"))).toBe(true);
  expect(lost.refuses(rec("k"))).toBe(true);
  lost.add(rec("j", "a"));
  expect(lost.refuses(rec("free", "z"))).toBe(false);
  lost.add(rec("i", "b")); // a third key: more than it may name
  expect(lost.refuses(rec("free", "z"))).toBe(true);
  expect(lost.refuses(rec(null, "z"))).toBe(false);
  lost.clear();
  expect(lost.empty).toBe(true);
  expect(lost.refuses(rec("k", "x"))).toBe(false);
});
