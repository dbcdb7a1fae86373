import { expect, test } from "bun:test";
import { ByteReader, ByteWriter, InternTable, LITERAL, ReceivedTable } from "../../src/kafka/ipc";

/** Writes `values` the way WorkerSlot writes topics and repeating headers, reads them as the worker does. */
function roundTrip(values: string[], capacity: number): { read: string[]; literals: number } {
  const sent = new InternTable(capacity);
  const w = new ByteWriter(64);
  let literals = 0;
  for (const v of values) {
    const ref = sent.known("ce_type", v);
    if (ref >= 0) w.u16(ref);
    else {
      const id = sent.add("ce_type", v);
      if (id === LITERAL) literals++;
      w.u16(id);
      w.shortString(v);
    }
  }
  const received = new ReceivedTable<string>();
  const r = new ByteReader(w.take());
  return { read: values.map(() => received.resolve(r.u16(), () => r.shortString())), literals };
}

test("string tables: repeats cross as refs, and a full table falls back to literals without losing a value", () => {
  const values = ["a", "b", "a", "c", "d", "e", "a", "d", "b", "e", "f"];
  const { read, literals } = roundTrip(values, 3);
  expect(read).toEqual(values);
  // a, b, c fill the table; d, e (twice each) and f are literals every time.
  expect(literals).toBe(5);
});

test("string tables: a ref the receiver never saw defined is an error, not a wrong value", () => {
  const received = new ReceivedTable<string>();
  expect(() => received.resolve(3, () => "x")).toThrow(/out of step/);
});
