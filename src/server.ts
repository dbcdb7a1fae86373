import type { Server } from "bun";
import { Audit } from "./auth/audit";
import { Authenticator } from "./auth/authenticator";
import { offersToken } from "./auth/bearer";
import { createHttpAuth } from "./http/auth-guard";
import { loadKeySources } from "./auth/keys";
import { authenticateUpgrade } from "./http/ws-upgrade";
import type { Config } from "./config/schema";
import { loadTls } from "./config/tls";
import { createClientAddress, trustsEveryone } from "./http/client-address";
import { createEventRoutes } from "./http/events";
import { createDashboardRoutes } from "./http/dashboard";
import { createDeliveryRoute } from "./http/delivery";
import { createHealthRoutes } from "./http/health";
import { createStreamRoute } from "./http/stream";
import { ROUTED_METHODS, applyHttpHeaderLimit, closingAnswers, httpRoutes, methodNotAllowed } from "./http/routes";
import { OriginPolicy, preflight, withOrigin } from "./http/origins";
import { error, errorResponse, lateErrorResponse, unreadableUrl, urlOf } from "./http/responses";
import { unknownParam } from "./http/query";
import { FairShare, type FairShareOptions } from "./ingest/fair-share";
import { TopicLimits } from "./ingest/topic-limits";
import { Idempotence } from "./ingest/idempotence";
import { Publisher, wireError } from "./ingest/publisher";
import { GatewayError, shuttingDown } from "./protocol/errors";
import { ConnectionLimiter } from "./limits/connections";
import { MemoryGuard, memoryLimit } from "./limits/memory-guard";
import { OpenFilesGuard, openFilesLimit } from "./limits/open-files";
import { Listener } from "./http/listener";
import { capSendBuffer } from "./http/send-buffer";
import { LoopStalls } from "./limits/loop-stalls";
import { type RateLimitOptions, RateLimits, type Refusal } from "./limits/rate-limits";
import { RefusalDelay } from "./limits/refusal-delay";
import type { EventLog } from "./log/event-log";
import { KafkaLog } from "./kafka/kafka-log";
import { kafkaLogOptions } from "./kafka/options";
import { MemoryLog } from "./log/memory-log";
import type { Logger } from "./observability/logger";
import { type Metrics, createMetrics } from "./observability/metrics";
import { msgpackNativeAcceleration } from "./protocol/codec";
import { SubscriptionManager } from "./subscribe/manager";
import { setResumeTokenKeys } from "./subscribe/position";
import { type ConnectionData, SERVER_NAME, createWebSocketHandler } from "./ws/connection";
import { IN_DOUBT_RESEND_WAIT_MS } from "./log/lost-keys";

/**
 * The largest HTTP body read at all. Bodies between MAX_FRAME_BYTES and this are read and discarded
 * so the client gets its 413 FRAME_TOO_LARGE (http/events.ts); past it, Bun answers 413 itself and
 * closes, mid-upload.
 */
export function httpBodyDrainLimit(maxFrameBytes: number): number {
  return Math.max(maxFrameBytes * 4, 64 * 1024 * 1024);
}

export interface Gateway {
  listener: Listener<ConnectionData>;
  port: number;
  /** INTERNAL_PORT's port, when it is on. */
  internalPort?: number;
  log: EventLog;
  /** Whether PORT serves HTTPS and WSS (TLS_CERT_FILE and TLS_KEY_FILE). */
  tls: boolean;
  /** The connection cap in force (MAX_CONNECTIONS, or what the open-files limit allows). */
  maxConnections: number;
  /** Graceful stop: refuse new work, let in-flight events be acknowledged, then release everything. */
  close(): Promise<void>;
}

const WS_ALLOW = "GET, OPTIONS";

export function createLog(config: Config, logger: Logger, metrics: Metrics): EventLog {
  if (!config.KAFKA_BROKERS) {
    return new MemoryLog({ partitions: config.EMBEDDED_PARTITIONS, retentionRecords: config.EMBEDDED_RETENTION_RECORDS, retentionBytes: config.EMBEDDED_RETENTION_BYTES });
  }
  return new KafkaLog(
    kafkaLogOptions(config),
    (e) => {
      if (e.event === "worker_restart") metrics.workerRestarts.inc();
      if (e.event === "worker_ready") metrics.workersReady.inc();
      if (e.event === "worker_exit" && e.wasReady) metrics.workersReady.dec();
      // A new cluster at the brokers' address: every log the clients had is gone.
      const level = e.event === "cluster_changed" ? "error" : e.event === "worker_exit" || e.event === "worker_status" || (e.event === "worker_brokers" && e.brokers === "down") ? "warn" : "info";
      logger[level](e.event, e);
    },
  );
}

function rateLimitOptions(config: Config): RateLimitOptions {
  return {
    connectsPerSecPerIp: config.CONNECTION_RATE_PER_IP,
    connection: { eventsPerSec: config.RATE_LIMIT_EVENTS, bytesPerSec: config.RATE_LIMIT_BYTES },
    principal: { eventsPerSec: config.RATE_LIMIT_PRINCIPAL_EVENTS, bytesPerSec: config.RATE_LIMIT_PRINCIPAL_BYTES },
    burstSeconds: config.RATE_LIMIT_BURST_SECONDS,
    closeAfterRefusals: config.RATE_LIMIT_CLOSE_AFTER,
    closePenaltyMs: config.RATE_LIMIT_CLOSE_PENALTY_SECONDS * 1000,
    closeAfterInvalid: config.INVALID_FRAMES_CLOSE_AFTER,
    subscribes: { perSec: config.SUBSCRIBE_RATE_LIMIT, burst: config.MAX_SUBSCRIPTIONS_PER_CONNECTION, perAddressPerSec: config.SUBSCRIBE_RATE_LIMIT_PER_ADDRESS },
    badTokensPerSecPerAddress: config.BAD_TOKEN_RATE_PER_ADDRESS,
    replays: { perSec: config.REPLAY_START_RATE, instanceBurst: config.MAX_REPLAY_SUBSCRIPTIONS, perAddressPerSec: config.REPLAY_START_RATE_PER_ADDRESS, addressBurst: 2 * config.MAX_REPLAYS_PER_ADDRESS },
    refreshesPerSec: config.REFRESH_RATE_LIMIT,
    handlingMsPerSec: config.RATE_LIMIT_HANDLING_MS,
    handlingTotalMsPerSec: config.RATE_LIMIT_HANDLING_TOTAL_MS,
  };
}

function fairShareOptions(config: Config, metrics: Metrics, logger: Logger): FairShareOptions {
  return {
    targetDelayMs: config.KAFKA_FAIR_SHARE_DELAY_MS,
    // The floor is what keeps the workers busy when their latency is high for reasons other than
    // their queue (a loaded machine: each hop waits for a core). At 500, a flooder on two busy cores
    // went from 28k to 7k events/s, the budget stuck at the floor; 5,000 keeps a pipeline of 60 ms at
    // 80k events/s. A light publisher then waits behind at most about this many events.
    minRecords: 5000,
    maxRecords: config.KAFKA_MAX_INFLIGHT_PER_WORKER * config.KAFKA_WORKERS,
    // In a stall the workers' own answers (OVERLOADED, PUBLISH_TIMEOUT, WORKER_LOST) are what clients
    // need. At 1 s, a loaded machine's pauses passed for stalls and let a whole window in at once.
    stallMs: 5000,
    onStall: (waiting) => {
      logger.warn("fair share: the Kafka workers answered nothing for 5 s; every waiting event is handed over", { waiting });
    },
    report: (waiting, budget) => {
      metrics.fairShareWaiting.set(waiting);
      metrics.fairShareBudget.set(budget);
    },
  };
}

// How long the first id-bearing publish to a topic waits for the ids of the window to be read from the log.
// The key blocks of src/log/lost-keys.ts outlast it (a re-send in doubt waits this long at most).
const IDEMPOTENCE_WARMUP_TIMEOUT_MS = IN_DOUBT_RESEND_WAIT_MS;

// How long a socket's queued replies, then its closing handshake, may take at shutdown.
const CLOSE_GRACE_MS = 2000;
// How long the process stays after closing its sockets, so clients read the close frames.
const CLOSE_LINGER_MS = 300;
/** Over the memory limit, connections that have received no whole frame for this long are shed (MemoryGuard). */
const QUIET_MS = 5000;
const overMemory = () => new GatewayError("UNAVAILABLE", "the gateway is over its memory limit (MEMORY_LIMIT_BYTES); try again later or another instance");

/** Said at start-up when no key is configured: every client may then do everything TOPIC_ALLOW allows. */
export const AUTH_OFF_WARNING = "authentication is off: any client may publish and subscribe to any topic TOPIC_ALLOW matches; set AUTH_JWT_SECRET, AUTH_JWT_PUBLIC_KEY_FILE or AUTH_JWKS_URL (docs/security.md)";
export const TRUST_ALL_WARNING = "TRUSTED_PROXIES holds a /0 block: every peer is a trusted proxy, so any client can name itself in X-Forwarded-For and escape every per-address bound; list only the proxies in front of the gateway";
export const ANY_ORIGIN_WARNING = "ALLOWED_ORIGINS is * and authentication is off: any web page a user opens can publish and subscribe through this gateway from their browser (docs/protocol.md, Origins and CORS)";
export const RESUME_KEY_WARNING = "RESUME_TOKEN_KEYS is not set: resume tokens are signed with a random key of this process, so they are refused by other instances and after a restart";

export async function startGateway(config: Config, logger: Logger): Promise<Gateway> {
  // Certificates and keys first: a bad file stops the start before anything listens or connects.
  const tls = loadTls(config);
  const authenticator = new Authenticator(
    await loadKeySources(config, (reason) => logger.warn("the JWKS could not be fetched; the last set fetched is used until the next attempt after AUTH_JWKS_COOLDOWN", { reason })),
    config,
  );
  const audit = new Audit(logger);
  if (!authenticator.enabled) logger.warn(AUTH_OFF_WARNING);
  if (!authenticator.enabled && config.ALLOWED_ORIGINS.split(",").includes("*")) logger.warn(ANY_ORIGIN_WARNING);
  setResumeTokenKeys(config.RESUME_TOKEN_KEYS.split(","));
  if (!config.RESUME_TOKEN_KEYS) logger.warn(RESUME_KEY_WARNING);
  if (trustsEveryone(config.TRUSTED_PROXIES)) logger.warn(TRUST_ALL_WARNING);
  const metrics = createMetrics();
  metrics.msgpackNative.set(msgpackNativeAcceleration ? 1 : 0);
  if (!msgpackNativeAcceleration) logger.warn("msgpackr native acceleration is not loaded; decoding runs about 3x slower");

  const log = createLog(config, logger, metrics);
  await log.start();
  if (!log.isReady()) logger.warn("the log is not ready yet; serving, but /health/ready says 503 until it is", { log: log.health() });

  // The embedded log shares its work among connections itself (memory-log.ts); Kafka's workers do not.
  const fairShare = log.kind === "kafka" && config.KAFKA_FAIR_SHARE_DELAY_MS > 0 ? new FairShare(log, fairShareOptions(config, metrics, logger)) : null;
  const appender = fairShare ?? log;
  const idempotence = config.IDEMPOTENCE_WINDOW_MS > 0 ? new Idempotence(log, { windowMs: config.IDEMPOTENCE_WINDOW_MS, maxIds: config.IDEMPOTENCE_MAX_IDS, warmupTimeoutMs: IDEMPOTENCE_WARMUP_TIMEOUT_MS, partitionCheckMs: config.PARTITION_CHECK_MS }, metrics, logger, appender) : null;
  idempotence?.start();
  // On Kafka a topic's own max.message.bytes and timestamp bounds are learned and checked per event.
  const topicLimits = log.kind === "kafka" ? new TopicLimits((topic) => log.topicRecordLimits(topic), (topic, e) => logger.warn("could not read a topic's configuration; the gateway's own limits stand for it", { topic, error: String((e as Error)?.message ?? e) })) : null;
  const publisher = new Publisher(appender, config, metrics, idempotence, topicLimits);
  const loopStalls = new LoopStalls();
  const rateLimits = new RateLimits(rateLimitOptions(config), undefined, loopStalls);
  const refusalDelay = new RefusalDelay(config.CONNECTION_REFUSAL_DELAY_MS);
  const clientAddress = createClientAddress(config.TRUSTED_PROXIES);
  const httpAuth = createHttpAuth(authenticator, audit, { clientAddress, rateLimits, refusalDelay, metrics });
  const events = createEventRoutes({ config, publisher, metrics, auth: httpAuth, rateLimits, refusalDelay, authEnabled: authenticator.enabled, clientAddress });
  const subscriptions = new SubscriptionManager(log, config, metrics, logger, (ms) => rateLimits.chargeHandlingTotal(ms));
  // Read once: the WebSocket cap and the open-files guard below both keep below it.
  const filesLimit = openFilesLimit();
  const connectionLimiter = new ConnectionLimiter({ maxConnections: config.MAX_CONNECTIONS, maxConnectionsPerIp: config.MAX_CONNECTIONS_PER_IP, maxTokenless: config.MAX_TOKENLESS_CONNECTIONS }, filesLimit);
  const ws = createWebSocketHandler({ config, publisher, subscriptions, metrics, logger, logKind: log.kind, auth: { authenticator, audit, config, stalls: loopStalls }, rateLimits, stalls: loopStalls, onClosed: (remote, tokenless) => connectionLimiter.release(remote, tokenless), onAuthenticated: () => connectionLimiter.authenticated() });
  const streams = createStreamRoute({ subscriptions, auth: httpAuth, connections: connectionLimiter, metrics, rateLimits, clientAddress, refusalDelay });
  const health = createHealthRoutes({ auth: authenticator.enabled ? "jwt" : "none", log, metrics, version: SERVER_NAME, connections: () => ws.connections, inflight: () => publisher.eventsInflight, subscriptions: () => subscriptions.stats(), accepting: () => listener.accepting });

  let draining = false;
  const delivery = createDeliveryRoute({ subscriptions, auth: httpAuth, bufferBytes: config.SUBSCRIBER_BUFFER_BYTES, health: health.summary, ready: () => !draining && log.isReady() });
  const origins = new OriginPolicy(config.ALLOWED_ORIGINS, config.ALLOWED_HOSTS, authenticator.enabled);
  // Each route by method, each behind the origin check, and OPTIONS on every one (CORS preflight).
  // A known path asked with another method gets 405 with Allow, in fetch, where Bun sends what no
  // method here matches.
  // Probes and scrapers, also served on INTERNAL_PORT.
  const probes = {
    "/health/live": { GET: health.live },
    "/health/ready": { GET: () => (draining ? error("SHUTTING_DOWN", "draining") : memoryGuard.over ? errorResponse(wireError(overMemory())) : health.ready()) },
    "/health": { GET: health.detail },
    "/metrics": { GET: config.METRICS_ENABLED ? health.metrics : () => error("NOT_FOUND", "metrics are disabled") },
  };
  const { routes, allowed } = httpRoutes(origins, metrics, {
    "/api/v1/events": { POST: httpAuth.guard(events.publishOne) },
    "/api/v1/events/batch": { POST: httpAuth.guard(events.publishBatch) },
    "/api/v1/events/validate": { POST: httpAuth.guard(events.validate) },
    "/api/v1/stream": { GET: httpAuth.guard(streams.stream, { queryToken: true }) },
    ...probes,
    "/api/v1/admin/delivery": { GET: httpAuth.guard(delivery) },
    ...createDashboardRoutes(logger),
  }, () => draining);
  const notRouted = closingAnswers(() => draining, withOrigin(origins, metrics, "http", (req: Request, _srv: Server<ConnectionData>) => {
    const path = urlOf(req).pathname;
    const allow = allowed.get(path);
    // The router matched the path as sent, with every routed method (routes.ts); req.url has its .
    // and .. segments resolved. A routed method here means the path as sent was another.
    if (allow && (ROUTED_METHODS as readonly string[]).includes(req.method)) return error("NOT_FOUND", `no route for ${req.method} ${path} as sent: paths with . or .. segments are not resolved`);
    if (allow) return methodNotAllowed(req, path, allow);
    return error("NOT_FOUND", `no route for ${req.method} ${path}`);
  }));
  const wsPreflight = preflight(WS_ALLOW);
  const wsEntry = withOrigin(origins, metrics, "ws", (req: Request, srv: Server<ConnectionData>) => {
    // A WebSocket handshake is HTTP/1.1 and names its Host (RFC 6455 4.1); only HTTP/1.0 goes without.
    if (req.method === "GET") return req.headers.has("host") ? upgrade(req, srv) : error("BAD_FRAME", "a WebSocket handshake needs HTTP/1.1 and a Host header");
    if (req.method === "OPTIONS") return wsPreflight(req, srv);
    return error("METHOD_NOT_ALLOWED", `${req.method} is not allowed on the WebSocket path; open a WebSocket (GET with Upgrade)`, { allow: WS_ALLOW });
  });
  applyHttpHeaderLimit(config.HTTP_MAX_HEADER_BYTES);
  const listener = new Listener<ConnectionData>({
    hostname: config.HOST,
    port: config.PORT,
    reusePort: false,
    ...(tls ? { tls } : {}),
    maxRequestBodySize: httpBodyDrainLimit(config.MAX_FRAME_BYTES),
    // Bun closes a connection idle this long, and one whose request does not arrive in full (a
    // trickled head or body). A publish read in full is exempt while Kafka answers it (http/events.ts).
    idleTimeout: Math.ceil(config.HTTP_IDLE_TIMEOUT / 1000),
    routes,
    fetch(req, srv) {
      const bad = unreadableUrl(req);
      if (bad) return bad;
      const path = urlOf(req).pathname;
      return path === "/ws" || path === "/api/v1/ws" ? wsEntry(req, srv) : notRouted(req, srv);
    },
    websocket: ws.handler,
    error: unhandled,
  }, capKernelSendBuffer);
  // Probes and scrapers on a port of their own, which the guard below never closes.
  const internal =
    config.INTERNAL_PORT === ""
      ? null
      : Bun.serve({
          hostname: config.HOST,
          port: config.INTERNAL_PORT,
          idleTimeout: Math.ceil(config.HTTP_IDLE_TIMEOUT / 1000),
          routes: probes,
          fetch: (req) => unreadableUrl(req) ?? error("NOT_FOUND", `INTERNAL_PORT serves /health/live, /health/ready, /health and /metrics, not ${urlOf(req).pathname}`),
          error: unhandled,
        });
  const guard = new OpenFilesGuard({
    limit: filesLimit,
    pause: (open) => {
      listener.pause();
      metrics.listenerPaused.inc();
      logger.warn("not accepting connections: the open files are near their limit", { open: open ?? "all", limit: filesLimit, resumeBelow: guard.resumeAt, hint: "connections that never send a request hold a file until HTTP_IDLE_TIMEOUT; raise the open-files limit (ulimit -n) or cap connections per address in front of the gateway" });
    },
    resume: (open) => {
      if (!listener.resume()) return false;
      logger.info("accepting connections again", { open, limit: filesLimit });
      return true;
    },
    report: (open) => metrics.openFiles.set(open ?? filesLimit),
  });
  guard.start();
  const memoryLimitBytes = memoryLimit(config.MEMORY_LIMIT_BYTES);
  const memoryGuard = new MemoryGuard({
    limitBytes: memoryLimitBytes,
    over: (rss) => {
      metrics.memoryOver.set(1);
      logger.warn("over the memory limit: refusing new connections and closing quiet ones until back under 90% of it", { rss, limit: memoryLimitBytes });
    },
    under: (rss) => {
      metrics.memoryOver.set(0);
      logger.info("back under the memory limit: accepting connections again", { rss });
    },
    shedAfterMs: QUIET_MS,
    shed: () => metrics.connectionsShed.inc(ws.shedQuiet(QUIET_MS)),
  });
  memoryGuard.start();

  function capKernelSendBuffer(port: number): void {
    if (config.SOCKET_SEND_BUFFER_BYTES === 0) return;
    const failed = capSendBuffer(port, config.SOCKET_SEND_BUFFER_BYTES);
    if (failed) logger.warn("SOCKET_SEND_BUFFER_BYTES could not be applied: the kernel sizes each connection's send buffer, up to net.ipv4.tcp_wmem's maximum, for a client that stops reading too", { reason: failed });
  }

  function unhandled(e: Error): Response {
    logger.error("unhandled error in a request", { error: String(e), stack: e.stack });
    return error("INTERNAL", "internal error");
  }

  /** The WebSocket upgrade: refused while draining, on a bad token, or past the connection caps. */
  function upgrade(req: Request, srv: Server<ConnectionData>): Response | undefined | Promise<Response | undefined> {
    if (draining) return errorResponse(wireError(shuttingDown()));
    if (memoryGuard.over) {
      metrics.connectionsRefused.inc();
      return errorResponse(wireError(overMemory()));
    }
    const remote = clientAddress(req, srv);
    // The cheapest checks first, and answered late (refusal-delay.ts): a reconnect loop must buy
    // neither token verifications nor a fast retry. Under its close penalty an address is refused
    // here unless the upgrade carries a token, which may be another principal's (penaltyFor).
    const penalised = rateLimits.penaltyFor(remote);
    const tooFast = penalised && !(authenticator.enabled && offersToken(req)) ? penalised : rateLimits.admitConnection(remote);
    if (tooFast) return refuseLate(tooFast);
    // The WebSocket path takes no query parameter, as the HTTP routes refuse one they do not take:
    // ignored, a token put in ?access_token (as for SSE) was refused only at the hello, unexplained.
    const unknown = unknownParam(urlOf(req).searchParams, [], " (a WebSocket's token goes in the Authorization header, the subprotocol or the hello)");
    if (unknown) return errorResponse(wireError(unknown));
    return admit(req, srv, remote, penalised !== undefined);
  }

  function refuseLate(refusal: Refusal): Response | Promise<Response> {
    metrics.rateLimited.inc({ transport: "ws", scope: refusal.scope, unit: refusal.unit });
    return lateErrorResponse(refusalDelay, wireError(refusal.error));
  }

  async function admit(req: Request, srv: Server<ConnectionData>, remote: string, penalised: boolean): Promise<Response | undefined> {
    const session = crypto.randomUUID();
    const auth = await authenticateUpgrade(req, authenticator, audit, remote, session);
    if (auth instanceof Response) return auth;
    const stillPenalised = penalised ? rateLimits.penaltyFor(remote, auth.identity?.principal) : undefined;
    if (stillPenalised) return refuseLate(stillPenalised);
    const tokenless = authenticator.enabled && !auth.identity;
    const refused = connectionLimiter.acquire(remote, tokenless);
    if (refused) {
      metrics.connectionsRefused.inc();
      return errorResponse(wireError(refused));
    }
    const data: ConnectionData = { session, remote, helloed: false, inflight: 0, closed: false, identity: auth.identity, tokenless };
    const ok = srv.upgrade(req, { data, headers: auth.headers });
    if (ok) return undefined;
    connectionLimiter.release(remote, tokenless);
    return error("INVALID_FRAME", "expected a WebSocket upgrade request");
  }

  return {
    listener,
    port: listener.port,
    ...(internal ? { internalPort: internal.port! } : {}),
    tls: tls !== undefined,
    log,
    maxConnections: connectionLimiter.max,
    /**
     * Drains in an order that loses no reply: refuse new work; let what is in flight be acknowledged
     * until the deadline; have the log settle the rest (nacked SHUTTING_DOWN, or WORKER_LOST where a
     * worker may have written it); only then close each socket, through the closing handshake once its
     * replies are handed over, so a client still sending gets a close frame rather than a reset.
     */
    async close() {
      if (draining) return;
      draining = true;
      guard.stop();
      memoryGuard.stop();
      loopStalls.stop();
      publisher.drain();
      events.drain();
      subscriptions.drain();
      fairShare?.flush();
      const deadline = Date.now() + config.SHUTDOWN_TIMEOUT_MS;
      while (publisher.eventsInflight > 0 && Date.now() < deadline) await Bun.sleep(10);
      streams.closeAll();
      subscriptions.close();
      audit.flush();
      idempotence?.close();
      await log.close(Math.max(0, deadline - Date.now()));
      await Bun.sleep(0); // the settled appends' replies are queued on their sockets in this turn
      // A client that is not reading right now (busy, or paused a few seconds) still gets its replies
      // and the close frame if it reads again within what is left of SHUTDOWN_TIMEOUT_MS: given only
      // CLOSE_GRACE_MS, one that kept sending was reset, and the replies on their way lost with the
      // connection (outside chaos tester: 5 of 119 answered, 4,700 of its events in Kafka unanswered).
      const closeBy = Math.max(deadline, Date.now() + CLOSE_GRACE_MS);
      await ws.closeAll(closeBy - Date.now());
      const grace = Date.now() + CLOSE_GRACE_MS;
      while (listener.pendingWebSockets > 0 && Date.now() < grace) await Bun.sleep(10);
      // Bun sends the close frame and half-closes at once, without waiting for the client's reply. A
      // client still busy sending has not read that frame yet; were the process to exit now, its
      // unread input would make the kernel reset the connection, and the reset makes the client drop
      // the close frame and the last replies unread (1006). A moment lets it read them.
      await Bun.sleep(Math.min(CLOSE_LINGER_MS, Math.max(0, grace - Date.now())));
      // New connections are refused from here, before anything is sent on them; the requests already
      // taken are answered (each closing its connection) before the process ends with them.
      listener.pause();
      while (listener.pendingRequests > 0 && Date.now() < grace) await Bun.sleep(10);
      listener.stop(true);
      internal?.stop(true);
    },
  };
}
