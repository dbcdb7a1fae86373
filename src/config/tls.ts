import { readConfigFile } from "./read-file";
import { createSecureContext } from "node:tls";
import { ConfigError } from "./load";
import type { Config } from "./schema";

/** What Bun.serve's `tls` option takes. */
export interface TlsFiles {
  cert: string;
  key: string;
  passphrase?: string;
  ca?: string;
  requestCert?: boolean;
  rejectUnauthorized?: boolean;
}

/**
 * The listener's certificate, key and client CA, read and tried once at start-up, before anything
 * listens or connects: a file that cannot be read, is not PEM, a key that does not match the
 * certificate or a wrong passphrase each stop the start with one line naming the setting. Undefined
 * when TLS is off. The passphrase is never repeated.
 */
export function loadTls(config: Config): TlsFiles | undefined {
  if (!config.TLS_CERT_FILE || !config.TLS_KEY_FILE) return undefined; // loadConfig refuses one without the other
  const tls: TlsFiles = { cert: readPem("TLS_CERT_FILE", config.TLS_CERT_FILE, "CERTIFICATE"), key: readPem("TLS_KEY_FILE", config.TLS_KEY_FILE, "PRIVATE KEY") };
  if (config.TLS_KEY_PASSPHRASE) tls.passphrase = config.TLS_KEY_PASSPHRASE;
  if (config.TLS_CA_FILE) Object.assign(tls, { ca: readPem("TLS_CA_FILE", config.TLS_CA_FILE, "CERTIFICATE"), requestCert: true, rejectUnauthorized: true });
  try {
    createSecureContext(tls);
  } catch (e) {
    const files = `TLS_CERT_FILE ${config.TLS_CERT_FILE}, TLS_KEY_FILE ${config.TLS_KEY_FILE}${tls.ca ? ` and TLS_CA_FILE ${config.TLS_CA_FILE}` : ""}`;
    throw new ConfigError(`config: ${files} cannot be used together: ${reason(e)}`);
  }
  return tls;
}

/**
 * The file's text, which must hold a PEM block of `kind` ("PRIVATE KEY" also matches the RSA, EC and
 * ENCRYPTED forms). OpenSSL skips blocks of other kinds without a word: a key given as TLS_CA_FILE
 * would start a gateway that refuses every client.
 */
function readPem(name: string, file: string, kind: "CERTIFICATE" | "PRIVATE KEY"): string {
  let text: string;
  try {
    text = readConfigFile(file);
  } catch (e) {
    throw new ConfigError(`config: ${name} ${file} could not be read: ${reason(e)}`);
  }
  if (!text.includes("-----BEGIN ")) throw new ConfigError(`config: ${name} ${file} is not a PEM file (no -----BEGIN line)`);
  if (!new RegExp(`-----BEGIN [A-Z ]*${kind}-----`).test(text)) throw new ConfigError(`config: ${name} ${file} holds no PEM ${kind} block`);
  return text;
}

// OpenSSL's "error:1e000065:Cipher functions:OPENSSL_internal:BAD_DECRYPT" says more once translated.
const OPENSSL_HINTS: Record<string, string> = {
  KEY_VALUES_MISMATCH: "the key is not the certificate's key",
  KEY_TYPE_MISMATCH: "the key is not the certificate's key (not even of its type)",
  BAD_DECRYPT: "the key is encrypted and TLS_KEY_PASSPHRASE is missing or wrong",
  NO_START_LINE: "a file holds no PEM block of the expected kind",
};

function reason(e: unknown): string {
  const message = String((e as Error)?.message ?? e).split("\n")[0]!;
  const hint = Object.entries(OPENSSL_HINTS).find(([code]) => message.includes(code))?.[1];
  return hint ? `${hint} (${message})` : message;
}
