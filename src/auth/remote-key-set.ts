import { type JSONWebKeySet, type JWTVerifyGetKey, createLocalJWKSet, errors } from "jose";

export interface RemoteKeySetOptions {
  /** AUTH_JWKS_COOLDOWN: the least time between two fetches, whatever asks for them and however they end. */
  cooldownMs: number;
  /** AUTH_JWKS_CACHE_MAX_AGE: a set older than this is fetched again before use, and not used if that fails. */
  maxAgeMs: number;
  timeoutMs: number;
  /** Told of each failed fetch (the gateway logs it). */
  onFailure?: (reason: string) => void;
}

/** Most bytes of a key set response read: a JWKS of a few keys is a few KiB. */
export const MAX_JWKS_BYTES = 1024 * 1024;

/** The key set cannot be had now: the key server's fault, not the token's (UNAVAILABLE, not UNAUTHENTICATED). */
export class KeySetUnavailable extends Error {}

/**
 * A JSON Web Key Set fetched from a URL, in place of jose's createRemoteJWKSet: that one starts its
 * cooldown only after a fetch that worked, so while the key server answered 500 or malformed JSON,
 * every token with an unknown kid fetched again (outside tester: 100 requests, 100 fetches in 645 ms),
 * and once the set was past its max age every token did, and all were refused, known kids too.
 *
 * Here every attempt starts the cooldown, whatever its outcome, and concurrent askers share one
 * fetch. A set past its max age is fetched again and not used until a fetch works (a key the server
 * has removed must stop verifying): tokens are refused UNAVAILABLE meanwhile, and after a failed
 * fetch at most one per cooldown is tried.
 */
export function remoteKeySet(url: URL, options: RemoteKeySetOptions): JWTVerifyGetKey {
  let local: ReturnType<typeof createLocalJWKSet> | null = null;
  let fetchedAt = Number.NEGATIVE_INFINITY;
  let attemptedAt = Number.NEGATIVE_INFINITY;
  let lastFailure = "";
  let pending: Promise<void> | null = null;

  /** Fetches the set unless one was tried less than `spacingMs` ago (and waits for one running). */
  const refresh = async (spacingMs: number): Promise<void> => {
    if (pending) return pending;
    if (Date.now() - attemptedAt < spacingMs) return;
    attemptedAt = Date.now();
    pending = fetchSet(url, options.timeoutMs)
      .then((set) => {
        local = createLocalJWKSet(set);
        fetchedAt = Date.now();
        lastFailure = "";
      })
      .catch((e: unknown) => {
        lastFailure = (e as Error)?.message ?? String(e);
        options.onFailure?.(lastFailure);
      })
      .finally(() => {
        pending = null;
      });
    return pending;
  };

  return async (header, token) => {
    let set = local;
    if (set === null || Date.now() - fetchedAt >= options.maxAgeMs) {
      // Past its max age the set is fetched again, once per max age while fetches work (a max age
      // shorter than the cooldown is the operator's choice), and once per cooldown after one failed;
      // until one works the set is not used.
      await refresh(lastFailure ? options.cooldownMs : Math.min(options.cooldownMs, options.maxAgeMs));
      if (local === null || lastFailure) throw new KeySetUnavailable(`the key set could not be fetched (${lastFailure || "not yet"})`);
      set = local;
    }
    try {
      return await set(header, token);
    } catch (e) {
      if (!(e instanceof errors.JWKSNoMatchingKey)) throw e;
      // An unknown kid may be a key rotated in since: one fetch per cooldown finds out.
      await refresh(options.cooldownMs);
      try {
        return await (local ?? set)(header, token);
      } catch (again) {
        // Not in the set we have, and the server cannot say otherwise now: retry later, not "never".
        if (again instanceof errors.JWKSNoMatchingKey && lastFailure) throw new KeySetUnavailable(`no key matches, and the key set could not be fetched again (${lastFailure})`);
        throw again;
      }
    }
  };
}

/** GET the set: 200 only, no redirects followed, at most MAX_JWKS_BYTES, within the timeout. */
async function fetchSet(url: URL, timeoutMs: number): Promise<JSONWebKeySet> {
  const response = await fetch(url, { redirect: "manual", signal: AbortSignal.timeout(timeoutMs), headers: { accept: "application/json, application/jwk-set+json" } });
  if (response.status !== 200) {
    await response.body?.cancel();
    throw new Error(`the key server answered ${response.status}`);
  }
  const declared = Number(response.headers.get("content-length") ?? 0);
  if (declared > MAX_JWKS_BYTES) {
    await response.body?.cancel();
    throw new Error(`the key set is larger than ${MAX_JWKS_BYTES} bytes`);
  }
  const chunks: Uint8Array[] = [];
  let bytes = 0;
  for await (const chunk of response.body ?? []) {
    bytes += chunk.byteLength;
    if (bytes > MAX_JWKS_BYTES) throw new Error(`the key set is larger than ${MAX_JWKS_BYTES} bytes`);
    chunks.push(chunk);
  }
  let set: unknown;
  try {
    set = JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch {
    throw new Error("the key set is not JSON");
  }
  if (typeof set !== "object" || set === null || !Array.isArray((set as JSONWebKeySet).keys)) throw new Error("the key set has no keys array");
  return set as JSONWebKeySet;
}
