import { type JWTVerifyOptions, decodeProtectedHeader, errors, jwtVerify } from "jose";
import type { Config } from "../config/schema";
import { GatewayError } from "../protocol/errors";
import type { KeySource } from "./keys";
import { KeySetUnavailable } from "./remote-key-set";
import { ALL, type Grants, parseGrants } from "./policy";

/** Who a connection or request is, what it may do, and until when. */
export interface Identity {
  principal: string;
  /** Token expiry, ms since the epoch; Infinity when authentication is off. */
  expiresAt: number;
  grants: Grants;
}

export const ANONYMOUS: Identity = Object.freeze({ principal: "anonymous", expiresAt: Infinity, grants: ALL });

const MAX_TOKEN_CHARS = 16 * 1024;
const MAX_TOKEN_HEADER_CHARS = 1024;
/** Longest `sub` accepted: the principal's name in audit lines, rate buckets and the same-principal check of a refresh. */
export const MAX_PRINCIPAL_CHARS = 256;
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

// Header parameters that name a key: trusting them lets the token choose what verifies it.
const KEY_IN_TOKEN = ["jku", "jwk", "x5u", "x5c"] as const;

/**
 * Verifies bearer tokens (JWS compact JWTs) against the configured key sources and turns them into
 * identities. With no source configured, authentication is off and everyone is ANONYMOUS.
 */
export class Authenticator {
  readonly enabled: boolean;
  private readonly options: JWTVerifyOptions;

  constructor(
    private readonly sources: KeySource[],
    private readonly config: Config,
  ) {
    this.enabled = sources.length > 0;
    this.options = {
      // exp, nbf and iat are checked below, to the millisecond: jose's clock counts whole seconds, so a
      // tolerance of 1,500 ms let a token 1.95 s past exp in (and 1 ms, one 735 ms past it). jose
      // still checks that they are numbers; this tolerance (finite: jose refuses Infinity) turns its own comparison off.
      clockTolerance: Number.MAX_SAFE_INTEGER,
      // A token that never expires could never be taken back.
      requiredClaims: ["exp"],
      ...(config.AUTH_JWT_ISSUER ? { issuer: config.AUTH_JWT_ISSUER } : {}),
      ...(config.AUTH_JWT_AUDIENCE ? { audience: config.AUTH_JWT_AUDIENCE } : {}),
      ...(config.AUTH_JWT_TYPE ? { typ: config.AUTH_JWT_TYPE } : {}),
    };
  }

  get clockToleranceMs(): number {
    return this.config.AUTH_CLOCK_TOLERANCE;
  }

  /** When `who`'s token stops being valid anywhere: exp plus the clock tolerance (ms since the epoch; Infinity without authentication). */
  validUntil(who: Identity): number {
    return who.expiresAt + this.clockToleranceMs;
  }

  /** The identity of a token, or UNAUTHENTICATED (UNAVAILABLE when the key set cannot be fetched). */
  async verify(token: string): Promise<Identity> {
    // Only the compact form, spelled strictly: base64 decoders skip what is not base64, so a token
    // with a space or a '+' inside would otherwise verify as the same token, and the same bytes
    // would have many spellings (a cache key, an audit line or a deny-list could be dodged).
    if (token.length > MAX_TOKEN_CHARS) throw refused(`a token is at most ${MAX_TOKEN_CHARS} characters`);
    // Its header is parsed before anything else is known of it (twice: the kid lookup, jwtVerify), so
    // it has a bound of its own: 13 KiB of nested arrays there cost 700 us a request, ten times any
    // other bad token. A real header (alg, typ, kid) is a few dozen bytes.
    if (token.indexOf(".") > MAX_TOKEN_HEADER_CHARS) throw refused(`a token's header is at most ${MAX_TOKEN_HEADER_CHARS} characters`);
    if (!COMPACT_JWS.test(token) || !token.split(".").every(canonicalBase64url)) throw refused("the token is not a JWS compact JWT (three base64url parts)");
    let header: ReturnType<typeof decodeProtectedHeader>;
    try {
      header = decodeProtectedHeader(token);
    } catch {
      throw refused("the token is not a JWS compact JWT");
    }
    for (const p of KEY_IN_TOKEN) if (p in header) throw refused(`tokens naming their own key (${p}) are not accepted`);
    const alg = typeof header.alg === "string" ? header.alg : "";
    const candidates = this.sources.filter((s) => s.algorithms.includes(alg));
    if (candidates.length === 0) throw refused(`alg ${JSON.stringify(alg).slice(0, 40)} is not accepted`);
    // A kid names a key of the set: try the JWKS first, then whichever else takes this alg.
    if (header.kid !== undefined) candidates.sort((a, b) => Number(b.name === "jwks") - Number(a.name === "jwks"));
    let last: unknown;
    for (const source of candidates) {
      try {
        const { payload } = await verifyAnyKey(token, source.key as Uint8Array, { ...this.options, algorithms: [alg] });
        // Times a clock can reach: JSON's 1e999 is Infinity, and 1e300 is past any Date. Both passed
        // as numbers, giving a token that never expires (outside security probe).
        if (!isTime(payload.exp)) throw refused("claim exp is not a time (seconds since the epoch, within a date's range)");
        if (payload.nbf !== undefined && !isTime(payload.nbf)) throw refused("claim nbf is not a time (seconds since the epoch, within a date's range)");
        if (payload.iat !== undefined && !isTime(payload.iat)) throw refused("claim iat is not a time (seconds since the epoch, within a date's range)");
        const now = Date.now();
        const tolerance = this.config.AUTH_CLOCK_TOLERANCE;
        // RFC 7519: not accepted on or after exp, nor before nbf (each give or take the tolerance).
        if (now >= payload.exp! * 1000 + tolerance) throw refused("the token has expired");
        if (payload.nbf !== undefined && payload.nbf * 1000 > now + tolerance) throw refused("claim nbf is not accepted (the token is not valid yet)");
        // Issued in the future: its issuer's clock is wrong, or the token was not made by it. Accepted, it
        // is valid from a moment nobody has reached, as a future nbf would be (PyJWT refuses it so too).
        if (payload.iat !== undefined && payload.iat * 1000 > now + tolerance) throw refused("claim iat is in the future (the token was issued later than now, beyond the clock tolerance)");
        let grants: Grants;
        try {
          grants = parseGrants(payload[this.config.AUTH_CLAIM], this.config.AUTH_CLAIM);
        } catch (e) {
          throw refused((e as Error).message);
        }
        // The principal, exactly: refused rather than named by default or cut, either of which made
        // two subjects one (a refresh could move a connection to the other's grants, and they shared
        // audit lines and rate buckets): sub 123, true, "" and none were all "unknown".
        const principal = payload.sub;
        if (typeof principal !== "string" || principal.length === 0) throw refused("the token needs a sub (a string naming the principal)");
        if (principal.length > MAX_PRINCIPAL_CHARS) throw refused(`sub is longer than ${MAX_PRINCIPAL_CHARS} characters`);
        // The gateway's own name for "no authentication": taken as a subject, its bounds per principal
        // did not count it, and its audit lines read as those of clients without a valid token.
        if (principal === ANONYMOUS.principal) throw refused(`sub "${ANONYMOUS.principal}" is reserved for the clients of a gateway without authentication`);
        return { principal, expiresAt: payload.exp! * 1000, grants };
      } catch (e) {
        if (e instanceof GatewayError) throw e;
        last = e;
      }
    }
    throw describe(last);
  }
}

// Keys of one set under one kid and alg tried at most: a set is its owner's, and holds a few.
const MAX_SAME_KID = 4;

/**
 * jwtVerify, trying each key when the set holds several under the token's kid and alg: an identity
 * provider rotating keys may publish two so for a while, and jose then refuses the token outright
 * (it leaves the choice to the caller), so every client was refused until the set changed (outside
 * tester). Only a signature that does not verify moves on to the next key.
 */
async function verifyAnyKey(token: string, key: Uint8Array, options: JWTVerifyOptions): Promise<Awaited<ReturnType<typeof jwtVerify>>> {
  try {
    return await jwtVerify(token, key, options);
  } catch (e) {
    if (!(e instanceof errors.JWKSMultipleMatchingKeys)) throw e;
    let tried = 0;
    for await (const candidate of e as unknown as AsyncIterable<CryptoKey>) {
      if (++tried > MAX_SAME_KID) break;
      try {
        return await jwtVerify(token, candidate, options);
      } catch (inner) {
        if (!(inner instanceof errors.JWSSignatureVerificationFailed)) throw inner;
      }
    }
    throw new errors.JWSSignatureVerificationFailed();
  }
}

// The largest time a Date holds, in seconds (ECMA-262: 8.64e15 ms either side of the epoch).
const MAX_DATE_SECONDS = 8.64e12;

/** Whether `t` (a JWT NumericDate) is a time: finite, within a Date's range. */
function isTime(t: unknown): t is number {
  return typeof t === "number" && Number.isFinite(t) && Math.abs(t) <= MAX_DATE_SECONDS;
}

/** Whether `part` is the one spelling of its bytes (no stray bits in its last character). */
function canonicalBase64url(part: string): boolean {
  return Buffer.from(part, "base64url").toString("base64url") === part;
}

function refused(message: string): GatewayError {
  return new GatewayError("UNAUTHENTICATED", message);
}

/** jose's reasons as stable codes: a bad token is UNAUTHENTICATED; an unreachable key set is UNAVAILABLE. */
function describe(e: unknown): GatewayError {
  if (e instanceof errors.JWTExpired) return refused("the token has expired");
  if (e instanceof errors.JWTClaimValidationFailed) return refused(`claim ${e.claim} is not accepted (${e.reason})`);
  if (e instanceof errors.JWKSNoMatchingKey) return refused("no key of the key set matches the token's kid and alg");
  if (e instanceof errors.JWSSignatureVerificationFailed) return refused("the signature does not verify");
  // jose throws its base class itself only where the key set's response was not 200 or not JSON
  // (jwks/remote.js): the key server's fault, not the token's.
  if (e instanceof KeySetUnavailable || e instanceof errors.JWKSTimeout || e instanceof errors.JWKSInvalid || !(e instanceof errors.JOSEError) || e.constructor === errors.JOSEError) {
    return new GatewayError("UNAVAILABLE", "the key set could not be fetched; retry later");
  }
  return refused(`the token is not accepted: ${(e as Error).message}`);
}
