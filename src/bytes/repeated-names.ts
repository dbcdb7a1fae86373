/**
 * Reads short strings that records repeat (topic and header names) without decoding each again.
 * Records from one producer carry the same names in the same places (the CloudEvents headers, in
 * order), and decoding them was a third of reading a record back (every replay reads every record).
 * The string last read at each slot is kept and returned again when the bytes are the same. Only
 * ASCII strings are kept, so comparing their char codes to the bytes is comparing the UTF-8.
 */
export class RepeatedNames {
  private readonly last: string[] = [];

  constructor(private readonly slots = 16) {}

  /** The UTF-8 string of `buf[pos, pos + len)`, read at `slot` (its place in the record). */
  read(slot: number, buf: Buffer, pos: number, len: number): string {
    const known = this.last[slot];
    if (known !== undefined && known.length === len) {
      let i = 0;
      while (i < len && known.charCodeAt(i) === buf[pos + i]) i++;
      if (i === len) return known;
    }
    const s = buf.toString("utf8", pos, pos + len);
    if (slot < this.slots && len <= 256 && isAscii(s)) this.last[slot] = s;
    return s;
  }
}

function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) >= 0x80) return false;
  return true;
}
