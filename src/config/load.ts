import { readConfigFile } from "./read-file";
import { describeAdvice, foreignSetting, foreignVariableError } from "./foreign";
import { type Config, ConfigSchema, type SettingName, settings } from "./schema";
import { topicAllowPattern } from "./topic-allow";

/** Settings whose values are secrets, never shown in an error. */
const SECRET_SETTINGS = new Set(["AUTH_JWT_SECRET", "RESUME_TOKEN_KEYS", "TLS_KEY_PASSPHRASE", "KAFKA_PROPERTIES", "AUTH_JWKS_URL"]);

export class ConfigError extends Error {
  override name = "ConfigError";
}

/**
 * Reads the configuration once: defaults, then the JSON file named by CONFIG_FILE (keys are the
 * variable names), then the environment. Returns a frozen object or throws one readable line.
 * A variable that looks like a setting but is not one of ours stops the start too (foreign.ts):
 * ignoring GATEWAY_KAFKA_BROKERS, say, would quietly mean the in-memory log.
 */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const foreign = foreignVariableError(env);
  if (foreign) throw new ConfigError(foreign);
  const input: Record<string, unknown> = {};
  if (env.CONFIG_FILE) {
    let file: unknown;
    let text: string;
    try {
      text = readConfigFile(env.CONFIG_FILE);
    } catch (e) {
      throw new ConfigError(`config: CONFIG_FILE ${env.CONFIG_FILE} could not be read: ${(e as Error).message}`);
    }
    try {
      file = JSON.parse(text);
    } catch (e) {
      // The parser quotes what it stumbled on, which may be part of a secret: not repeated.
      throw new ConfigError(`config: CONFIG_FILE ${env.CONFIG_FILE} could not be read as JSON: ${(e as Error).message.replace(/"[^"]*"/g, "(a token not shown)")}`);
    }
    if (typeof file !== "object" || file === null || Array.isArray(file)) throw new ConfigError(`config: CONFIG_FILE ${env.CONFIG_FILE} must hold a JSON object`);
    for (const [k, v] of Object.entries(file)) {
      if (!(k in settings)) {
        const a = foreignSetting(k);
        throw new ConfigError(`config: CONFIG_FILE ${env.CONFIG_FILE} has unknown setting ${k}${a ? `, which ${describeAdvice(a)}` : ""}`);
      }
      input[k] = v;
    }
  }
  for (const name of Object.keys(settings) as SettingName[]) {
    const v = env[name];
    if (v !== undefined && v !== "") input[name] = v;
  }
  // The old name still works: it was the hello timeout when only authentication had one.
  if (input.HELLO_TIMEOUT === undefined && input.AUTH_HELLO_TIMEOUT !== undefined) input.HELLO_TIMEOUT = input.AUTH_HELLO_TIMEOUT;
  const parsed = ConfigSchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const name = String(issue.path[0]);
    // Secrets are not repeated into logs, not even wrong ones (KAFKA_PROPERTIES shows what it can itself: parseKafkaProperties).
    const got = SECRET_SETTINGS.has(name) ? "a value that is not shown" : JSON.stringify(input[name]);
    // Only the first letter lowered: the message may name values, spelled as they must be given.
    throw new ConfigError(`config: ${name} ${issue.message.charAt(0).toLowerCase()}${issue.message.slice(1)} (got ${got})`);
  }
  const config = parsed.data;
  for (const name of ["TOPIC_ALLOW", "TOPIC_DENY"] as const) {
    try {
      topicAllowPattern(config[name]);
    } catch (e) {
      throw new ConfigError(`config: ${name} is not a valid regular expression: ${(e as Error).message}`);
    }
  }
  parseKafkaProperties(config.KAFKA_PROPERTIES);
  const tls = tlsSettingsError(config);
  if (tls) throw new ConfigError(tls);
  return Object.freeze(config);
}

/**
 * Why the TLS settings cannot work together, or undefined (the files are read by tls.ts). A
 * certificate without its key, or the other way round, would otherwise mean plain HTTP on a port the
 * operator believes is encrypted.
 */
function tlsSettingsError(config: Config): string | undefined {
  const cert = config.TLS_CERT_FILE !== "";
  const key = config.TLS_KEY_FILE !== "";
  if (cert !== key) return `config: TLS_CERT_FILE and TLS_KEY_FILE must be set together (only ${cert ? "TLS_CERT_FILE" : "TLS_KEY_FILE"} is set)`;
  if (!cert && config.TLS_CA_FILE) return "config: TLS_CA_FILE needs TLS_CERT_FILE and TLS_KEY_FILE (mutual TLS is TLS first)";
  if (!cert && config.TLS_KEY_PASSPHRASE) return "config: TLS_KEY_PASSPHRASE is set without TLS_KEY_FILE";
  return undefined;
}

// Properties whose values are secrets (sasl.password, ssl.key.password, sasl.oauthbearer.client.secret, …).
// The properties librdkafka itself redacts, and more: sasl.oauthbearer.config holds client secrets, and
// a passphrase or private key is not called a password (outside security tester).
const SECRET_PROPERTY = /password|passphrase|secret|token|key\.pem|private\.key|jaas|oauthbearer\.config|sasl\.username|credential/i;

/**
 * `a.b=1,c.d=x` → { "a.b": "1", "c.d": "x" }. A comma inside a value is written `\,` (librdkafka's
 * list values: `debug=broker\,topic`, cipher suites), a backslash `\\`. An entry without `=` after
 * a secret property is most likely the rest of that secret, so it is not repeated in the error.
 */
export function parseKafkaProperties(spec: string): Record<string, string> {
  const out: Record<string, string> = Object.create(null);
  let previous = "";
  for (const pair of splitEntries(spec).map((p) => p.trim()).filter(Boolean)) {
    const eq = pair.indexOf("=");
    if (eq <= 0) {
      const entry = SECRET_PROPERTY.test(previous) ? `after ${previous} (not shown: it may be part of that secret)` : `"${pair}"`;
      throw new ConfigError(`config: KAFKA_PROPERTIES entry ${entry} is not of the form name=value; write a comma inside a value as \\,`);
    }
    previous = pair.slice(0, eq).trim();
    out[previous] = pair.slice(eq + 1).trim();
  }
  return out;
}

/** Splits at the commas that are not escaped, unescaping `\,` and `\\`. */
function splitEntries(spec: string): string[] {
  const entries: string[] = [];
  let current = "";
  for (let i = 0; i < spec.length; i++) {
    const c = spec[i]!;
    if (c === "\\" && (spec[i + 1] === "," || spec[i + 1] === "\\")) current += spec[++i];
    else if (c === ",") {
      entries.push(current);
      current = "";
    } else current += c;
  }
  entries.push(current);
  return entries;
}

