import { isIP } from "node:net";
import { availableParallelism } from "node:os";
import { z } from "zod";
import { HEADERS_HARD_MAX, LIMIT_DEFAULTS as L } from "../protocol/limits";
import { TOPIC_NAME } from "../protocol/frames";

const int = (min: number, max = Number.MAX_SAFE_INTEGER) => z.coerce.number().int().min(min).max(max);
/** "250ms", "30s", "15m", "24h", "7d" or a number of milliseconds. */
const duration = z.union([
  z.number().int().min(0),
  z.string().regex(/^\d+(ms|s|m|h|d)?$/, "must be a duration such as 30s, 15m, 24h or 7d").transform((v) => {
    const [, n, unit] = /^(\d+)(ms|s|m|h|d)?$/.exec(v)!;
    return Number(n) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[(unit ?? "ms") as "ms"];
  }),
]);

/** A secret for HMAC: at least 32 bytes, since a short one can be brute-forced offline from one token. */
const secret32 = z.string().refine((v) => v === "" || Buffer.byteLength(v) >= 32, "must be at least 32 bytes");
const ASYMMETRIC = /^(RS|PS|ES)(256|384|512)$|^EdDSA$|^ES256K$/;
const algList = z.string().refine((v) => v.split(",").every((a) => ASYMMETRIC.test(a.trim())), "must list asymmetric algorithms only (RS*, PS*, ES*, EdDSA)");

/** A hello may take at most this long to arrive: 100 ms to 10 min. */
const helloTimeout = duration.pipe(z.number().min(100).max(600_000));

/**
 * `*`, or a list of exact origins. Each is kept as browsers send it (scheme://host[:port], lower case,
 * no default port, no path), so a request's Origin header is compared by string equality.
 */
const origins = z.string().transform((v, ctx) => {
  const out: string[] = [];
  for (const raw of v.split(",").map((o) => o.trim()).filter(Boolean)) {
    if (raw === "*") {
      out.push("*");
      continue;
    }
    const url = URL.parse(raw);
    if (!url || url.origin === "null" || raw.includes("*") || url.pathname !== "/" || url.search || url.hash || url.username || url.password) {
      ctx.addIssue({ code: "custom", message: `${JSON.stringify(raw)} is not an origin: write scheme://host[:port], e.g. https://app.example.com, or * alone for any` });
      return z.NEVER;
    }
    out.push(url.origin);
  }
  return out.join(",");
});

/** An address or CIDR block of TRUSTED_PROXIES, read once here; a bare address is its own /32 or /128. */
export interface AddressBlock {
  address: string;
  bits: number;
  family: "ipv4" | "ipv6";
}

/** Addresses and CIDR blocks (10.0.0.0/8, fd00::/8), comma-separated; each checked here, once. */
const addressBlocks = z.string().transform((v, ctx) => {
  const out: AddressBlock[] = [];
  for (const raw of v.split(",").map((e) => e.trim()).filter(Boolean)) {
    const [address, prefix, extra] = raw.split("/");
    const family = isIP(address ?? "");
    const bits = prefix === undefined ? 0 : /^\d{1,3}$/.test(prefix) ? Number(prefix) : -1;
    if (family === 0 || extra !== undefined || bits < 0 || bits > (family === 6 ? 128 : 32)) {
      ctx.addIssue({ code: "custom", message: `${JSON.stringify(raw)} is not an address or CIDR block: write e.g. 10.0.0.7, 10.0.0.0/8 or fd00::/8` });
      return z.NEVER;
    }
    out.push({ address: address!, bits: prefix === undefined ? (family === 6 ? 128 : 32) : bits, family: family === 6 ? "ipv6" : "ipv4" });
  }
  return out;
});

const bool = z.union([z.boolean(), z.enum(["true", "false", "1", "0"]).transform((v) => v === "true" || v === "1")]);

/**
 * Every setting, its environment variable, default and bounds. The README's configuration table is
 * checked against this list by test/config/config.test.ts.
 */
export const settings = {
  HOST: z.string().min(1).default("0.0.0.0").describe("Address to listen on"),
  PORT: int(0, 65535).default(8080).describe("HTTP and WebSocket port (0 picks a free one)"),
  INTERNAL_PORT: z.union([z.literal(""), int(0, 65535)]).default("").describe("A second port, on HOST, that serves only /health/live, /health/ready, /health and /metrics, for probes and scrapers; it keeps answering while PORT stops accepting at the open-files limit (empty: off; 0 picks a free one)"),
  LOG_LEVEL: z.enum(["debug", "info", "warn", "error"]).default("info").describe("Minimum level of the JSON log lines on stdout"),
  DEFAULT_TOPIC: z.string().regex(TOPIC_NAME, "must be a legal Kafka topic name").default("events").describe("Topic for frames and requests that name none"),
  TOPIC_ALLOW: z.string().default(".*").describe("Regular expression the whole topic name must match (as if between ^ and $) to be published to or subscribed to"),
  TOPIC_DENY: z.string().default("_.*|connect-(?:configs|offsets|status)").describe("Regular expression (whole name, as TOPIC_ALLOW) of topics never published to or subscribed to, whatever TOPIC_ALLOW and the grants say: by default the internal topics of Kafka (__consumer_offsets: every group's name, offsets and members), Schema Registry, Confluent (_-prefixed) and Kafka Connect (its default topic names). `none`: no topic is denied"),
  MAX_FRAME_BYTES: int(1024, 64 * 1024 * 1024).default(1024 * 1024).describe("Largest frame or HTTP body accepted; larger gets FRAME_TOO_LARGE"),
  MAX_BATCH_EVENTS: int(1, 100_000).default(1000).describe("Most events in one publish_batch"),
  MAX_DEPTH: int(2, 256).default(32).describe("Deepest nesting accepted in a frame"),
  MAX_MAP_KEYS: int(16, 65_535).default(L.MAX_MAP_KEYS).describe("Most keys in any one map of a frame; more gets EVENT_TOO_LARGE (at most 65,535: msgpack encoders and the Kafka layouts count in 16 bits)"),
  MAX_EVENT_VALUES: int(16, 1_000_000).default(L.MAX_EVENT_VALUES).describe("Most values in one event (each map key, map value and array element counts one); more gets EVENT_TOO_LARGE"),
  MAX_FRAME_VALUES: int(16, 100_000_000).default(L.MAX_FRAME_VALUES).describe("Most values in one msgpack frame, all its events together (each map key, map value and array element counts one), counted before it is decoded: a frame past it gets FRAME_TOO_LARGE. Decoding costs per value, in one piece: a 1 MiB frame of a million zeros held every other connection for 100 ms. JSON frames are parsed natively and bounded by MAX_FRAME_BYTES"),
  MAX_HEADERS_PER_EVENT: int(0, HEADERS_HARD_MAX).default(L.MAX_HEADERS_PER_EVENT).describe("Most headers an event may carry (besides the ce_* ones the gateway writes); more gets EVENT_TOO_LARGE"),
  MAX_HEADER_BYTES: int(256, 16 * 1024 * 1024).default(L.MAX_HEADER_BYTES).describe("Most UTF-8 bytes of an event's header names and values together; more gets EVENT_TOO_LARGE"),
  TIME_SKEW_FUTURE: duration.pipe(z.number().max(3_600_000)).default(L.TIME_SKEW_FUTURE_MS).describe("How far ahead of the gateway's clock an event's time may be (at most 1h, Kafka's default message.timestamp.after.max.ms); later gets TIME_SKEW"),
  TIME_SKEW_PAST: duration.default(L.TIME_SKEW_PAST_MS).describe("How far back an event's time may be; 0 allows any time from 1970 on. Older gets TIME_SKEW. Keep it within the topics' message.timestamp.before.max.ms, and below their retention.ms (CreateTime topics delete older records at the next retention check)"),
  PUBLISH_WINDOW: int(1, 10_000_000).default(10_000).describe("Unacknowledged events one connection may have in flight"),
  KAFKA_BROKERS: z.string().default("").describe("Comma-separated bootstrap brokers; empty runs the embedded log"),
  KAFKA_WORKERS: int(1, 64).default(availableParallelism()).describe("Kafka worker processes, one producer each (default: cores)"),
  KAFKA_CLIENT_ID: z.string().min(1).default("kafka-ws-gateway").describe("client.id of the producers"),
  KAFKA_ACKS: z.enum(["all", "1", "0", "-1"]).default("all").describe("Producer acks"),
  KAFKA_LINGER_MS: int(0, 60_000).default(5).describe("Producer linger.ms: how long librdkafka waits to fill a batch. 5 ms is most of the ack latency at light load; 0 or 1 halves it there, but at one event per frame costs the workers about 30% more CPU and a quarter of the throughput (bench/RESULTS.md)"),
  KAFKA_COMPRESSION: z.enum(["none", "gzip", "snappy", "lz4", "zstd"]).default("lz4").describe("Producer compression.type"),
  KAFKA_MESSAGE_TIMEOUT_MS: int(1000, 3_600_000).default(30_000).describe("Time Kafka gets to acknowledge an event before it is nacked PUBLISH_TIMEOUT"),
  KAFKA_PROPERTIES: z.string().default("").describe("Extra librdkafka properties as k=v pairs separated by commas (e.g. security.protocol=SASL_SSL); a comma inside a value is escaped with a backslash, as in `debug=broker\\,topic`, which prints librdkafka's debug lines on stderr. They apply to the producer and to every reader's consumer, but message.max.bytes (the bound on one event's record) to the producer only. One librdkafka refuses, in either, stops the start (exit 2)"),
  KAFKA_MAX_INFLIGHT_PER_WORKER: int(100, 10_000_000).default(100_000).describe("Events one worker may hold unacknowledged before new ones get OVERLOADED"),
  KAFKA_NEW_TOPIC_MAX_INFLIGHT: int(1, 10_000_000).default(20_000).describe("Events in flight, together, to topics Kafka did not have when this instance asked and has not yet acknowledged a write to (their first write makes them where the brokers auto-create; where they do not, or a create policy refuses, or another instance is making a name that collides, their records wait out KAFKA_MESSAGE_TIMEOUT_MS). Past it such events get OVERLOADED at once, so they cannot hold the workers' capacity from topics that exist; one request always goes in when none is in flight"),
  KAFKA_FAIR_SHARE_DELAY_MS: int(0, 10_000).default(20).describe("Queueing one connection's events may cause everyone else's inside the shared Kafka workers: records are handed to them within a budget that keeps their answers within this of the quietest recent latency, the rest waiting their turn per connection, round-robin (docs/protocol.md, Fair share). 0: everything is handed over as it arrives"),
  KAFKA_CONNECT_TIMEOUT_MS: int(0, 600_000).default(30_000).describe("How long start-up waits for the workers to reach Kafka before serving as not ready"),
  KAFKA_WORKER_PING_TIMEOUT_MS: int(200, 600_000).default(3000).describe("A Kafka worker that answers no ping for this long, and says nothing else (its poll loop tells the gateway it runs every quarter of this, however many messages wait ahead of the pings), is hung: its in-flight events are nacked WORKER_LOST and it is killed and replaced"),
  KAFKA_BROKER_PROBE_TIMEOUT_MS: int(100, 60_000).default(1500).describe("Timeout of the workers' broker probe (a metadata request each second); three failures in a row (or librdkafka reporting all brokers down) make the gateway not ready"),
  IDEMPOTENCE_WINDOW_MS: int(0, 86_400_000).default(120_000).describe("How long an event id is remembered: a re-send with the same source and id to the same topic within it gets the original ack and is not written again, on any instance (docs/protocol.md, Idempotent publish). 0: off"),
  IDEMPOTENCE_MAX_IDS: int(1000, 50_000_000).default(500_000).describe("Event ids one instance remembers for idempotent publish (about 250 bytes each, however long the ids and sources: a longer identity than 64 characters is kept as 128 bits of its SHA-256); past it the oldest are forgotten before their window ends"),
  REPLAY_MAX_DURATION: duration.default(7 * 86_400_000).describe("How far back a subscription may start (earliest is clamped to it; an older time is refused); a duration such as 24h"),
  REPLAY_RATE_LIMIT: int(1, 100_000_000).default(50_000).describe("Events/s one subscription reads while replaying history, before it is live"),
  REPLAY_RATE_LIMIT_PER_ADDRESS: int(0, 100_000_000).default(50_000).describe("Events/s all the replaying subscriptions of one client address read together, over all its connections and SSE streams (each also within REPLAY_RATE_LIMIT): sixteen replays from one address read as fast as one, not sixteen times, so one client's history cannot take the cores every other client's acks wait for. On a 2-core box running the broker too, sixteen replays at the default took the cores (another client's ack p50 7 -> 127 ms) and 5000 kept it within noise (bench/RESULTS.md): lower it where untrusted clients may replay. 0: no rate per address"),
  SUBSCRIBER_BUFFER_BYTES: int(16 * 1024, 1024 * 1024 * 1024).default(1024 * 1024).describe("Event bytes queued for one slow subscription before its policy applies (drop-oldest or disconnect)"),
  SUBSCRIBER_CONNECTION_BUFFER_BYTES: int(64 * 1024, 1024 * 1024 * 1024 * 1024).default(16 * 1024 * 1024).describe("Event bytes all subscriptions of one connection may hold queued together; past it, the subscription queueing more applies its policy"),
  SUBSCRIBER_ADDRESS_BUFFER_BYTES: int(64 * 1024, 1024 * 1024 * 1024 * 1024).default(64 * 1024 * 1024).describe("Event bytes the subscriptions of one client address may hold queued together, over all its connections and SSE streams, so that one address cannot take SUBSCRIBER_TOTAL_BUFFER_BYTES from the rest; past it, the subscription queueing more applies its policy"),
  SUBSCRIBER_TOTAL_BUFFER_BYTES: int(1024 * 1024, 1024 * 1024 * 1024 * 1024).default(256 * 1024 * 1024).describe("Event bytes all subscriptions of the instance may hold queued together; past it, the subscription queueing more applies its policy"),
  SOCKET_SEND_BUFFER_BYTES: int(0, 64 * 1024 * 1024).default(256 * 1024).describe("The kernel's send buffer of each client connection on PORT (SO_SNDBUF; Linux keeps twice this, for its bookkeeping). Without it, Linux grows a connection's buffer to net.ipv4.tcp_wmem's maximum (often 4 MiB), which a client that stops reading leaves full, and the gateway copies into. It also bounds one connection's throughput to about twice this per round trip. 0: the kernel's autotuning"),
  MAX_SUBSCRIPTIONS_PER_ADDRESS: int(1, 10_000_000).default(1000).describe("Subscriptions one client address may hold over all its connections and SSE streams (each costs its filter and a frame per read batch); past it, TOO_MANY_SUBSCRIPTIONS"),
  REFRESH_RATE_LIMIT: int(0, 1000).default(1).describe("`refresh` frames (and hellos carrying a token on a connection that has one, which are refreshes too) per second one connection may send, from a bucket of 3 (a client refreshes once per token lifetime); over it, RATE_LIMITED with retryAfterMs, and sending on into refusals closes the connection with 4429. 0: no limit"),
  MAX_FILTER_TERMS_PER_TOPIC: int(100, 100_000_000).default(100_000).describe("Terms (each pattern, and one more per 64 of its characters; each header, the keys' lookup, each term of a where expression, and one per filter) the distinct filters of one topic's subscribers on this instance hold together, share groups' alike: each record is matched against all of them in one piece no delivery turn can cut, about 0.1 us a term (100,000: about 10 ms a record). A subscribe whose filter would pass it is refused TOO_MANY_SUBSCRIPTIONS; one whose filter is already there costs nothing more"),
  MAX_FILTER_TERMS_PER_ADDRESS: int(100, 100_000_000).default(25_000).describe("Terms (counted as for MAX_FILTER_TERMS_PER_TOPIC) of the distinct filters one client address's subscriptions hold on one topic on this instance, each counted once for the address however many of its subscriptions hold it, so that one address cannot take a topic's whole MAX_FILTER_TERMS_PER_TOPIC from everyone else's new filters. A subscribe whose filter would pass it is refused TOO_MANY_SUBSCRIPTIONS"),
  MAX_FILTER_CHARS_PER_ADDRESS: int(10_000, 10_000_000_000).default(8_000_000).describe("What the filters of one client address's subscriptions hold together, over all its connections and SSE streams, in characters: each filter's canonical form, plus 64 for each key, pattern part (between `*`s), header and where term, once for each topic the subscription reads. A filter is kept per subscription, and a `keys` list of long keys is one term of the bounds above (1,000 subscriptions of ~1 MB of keys held 2.3 GB). A subscribe whose filter would pass it is refused TOO_MANY_SUBSCRIPTIONS"),
  MAX_FILTER_CHARS: int(10_000, 100_000_000_000).default(64_000_000).describe("What the filters of every subscription on this instance hold together, counted as for MAX_FILTER_CHARS_PER_ADDRESS, so that many client addresses each within their bound cannot together hold more memory than this (measured 2.5–3.9 bytes of memory a character, for long keys, short keys and patterns of one-letter parts alike: about 160–250 MB at the default). A subscribe whose filter would pass it is refused TOO_MANY_SUBSCRIPTIONS"),
  MAX_SUBSCRIPTIONS_PER_CONNECTION: int(1, 100_000).default(100).describe("Subscriptions one connection may hold"),
  SUBSCRIBE_RATE_LIMIT: int(0, 1_000_000).default(50).describe("Subscribes per second one connection may send, from a bucket of MAX_SUBSCRIPTIONS_PER_CONNECTION (a reconnecting client subscribes them all again at once); over it, RATE_LIMITED with retryAfterMs, counted toward RATE_LIMIT_CLOSE_AFTER. 0: no limit"),
  SUBSCRIBE_RATE_LIMIT_PER_ADDRESS: int(0, 10_000_000).default(500).describe("Subscribes per second one client address may send over all its connections and SSE streams, from a bucket of five seconds of it (a reconnect storm behind one NAT); over it, RATE_LIMITED. 0: no limit"),
  REPLAY_START_RATE: int(0, 1_000_000).default(32).describe("Subscribes that read history (start earliest, a time or a resume token: each opens a reader of its own) per second on this instance, from a bucket of MAX_REPLAY_SUBSCRIPTIONS (a reconnect storm resumes at once); over it, RATE_LIMITED with retryAfterMs. Unbounded, ten addresses starting and ending replays 126 times a second held another client's p99 at 314-394 ms. 0: no limit"),
  BAD_TOKEN_RATE_PER_ADDRESS: int(0, 1_000_000).default(20).describe("HTTP requests whose token is refused (401), per second from one client address, from a bucket of 5 s of it; past it, the address's requests are refused RATE_LIMITED (429, late, as other rate refusals) before their token is verified, until the bucket refills. Valid tokens are not counted. 0: no limit"),
  REPLAY_START_RATE_PER_ADDRESS: int(0, 1_000_000).default(10).describe("Subscribes that read history per second from one client address, over its connections and SSE streams, from a bucket of twice MAX_REPLAYS_PER_ADDRESS (so an address's replays at once meet that bound, TOO_MANY_SUBSCRIPTIONS, before this one); over it, RATE_LIMITED. 0: no limit"),
  MAX_CONNECTIONS: int(0, 10_000_000).default(0).describe("WebSocket connections one instance accepts (0: as many as the open-files limit safely allows); past it, TOO_MANY_CONNECTIONS"),
  UNREAD_BYTES_PER_ADDRESS: int(1024 * 1024, 1024 * 1024 * 1024 * 1024).default(64 * 1024 * 1024).describe("Bytes the gateway may hold unread for the WebSocket connections of one client address together (their queued replies, and Bun's buffers for their sockets, pongs included), each connection's part counted in whole 64 KiB; the connection taking it past this is closed 4001 as not reading"),
  UNREAD_BYTES_TOTAL: int(1024 * 1024, 1024 * 1024 * 1024 * 1024).default(256 * 1024 * 1024).describe("The same over every client address together: the connection taking the instance past this is closed 4001 as not reading"),
  MAX_TOKENLESS_CONNECTIONS: int(0, 10_000_000).default(0).describe("With authentication on, WebSocket connections that came without a token (it may follow in hello) and have not yet been welcomed with one, together (0: a quarter of the instance's maximum connections); past it, a tokenless upgrade is refused TOO_MANY_CONNECTIONS, while upgrades carrying a token (kgw.bearer subprotocol or Authorization header) still get the rest. Without it, tokenless upgrades from a few addresses held every slot until HELLO_TIMEOUT"),
  MEMORY_LIMIT_BYTES: int(0, Number.MAX_SAFE_INTEGER).default(0).describe("Resident memory past which the gateway refuses new WebSocket connections (503 UNAVAILABLE), says 503 on /health/ready, and each second closes with 1013 the quiet connections (no whole frame for 5 s) of the client address holding the most, until it is back under 90% of it. Bun holds what has arrived of a frame (up to 4 x MAX_FRAME_BYTES a connection) where no bound of the gateway's can see it. 0: three quarters of the memory the process may use (its cgroup's limit, else the machine's)"),
  MAX_CONNECTIONS_PER_IP: int(1, 10_000_000).default(1000).describe("WebSocket connections from one client address; past it, TOO_MANY_CONNECTIONS"),
  CONNECTION_RATE_PER_IP: int(0, 1_000_000).default(200).describe("New WebSocket connections per second one client address may open (a burst of RATE_LIMIT_BURST_SECONDS of it); over it, the upgrade gets 429 RATE_LIMITED with Retry-After. 0: no limit"),
  CONNECTION_REFUSAL_DELAY_MS: int(0, 60_000).default(1000).describe("A WebSocket upgrade refused for a connection rate (CONNECTION_RATE_PER_IP, RATE_LIMIT_CLOSE_PENALTY_SECONDS), and an HTTP publish refused for a publish rate, is answered after this long, so a reconnect or request loop pays in time rather than in the gateway's CPU; at most 1,024 answers wait at once, past that they are answered at once. 0: at once"),
  RATE_LIMIT_EVENTS: int(0, 100_000_000).default(5000).describe("Events/s one connection may publish (HTTP: one principal's requests together); over it, RATE_LIMITED with retryAfterMs. A ping, hello, unsubscribe or frame of no known type counts as one event. 0: no limit"),
  RATE_LIMIT_BYTES: int(0, 10 * 1024 * 1024 * 1024).default(4 * 1024 * 1024).describe("Frame bytes/s one connection may send, every frame counted before it is decoded (HTTP: body bytes per principal); over it, RATE_LIMITED. 0: no limit"),
  RATE_LIMIT_HANDLING_MS: int(0, 1000).default(100).describe("Milliseconds of the gateway's own time (decoding, checking and encoding what it sent) one WebSocket connection's frames may take per second, from a bucket of RATE_LIMIT_BURST_SECONDS of it; past it, the connection is neither read nor served until that is paid back, and its requests are all still answered, in order, at that pace. Prices frames by what they cost, which their bytes do not: a 945 KB JSON frame of 45,000 20-digit integers costs 45 ms, the same bytes as one string 2 ms. An ordinary publisher at RATE_LIMIT_EVENTS takes a few ms a second. A frame is charged at most 2 ms plus 10 µs a byte (twice the costliest per byte known: invalid one-byte events): the clock also counts time the process was not running (a loaded machine, a collection), which is no client's work. 0: no limit"),
  RATE_LIMIT_HANDLING_TOTAL_MS: int(0, 100_000).default(300).describe("Milliseconds of the gateway's time per second that the busy clients (those past half their RATE_LIMIT_HANDLING_MS burst) may take together, from a bucket of RATE_LIMIT_BURST_SECONDS of it; while it is spent, a busy client rests (WebSocket) or is refused RATE_LIMITED (HTTP) until it is paid back, and a client within its own budget is served as ever. Delivering events is charged to it too (the busy publishers slow down with their subscribers' work), and at most 5 s of it is owed. A frame or body that could take its client past half its own burst (at the costliest per byte known, 45 ms per 945 KB: from a full burst, about 500 KB at the defaults) waits for it (WebSocket) or is refused RATE_LIMITED (HTTP) while it is spent, from any client: a new connection is within its own budget until its first frames have run, whatever they cost. Without it, eight connections each within RATE_LIMIT_HANDLING_MS took 800 ms of every second between them. 0: no total"),
  RATE_LIMIT_PRINCIPAL_EVENTS: int(0, 100_000_000).default(0).describe("Events/s one principal (the token's subject; the client address with authentication off) may publish over all its connections and requests. 0: no limit"),
  RATE_LIMIT_PRINCIPAL_BYTES: int(0, 10 * 1024 * 1024 * 1024).default(0).describe("Frame bytes/s one principal may send over all its connections and requests. 0: no limit"),
  RATE_LIMIT_BURST_SECONDS: z.coerce.number().min(0.01).max(3600).default(0.5).describe("Each rate's bucket holds this many seconds of it: the burst allowed above the rate (at the default events rate, 2,500 events)"),
  RATE_LIMIT_CLOSE_AFTER: int(0, 10_000_000).default(200).describe("RATE_LIMITED refusals past which a connection is closed with 4429 (it is ignoring retryAfterMs): an allowance of this many, given back at this many per 10 s, so more than it at once, or more than a tenth of it a second kept up (up to twice it within 10 s). 0: never closed"),
  INVALID_FRAMES_CLOSE_AFTER: int(0, 10_000_000).default(1000).describe("Frames refused for what the request got wrong (1xxx codes: malformed, invalid, forbidden, …; never a refusal from Kafka nor an expired token's UNAUTHENTICATED) past which (an allowance of this many, given back at this many per 10 s, as RATE_LIMIT_CLOSE_AFTER's) a connection is closed with 4400, its address then penalised as for 4429 (RATE_LIMIT_CLOSE_PENALTY_SECONDS). Each frame still gets its reply first. 0: never closed"),
  RATE_LIMIT_CLOSE_PENALTY_SECONDS: int(0, 86_400).default(10).describe("After a connection is closed with 4429 or 4400, new WebSocket connections from its client address are refused (429 RATE_LIMITED, Retry-After) for this long, except (authentication on) upgrades whose token names another principal than those closed there; its other open connections carry on. 0: none"),
  MAX_TOPICS_PER_PRINCIPAL: int(1, 1_000_000).default(250).describe("Topics one principal (with authentication off, one client address) may make new to this instance (by writing their first event here), of MAX_TOPICS; past it, TOO_MANY_TOPICS for its new topics (others' and the topics already taken go on). Counted from the start of the process"),
  MAX_TOPICS: int(1, 1_000_000).default(1000).describe("Distinct topics one instance publishes to (each costs a partition set in the embedded log, a topic handle in every Kafka worker, and where brokers auto-create, a topic in the cluster); a publish naming one more is refused TOO_MANY_TOPICS. Counted from the start of the process"),
  MAX_FEEDS: int(1, 100_000).default(1000).describe("Feeds (log readers: one per live topic, per replaying subscription, per share group) one instance keeps open"),
  MAX_SHARE_GROUPS: int(1, 1_000_000).default(1000).describe("Distinct share group names one instance joins (on Kafka each is a consumer group the cluster keeps for offsets.retention.minutes; the embedded log keeps its commits in memory); a subscribe naming one more is refused TOO_MANY_SUBSCRIPTIONS. Counted from the start of the process"),
  MAX_SHARE_GROUPS_PER_ADDRESS: int(1, 1_000_000).default(50).describe("New share group names one client address, and with authentication on one principal, may introduce on Kafka, of MAX_SHARE_GROUPS (a name introduced before costs nothing more); past it, TOO_MANY_SUBSCRIPTIONS, so one address churning names cannot use up the instance's share groups until it restarts. Counted from the start of the process"),
  MAX_FEEDS_PER_ADDRESS: int(1, 100_000).default(250).describe("Feeds the subscriptions of one client address may hold, over all its connections (a topic or share group it reads already costs it nothing more; each replay costs one); past it, TOO_MANY_SUBSCRIPTIONS, so one address cannot take every feed of MAX_FEEDS"),
  MAX_REPLAYS_PER_ADDRESS: int(1, 100_000).default(16).describe("Subscriptions one client address may have reading history at once, of MAX_REPLAY_SUBSCRIPTIONS; past it, TOO_MANY_SUBSCRIPTIONS, so one address that replays and never reads cannot hold every replay slot"),
  PARTITION_CHECK_MS: int(100, 3_600_000).default(5000).describe("How often the partition counts of the topics being read (by subscriptions and the idempotence ids reader) are asked again, so partitions added to a topic while it is read (kafka-topics --alter) are read from their start, and a topic deleted under a subscription (missing at two checks running) is told with log_reset gaps, a replay of it then going live, and the ids the idempotence reader read from it are forgotten. On Kafka each check also asks the topics' ids: a topic made again between two checks is read again from its new logs' start, with log_reset gaps, and its ids forgotten. Producers find them by librdkafka's topic.metadata.refresh.interval.ms (KAFKA_PROPERTIES)"),
  FEED_IDLE_CLOSE_MS: int(0, 3_600_000).default(10_000).describe("How long a live feed with no subscriber left stays open, for clients that come back"),
  MAX_REPLAY_SUBSCRIPTIONS: int(0, 100_000).default(64).describe("Subscriptions reading history at once (each has its own Kafka reader until it has caught up and is moved onto its topic's shared live feed; a caught-up one that has not been moved yet counts against MAX_FEEDS, no longer here)"),
  EMBEDDED_PARTITIONS: int(1, 10_000).default(3).describe("Partitions per topic in the embedded log"),
  EMBEDDED_RETENTION_RECORDS: int(1, 100_000_000).default(100_000).describe("Records kept per partition in the embedded log"),
  EMBEDDED_RETENTION_BYTES: int(16 * 1024 * 1024, 1024 * 1024 * 1024 * 1024).default(256 * 1024 * 1024).describe("Bytes the embedded log keeps, all topics together (records are held in chunks of 4 KiB doubling to 1 MiB per partition, and each partition's index of them, 12 bytes a slot, is counted too); past it, the oldest chunk of the partition holding most is dropped, as retention by size would"),
  SHUTDOWN_TIMEOUT_MS: int(0, 600_000).default(10_000).describe("On SIGTERM, how long in-flight events get to be acknowledged, and clients that are not reading (busy, or paused) to read their replies and the close frame (a WebSocket client has read them when it answers the ping sent behind them: one that does not answer pings, as RFC 6455 requires of every client, is closed only at this timeout): a connection still open then gets up to 2 s more for the closing handshake, and is then cut"),
  METRICS_ENABLED: bool.default(true).describe("Serve GET /metrics"),
  TLS_CERT_FILE: z.string().default("").describe("PEM certificate chain (the server's first) for HTTPS and WSS on PORT; TLS is on when this and TLS_KEY_FILE are set (docs/security.md)"),
  TLS_KEY_FILE: z.string().default("").describe("PEM private key of TLS_CERT_FILE"),
  TLS_KEY_PASSPHRASE: z.string().default("").describe("Passphrase of an encrypted TLS_KEY_FILE (never logged)"),
  TLS_CA_FILE: z.string().default("").describe("PEM CA certificates; when set, clients must present a certificate one of them signed (mutual TLS)"),
  AUTH_JWT_SECRET: secret32.default("").describe("Shared secret for HS* tokens (at least 32 bytes); setting any AUTH_JWT_SECRET, AUTH_JWT_PUBLIC_KEY_FILE or AUTH_JWKS_URL turns authentication on (docs/security.md)"),
  AUTH_JWT_SECRET_ALG: z.enum(["HS256", "HS384", "HS512"]).default("HS256").describe("The one algorithm tokens signed with AUTH_JWT_SECRET may use"),
  AUTH_JWT_PUBLIC_KEY_FILE: z.string().default("").describe("PEM (SPKI public key or X.509 certificate) or JWK JSON file of the key tokens are signed with"),
  AUTH_JWT_PUBLIC_KEY_ALG: z.union([z.literal(""), z.string().regex(ASYMMETRIC, "must be an asymmetric algorithm (RS*, PS*, ES*, EdDSA)")]).default("").describe("The one algorithm of AUTH_JWT_PUBLIC_KEY_FILE (required for PEM; a JWK may carry its own alg)"),
  AUTH_JWKS_URL: z.string().default("").describe("URL of a JSON Web Key Set; keys are picked by kid"),
  AUTH_JWKS_ALGORITHMS: algList.default("RS256,PS256,ES256,EdDSA").describe("Algorithms accepted for keys of AUTH_JWKS_URL (asymmetric only)"),
  AUTH_JWKS_CACHE_MAX_AGE: duration.default(600_000).describe("How long a fetched key set is used before it is fetched again; past it, and until a fetch works, tokens are refused UNAVAILABLE"),
  AUTH_JWKS_COOLDOWN: duration.default(30_000).describe("The least time between two fetches of the key set, whatever their outcome: a token with an unknown kid within it is refused without fetching (and while the set cannot be fetched, UNAVAILABLE)"),
  AUTH_JWT_ISSUER: z.string().default("").describe("Required iss claim (not checked when empty)"),
  AUTH_JWT_AUDIENCE: z.string().default("").describe("Required aud claim (not checked when empty)"),
  AUTH_JWT_TYPE: z.string().default("").describe("Required typ header, e.g. JWT or at+jwt (not checked when empty)"),
  AUTH_CLOCK_TOLERANCE: duration.default(30_000).describe("Clock skew allowed when checking exp, nbf and iat (a token issued further in the future than this is refused)"),
  AUTH_CLAIM: z.string().regex(/^[A-Za-z0-9_:./-]{1,128}$/).default("kgw").describe("Claim holding the topic grants: {publish: [...], subscribe: [...]} (docs/security.md)"),
  AUTH_REFRESH_GRACE: duration.default(10_000).describe("After a connection's token expires, how long it has to send refresh before it is closed with 4401"),
  AUTH_HELLO_TIMEOUT: helloTimeout.optional().describe("Former name of HELLO_TIMEOUT, still read when HELLO_TIMEOUT is not set"),
  HELLO_TIMEOUT: helloTimeout.default(10_000).describe("How long a WebSocket may stay open without completing hello (and, with authentication on, without a valid token) before it is closed: 4002, or 4401 when it has no valid token"),
  TRUSTED_PROXIES: addressBlocks.prefault("").describe("Comma-separated addresses or CIDR blocks of the proxies or load balancers in front of the gateway. A request whose peer is one of them is charged to the rightmost X-Forwarded-For address that is not, for every per-address bound (connections, connection rate, subscribes, feeds, replays, HTTP rates with authentication off); empty: X-Forwarded-For is ignored and the peer is the client, since any client can write the header"),
  ALLOWED_ORIGINS: origins.default("").describe("Comma-separated browser origins (https://app.example.com) allowed to open WebSockets and make CORS requests, or * for any; empty: only pages of the gateway's own host. Requests without Origin (non-browser clients) are always allowed; others get 403 ORIGIN_NOT_ALLOWED"),
  ALLOWED_HOSTS: z.string().refine((v) => v.split(",").map((h) => h.trim()).every((h) => h === "" || h === "*" || /^[a-z0-9.-]{1,253}$/i.test(h)), "host names only: e.g. gateway.example.com, or * for any").default("").describe("Comma-separated host names the gateway is served under (gateway.example.com, no port), or * for any. With authentication off, a browser page is served only on one of them, an IP address or localhost: a page of another site whose name was rebound to the gateway's address (DNS rebinding) sends its own name as Host and is refused 403 ORIGIN_NOT_ALLOWED. With authentication on, not needed"),
  HTTP_IDLE_TIMEOUT: duration.pipe(z.number().min(1000).max(255_000)).default(10_000).describe("An HTTP connection that sends nothing, or whose request (headers or body) does not arrive in full within this, is closed (at most 255s; Bun rounds to whole seconds). A request read in full is exempt while the gateway answers it"),
  HTTP_BODY_BYTES_TOTAL: int(0, 64 * 1024 * 1024 * 1024).default(256 * 1024 * 1024).describe("Bytes of HTTP request bodies the instance reads at once, over all clients (a body counts its Content-Length from before it is read, a chunked one what has arrived): a body that has begun and not ended is held whole, and clients that declare bodies and never finish them held gigabytes. Past it, 503 OVERLOADED with Retry-After. 0: no bound"),
  HTTP_MAX_HEADER_BYTES: int(1024, 1024 * 1024).default(16 * 1024).describe("Largest HTTP request head (request line and headers, the WebSocket upgrade's and its bearer token included); larger gets 431 and the connection is closed"),
  WS_PERMESSAGE_DEFLATE: bool.default(false).describe("Negotiate permessage-deflate with clients that offer it, so they may send compressed frames (MAX_FRAME_BYTES applies to the inflated size). Off: frames travel uncompressed"),
  RESUME_TOKEN_KEYS: z.string().refine((v) => v === "" || v.split(",").every((k) => Buffer.byteLength(k.trim()) >= 32), "keys must each be at least 32 bytes").default("").describe("Comma-separated HMAC keys for resume tokens, newest first (it signs, all verify); empty: a random key per process, so tokens work only on the instance that issued them, until it restarts"),
} as const;

export const ConfigSchema = z.object(settings);
export type Config = Readonly<z.infer<typeof ConfigSchema>>;
export type SettingName = keyof typeof settings;
