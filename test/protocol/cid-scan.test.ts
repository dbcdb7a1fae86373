import { describe, expect, test } from "bun:test";
import { Packr } from "msgpackr";
import { scanCid, scanFrameType } from "../../src/protocol/cid-scan";

const packr = new Packr({ useRecords: false });

/** A deterministic pseudo-random generator, so a failure reproduces. */
function rng(seed: number) {
  return () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
}

function value(rand: () => number, depth: number): unknown {
  const r = rand();
  if (depth > 3 || r < 0.3) return [0, -1, 300, -70000, 2 ** 40, 1.5, "s", "x".repeat(300), null, true, new Uint8Array(40), new Date(0)][Math.floor(rand() * 12)];
  if (r < 0.6) return Array.from({ length: Math.floor(rand() * 6) }, () => value(rand, depth + 1));
  const o: Record<string, unknown> = {};
  for (let i = Math.floor(rand() * 6); i > 0; i--) o[`k${i}`] = value(rand, depth + 1);
  if (rand() < 0.3) o.cid = "nested, not the frame's";
  return o;
}

describe("scanCid reads the top-level cid without decoding", () => {
  test("agrees with the decoders on random frames, in both codecs", () => {
    const rand = rng(9);
    for (let i = 0; i < 2000; i++) {
      const frame: Record<string, unknown> = {};
      const cid = [0, 7, 200, 70000, 2 ** 32 + 5, 2 ** 53 - 1][i % 6]!;
      const before = Math.floor(rand() * 4);
      for (let k = 0; k < before; k++) frame[`a${k}`] = value(rand, 0);
      frame.cid = cid;
      frame.z = value(rand, 0);
      expect(scanCid(packr.pack(frame))).toBe(cid);
      expect(scanCid(JSON.stringify(frame))).toBe(cid);
    }
  });
  test("a JSON cid spelled with a fraction or an exponent reads as the decoder reads it (5.0 is 5; 1.5 and 5e999 are no cid)", () => {
    // What the decoder does with the text: JSON.parse, then a cid is a safe integer >= 0.
    const decoded = (text: string) => {
      const v = (JSON.parse(text) as { cid?: unknown }).cid;
      return typeof v === "number" && Number.isSafeInteger(v) && v >= 0 ? v + 0 : undefined; // -0 is answered as 0
    };
    const rand = rng(17);
    const digits = (n: number) => Array.from({ length: n }, () => Math.floor(rand() * 10)).join("").replace(/^0+(?=\d)/, "");
    for (let i = 0; i < 5000; i++) {
      const int = digits(1 + Math.floor(rand() * 18));
      const frac = rand() < 0.5 ? "" : `.${rand() < 0.5 ? "0".repeat(1 + Math.floor(rand() * 3)) : digits(1 + Math.floor(rand() * 4))}`;
      const exp = rand() < 0.6 ? "" : `${rand() < 0.5 ? "e" : "E"}${["", "+", "-"][Math.floor(rand() * 3)]}${Math.floor(rand() * (rand() < 0.1 ? 999 : 4))}`;
      const num = `${rand() < 0.1 ? "-" : ""}${int}${frac}${exp}`;
      const text = `{"t":10,"cid":${num},"event":{"type":"x"}}`;
      expect([num, scanCid(text)]).toEqual([num, decoded(text)]);
    }
    expect(scanCid('{"t":10,"cid":5.0,"event":{')).toBe(5);
    expect(scanCid('{"t":10,"cid":5e999,"event":{')).toBeUndefined();
    // Not a JSON number: read as 241 it could answer for another request's cid 241, a second reply.
    expect(scanCid('{"cid":0241,"t":10,"event":{"type":"x"}}')).toBeUndefined();
    expect(scanCid('{"cid":-0241,"t":10}')).toBeUndefined();
    expect(scanCid('{"cid":0,"t":10}')).toBe(0);
    expect(scanCid('{"cid":0.5e1,"t":10}')).toBe(5);
  });
  test("a JSON cid is a whole number token, and a key is a key: a number's prefix or a string value is never read as the cid (outside probe U)", () => {
    // Each named another request's cid: a publish with cid 12 got a nack for `12abc`, then its ack.
    for (const text of ['{"cid":12abc,"t":15}', '{"cid":0x10,"t":15}', '{"cid":7 7,"t":15}', '{"cid":99true,"t":15}', '{"cid":5"x","t":15}', '{"cid":1_000,"t":15}', '{"t":15,"note":"cid":7}', '{"cid":"cid":8}', '{"t":15,"a":"b" "cid":9}', '{"a":1 "cid":3}', '{"a":1,2:"cid":7}', '{:"cid":7}', '{"a":1,{"b":2}:"cid":7}', '{"cid"x:7}', '{"a":[1,2]:"cid":7}']) {
      expect([text, scanCid(text)]).toEqual([text, undefined]);
    }
    // A close that does not match its open is damage: nothing after it is read.
    expect(scanCid('{"cid":12,"m":{"x":1],"cid":7}}')).toBe(12);
    expect(scanCid('{"cid":12,"m":[{"x":1]],"cid":7}')).toBe(12);
    expect(scanCid('{"m":{"a":[1,{"b":[]}]},"cid":7}')).toBe(7);
    expect(scanCid('{"a":true,"b":null,"c":-1.5e+3,"d":"x","cid":7}')).toBe(7);
    // A number ends at whitespace, then a comma or the map's end.
    for (const text of ['{"cid":12,"t":15', '{"cid":12 ,"t":15}', '{"cid":12}', '{"cid":12\n}', '{"t":15,"cid":12 }garbage', '{ "t" : 15 , "cid" : 12 , "x": oops']) {
      expect([text, scanCid(text)]).toEqual([text, 12]);
    }
  });
  test("a JSON frame cut off inside its cid's number reads no cid, not its prefix (outside probe Y: cut to `{\"cid\":12`, cid 123 was answered as 12)", () => {
    for (const text of ['{"t":10,"cid":12', '{"t":10,"cid":12 ', '{"cid":1234', '{"t":15,"cid":1e1', '{"t":15,"cid":1.', '{"cid":5,"t":15,"cid":12']) {
      expect([text, scanCid(text)]).toEqual([text, undefined]);
    }
    expect(scanFrameType('{"t":10')).toBeUndefined();
    // Every prefix of valid frames, cids of every length and spelling included: no cid, or the frame's own.
    const rand = rng(41);
    for (let n = 0; n < 300; n++) {
      const digits = String(Math.floor(rand() * 10 ** (1 + Math.floor(rand() * 17))));
      const spelled = [digits, `${digits}.0`, `${digits}e0`, `${digits}.${"0".repeat(Math.floor(rand() * 30))}1`][Math.floor(rand() * 4)]!;
      const text = `{"t":10,"cid":${spelled}${rand() < 0.5 ? " " : ""},"event":{"type":"x","data":[1,{"a":"}"}]}}`;
      const own = scanCid(text);
      expect([text, own]).toEqual([text, (() => {
        const v = (JSON.parse(text) as { cid: number }).cid;
        return Number.isSafeInteger(v) ? v : undefined;
      })()]);
      for (let end = 0; end < text.length; end++) {
        const cut = scanCid(text.slice(0, end));
        if (cut !== undefined) expect({ cut: text.slice(0, end), cid: cut as number | undefined }).toEqual({ cut: text.slice(0, end), cid: own });
      }
    }
  });
  test("a key spelled with escapes is the key it decodes to; -0 is cid 0", () => {
    expect(scanCid('{"c\\u0069d":7,"t":15}')).toBe(7);
    expect(scanCid('{"\\u0063\\u0069\\u0064":8}')).toBe(8);
    expect(scanCid('{"cid\\u0000":9}')).toBeUndefined();
    expect(scanCid('{"c\\u0069d" :7,')).toBe(7);
    expect(scanFrameType('{"\\u0074":15,"cid":1}')).toBe(15);
    for (const text of ['{"cid":-0}', '{"cid":-0.0}', '{"cid":-0e5}']) expect(Object.is(scanCid(text), 0)).toBe(true);
  });
  test("a JSON cid of any length is read as JSON.parse reads it (outside probe Y: past 400 characters it was not read at all)", () => {
    const zeros = "0".repeat(500);
    for (const text of [`{"t":15,"cid":1.${zeros}}`, `{"t":15,"cid":7${zeros}e-500}`, `{"t":15,"cid":0.${"9".repeat(600)}}`, `{"t":15,"cid":1.${zeros}1,"x":1}`]) {
      expect([text.length, scanCid(text)]).toEqual([text.length, (JSON.parse(text) as { cid: number }).cid]);
    }
    // Damaged after it: the same cid.
    expect(scanCid(`{"t":15,"cid":1.${zeros},}`)).toBe(1);
    expect(scanCid(`{"t":15,"cid":1${zeros},}`)).toBeUndefined(); // 10^500: no safe integer
    // Whatever follows a cid's digits: the scan agrees with the decoder, or reads no cid where the
    // decoder fails; it never reads one the text's own cid token does not say.
    const rand = rng(29);
    const tail = [",", "}", " ", "\t", "a", "x", "0", ".", "e", "-", "+", '"', ":", "[", "{", "]", "t", "_", "n", "/"];
    for (let i = 0; i < 5000; i++) {
      const n = Math.floor(rand() * 1000);
      const after = Array.from({ length: 1 + Math.floor(rand() * 3) }, () => tail[Math.floor(rand() * tail.length)]).join("");
      const text = `{"cid":${n}${after}"t":15}`;
      let decoded: number | undefined;
      let parsed = true;
      try {
        decoded = (JSON.parse(text) as { cid?: number }).cid;
      } catch {
        parsed = false;
      }
      const scanned = scanCid(text);
      if (parsed) expect([text, scanned]).toEqual([text, decoded]);
      else if (scanned !== undefined) {
        // Read only from a whole token that ends as a value does.
        const token = /^\{"cid":([0-9.eE+-]+)\s*[,}]/.exec(text);
        expect([text, token ? Number(token[1]) : "no whole token"]).toEqual([text, scanned]);
      }
    }
  });
  test("a cid key in any of msgpack's str encodings is read, with damage after it (outside tester: str16 and str32 lost the cid)", () => {
    const key = { fix: [0xa3], str8: [0xd9, 3], str16: [0xda, 0, 3], str32: [0xdb, 0, 0, 0, 3] };
    for (const [name, prefix] of Object.entries(key)) {
      const damaged = new Uint8Array([0x82, ...prefix, 0x63, 0x69, 0x64, 0x09, 0xa1, 0x74, 0xc1]);
      expect([name, scanCid(damaged)]).toEqual([name, 9]);
    }
  });
  test("scanFrameType reads the t the decoder keeps: the last of duplicates", () => {
    expect(scanFrameType('{"t":10,"t":15,"cid":2}')).toBe(15);
    expect(scanFrameType('{"t":10,"cid":2,"event":{"t":15}}')).toBe(10);
    expect(scanFrameType('{"t":10,"\u0074":15}')).toBe(15);
    const twice = new Uint8Array([0x82, 0xa1, 0x74, 0x0a, 0xd9, 1, 0x74, 0x0f]);
    expect(scanFrameType(twice)).toBe(15);
    expect(scanFrameType(packr.pack({ t: 11, cid: 3, events: [{ t: 1 }] }))).toBe(11);
  });
  test("no cid, an invalid cid, or not a map: undefined", () => {
    for (const f of [{ t: 1 }, { cid: -1 }, { cid: 1.5 }, { cid: "1" }, { cid: 2 ** 53 }, [1, 2], "x", 5]) {
      expect(scanCid(packr.pack(f))).toBeUndefined();
      expect(scanCid(JSON.stringify(f))).toBeUndefined();
    }
    expect(scanCid(new Uint8Array([0x81, 0xa3, 0x63, 0x69, 0x64, 0xcf, 0xff, 0, 0, 0, 0, 0, 0, 1]))).toBeUndefined();
    expect(scanCid(new Uint8Array([0x81, 0xa3, 0x63, 0x69, 0x64, 0xd3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe]))).toBeUndefined();
  });
  test("a cid before the frame breaks is still read; garbage and truncation never throw", () => {
    const head = packr.pack({ cid: 42 });
    const broken = new Uint8Array([0x83, ...head.subarray(1), 0xa1, 0x78, 0xc1]);
    expect(scanCid(broken)).toBe(42);
    expect(scanCid('{"cid": 42, "event": {oops')).toBe(42);
    const rand = rng(3);
    for (let i = 0; i < 5000; i++) {
      const b = new Uint8Array(Math.floor(rand() * 40)).map(() => Math.floor(rand() * 256));
      if (i % 2) b[0] = 0x80 | (b[0]! & 0x0f);
      scanCid(b);
      scanCid(`{${String.fromCharCode(...b)}`);
    }
  });
  test("hostile sizes cost one pass: deep nesting and huge declared lengths", () => {
    const deep = new Uint8Array(1_000_000).fill(0x91);
    const frame = new Uint8Array([0x82, 0xa1, 0x78, ...deep.subarray(0, 10), 0xc0]);
    expect(scanCid(frame)).toBeUndefined();
    const lying = new Uint8Array([0x82, 0xa3, 0x63, 0x69, 0x64, 0x05, 0xa1, 0x78, 0xdd, 0xff, 0xff, 0xff, 0xff]);
    expect(scanCid(lying)).toBe(5);
    const started = performance.now();
    expect(scanCid(new Uint8Array([0x82, 0xa1, 0x78, ...deep, 0xc0, 0xa3, 0x63, 0x69, 0x64, 0x09]))).toBe(9);
    expect(scanCid(`{"x":${"[".repeat(500_000)}${"]".repeat(500_000)},"cid":9}`)).toBe(9);
    expect(performance.now() - started).toBeLessThan(5000);
  });
});
