import { parseArgs } from "node:util";

/** The options every scenario understands; `bun run bench -- <scenario> --help` lists them. */
export const COMMON_OPTIONS = {
  url: { type: "string", help: "drive this gateway (ws://host:port/ws) instead of starting one" },
  brokers: { type: "string", help: "use this Kafka (host:port,…) instead of starting a local broker" },
  connections: { type: "string", default: "1", help: "publishing WebSocket connections" },
  rate: { type: "string", default: "0", help: "target events/s, open loop; 0 = max rate" },
  window: { type: "string", default: "10000", help: "events in flight per connection at max rate" },
  batch: { type: "string", default: "100", help: "events per frame (1 sends publish, more publish_batch)" },
  payload: { type: "string", default: "115", help: "bytes of data per event" },
  keys: { type: "string", default: "1000", help: "distinct event keys" },
  duration: { type: "string", default: "10", help: "seconds of load per run" },
  subscribers: { type: "string", default: "0", help: "subscriptions receiving the published events" },
  filter: { type: "string", help: "subscription filter as JSON, e.g. '{\"types\":[\"bench.event\"]}'" },
  topic: { type: "string", help: "topic to publish to (default: a fresh one per run)" },
  workers: { type: "string", default: "2", help: "Kafka worker processes of a locally started gateway" },
} as const;

type Spec = Record<string, { type: "string" | "boolean"; default?: string | boolean; help: string }>;

export interface CommonArgs {
  url?: string;
  brokers?: string;
  connections: number;
  rate: number;
  window: number;
  batch: number;
  payload: number;
  keys: number;
  duration: number;
  subscribers: number;
  filter?: Record<string, unknown>;
  topic?: string;
  workers: number;
}

/** Parses the common options plus a scenario's own; numbers are checked, not trusted. */
export function parseBenchArgs<E extends Spec>(
  argv: string[],
  usage: string,
  extra: E = {} as E,
  defaults: Partial<Record<keyof typeof COMMON_OPTIONS, string>> = {},
): { common: CommonArgs; own: Record<keyof E, string | boolean | undefined> } {
  const common0 = Object.fromEntries(Object.entries(COMMON_OPTIONS).map(([k, s]) => [k, k in defaults ? { ...s, default: defaults[k as keyof typeof defaults] } : s]));
  const spec = { ...common0, ...extra, help: { type: "boolean", help: "show the options" } } as Spec;
  const { values } = parseArgs({ args: argv, options: Object.fromEntries(Object.entries(spec).map(([k, v]) => [k, { type: v.type, default: v.default }])) as never, strict: true });
  const v = values as Record<string, string | boolean | undefined>;
  if (v.help) {
    console.log(`usage: ${usage}\n`);
    for (const [k, s] of Object.entries(spec)) console.log(`  --${k.padEnd(12)} ${s.help}${s.default !== undefined ? ` (default ${s.default})` : ""}`);
    process.exit(0);
  }
  const num = (k: string) => numberArg(k, v[k]);
  let filter: Record<string, unknown> | undefined;
  if (typeof v.filter === "string") {
    try {
      filter = JSON.parse(v.filter);
    } catch {
      throw new Error(`--filter must be JSON, got ${v.filter}`);
    }
  }
  const common: CommonArgs = {
    url: v.url as string | undefined,
    brokers: v.brokers as string | undefined,
    connections: Math.max(1, num("connections")),
    rate: num("rate"),
    window: num("window"),
    batch: Math.max(1, num("batch")),
    payload: num("payload"),
    keys: Math.max(1, num("keys")),
    duration: num("duration"),
    subscribers: num("subscribers"),
    filter,
    topic: v.topic as string | undefined,
    workers: Math.max(1, num("workers")),
  };
  const own = Object.fromEntries(Object.keys(extra).map((k) => [k, v[k]])) as Record<keyof E, string | boolean | undefined>;
  return { common, own };
}

/** A numeric option's value, checked: `--name` must be a number >= min (and an integer if asked). */
export function numberArg(name: string, raw: string | boolean | undefined, opts: { min?: number; integer?: boolean } = {}): number {
  const min = opts.min ?? 0;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min || (opts.integer && !Number.isInteger(n))) {
    throw new Error(`--${name} must be ${opts.integer ? "an integer" : "a number"} >= ${min}, got ${raw}`);
  }
  return n;
}
