import { expect, test } from "bun:test";
import fc from "fast-check";
import { plainValue } from "./arbitraries";
import { unpack } from "msgpackr";
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
  for (const text of ['{\n"a": 1\n}', '[1,\r\n2]', "{not json", '"\\ud834\\udd1e\n"']) {
    expect(record(text).entry("json")).toBe(whole(record(text)));
  }
  expect((record('{\n"a": 1\n}').entry("json") as string).includes("\n")).toBe(false);
});

test("JSON no codec carries as written (an unpaired surrogate, a number past a double) goes as its bytes, degraded, in both codecs", () => {
  for (const text of ['"\\ud800"', '{"s":["\\udfff"]}', '{"\\ud800":1}', "1e400", '{"f":\n-1e400}', `[${"9".repeat(400)}.5]`]) {
    for (const codec of ["json", "msgpack"] as const) {
      const entry = record(text).entry(codec);
      const e = codec === "json" ? JSON.parse(entry as string) : unpack(entry as Uint8Array);
      expect(e.degraded).toBe("data");
      const bytes = codec === "json" ? Buffer.from(e.event.data_base64, "base64") : Buffer.from(e.event.data);
      expect(bytes.toString()).toBe(text);
    }
  }
  // What only looks like it (a backslash escaped, an exponent a double holds, a surrogate pair) is decoded.
  for (const text of ['"\\\\ud800"', "1e300", "[1.5e-300]", '"\\ud834\\udd1e"']) {
    for (const codec of ["json", "msgpack"] as const) {
      const entry = record(text).entry(codec);
      const e = codec === "json" ? JSON.parse(entry as string) : unpack(entry as Uint8Array);
      expect(e.degraded).toBeUndefined();
      expect(e.event.data).toEqual(JSON.parse(text));
    }
  }
});
