import { type CryptoKey, type JWK, type JWTVerifyGetKey, importJWK, importSPKI, importX509 } from "jose";
import { ConfigError } from "../config/load";
import { readConfigFile } from "../config/read-file";
import type { Config } from "../config/schema";
import { remoteKeySet } from "./remote-key-set";

/**
 * One place tokens may be verified against, with the algorithms pinned to it. A token's `alg` only
 * chooses among these: a secret is never offered to an RS* token nor a public key to an HS* one, and
 * `none` (in any spelling) is in no list, so neither alg confusion nor unsigned tokens can get through.
 */
export interface KeySource {
  name: "secret" | "public-key" | "jwks";
  algorithms: readonly string[];
  key: Uint8Array | CryptoKey | JWTVerifyGetKey;
}

/** The key sources the configuration names; empty when authentication is off. Read once, at start. */
export async function loadKeySources(config: Config, onJwksFailure: (reason: string) => void = () => {}): Promise<KeySource[]> {
  const sources: KeySource[] = [];
  if (config.AUTH_JWT_SECRET) sources.push({ name: "secret", algorithms: [config.AUTH_JWT_SECRET_ALG], key: new TextEncoder().encode(config.AUTH_JWT_SECRET) });
  if (config.AUTH_JWT_PUBLIC_KEY_FILE) sources.push(await publicKey(config.AUTH_JWT_PUBLIC_KEY_FILE, config.AUTH_JWT_PUBLIC_KEY_ALG));
  if (config.AUTH_JWKS_URL) {
    let url: URL;
    try {
      url = new URL(config.AUTH_JWKS_URL);
    } catch {
      throw new ConfigError(`config: AUTH_JWKS_URL is not a URL (got ${JSON.stringify(config.AUTH_JWKS_URL)})`);
    }
    if (url.protocol !== "https:" && url.protocol !== "http:") throw new ConfigError("config: AUTH_JWKS_URL must be an http(s) URL");
    // Fetched again only when a kid is unknown or the set is past its max age, and at most once per
    // cooldown whatever the fetches end in: a flood of made-up kids costs one fetch per cooldown.
    const jwks = remoteKeySet(url, { cooldownMs: config.AUTH_JWKS_COOLDOWN, maxAgeMs: config.AUTH_JWKS_CACHE_MAX_AGE, timeoutMs: 5000, onFailure: onJwksFailure });
    sources.push({ name: "jwks", algorithms: config.AUTH_JWKS_ALGORITHMS.split(",").map((a) => a.trim()).filter(Boolean), key: jwks });
  }
  return sources;
}

async function publicKey(file: string, alg: string): Promise<KeySource> {
  let text: string;
  try {
    text = readConfigFile(file);
  } catch (e) {
    throw new ConfigError(`config: AUTH_JWT_PUBLIC_KEY_FILE ${file} could not be read: ${(e as Error).message}`);
  }
  try {
    if (text.trimStart().startsWith("{")) {
      const jwk = JSON.parse(text) as JWK;
      const pinned = alg || jwk.alg;
      if (!pinned) throw new Error("the JWK has no alg; set AUTH_JWT_PUBLIC_KEY_ALG");
      if (alg && jwk.alg && jwk.alg !== alg) throw new Error(`the JWK says alg ${jwk.alg}, AUTH_JWT_PUBLIC_KEY_ALG says ${alg}`);
      if (jwk.kty === "oct" || "d" in jwk) throw new Error("the JWK must be a public key (no oct keys, no private parts)");
      return { name: "public-key", algorithms: [pinned], key: (await importJWK(jwk, pinned)) as CryptoKey };
    }
    if (!alg) throw new Error("a PEM key needs AUTH_JWT_PUBLIC_KEY_ALG");
    const key = text.includes("BEGIN CERTIFICATE") ? await importX509(text, alg) : await importSPKI(text, alg);
    return { name: "public-key", algorithms: [alg], key };
  } catch (e) {
    throw new ConfigError(`config: AUTH_JWT_PUBLIC_KEY_FILE ${file}: ${(e as Error).message}`);
  }
}
