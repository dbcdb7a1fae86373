import { expect, test } from "bun:test";
import fc from "fast-check";
import { plainValue } from "./arbitraries";
import { encodeEntry } from "../../src/protocol/event-frames";
import { DecodedRecord } from "../../src/subscribe/decoded-record";

/**
 * A JSON payload's own text is spliced into JSON entries as their `data` (DecodedRecord.jsonEntry)
 * instead of its parsed value written out again. The shortcut must deliver what the schema says:
 * for text JSON.stringify wrote (what the gateway stores for JSON publishers), the same bytes as
 * the entry encoded whole; for any other spelling of the same value, the same value once parsed;
 * and text with a line break is written out again (an SSE `data:` line must not break).
 */
const record = (text: string, extra: Array<[string, string]> = []) =>
  new DecodedRecord({
    topic: "t",
    partition: 2,
    offset: 7,
    timestamp: 1_700_000_000_000,
    key: Buffer.from("k"),
    value: Buffer.from(text),
    headers: ([["ce_type", "x.y"], ["content-type", "application/json"], ...extra] as Array<[string, string]>).map(([n, v]) => [n, Buffer.from(v)] as [string, Uint8Array]),
  });

/** The entry as encoded before the shortcut: the envelope, data parsed, encoded whole. */
const whole = (r: DecodedRecord) => encodeEntry({ topic: r.record.topic, partition: r.record.partition, offset: r.record.offset, event: r.event("json") }, "json") as string;

const value = plainValue({ bytes: false, dates: false, maxDepth: 4 });
const headers = fc.array(fc.tuple(fc.constantFrom("a", "ce_id", "ce_subject", "__proto__", "x-1"), fc.string({ maxLength: 6 })), { maxLength: 3 });

test("text JSON.stringify wrote: the entry is byte for byte the one encoded whole", () => {
  fc.assert(
    fc.property(value, headers, (v, extra) => {
      const text = JSON.stringify(v);
      if (text === undefined) return;
      const r = record(text, extra);
      expect(r.entry("json")).toBe(whole(record(text, extra)));
    }),
    { numRuns: 3000 },
  );
});

test("any other spelling without line breaks: the entry parses to the same value, the text kept as written", () => {
  fc.assert(
    fc.property(value, fc.constantFrom(" ", "\t", "  "), (v, space) => {
      const canonical = JSON.stringify(v);
      if (canonical === undefined) return;
      // Indented, then the line breaks (which JSON.stringify writes only between tokens) made spaces.
      const text = ` ${JSON.stringify(v, null, space).replaceAll("\n", " ")} `;
      const entry = record(text).entry("json") as string;
      expect(JSON.parse(entry)).toEqual(JSON.parse(whole(record(canonical))));
      expect(entry).toContain(`"data":${text.trim()}}}`);
    }),
    { numRuns: 3000 },
  );
});

test("numbers keep their spelling: -0, 1.0, 1e2 and integers past 2^53", () => {
  for (const text of ["-0", "1.0", "1e2", "12345678901234567890", '{"n":-0.0,"m":[1.50]}']) {
    expect(record(text).entry("json") as string).toEndWith(`"data":${text}}}`);
  }
});

test("text with a line break, and payloads that are not JSON, are encoded whole as before", () => {
  for (const text of ['{\n"a": 1\n}', '[1,\r\n2]', "{not json", '"\\ud800"']) {
    expect(record(text).entry("json")).toBe(whole(record(text)));
  }
  expect((record('{\n"a": 1\n}').entry("json") as string).includes("\n")).toBe(false);
});
