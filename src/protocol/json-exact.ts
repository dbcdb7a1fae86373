import { GatewayError } from "./errors";

/**
 * A JSON parser that keeps integers exact: an integer literal that a double cannot hold becomes a
 * BigInt, up to MAX_INTEGER_DIGITS digits (past them, EVENT_TOO_LARGE). Only for text JSON.parse has
 * already accepted and whose depth is already checked (so it needs no error handling of its own and
 * recursion is bounded), and only when a number beyond ±2^53 was seen (codec.ts): everything else
 * stays on the native parser.
 */
export function parseJsonExact(text: string): unknown {
  const p = new ExactParser(text);
  return p.value();
}

/**
 * JSON.parse, with integers a double cannot hold as BigInt: a Kafka record's JSON payload, a JSON
 * frame the client SDK reads. The text is parsed natively first (its validation and depth are what
 * parseJsonExact relies on), and again exactly only when it has a run of 16 digits, the shortest
 * text that can hold such an integer.
 */
export function parseJsonValue(text: string): unknown {
  const value: unknown = JSON.parse(text);
  return LONG_DIGITS.test(text) ? parseJsonExact(text) : value;
}
const LONG_DIGITS = /[0-9]{16}/;

/**
 * BigInt as its digits, which JSON allows and JSON.stringify refuses (for a replacer): JSON.rawJSON
 * where the engine has it (Bun, Chromium 114, Firefox 135, Safari 18.4), else a string of the digits.
 */
export function bigintAsDigits(_key: string, value: unknown): unknown {
  if (typeof value !== "bigint") return value;
  return rawJSON ? rawJSON(value.toString()) : value.toString();
}
const rawJSON = (JSON as unknown as { rawJSON?: (text: string) => unknown }).rawJSON;

const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;

/**
 * The most digits a JSON integer may have (fixed; docs/protocol.md, Limits). 2^256 has 78; BigInt
 * makes one of 900,000 digits in a quarter of a second, and writes it out again in more, in one
 * piece no turn can cut: a client sent 900 KB frames of one such integer, each under every other
 * limit, and every other client waited seconds.
 */
export const MAX_INTEGER_DIGITS = 1000;

class ExactParser {
  private i = 0;
  constructor(private readonly s: string) {}

  private ws(): void {
    const s = this.s;
    for (let c = s.charCodeAt(this.i); c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09; c = s.charCodeAt(++this.i));
  }

  value(): unknown {
    this.ws();
    const s = this.s;
    const c = s.charCodeAt(this.i);
    if (c === 0x7b) return this.object();
    if (c === 0x5b) return this.array();
    if (c === 0x22) return this.string();
    if (c === 0x74) return (this.i += 4), true;
    if (c === 0x66) return (this.i += 5), false;
    if (c === 0x6e) return (this.i += 4), null;
    return this.number();
  }

  /**
   * Digits are read here, not by a regular expression and Number(): this parser runs only on text
   * dense with long integers, and there the match objects and second reads were most of its time.
   */
  private number(): number | bigint {
    const s = this.s;
    const start = this.i;
    let i = start;
    if (s.charCodeAt(i) === 0x2d) i++;
    const first = i;
    // Exact while it has at most 15 digits: below 2^53 at every step.
    let n = 0;
    for (let d = s.charCodeAt(i); d >= 0x30 && d <= 0x39; d = s.charCodeAt(++i)) n = n * 10 + (d - 0x30);
    const digits = i - first;
    const next = s.charCodeAt(i);
    if (next === 0x2e || next === 0x65 || next === 0x45) {
      // A fraction or an exponent: a double, read as JSON.parse reads it.
      NUMBER.lastIndex = start;
      const m = NUMBER.exec(s)!;
      this.i = start + m[0].length;
      return Number(m[0]);
    }
    this.i = i;
    if (digits <= 15) return first > start ? -n : n;
    // Checked before the BigInt is made: making it (and writing it out again) takes time quadratic in its digits.
    if (digits > MAX_INTEGER_DIGITS) throw new GatewayError("EVENT_TOO_LARGE", `an integer of ${digits} digits; at most ${MAX_INTEGER_DIGITS}`);
    const text = s.slice(start, i);
    // 16 digits may still be a safe integer; 17 (JSON has no leading zeros) never are.
    if (digits === 16) {
      const v = Number(text);
      if (Number.isSafeInteger(v)) return v;
    }
    return BigInt(text);
  }

  private string(): string {
    const s = this.s;
    const start = this.i;
    let escaped = false;
    for (this.i++; this.i < s.length; this.i++) {
      const d = s.charCodeAt(this.i);
      if (d === 0x5c) (escaped = true), this.i++;
      else if (d === 0x22) break;
    }
    this.i++;
    return escaped ? (JSON.parse(s.slice(start, this.i)) as string) : s.slice(start + 1, this.i - 1);
  }

  private array(): unknown[] {
    const out: unknown[] = [];
    this.i++;
    this.ws();
    if (this.s.charCodeAt(this.i) === 0x5d) return this.i++, out;
    for (;;) {
      out.push(this.value());
      this.ws();
      if (this.s.charCodeAt(this.i++) === 0x5d) return out;
    }
  }

  private object(): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    this.i++;
    this.ws();
    if (this.s.charCodeAt(this.i) === 0x7d) return this.i++, out;
    for (;;) {
      this.ws();
      const key = this.string();
      this.ws();
      this.i++; // ":"
      const v = this.value();
      // As JSON.parse does: "__proto__" is an own property, never the prototype.
      if (key === "__proto__") Object.defineProperty(out, key, { value: v, enumerable: true, writable: true, configurable: true });
      else out[key] = v;
      this.ws();
      if (this.s.charCodeAt(this.i++) === 0x7d) return out;
    }
  }
}
