import { readFileSync } from "node:fs";
import { describeAdvice, foreignSetting, foreignVariableError } from "./foreign";
import { type Config, ConfigSchema, type SettingName, settings } from "./schema";

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
    try {
      file = JSON.parse(readFileSync(env.CONFIG_FILE, "utf8"));
    } catch (e) {
      throw new ConfigError(`config: CONFIG_FILE ${env.CONFIG_FILE} could not be read as JSON: ${(e as Error).message}`);
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
    // Secrets are not repeated into logs, not even wrong ones.
    const got = /SECRET|KEYS/.test(name) ? "a value that is not shown" : JSON.stringify(input[name]);
    throw new ConfigError(`config: ${name} ${issue.message.toLowerCase()} (got ${got})`);
  }
  const config = parsed.data;
  try {
    new RegExp(config.TOPIC_ALLOW);
  } catch (e) {
    throw new ConfigError(`config: TOPIC_ALLOW is not a valid regular expression: ${(e as Error).message}`);
  }
  parseKafkaProperties(config.KAFKA_PROPERTIES);
  return Object.freeze(config);
}

/** `a.b=1,c.d=x` → { "a.b": "1", "c.d": "x" }. */
export function parseKafkaProperties(spec: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of spec.split(",").map((p) => p.trim()).filter(Boolean)) {
    const eq = pair.indexOf("=");
    if (eq <= 0) throw new ConfigError(`config: KAFKA_PROPERTIES entry "${pair}" is not of the form name=value`);
    out[pair.slice(0, eq).trim()] = pair.slice(eq + 1).trim();
  }
  return out;
}

