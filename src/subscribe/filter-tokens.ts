import { GatewayError } from "../protocol/errors";

/**
 * The tokenizer of the `where` language (filter-expr.ts has the grammar). Positions in messages
 * are 1-based character offsets, as editors count columns.
 */
export type Tok = { k: "word" | "num" | "str" | "op" | "end"; v: string; n: number; pos: number; b?: bigint };

export const COMPARE: ReadonlySet<string> = new Set(["==", "!=", "<", "<=", ">", ">="]);

export function fail(problem: string): never {
  throw new GatewayError("INVALID_FILTER", `filter.where: ${problem}`);
}
export const at = (pos: number) => `at position ${pos + 1}`;
/** A token as error messages name it. */
export const show = (t: Tok) => (t.k === "end" ? "nothing" : t.k === "str" ? `the string ${JSON.stringify(t.v)}` : `"${t.v}"`);

const WORD = /[A-Za-z_][A-Za-z0-9_]*/y;
const NUMBER = /-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
const INTEGER = /^-?[0-9]+$/;
/** The largest integer literal: uint64's maximum has 20 digits, so 40 leaves room without cost. */
const MAX_INT_DIGITS = 40;
const ESCAPES: Record<string, string> = { "\\": "\\", "'": "'", '"': '"', n: "\n", t: "\t", r: "\r" };
// Mistakes people bring from other languages, answered with what to write instead.
const HINTS: Record<string, string> = { "=": 'use "==" to compare', "!": 'use "not" (or "!=")', "&": 'use "and"', "|": 'use "or"' };

export function tokenize(src: string): Tok[] {
  const out: Tok[] = [];
  let i = 0;
  const push = (k: Tok["k"], v: string, pos: number, n = 0) => out.push({ k, v, n, pos });
  while (i < src.length) {
    const c = src[i]!;
    if (c === " " || c === "\t" || c === "\n" || c === "\r") {
      i++;
      continue;
    }
    const start = i;
    const sticky = (re: RegExp) => ((re.lastIndex = i), re.exec(src)?.[0]);
    const word = sticky(WORD);
    const num = word ? undefined : sticky(NUMBER);
    if (word) {
      push("word", word, start);
      i += word.length;
    } else if (num) {
      const n = Number(num);
      if (!Number.isFinite(n)) fail(`number out of range ${at(start)}`);
      push("num", num, start, n);
      // An integer a double cannot hold stays exact, to compare with 64-bit integers in data.
      if (!Number.isSafeInteger(n) && INTEGER.test(num)) {
        if (num.length > MAX_INT_DIGITS) fail(`integer longer than ${MAX_INT_DIGITS} digits ${at(start)}`);
        out[out.length - 1]!.b = BigInt(num);
      }
      i += num.length;
    } else if (c === "'" || c === '"') {
      let s = "";
      for (i++; ; ) {
        const d = src[i];
        if (d === undefined) fail(`unterminated string starting ${at(start)}`);
        i++;
        if (d === c) break;
        if (d !== "\\") {
          s += d;
          continue;
        }
        const e = src[i];
        if (e === undefined) fail(`unterminated string starting ${at(start)}`);
        const hex = src.slice(i + 1, i + 5);
        if (Object.hasOwn(ESCAPES, e)) (s += ESCAPES[e]), i++;
        else if (e === "u" && /^[0-9a-fA-F]{4}$/.test(hex)) (s += String.fromCharCode(parseInt(hex, 16))), (i += 5);
        else fail(`unknown escape "\\${e}" ${at(i - 1)}`);
      }
      push("str", s, start);
    } else {
      const two = src.slice(i, i + 2);
      const op = COMPARE.has(two) ? two : "()[],.<>".includes(c) ? c : undefined;
      if (!op) fail(`unexpected character "${c}" ${at(i)}${HINTS[c] ? `; ${HINTS[c]}` : ""}`);
      push("op", op, start);
      i += op.length;
    }
  }
  push("end", "", src.length);
  return out;
}
