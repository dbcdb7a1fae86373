import { z } from "zod";
import { type Envelope, EnvelopeSchema, describeIssues } from "./frames";
import { HEADERS_HARD_MAX, TIME_MAX_CHARS } from "./limits";

/**
 * Envelope validation for the ingest hot path. EnvelopeSchema (zod) stays the definition; this is a
 * hand-written check of the common shapes that answers "certainly valid" about 20× faster, and
 * hands everything else to zod, which then accepts or writes the error message. So the fast path
 * can only ever be stricter than the schema, never looser or differently worded, and
 * test/protocol/envelope.test.ts checks it against the schema on generated envelopes.
 *
 * Fields whose rules are intricate (RFC 3339 `time` strings, `data_base64`) are checked with the
 * schema's own field validators, and only when present.
 */
const TimeString = z.iso.datetime({ offset: true }).max(TIME_MAX_CHARS);
const Base64 = z.base64();
const RESERVED_HEADER = /^(ce_|content-type$)/i;

export type EnvelopeResult = { ok: true; envelope: Envelope } | { ok: false; message: string };

/** Validates one event; errors name it "event", or "events[index]" when it came in a batch. */
export function parseEnvelope(value: unknown, index: number | null): EnvelopeResult {
  if (isCertainlyValid(value)) return { ok: true, envelope: value as Envelope };
  const parsed = EnvelopeSchema.safeParse(value);
  const where = index === null ? "event" : `events[${index}]`;
  if (!parsed.success) return { ok: false, message: describeIssues(parsed.error, where) };
  return { ok: true, envelope: parsed.data };
}

// isWellFormed is native and, for the Latin-1 strings most fields are, needs no scan.
const str = (v: unknown, min: number, max: number): boolean => typeof v === "string" && v.length >= min && v.length <= max && (v as unknown as { isWellFormed(): boolean }).isWellFormed();
const optStr = (v: unknown, min: number, max: number): boolean => v === undefined || str(v, min, max);

/** True only when EnvelopeSchema would accept `v` unchanged; false means "ask the schema". */
export function isCertainlyValid(v: unknown): boolean {
  if (typeof v !== "object" || v === null || Object.getPrototypeOf(v) !== Object.prototype) return false;
  const e = v as Record<string, unknown>;
  let hasType = false;
  for (const k in e) {
    const f = e[k];
    switch (k) {
      case "type":
        if (!str(f, 1, 256)) return false;
        hasType = true;
        break;
      case "key":
        if (f !== undefined && !(f instanceof Uint8Array) && !str(f, 0, 32768)) return false;
        break;
      case "data":
        if (e.data_base64 !== undefined) return false;
        break;
      case "id":
      case "datacontenttype":
        if (!optStr(f, 1, 256)) return false;
        break;
      case "source":
      case "subject":
        if (!optStr(f, 1, 1024)) return false;
        break;
      case "specversion":
        if (f !== undefined && f !== "1.0") return false;
        break;
      case "time":
        if (f !== undefined && !(f instanceof Date ? !Number.isNaN(f.getTime()) : TimeString.safeParse(f).success)) return false;
        break;
      case "data_base64":
        if (f !== undefined && !Base64.safeParse(f).success) return false;
        break;
      case "headers":
        if (f !== undefined && !headersValid(f)) return false;
        break;
      default:
        return false; // unknown field: the schema names it in its error
    }
  }
  return hasType;
}

function headersValid(h: unknown): boolean {
  if (typeof h !== "object" || h === null || Object.getPrototypeOf(h) !== Object.prototype) return false;
  const rec = h as Record<string, unknown>;
  let count = 0;
  for (const name in rec) {
    if (++count > HEADERS_HARD_MAX) return false;
    if (!str(name, 1, 256) || RESERVED_HEADER.test(name) || name.includes("\0")) return false;
    const value = rec[name];
    if (!(value instanceof Uint8Array) && !str(value, 0, 65536)) return false;
  }
  return true;
}
