/**
 * Reads the top-level `cid` of a frame that could not be decoded (too large, too deep, malformed
 * after the cid, values plain data cannot hold), so that its request still gets a nack with its
 * cid and the client can settle its window. Never decodes values: msgpack values are skipped by
 * their length prefixes, JSON by its strings and brackets (the top-level map read by JSON's grammar),
 * so the cost is one pass over the bytes (a bit per level of nesting, kept from frame to frame; a
 * JSON cid that is not a few plain digits is sliced and parsed). Returns the last valid cid seen
 * before the frame ends or stops making sense (decoders keep the last of duplicate keys), else undefined.
 */
export function scanCid(raw: Uint8Array | string): number | undefined {
  return typeof raw === "string" ? scanJson(raw, "cid") : scanMsgpack(raw, CID);
}

/**
 * The frame type `t` the decoder would keep (the last of duplicate keys), read the same way: for a
 * frame about to be refused by its first `t` alone (frame-peek.ts), which must be the type it has.
 */
export function scanFrameType(raw: Uint8Array | string): number | undefined {
  return typeof raw === "string" ? scanJson(raw, "t") : scanMsgpack(raw, T);
}

// + 0: -0 (a JSON cid of -0 or -0.0) is answered as 0, as the decoder's schema takes it.
const validCid = (n: number): number | undefined => (Number.isSafeInteger(n) && n >= 0 ? n + 0 : undefined);

// ---- msgpack ----

/**
 * Set by head(): how many values are nested in the one it read (array elements, map keys and
 * values), which follow its header. A variable rather than a result object: no allocation per value.
 */
let items = 0;

function uint(b: Uint8Array, p: number, n: number): number {
  let v = 0;
  for (let i = 0; i < n; i++) v = v * 256 + b[p + i]!;
  return v;
}

/**
 * The offset past the value at p (past its header, for arrays and maps), or -1 when no valid value
 * starts there or the frame ends inside its header.
 */
function head(b: Uint8Array, p: number): number {
  items = 0;
  if (p >= b.length) return -1;
  const c = b[p]!;
  if (c <= 0x7f || c >= 0xe0) return p + 1;
  if (c <= 0x8f) return (items = 2 * (c & 0x0f)), p + 1;
  if (c <= 0x9f) return (items = c & 0x0f), p + 1;
  if (c <= 0xbf) return p + 1 + (c & 0x1f);
  const need = (n: number) => (p + 1 + n <= b.length ? uint(b, p + 1, n) : -1);
  let len: number;
  switch (c) {
    case 0xc0:
    case 0xc2:
    case 0xc3:
      return p + 1;
    case 0xcc:
    case 0xd0:
      return p + 2;
    case 0xcd:
    case 0xd1:
      return p + 3;
    case 0xca:
    case 0xce:
    case 0xd2:
      return p + 5;
    case 0xcb:
    case 0xcf:
    case 0xd3:
      return p + 9;
    case 0xd4:
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8:
      return p + 2 + (1 << (c - 0xd4));
    case 0xc4:
    case 0xd9:
      return (len = need(1)) < 0 ? -1 : p + 2 + len;
    case 0xc5:
    case 0xda:
      return (len = need(2)) < 0 ? -1 : p + 3 + len;
    case 0xc6:
    case 0xdb:
      return (len = need(4)) < 0 ? -1 : p + 5 + len;
    case 0xc7:
      return (len = need(1)) < 0 ? -1 : p + 3 + len;
    case 0xc8:
      return (len = need(2)) < 0 ? -1 : p + 4 + len;
    case 0xc9:
      return (len = need(4)) < 0 ? -1 : p + 6 + len;
    case 0xdc:
      return (len = need(2)) < 0 ? -1 : ((items = len), p + 3);
    case 0xdd:
      return (len = need(4)) < 0 ? -1 : ((items = len), p + 5);
    case 0xde:
      return (len = need(2)) < 0 ? -1 : ((items = 2 * len), p + 3);
    case 0xdf:
      return (len = need(4)) < 0 ? -1 : ((items = 2 * len), p + 5);
    default:
      return -1; // 0xc1, never used
  }
}

/** Offset just past the value at p, or -1. Iterative: hostile nesting costs no stack. */
function skip(b: Uint8Array, p: number): number {
  let pending = 1;
  while (pending > 0) {
    p = head(b, p);
    if (p < 0 || p > b.length) return -1;
    pending += items - 1;
  }
  return p;
}

/** The number at p if it is one (any integer width, or a float: msgpackr writes 2^32 as one), else NaN. */
function intAt(b: Uint8Array, p: number): number {
  const c = b[p];
  if (c === undefined) return Number.NaN;
  if (c === 0xca || c === 0xcb) {
    const size = c === 0xca ? 4 : 8;
    if (p + 1 + size > b.length) return Number.NaN;
    const view = new DataView(b.buffer, b.byteOffset + p + 1, size);
    return size === 4 ? view.getFloat32(0) : view.getFloat64(0);
  }
  if (c <= 0x7f) return c;
  if (c >= 0xe0) return c - 0x100;
  const size = c === 0xcc || c === 0xd0 ? 1 : c === 0xcd || c === 0xd1 ? 2 : c === 0xce || c === 0xd2 ? 4 : c === 0xcf || c === 0xd3 ? 8 : 0;
  if (size === 0 || p + 1 + size > b.length) return Number.NaN;
  const v = uint(b, p + 1, size);
  // Signed forms with the top bit set are negative: no valid cid, whatever their value.
  if (c >= 0xd0 && b[p + 1]! >= 0x80) return -1;
  return v;
}

const CID = new Uint8Array([0x63, 0x69, 0x64]);
const T = new Uint8Array([0x74]);

/** Whether the key at p is the string `name`, in any of msgpack's str encodings (fixstr, str8, str16, str32). */
function isKey(b: Uint8Array, p: number, name: Uint8Array): boolean {
  const n = name.length;
  const c = b[p];
  let at = -1;
  if (c === 0xa0 + n) at = p + 1;
  else if (c === 0xd9 && b[p + 1] === n) at = p + 2;
  else if (c === 0xda && b[p + 1] === 0 && b[p + 2] === n) at = p + 3;
  else if (c === 0xdb && b[p + 1] === 0 && b[p + 2] === 0 && b[p + 3] === 0 && b[p + 4] === n) at = p + 5;
  if (at < 0) return false;
  for (let i = 0; i < n; i++) if (b[at + i] !== name[i]) return false;
  return true;
}

function scanMsgpack(b: Uint8Array, name: Uint8Array): number | undefined {
  const c = b[0];
  if (c === undefined || !((c >= 0x80 && c <= 0x8f) || c === 0xde || c === 0xdf)) return undefined;
  let p = head(b, 0);
  if (p < 0) return undefined;
  let found: number | undefined;
  for (let pairs = items / 2; pairs > 0; pairs--) {
    const named = isKey(b, p, name);
    p = skip(b, p);
    if (p < 0) return found;
    if (named) found = validCid(intAt(b, p));
    p = skip(b, p);
    if (p < 0) return found;
  }
  return found;
}

// ---- JSON ----

// What may come next in the top-level map.
const KEY = 0; // a key, or the map's end: after "{" or ","
const COLON = 1; // after a key
const VALUE = 2; // after ":"
const AFTER = 3; // "," or the map's end, after a value

/**
 * Whether each open container is an array (1) or a map (0), a bit per level: a close that does not
 * match its open is damage, after which nothing is read ({"cid":12,"m":{"x":1],"cid":7}} read 7 for
 * a request that said 12). Kept between frames and grown only by deep nesting, to at most a bit per
 * byte of the deepest frame seen.
 */
let kinds = new Uint32Array(64);

const isDigit = (c: number) => c >= 0x30 && c <= 0x39;
/** Whether c can be in a JSON number token: a digit, a sign, a dot or an exponent's e. */
const inNumber = (c: number) => isDigit(c) || c === 0x2d || c === 0x2b || c === 0x2e || c === 0x65 || c === 0x45;

/** JSON's whitespace: space, line feed, carriage return, tab. */
const isSpace = (c: number) => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;

/** The index of the first character at or after `i` that is not whitespace. */
function skipSpace(s: string, i: number): number {
  while (isSpace(s.charCodeAt(i))) i++;
  return i;
}

function scanJson(s: string, name: string): number | undefined {
  // One byte order mark, as decodeFrame lets go.
  let i = skipSpace(s, s.charCodeAt(0) === 0xfeff ? 1 : 0);
  const n = s.length;
  if (s.charCodeAt(i) !== 0x7b) return undefined; // "{"
  i++;
  let depth = 1;
  let found: number | undefined;
  // The top-level map is read as JSON's grammar has it, so that only a key where one stands is a key
  // and only the value after its colon its value: a string value followed by ":" ({"note":"cid":7}),
  // or a number's tail ({"a":1,2:"cid":7}), named cid 7 for a request that had none. At the first
  // thing out of place the scan stops with what it found before it. Nested values are skipped by
  // their strings and brackets.
  let state = KEY;
  let named = false; // whether the key whose ":" is next is `name`
  while (i < n) {
    const c = s.charCodeAt(i);
    if (isSpace(c)) {
      i++;
      continue;
    }
    if (c === 0x22) {
      const start = i;
      for (i++; i < n; i++) {
        const d = s.charCodeAt(i);
        if (d === 0x5c) i++;
        else if (d === 0x22) break;
      }
      if (i >= n) return found;
      i++;
      if (depth > 1) continue;
      if (state === KEY) {
        named = keyIs(s, start, i, name);
        state = COLON;
      } else if (state === VALUE) state = AFTER;
      else return found;
      continue;
    }
    i++;
    if (c === 0x7b || c === 0x5b) {
      if (depth === 1) {
        if (state !== VALUE) return found;
        state = AFTER;
      }
      const word = depth >>> 5;
      if (word >= kinds.length) {
        const grown = new Uint32Array(kinds.length * 2);
        grown.set(kinds);
        kinds = grown;
      }
      if (c === 0x5b) kinds[word]! |= 1 << (depth & 31);
      else kinds[word]! &= ~(1 << (depth & 31));
      depth++;
    } else if (c === 0x7d || c === 0x5d) {
      depth--;
      if (depth === 0) return found;
      const array = (kinds[depth >>> 5]! >>> (depth & 31)) & 1;
      if (array !== (c === 0x5d ? 1 : 0)) return found;
    } else if (depth === 1) {
      if (c === 0x3a) {
        if (state !== COLON) return found;
        state = VALUE;
        if (named) {
          i = skipSpace(s, i);
          found = jsonCid(s, i);
        }
        named = false;
      } else if (c === 0x2c) {
        if (state !== AFTER) return found;
        state = KEY;
      } else if (state === VALUE && (isDigit(c) || c === 0x2d || (c >= 0x61 && c <= 0x7a))) {
        // A number or a literal (true, false, null): its characters up to what ends a value.
        for (let d = s.charCodeAt(i); (d >= 0x30 && d <= 0x39) || (d >= 0x61 && d <= 0x7a) || (d >= 0x41 && d <= 0x5a) || d === 0x2b || d === 0x2d || d === 0x2e; d = s.charCodeAt(++i));
        state = AFTER;
      } else return found;
    }
  }
  return found;
}

/** Digits a cid can be read from without Number(): 10^15 is below 2^53. */
const PLAIN_DIGITS = 15;

/**
 * The cid (or frame type) whose number token starts at s[i], read as the decoder reads it:
 * JSON.parse's value (5.0 and 5e0 are 5, and so is 5 with a fraction of 500 zeros), then a safe
 * integer >= 0, else none. The token must end where a value ends: whitespace, then a comma or the
 * map's close. (Read only up to the first character that cannot be in a number, `12abc`, `0x10` and
 * `7 7` were read as cids 12, 0 and 7; read up to the frame's end, a frame cut inside `"cid":123`
 * was read as cid 12.)
 */
function jsonCid(s: string, i: number): number | undefined {
  let j = i;
  let plain = 0; // the token's value while it is only digits
  for (let c = s.charCodeAt(j); isDigit(c); c = s.charCodeAt(++j)) plain = plain * 10 + (c - 0x30);
  const intDigits = j - i;
  const digitsOnly = !inNumber(s.charCodeAt(j));
  let exponent = false;
  for (let c = s.charCodeAt(j); inNumber(c); c = s.charCodeAt(++j)) if (c === 0x65 || c === 0x45) exponent = true;
  const k = skipSpace(s, j);
  if (k >= s.length || (s.charCodeAt(k) !== 0x2c && s.charCodeAt(k) !== 0x7d)) return undefined;
  if (j === i) return undefined;
  // 10^16 or more, whatever its fraction, or a leading zero: no cid, and no need to parse a long token.
  if (!exponent && intDigits > 16) return undefined;
  // The common case, a few digits, read here; anything else as JSON.parse reads it. A leading zero
  // makes the frame invalid JSON, and its digits read as a cid (0241 as 241) could answer for another
  // request's: no cid then.
  if (digitsOnly && j - i <= PLAIN_DIGITS && (j - i === 1 || s.charCodeAt(i) !== 0x30)) return plain;
  // The token holds only digits, signs, dots and exponents: JSON.parse checks its grammar (a leading
  // zero, a sign or dot out of place) and gives its value in one pass, or throws.
  try {
    return validCid(JSON.parse(s.slice(i, j)) as number);
  } catch {
    return undefined;
  }
}

/**
 * Whether the JSON string s[start, end) (quotes included) says `name`: compared in place, with no
 * allocation, unless it has escapes (a frame of 500,000 keys allocated two strings a key).
 */
function keyIs(s: string, start: number, end: number, name: string): boolean {
  const n = end - start - 2;
  if (n === name.length) {
    let k = 0;
    while (k < n && s.charCodeAt(start + 1 + k) === name.charCodeAt(k)) k++;
    if (k === n) return true;
  }
  // Escaped, a key can be longer than the name (c\u0069d); longer than "cid" or "t" can be, even
  // spelled with escapes, it is not worth decoding.
  if (n <= name.length || n > 20) return false;
  const raw = s.slice(start, end);
  if (raw.indexOf("\\") < 0) return false;
  try {
    return JSON.parse(raw) === name;
  } catch {
    return false;
  }
}
