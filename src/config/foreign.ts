/**
 * Variables that look like configuration but are not ours. Ignoring them silently is the worst
 * answer: GATEWAY_KAFKA_BROKERS set by someone used to another gateway would leave this one on the
 * in-memory log, and every event would be lost on restart. So a name that looks like a setting
 * (another gateway's name in the table below, our prefixes, a misspelling of ours) stops the start,
 * unless the table says it belongs to someone else.
 */
import { settings } from "./schema";

type Verdict =
  /** A setting of ours does this job. */
  | { use: string }
  /** No setting does this; the text says what to do instead. */
  | { unsupported: string }
  /** Someone else's variable that merely shares our prefix; it is left alone. */
  | { notOurs: string };

const noAuth = { unsupported: "authentication is configured with AUTH_JWT_SECRET, AUTH_JWT_PUBLIC_KEY_FILE or AUTH_JWKS_URL and the other AUTH_ settings (docs/security.md)" };
const tlsOn = { use: "TLS_CERT_FILE and TLS_KEY_FILE (TLS is on when both are set)" };
const kafkaTools = { notOurs: "read by Kafka's own scripts and images" };

/**
 * Every foreign name we recognise, exact (case-insensitively). Names with the KAFKA_ or GATEWAY_
 * prefix that are not listed are refused too (see foreignSetting); this table gives them a better
 * answer, or lets through the few that belong to someone else.
 */
export const FOREIGN_SETTINGS: Readonly<Record<string, Verdict>> = {
  // Brokers
  BROKERS: { use: "KAFKA_BROKERS" },
  BOOTSTRAP_SERVERS: { use: "KAFKA_BROKERS" },
  KAFKA_BOOTSTRAP_SERVERS: { use: "KAFKA_BROKERS" },
  KAFKA_BOOTSTRAP_SERVER: { use: "KAFKA_BROKERS" },
  KAFKA_BROKER_LIST: { use: "KAFKA_BROKERS" },
  KAFKA_BROKER_URL: { use: "KAFKA_BROKERS" },
  KAFKA_HOST: { use: "KAFKA_BROKERS" },
  KAFKA_HOSTS: { use: "KAFKA_BROKERS" },
  KAFKA_SERVERS: { use: "KAFKA_BROKERS" },
  KAFKA_URL: { use: "KAFKA_BROKERS" },
  KAFKA_PORT: { use: "KAFKA_BROKERS (host:port pairs)" },
  KAFKA_REST_BOOTSTRAP_SERVERS: { use: "KAFKA_BROKERS" },
  // Topics
  TOPIC: { use: "DEFAULT_TOPIC" },
  KAFKA_TOPIC: { use: "DEFAULT_TOPIC" },
  KAFKA_DEFAULT_TOPIC: { use: "DEFAULT_TOPIC" },
  TOPICS: { use: "TOPIC_ALLOW (a regular expression)" },
  KAFKA_TOPICS: { use: "TOPIC_ALLOW (a regular expression)" },
  ALLOWED_TOPICS: { use: "TOPIC_ALLOW (a regular expression)" },
  TOPIC_WHITELIST: { use: "TOPIC_ALLOW (a regular expression)" },
  // Listening
  HTTP_PORT: { use: "PORT" },
  WS_PORT: { use: "PORT (HTTP and WebSocket share it)" },
  WEBSOCKET_PORT: { use: "PORT (HTTP and WebSocket share it)" },
  LISTEN_PORT: { use: "PORT" },
  SERVER_PORT: { use: "PORT" },
  HTTP_HOST: { use: "HOST" },
  SERVER_HOST: { use: "HOST" },
  BIND_ADDRESS: { use: "HOST" },
  BIND_ADDR: { use: "HOST" },
  LISTEN_ADDR: { use: "HOST and PORT" },
  LISTEN_ADDRESS: { use: "HOST and PORT" },
  KAFKA_REST_LISTENERS: { use: "HOST and PORT" },
  METRICS_PORT: { use: "INTERNAL_PORT (/metrics and /health/* on a port of their own; PORT serves them too)" },
  HEALTH_PORT: { use: "INTERNAL_PORT (/metrics and /health/* on a port of their own; PORT serves them too)" },
  ADMIN_PORT: { use: "INTERNAL_PORT (/metrics and /health/* on a port of their own; PORT serves them too)" },
  // Limits and producer settings
  MAX_MESSAGE_SIZE: { use: "MAX_FRAME_BYTES" },
  MAX_MESSAGE_BYTES: { use: "MAX_FRAME_BYTES" },
  MAX_PAYLOAD_SIZE: { use: "MAX_FRAME_BYTES" },
  MAX_BODY_SIZE: { use: "MAX_FRAME_BYTES" },
  MAX_FRAME_SIZE: { use: "MAX_FRAME_BYTES" },
  MAX_BATCH_SIZE: { use: "MAX_BATCH_EVENTS" },
  CLIENT_ID: { use: "KAFKA_CLIENT_ID" },
  KAFKA_CLIENTID: { use: "KAFKA_CLIENT_ID" },
  KAFKA_COMPRESSION_TYPE: { use: "KAFKA_COMPRESSION" },
  KAFKA_PRODUCER_ACKS: { use: "KAFKA_ACKS" },
  LOGLEVEL: { use: "LOG_LEVEL" },
  // TLS of the listener
  TLS_ENABLED: tlsOn,
  HTTPS_ENABLED: tlsOn,
  HTTPS_PORT: { use: "PORT (with TLS_CERT_FILE and TLS_KEY_FILE it serves HTTPS and WSS)" },
  WSS_PORT: { use: "PORT (with TLS_CERT_FILE and TLS_KEY_FILE it serves HTTPS and WSS)" },
  TLS_CERT: { use: "TLS_CERT_FILE (a path to a PEM file)" },
  TLS_CERT_PATH: { use: "TLS_CERT_FILE" },
  TLS_CERTIFICATE: { use: "TLS_CERT_FILE" },
  TLS_CERTIFICATE_FILE: { use: "TLS_CERT_FILE" },
  TLS_KEY: { use: "TLS_KEY_FILE (a path to a PEM file)" },
  TLS_KEY_PATH: { use: "TLS_KEY_FILE" },
  TLS_PRIVATE_KEY: { use: "TLS_KEY_FILE" },
  TLS_PRIVATE_KEY_FILE: { use: "TLS_KEY_FILE" },
  TLS_KEY_PASSWORD: { use: "TLS_KEY_PASSPHRASE" },
  TLS_PASSPHRASE: { use: "TLS_KEY_PASSPHRASE" },
  TLS_CA: { use: "TLS_CA_FILE (a path to a PEM file)" },
  TLS_CA_CERT: { use: "TLS_CA_FILE" },
  TLS_CA_PATH: { use: "TLS_CA_FILE" },
  TLS_CLIENT_CA_FILE: { use: "TLS_CA_FILE" },
  // Other gateways' names for authentication; consumer groups: not features of this gateway
  AUTH_ENABLED: noAuth,
  AUTH_TOKEN: noAuth,
  AUTH_SECRET: noAuth,
  API_KEY: noAuth,
  API_KEYS: noAuth,
  JWT_SECRET: noAuth,
  JWT_PUBLIC_KEY: noAuth,
  JWT_ISSUER: noAuth,
  JWT_AUDIENCE: noAuth,
  JWKS_URL: noAuth,
  JWKS_URI: noAuth,
  RATE_LIMIT: { use: "RATE_LIMIT_EVENTS (events/s per connection) and RATE_LIMIT_PRINCIPAL_EVENTS" },
  RATE_LIMIT_RPS: { use: "RATE_LIMIT_EVENTS (events/s per connection) and RATE_LIMIT_PRINCIPAL_EVENTS (per principal)" },
  RATE_LIMIT_BURST: { use: "RATE_LIMIT_BURST_SECONDS (each bucket holds that many seconds of its rate)" },
  RATE_LIMIT_ENABLED: { use: "RATE_LIMIT_EVENTS and RATE_LIMIT_BYTES (on by default; 0 turns one off)" },
  RATE_LIMIT_PER_IP: { use: "RATE_LIMIT_PRINCIPAL_EVENTS (with authentication off the principal is the client address)" },
  CORS_ORIGINS: { use: "ALLOWED_ORIGINS (it covers CORS and WebSocket upgrades)" },
  CORS_ALLOWED_ORIGINS: { use: "ALLOWED_ORIGINS (it covers CORS and WebSocket upgrades)" },
  CORS_ORIGIN: { use: "ALLOWED_ORIGINS (it covers CORS and WebSocket upgrades)" },
  WS_ALLOWED_ORIGINS: { use: "ALLOWED_ORIGINS (it covers CORS and WebSocket upgrades)" },
  MAX_HTTP_HEADER_SIZE: { use: "HTTP_MAX_HEADER_BYTES" },
  HANDSHAKE_TIMEOUT: { use: "HELLO_TIMEOUT" },
  PER_MESSAGE_DEFLATE: { use: "WS_PERMESSAGE_DEFLATE" },
  PERMESSAGE_DEFLATE: { use: "WS_PERMESSAGE_DEFLATE" },
  WS_COMPRESSION: { use: "WS_PERMESSAGE_DEFLATE" },
  GROUP_ID: { unsupported: "subscriptions read partitions without a consumer group (share groups are named per subscription)" },
  CONSUMER_GROUP: { unsupported: "subscriptions read partitions without a consumer group (share groups are named per subscription)" },
  KAFKA_GROUP_ID: { unsupported: "subscriptions read partitions without a consumer group (share groups are named per subscription)" },
  KAFKA_CONSUMER_GROUP: { unsupported: "subscriptions read partitions without a consumer group (share groups are named per subscription)" },
  // Settings of earlier versions
  KAFKA_WORKER_RUNTIME: { unsupported: "the Kafka workers run on Bun only now (librdkafka through bun:ffi)" },
  KAFKA_WORKER_NODE_ARGS: { unsupported: "the Kafka workers run on Bun only now; Node.js is not used at run time" },
  // Shares a prefix, belongs to someone else
  KAFKA_HOME: kafkaTools,
  KAFKA_OPTS: kafkaTools,
  KAFKA_HEAP_OPTS: kafkaTools,
  KAFKA_JVM_PERFORMANCE_OPTS: kafkaTools,
  KAFKA_GC_LOG_OPTS: kafkaTools,
  KAFKA_JMX_OPTS: kafkaTools,
  KAFKA_LOG4J_OPTS: kafkaTools,
  KAFKA_DEBUG: kafkaTools,
  GATEWAY_INTERFACE: { notOurs: "set by web servers for CGI programs" },
};

const ours = new Set<string>([...Object.keys(settings), "CONFIG_FILE"]);
const PREFIXES = ["KAFKA_", "GATEWAY_"];

/**
 * Kubernetes service links (and Docker's legacy links) put variables such as KAFKA_PORT=tcp://…
 * and KAFKA_SERVICE_HOST into every pod for a service named kafka: a gateway must start next to one.
 */
function isServiceLink(name: string, value: string): boolean {
  if (/_SERVICE_HOST$|_SERVICE_PORT(_[A-Z0-9_]+)?$|_PORT_\d+_(TCP|UDP|SCTP)(_(PROTO|PORT|ADDR))?$/.test(name)) return true;
  if (/_PORT$/.test(name) && /^(tcp|udp|sctp):\/\//.test(value)) return true;
  return (/_NAME$/.test(name) && value.startsWith("/")) || /_ENV_/.test(name);
}

/** Our setting closest to `name` by edit distance, if it is close enough to be a typo. */
function nearestSetting(name: string): string | undefined {
  let best: string | undefined;
  let bestDistance = 3;
  for (const s of ours) {
    const d = editDistance(name, s);
    if (d < bestDistance) [best, bestDistance] = [s, d];
  }
  return best;
}

function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 2) return 3;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = row;
  }
  return prev[b.length]!;
}

/** What we say about a foreign name: what to use instead, or why there is nothing to use. */
export type Advice = { use: string } | { unsupported: string };

function advice(v: Verdict): Advice | undefined {
  return "notOurs" in v ? undefined : v;
}

/**
 * What to say about a variable that is not a setting of ours: undefined when it is none of our
 * business. Never looks at a value except to recognise a service link, and never repeats one:
 * JWT_SECRET must not reach a log.
 */
export function foreignSetting(name: string, value = ""): Advice | undefined {
  if (ours.has(name)) return undefined;
  const upper = name.toUpperCase();
  if (isServiceLink(upper, value)) return undefined;
  if (ours.has(upper)) return { use: `${upper} (names are upper case)` };
  const listed = FOREIGN_SETTINGS[upper];
  if (listed) return advice(listed);
  const prefix = PREFIXES.find((p) => upper.startsWith(p));
  if (!prefix) return undefined;
  if (prefix === "GATEWAY_") {
    const rest = upper.slice(prefix.length);
    if (ours.has(rest)) return { use: rest };
    const restListed = FOREIGN_SETTINGS[rest];
    if (restListed && !("notOurs" in restListed)) return advice(restListed);
  }
  const near = nearestSetting(upper);
  if (near) return { use: `${near}, if that is what you meant` };
  if (prefix === "KAFKA_") {
    const property = upper.slice(prefix.length).toLowerCase().replaceAll("_", ".");
    return { use: `KAFKA_PROPERTIES for librdkafka properties, e.g. KAFKA_PROPERTIES=${property}=…` };
  }
  return { use: "one of the settings in the README's configuration table" };
}

/** The advice as the end of a sentence that names the variable. */
export function describeAdvice(a: Advice): string {
  return "use" in a ? `is not a setting of this gateway: use ${a.use}` : `is not supported (${a.unsupported})`;
}

/** The first variable in `env` that looks like configuration but is not ours, as one line. */
export function foreignVariableError(env: Record<string, string | undefined>): string | undefined {
  for (const [name, value] of Object.entries(env)) {
    const a = foreignSetting(name, value ?? "");
    if (a) return `config: ${name} ${describeAdvice(a)}${"use" in a ? "" : ": unset it to start"}`;
  }
  return undefined;
}
