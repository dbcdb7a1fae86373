import { GatewayError } from "../protocol/errors";
import { glob } from "../protocol/glob";

/**
 * The topic policy: what a token's grants claim allows. One module for WebSocket publish, HTTP
 * publish and subscriptions (checked again when a connection refreshes its token).
 *
 * Claim format (docs/security.md), under AUTH_CLAIM (default `kgw`):
 *   { "publish": ["orders.*", {"topic": "billing.*", "types": ["invoice.*"]}], "subscribe": ["*"] }
 * A pattern is literal except `*`, which matches any run of characters, dots included. A publish
 * grant with `types` allows only events whose `type` matches one of them. Subscribe grants take no
 * `types`: a subscription cannot be narrowed to types by the gateway, so such a grant is refused.
 */
export type Action = "publish" | "subscribe";

type Pattern = (s: string) => boolean;

interface Rule {
  topic: Pattern;
  /** Event types allowed; undefined: every type. */
  types?: Pattern[];
}

export interface Grants {
  publish: Rule[];
  subscribe: Rule[];
  /** May read what the instance knows of every client (the delivery-health view). */
  admin: boolean;
}

/** Everything: the grants of every client when authentication is off. */
const ANY: Pattern = () => true;
export const ALL: Grants = { publish: [{ topic: ANY }], subscribe: [{ topic: ANY }], admin: true };
export const NONE: Grants = { publish: [], subscribe: [], admin: false };

const TOPIC_PATTERN = /^[a-zA-Z0-9._*-]{1,249}$/;
const MAX_RULES = 256;

/** The keys a claim value may have. */
const CLAIM_KEYS = new Set(["publish", "subscribe", "admin"]);

/** The grants of a claim value; throws (the token is then refused) when it is not in the format. */
export function parseGrants(claim: unknown, name: string): Grants {
  if (claim === undefined) return NONE;
  if (typeof claim !== "object" || claim === null || Array.isArray(claim)) throw new Error(`claim ${name} must be an object {publish, subscribe}`);
  const c = claim as Record<string, unknown>;
  // What the claim does not define is refused, not ignored: a misspelt "subscibe" granted nothing in silence.
  for (const key of Object.keys(c)) if (!CLAIM_KEYS.has(key)) throw new Error(`claim ${name} has no grant ${JSON.stringify(key.slice(0, 64))}: it takes ${[...CLAIM_KEYS].join(", ")}`);
  const rules = (action: Action): Rule[] => {
    const list = c[action];
    if (list === undefined) return [];
    if (!Array.isArray(list) || list.length > MAX_RULES) throw new Error(`claim ${name}.${action} must be an array of at most ${MAX_RULES} grants`);
    return list.map((entry) => {
      if (typeof entry === "object" && entry !== null) {
        for (const key of Object.keys(entry)) if (key !== "topic" && key !== "types") throw new Error(`claim ${name}.${action}: a grant takes topic and types, not ${JSON.stringify(key.slice(0, 64))}`);
      }
      const { topic, types } = typeof entry === "string" ? { topic: entry, types: undefined } : ((entry ?? {}) as { topic?: unknown; types?: unknown });
      if (typeof topic !== "string" || !TOPIC_PATTERN.test(topic)) throw new Error(`claim ${name}.${action}: ${JSON.stringify(topic)} is not a topic pattern`);
      if (types === undefined) return { topic: glob(topic) };
      if (action === "subscribe") throw new Error(`claim ${name}.subscribe: grants take no types`);
      if (!Array.isArray(types) || types.length === 0 || types.length > MAX_RULES || !types.every((t) => typeof t === "string" && t.length > 0 && t.length <= 256)) {
        throw new Error(`claim ${name}.publish: types must be a non-empty array of type patterns`);
      }
      return { topic: glob(topic), types: types.map((t) => glob(t)) };
    });
  };
  if (c.admin !== undefined && typeof c.admin !== "boolean") throw new Error(`claim ${name}.admin must be true or false`);
  return { publish: rules("publish"), subscribe: rules("subscribe"), admin: c.admin === true };
}

/**
 * Whether `grants` allow `action` on `topic`, and for a publish, on every event's type. Returns the
 * refusal (FORBIDDEN) or undefined. `types` are read off the events as sent; events without a string
 * type fail validation later anyway, and are checked as the empty type here.
 */
export function check(grants: Grants, action: Action, topic: string, events?: readonly unknown[]): GatewayError | undefined {
  let typeRules: Pattern[] | undefined;
  let any = false;
  for (const rule of grants[action]) {
    if (!rule.topic(topic)) continue;
    any = true;
    if (!rule.types) return undefined; // a grant of the whole topic
    (typeRules ??= []).push(...rule.types);
  }
  if (!any) return new GatewayError("FORBIDDEN", `the token grants no ${action} on topic "${topic}"`);
  if (!events || !typeRules) return undefined;
  for (let i = 0; i < events.length; i++) {
    const e = events[i] as { type?: unknown } | null;
    const type = typeof e === "object" && e !== null && typeof e.type === "string" ? e.type : "";
    if (!typeRules.some((r) => r(type))) {
      return new GatewayError("FORBIDDEN", `the token grants no publish of type "${type.slice(0, 256)}" on topic "${topic}"${events.length > 1 ? ` (event ${i})` : ""}`);
    }
  }
  return undefined;
}

/** Whether a grant covers the whole topic for `action`, whatever the event types (so the answer can be cached). */
export function grantsWholeTopic(grants: Grants, action: Action, topic: string): boolean {
  for (const rule of grants[action]) if (!rule.types && rule.topic(topic)) return true;
  return false;
}
