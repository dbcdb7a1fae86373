/**
 * A JSON parser that keeps integers exact: an integer literal that a double cannot hold becomes a
 * BigInt. Only for text JSON.parse has already accepted and whose depth is already checked (so
 * it needs no error handling of its own and recursion is bounded), and only when a number beyond
 * ±2^53 was seen (codec.ts): everything else stays on the native parser.
 */
export function parseJsonExact(text: string): unknown {
  const p = new ExactParser(text);
  return p.value();
}

const NUMBER = /-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/y;

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
    NUMBER.lastIndex = this.i;
    const m = NUMBER.exec(s)!;
    this.i += m[0].length;
    const n = Number(m[0]);
    return m[1] === undefined && m[2] === undefined && !Number.isSafeInteger(n) ? BigInt(m[0]) : n;
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
