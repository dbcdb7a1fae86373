import { expect, test } from "bun:test";
import fc from "fast-check";
import { SignJWT } from "jose";
import { Authenticator } from "../../src/auth/authenticator";
import { bearerFromAuthorization, bearerFromProtocols, BEARER_PROTOCOL_PREFIX } from "../../src/auth/bearer";
import { loadKeySources } from "../../src/auth/keys";
import { ConfigSchema } from "../../src/config/schema";
import { GatewayError } from "../../src/protocol/errors";
import { type Positions, decodeToken, encodeToken, idTag } from "../../src/subscribe/position";
import { onlyGatewayErrors, plainValue, text } from "./arbitraries";

// Tokens come from any client: resume tokens in subscribe, JWTs in hello, refresh, the upgrade's
// Authorization header and subprotocols. Whatever is sent parses, or is refused with its one code.

const SECRET = "fuzz-secret-that-is-at-least-32-bytes-long";
const config = ConfigSchema.parse({ AUTH_JWT_SECRET: SECRET, AUTH_JWT_AUDIENCE: "kgw", AUTH_JWT_ISSUER: "https://idp.test" });
const authenticator = new Authenticator(await loadKeySources(config), config);
const key = new TextEncoder().encode(SECRET);

const b64 = (s: string | Uint8Array) => Buffer.from(s).toString("base64url");
const partOf = fc.oneof(text, fc.base64String({ maxLength: 40 }), fc.json({ maxDepth: 3 }).map(b64), plainValue({ bytes: false, dates: false, maxDepth: 3 }).map((v) => b64(JSON.stringify(v) ?? "null")));
/** Strings shaped like JWTs and not: any text, three dotted parts of anything, headers of JSON values. */
const jwtLike = fc.oneof(
  text,
  fc.array(partOf, { minLength: 1, maxLength: 5 }).map((parts) => parts.join(".")),
  fc.tuple(fc.json({ maxDepth: 3 }), fc.json({ maxDepth: 3 }), fc.base64String({ maxLength: 64 })).map(([h, p, s]) => `${b64(h)}.${b64(p)}.${s}`),
  fc.tuple(fc.constantFrom("none", "None", "NONE", "HS256", "HS512", "RS256", "ES256", "EdDSA", ""), fc.json({ maxDepth: 2 })).map(([alg, p]) => `${b64(JSON.stringify({ alg, typ: "JWT" }))}.${b64(p)}.`),
);

async function validJwt(claims: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT({ kgw: { publish: ["*"], subscribe: ["*"] }, ...claims }).setProtectedHeader({ alg: "HS256" }).setSubject("fuzz").setIssuer("https://idp.test").setAudience("kgw").setExpirationTime("5m").sign(key);
}

/** verify() settles with an identity or UNAUTHENTICATED, never another error, never UNAVAILABLE (no key set to fetch). */
async function verifyOutcome(token: string): Promise<"ok" | "refused"> {
  try {
    await authenticator.verify(token);
    return "ok";
  } catch (e) {
    if (!(e instanceof GatewayError)) throw new Error(`verify threw ${(e as Error)?.name}: ${(e as Error)?.message}`);
    expect(e.code).toBe("UNAUTHENTICATED");
    return "refused";
  }
}

test("JWT: any string is refused UNAUTHENTICATED and nothing else; none of them verifies", async () => {
  await fc.assert(fc.asyncProperty(jwtLike, async (t) => expect(await verifyOutcome(t)).toBe("refused")), { numRuns: 3000 });
});

test("JWT: a valid token altered anywhere (a character changed, dropped or added) is refused", async () => {
  const token = await validJwt();
  expect(await verifyOutcome(token)).toBe("ok");
  const edit = fc.tuple(fc.nat({ max: token.length - 1 }), fc.constantFrom("replace", "drop", "insert"), fc.constantFrom(..."ABCabc012-_.=+/ "));
  await fc.assert(
    fc.asyncProperty(edit, async ([at, how, ch]) => {
      const altered = how === "drop" ? token.slice(0, at) + token.slice(at + 1) : how === "insert" ? token.slice(0, at) + ch + token.slice(at) : token.slice(0, at) + ch + token.slice(at + 1);
      // One spelling per token: even a change that decodes to the same bytes is refused.
      expect(await verifyOutcome(altered)).toBe(altered === token ? "ok" : "refused");
    }),
    { numRuns: 2000 },
  );
});

test("JWT: hostile claims (any grants claim, sub, exp, nbf, aud, iss shapes) are refused or give a bounded identity", async () => {
  const claims = fc.record(
    { kgw: fc.oneof(fc.json({ maxDepth: 4 }).map((j) => JSON.parse(j)), fc.record({ publish: fc.array(fc.oneof(text, fc.record({ topic: text, types: fc.array(text, { maxLength: 3 }) })), { maxLength: 4 }) })), sub: fc.oneof(text, fc.integer(), fc.constant(null), fc.string({ minLength: 300, maxLength: 400 })), nbf: fc.oneof(fc.integer(), fc.string()), aud: fc.oneof(fc.constant("kgw"), text, fc.array(text, { maxLength: 3 })) },
    { requiredKeys: [] },
  );
  await fc.assert(
    fc.asyncProperty(claims, async (c) => {
      const token = await validJwt(c);
      try {
        const who = await authenticator.verify(token);
        expect(who.principal.length).toBeLessThanOrEqual(256);
      } catch (e) {
        expect(e).toBeInstanceOf(GatewayError);
        expect((e as GatewayError).code).toBe("UNAUTHENTICATED");
      }
    }),
    { numRuns: 1500 },
  );
});

test("bearer extraction: any Authorization or Sec-WebSocket-Protocol value parses, and the token is never echoed", () => {
  fc.assert(
    fc.property(fc.oneof(text, fc.array(fc.oneof(text, text.map((t) => BEARER_PROTOCOL_PREFIX + t)), { maxLength: 5 }).map((xs) => xs.join(","))), (value) => {
      let req: Request;
      try {
        req = new Request("http://gw/ws", { headers: { authorization: value, "sec-websocket-protocol": value } });
      } catch {
        return; // not a header value HTTP can carry: it never reaches the gateway
      }
      const fromHeader = bearerFromAuthorization(req);
      expect(fromHeader === undefined || typeof fromHeader === "string").toBe(true);
      const p = bearerFromProtocols(req);
      if (p.echo !== undefined) expect(p.echo.startsWith(BEARER_PROTOCOL_PREFIX)).toBe(false);
    }),
    { numRuns: 3000 },
  );
});

const positions = fc.dictionary(fc.string({ minLength: 1, maxLength: 20 }), fc.array(fc.nat(), { maxLength: 8 }), { maxKeys: 5 }).map((d) => new Map(Object.entries(d)) as Positions);

test("resume tokens: every issued token decodes to what it was made of", () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 64 }), positions, fc.option(fc.string({ minLength: 1, maxLength: 30 }), { nil: undefined }), (filter, p, id) => {
      // Some topics with a known id, some without.
      const idOf = (topic: string) => (id !== undefined && topic.length % 2 === 0 ? id : undefined);
      const back = decodeToken(encodeToken(filter, p, undefined, idOf));
      expect(back.filter).toBe(filter);
      expect(back.positions).toEqual(p);
      expect(back.ids).toEqual(new Map([...p.keys()].filter((t) => idOf(t) !== undefined).map((t) => [t, idTag(idOf(t)!)])));
    }),
    { numRuns: 2000 },
  );
});

test("resume tokens: any string, or an issued token with any change to its bytes, is refused INVALID_POSITION", () => {
  const issued = encodeToken("f", new Map([["orders", [1, 2, 3]]]));
  const altered = fc.tuple(fc.nat({ max: issued.length - 1 }), fc.constantFrom(..."ABab09-_.=")).map(([at, ch]) => issued.slice(0, at) + ch + issued.slice(at + 1));
  fc.assert(
    fc.property(fc.oneof(text, jwtLike, altered), (t) => {
      const out = onlyGatewayErrors(() => decodeToken(t), ["INVALID_POSITION"]);
      if (t !== issued) expect(out).toBeInstanceOf(GatewayError);
    }),
    { numRuns: 5000 },
  );
});

test("resume tokens made in a row (the same Map changed in place between them, as feeds do, keys rotated) each name exactly their positions", async () => {
  const { setResumeTokenKeys } = await import("../../src/subscribe/position");
  const step = fc.record({
    filter: fc.constantFrom("a", "b"),
    origin: fc.option(fc.constantFrom("o1", "o2"), { nil: undefined }),
    topic: fc.constantFrom("t1", "t2"),
    id: fc.option(fc.constantFrom("id1", "id2"), { nil: undefined }),
    partition: fc.nat(3),
    offset: fc.nat(5),
    rotate: fc.boolean(),
  });
  try {
    fc.assert(
      fc.property(fc.array(step, { minLength: 1, maxLength: 30 }), (steps) => {
        const positions: Positions = new Map([["t1", [0, 0, 0, 0]]]);
        // A topic's id changes in place too (a feed's topic made again).
        const ids = new Map<string, string | undefined>();
        const idOf = (t: string) => ids.get(t);
        for (const s of steps) {
          const offsets = positions.get(s.topic) ?? positions.set(s.topic, [0, 0, 0, 0]).get(s.topic)!;
          offsets[s.partition] = s.offset; // in place, as a feed moves its positions
          ids.set(s.topic, s.id);
          if (s.rotate) setResumeTokenKeys([`key-${Math.random()}`]);
          const token = encodeToken(s.filter, positions, s.origin, idOf);
          const back = decodeToken(token);
          expect(back.filter).toBe(s.filter);
          expect(back.origin).toBe(s.origin);
          expect([...back.positions]).toEqual([...positions].map(([t, o]) => [t, [...o]]));
          expect(back.ids).toEqual(new Map([...positions.keys()].filter((t) => ids.get(t) !== undefined).map((t) => [t, idTag(ids.get(t)!)])));
          // Made twice in a row, the same token (the second from the memo).
          expect(encodeToken(s.filter, positions, s.origin, idOf)).toBe(token);
        }
      }),
      { numRuns: 500 },
    );
  } finally {
    setResumeTokenKeys([]);
  }
});

test("resume tokens a later version signs with more in them (fields, elements past an entry's id) are read for what this one knows", async () => {
  const { setResumeTokenKeys } = await import("../../src/subscribe/position");
  const { createHmac } = await import("node:crypto");
  const { Packr } = await import("msgpackr");
  setResumeTokenKeys(["later-version-key-0123456789abcdef"]);
  try {
    // Signed as position.ts signs (HMAC-SHA256 over its context and the payload, 16 bytes).
    const sign = (payload: Uint8Array) =>
      `${Buffer.from(payload).toString("base64url")}.${createHmac("sha256", "later-version-key-0123456789abcdef").update("kgw-resume-v1\0").update(payload).digest().subarray(0, 16).toString("base64url")}`;
    const later = new Packr({ useRecords: false }).pack({ v: 2, f: "f", o: "o", x: { more: 1 }, p: [["a", [1, 2], "idtag", 7, "more"], ["b", [3]], ["c", [4], 5]] });
    const back = decodeToken(sign(later));
    expect(back).toEqual({ filter: "f", origin: "o", positions: new Map([["a", [1, 2]], ["b", [3]], ["c", [4]]]), ids: new Map([["a", "idtag"]]) });
    // Still refused: an entry without its offsets, a third element that is no id (too long), another version.
    expect(() => decodeToken(sign(new Packr({ useRecords: false }).pack({ v: 2, f: "f", p: [["a"]] })))).toThrow(GatewayError);
    expect(decodeToken(sign(new Packr({ useRecords: false }).pack({ v: 2, f: "f", p: [["a", [1], "x".repeat(65)]] }))).ids.size).toBe(0);
    expect(() => decodeToken(sign(new Packr({ useRecords: false }).pack({ v: 3, f: "f", p: [] })))).toThrow(GatewayError);
  } finally {
    setResumeTokenKeys([]);
  }
});
