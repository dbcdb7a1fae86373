import type { ServerWebSocket, WebSocketHandler } from "bun";
import type { Identity } from "../auth/authenticator";
import { clientDeadline } from "../auth/deadline";
import { type AuthContext, ConnectionAuth } from "../auth/session";
import type { Config } from "../config/schema";
import type { ConnectionRate, RateLimits, Refusal } from "../limits/rate-limits";
import { UnreadBytes, type UnreadShare } from "../limits/unread-bytes";
import { type PublishOutcome, type Publisher, wireError } from "../ingest/publisher";
import type { Logger } from "../observability/logger";
import type { Metrics } from "../observability/metrics";
import { ackFrameMsgpack } from "../protocol/ack-frame";
import { type CodecName, decodeFrame, decodeLimits, encodeFrame } from "../protocol/codec";
import { scanCid, scanFrameType } from "../protocol/cid-scan";
import { parsePublishFrame } from "../protocol/publish-frame";
import { CloseCodes } from "../protocol/codes";
import { GatewayError, type WireError, toWireError } from "../protocol/errors";
import {
  FrameType,
  HelloSchema,
  PingSchema,
  PROTOCOL_VERSION,
  type SubscribeFrame,
  SubscribeSchema,
  UnsubscribeSchema,
  describeIssues,
  frameErrorCode,
} from "../protocol/frames";
import { type SubscriberConnection, type SubscriptionManager, readsHistory } from "../subscribe/manager";
import { peekFrameType } from "../protocol/frame-peek";
import { frameBytes } from "../protocol/frame-bytes";
import { createAuthFrames } from "./auth-frames";
import { type Inbox, Ingress, inbox } from "./ingress";
import type { LoopStalls } from "../limits/loop-stalls";
import { Outbound } from "./outbound";
import { limitsFor, outcomeFrame, RESEND_WINDOW_MS } from "./replies";

export interface ConnectionData {
  session: string;
  remote: string;
  helloed: boolean;
  /** Authentication on and no token yet: its slot counts under MAX_TOKENLESS_CONNECTIONS until the welcome. */
  tokenless?: boolean;
  /** performance.now() at the welcome: re-sends are marked only for RESEND_WINDOW_MS after it. */
  helloAt?: number;
  /** Events of this connection handed to the log and not yet acked or nacked. */
  inflight: number;
  /**
   * Publish requests not answered yet, whatever they hold: one whose events are all invalid has
   * none in flight, and a close decided before its reply went out closed without it.
   */
  publishing?: number;
  closed: boolean;
  /** Made at open: the socket's one ordered outbound path. */
  outbound?: Outbound;
  /** Made at open: the socket as its subscriptions see it, with those subscriptions. */
  subscriber?: SubscriberConnection;
  /** Who the upgrade request's token said the client is (Authorization or subprotocol), if it had one. */
  identity?: Identity;
  /** Made at open: the connection's authentication and its expiry (src/auth/session.ts). */
  auth?: ConnectionAuth;
  /** Frames that arrived while a hello's token was being verified, handled in order after it. */
  held?: Array<string | Buffer<ArrayBuffer>> | null;
  /** Bytes of `held`; past MAX_HELD_BYTES (or MAX_HELD_FRAMES frames) the socket is not read until the token is verified. */
  heldBytes?: number;
  /** Its hello was refused: frames still arriving before the close get that refusal (auth-frames.ts refuseHello). */
  refusedHello?: GatewayError;
  /** Codec of the last frame, for frames the gateway sends unasked (token expiry). */
  codec?: CodecName;
  /** Made at open: frames that arrived and wait their turn (./ingress.ts). */
  inbox?: Inbox;
  /** Made at open: the connection's publish rates (src/limits/rate-limits.ts). */
  rate?: ConnectionRate;
  /** What of the gateway's unread bytes this connection holds (src/limits/unread-bytes.ts). */
  unread?: UnreadShare;
  /** Cancels the end of the connection if no hello completes within HELLO_TIMEOUT; called by welcome. */
  cancelHelloTimer?: () => void;
  /**
   * Pings carrying a number, sent behind what the connection was handed (askRead), and the highest
   * the client answered; `at` is how many frames the outbound had written when the last was sent.
   */
  readProof?: { asked: number; answered: number; at: number };
  /**
   * The connection is to be closed with `code` once every publish it has in flight is answered (see
   * closeAfterReplies); meanwhile its socket is not read, and frames already read get `refusal`.
   */
  closing?: { code: number; reason: string; refusal: GatewayError; deadline: Timer };
  /** While the gateway drains: called by the pong that says the client has read every reply (closeAll). */
  drainPong?: () => void;
  /** When a whole frame last arrived (or the connection opened), ms: see shedQuiet. */
  lastFrameAt?: number;
  /** Subscribes, unsubscribes and refreshes handed on and not yet answered: a close waits for them too. */
  requests?: Set<PendingRequest>;
}

/** A request whose reply comes later from elsewhere (the subscription manager, a token check). */
interface PendingRequest {
  cid: number | undefined;
  codec: CodecName;
}

/** The WebSocket side of the gateway: the handler for Bun.serve, and what a graceful stop needs. */
export interface WebSocketEdge {
  handler: WebSocketHandler<ConnectionData>;
  readonly connections: number;
  /**
   * Ends every connection with the closing handshake (GOING_AWAY) once its queued replies are
   * handed to the socket, waiting at most `timeoutMs` for slow readers.
   */
  closeAll(timeoutMs: number): Promise<void>;
  /**
   * Closes (1013, once their publishes in flight are answered) the connections of the client address
   * holding the most that have received no whole frame for `quietMs`; how many. The gateway over its
   * memory limit (src/limits/memory-guard.ts): a connection in the middle of a large frame is quiet,
   * and Bun holds what it has of that frame where the gateway cannot see it.
   */
  shedQuiet(quietMs: number): number;
}

export const SERVER_NAME = "kafka-ws-gateway/0.1.0";

/** Frame types with a rate of their own (events, subscribes, refreshes); every other frame costs one event. */
const chargedOtherwise = (t: number | undefined) => t === FrameType.PUBLISH || t === FrameType.PUBLISH_BATCH || t === FrameType.SUBSCRIBE || t === FrameType.REFRESH;

// The ping shutdown sends behind everything owed to a client: its answer says all of it was read.
const DRAIN_PING = Buffer.from("drain");

/**
 * The one WebSocket handler: decodes frames (binary = msgpack, text = JSON), runs the handshake,
 * enforces the per-connection window, and turns publish outcomes into ack frames in the codec the
 * request came in. Nothing a client sends can throw out of here.
 */
export function createWebSocketHandler(deps: {
  config: Config;
  publisher: Publisher;
  subscriptions: SubscriptionManager;
  metrics: Metrics;
  logger: Logger;
  logKind: string;
  auth: AuthContext;
  rateLimits: RateLimits;
  /** A connection ended: its slot in the connection limits is free again. */
  onClosed?: (remote: string, tokenless: boolean) => void;
  /** A connection that was tokenless is welcomed with a valid token. */
  onAuthenticated?: () => void;
  /** The gateway's own stalls: a timeout that ran out while it stood still was not the client's. */
  stalls?: LoopStalls;
}): WebSocketEdge {
  const { config, publisher, subscriptions, metrics, logger, rateLimits } = deps;
  const limits = decodeLimits(config);
  const sockets = new Set<ServerWebSocket<ConnectionData>>();
  const welcomeLimits = limitsFor(config);
  const unread = new UnreadBytes({ perAddress: config.UNREAD_BYTES_PER_ADDRESS, total: config.UNREAD_BYTES_TOTAL });
  const windowSpent = new GatewayError("WINDOW_EXCEEDED", `the window of ${config.PUBLISH_WINDOW} unacknowledged events is spent. Wait for acks before sending more`);

  /** Every reply goes through the socket's one ordered outbound path (./outbound.ts). */
  function send(ws: ServerWebSocket<ConnectionData>, frame: object, codec: CodecName): void {
    if (!ws.data.closed) ws.data.outbound!.reply(encodeFrame(frame, codec));
  }

  /** `counted`: false for a refusal that is not for what the frame holds (see refuseHeld). */
  function sendError(ws: ServerWebSocket<ConnectionData>, codec: CodecName, e: unknown, cid?: number, counted = true): void {
    const err = wireError(e);
    metrics.framesRejected.inc({ transport: "ws", code: err.code });
    if (err.code === "INTERNAL") logger.error("internal error handling a frame", { session: ws.data.session, error: String(e) });
    send(ws, cid === undefined ? { t: FrameType.ERROR, ...err } : { t: FrameType.NACK, cid, ...err }, codec);
    if (counted) noteRefused(ws, err);
  }

  /**
   * A client whose frames keep being refused for good is broken or hostile: each refusal costs a
   * decode and a reply, and answered forever they bought a core (S7's malformed sender). Past its
   * allowance it is closed, after the reply.
   */
  function noteRefused(ws: ServerWebSocket<ConnectionData>, err: WireError): void {
    // Only what the request itself got wrong (1xxx): Kafka refusing a record (KAFKA_REJECTED, a topic
    // deleted or denied) is no fault of the client's, and must not close good producers.
    if (err.num >= 2000) return;
    // Nor a request refused for the token's age (expired, no refresh yet): a busy producer whose
    // refresh is late is closed 4401 at the grace's end, not 4400 with its address penalised.
    if (err.code === "UNAUTHENTICATED") return;
    if (ws.data.rate!.refusedInvalid(performance.now()) && !ws.data.closed && !ws.data.closing) {
      metrics.invalidFramesCloses.inc();
      logger.warn("connection closed: it kept sending frames refused as invalid", { session: ws.data.session, remote: ws.data.remote, principal: ws.data.auth!.principal, lastCode: err.code });
      closeForAbuse(ws, CloseCodes.INVALID_REQUESTS, "too many invalid requests: frames kept being refused for request errors (1xxx codes); fix the client");
    }
  }

  /** Closes a connection that ignored its refusals, and refuses its address new ones for a while. */
  function closeForAbuse(ws: ServerWebSocket<ConnectionData>, code: number, reason: string): void {
    rateLimits.penalise(ws.data.remote, ws.data.auth?.identity?.principal ?? "");
    const penalty = config.RATE_LIMIT_CLOSE_PENALTY_SECONDS * 1000;
    const refusal = new GatewayError("RATE_LIMITED", `not handled: the connection is closing (${code}) for ${reason.split(":")[0]}; reconnect${penalty ? ` after ${penalty} ms` : ""}`, { retryAfterMs: penalty, scope: "address" });
    closeAfterReplies(ws, code, reason, refusal);
  }

  /**
   * Closes the connection with `code` once every publish it has in flight is answered. Those events
   * are on their way to Kafka and may be written whatever happens to the socket: closed at once,
   * their client was never told, and re-sent them elsewhere (written twice). Meanwhile the socket is
   * not read, and a frame already read gets `refusal` unread. Bounded by the publish deadline, which
   * answers every publish.
   */
  function closeAfterReplies(ws: ServerWebSocket<ConnectionData>, code: number, reason: string, refusal: GatewayError): void {
    if (ws.data.closed || ws.data.closing) return;
    ingress.holdUntilClosed(ws);
    const deadline = setTimeout(() => finishClose(ws), config.KAFKA_MESSAGE_TIMEOUT_MS + CLOSE_AFTER_REPLIES_SLACK_MS);
    ws.data.closing = { code, reason, refusal, deadline };
    closeIfAnswered(ws);
  }

  /** A connection waiting to close is closed once its publishes and its other requests are all answered. */
  function closeIfAnswered(ws: ServerWebSocket<ConnectionData>): void {
    if (ws.data.closing && ws.data.inflight === 0 && !ws.data.publishing && !ws.data.requests?.size) finishClose(ws);
  }

  /**
   * Tracks a request answered later (`work` settles once its reply is sent, or fails with the error
   * to send): a connection closed meanwhile waits for it, as for its publishes. Closed without
   * waiting, subscribes still starting (a replay's questions to Kafka) and an unsubscribe or refresh
   * behind them got no reply at all (outside tester).
   */
  function answerLater(ws: ServerWebSocket<ConnectionData>, codec: CodecName, cid: number | undefined, work: Promise<unknown>): void {
    const request: PendingRequest = { cid, codec };
    const requests = (ws.data.requests ??= new Set());
    requests.add(request);
    void work
      .then(undefined, (e: unknown) => {
        // Already refused by a close that could wait no longer (finishClose): one reply only.
        if (requests.has(request)) sendError(ws, codec, e, cid);
      })
      .finally(() => {
        requests.delete(request);
        closeIfAnswered(ws);
      });
  }

  /**
   * The socket is read again first: held, it would not read the client's closing handshake, and the
   * client would see a reset (1006) instead of the code that tells it why.
   */
  function finishClose(ws: ServerWebSocket<ConnectionData>): void {
    const closing = ws.data.closing;
    if (!closing || ws.data.closed) return;
    clearTimeout(closing.deadline);
    // At the deadline, what is still unanswered gets the close's refusal: its own reply would come too late.
    const requests = ws.data.requests;
    if (requests) {
      for (const r of requests) if (r.cid !== undefined) sendError(ws, r.codec, closing.refusal, r.cid, false);
      requests.clear();
    }
    // Frames read but still waiting their turn: the close would drop them unanswered.
    for (const raw of ingress.takeQueued(ws)) refuseClosing(ws, raw);
    ingress.unhold(ws);
    ws.data.outbound!.flush(true);
    ws.close(closing.code, closing.reason);
  }

  /** A frame read while its connection waits to close: answered, not handled (nor decoded). */
  function refuseClosing(ws: ServerWebSocket<ConnectionData>, raw: string | Buffer): void {
    const cid = scanCid(raw);
    if (cid !== undefined) sendError(ws, typeof raw === "string" ? "json" : "msgpack", ws.data.closing!.refusal, cid, false);
  }

  function sendOutcome(ws: ServerWebSocket<ConnectionData>, codec: CodecName, cid: number, batch: boolean, o: PublishOutcome): void {
    // The ack of one event, the reply to nearly every frame at one event per frame, has its own writer.
    if (!batch && codec === "msgpack" && !o.errors?.[0] && typeof o.ids[0] === "string") {
      if (!ws.data.closed) ws.data.outbound!.reply(ackFrameMsgpack(cid, o.ids[0], o.topic, o.partitions[0]!, o.offsets[0]!));
      return;
    }
    send(ws, outcomeFrame(cid, batch, o), codec);
    // A single publish refused is a frame refused; a batch is answered whole, whatever its events got.
    if (!batch && o.errors?.[0]) noteRefused(ws, o.errors[0]);
  }

  /** Whom the principal rates charge: the token's subject, or the client address with authentication off. */
  function principalOf(ws: ServerWebSocket<ConnectionData>): string {
    // Named only when a principal rate is set: it is a string built per frame.
    if (!rateLimits.byPrincipal) return "";
    return deps.auth.authenticator.enabled ? `sub:${ws.data.auth!.principal}` : `ip:${ws.data.remote}`;
  }

  /**
   * Refuses a frame over a rate, and stops reading the connection until the rate allows again (see
   * Ingress.hold); a connection that keeps sending into refusals is closed.
   */
  function refuseRate(ws: ServerWebSocket<ConnectionData>, codec: CodecName, refusal: Refusal, cid: number | undefined): void {
    metrics.rateLimited.inc({ transport: "ws", scope: refusal.scope, unit: refusal.unit });
    sendError(ws, codec, refusal.error, cid);
    if (ws.data.rate!.refused(performance.now()) && !ws.data.closed && !ws.data.closing) {
      metrics.rateLimitCloses.inc();
      logger.warn("connection closed: it kept sending into RATE_LIMITED refusals", { session: ws.data.session, remote: ws.data.remote, principal: ws.data.auth!.principal });
      return closeForAbuse(ws, CloseCodes.RATE_LIMITED, "rate limited: too many requests past the limit; reconnect later and honour retryAfterMs");
    }
    if (ingress.hold(ws, Math.min(RATE_HOLD_MAX_MS, Math.max(RATE_HOLD_MIN_MS, refusal.error.retryAfterMs ?? 0)))) metrics.rateLimitReadPauses.inc();
  }

  /** Past its address's or the instance's bound of unread bytes, the connection growing it is closed. */
  function holdsUnread(ws: ServerWebSocket<ConnectionData>, bytes: number): void {
    const over = ws.data.unread!.holds(bytes);
    if (over === null || ws.data.closed) return;
    // Counted no more: what it holds is dropped with it, and it is closed once.
    ws.data.unread!.release();
    metrics.unreadCloses.inc({ bound: over });
    closeNotReading(
      ws,
      over === "address"
        ? `the connections of this client address left more than UNREAD_BYTES_PER_ADDRESS (${config.UNREAD_BYTES_PER_ADDRESS} bytes) unread: this one is not reading`
        : `clients left more than UNREAD_BYTES_TOTAL (${config.UNREAD_BYTES_TOTAL} bytes) unread: this one is not reading`,
    );
  }

  /** The client stopped reading its replies: they can no longer be trusted to arrive, so say so by closing rather than carrying on with a silent gap. */
  function closeNotReading(ws: ServerWebSocket<ConnectionData>, reason: string): void {
    metrics.acksDropped.inc();
    ws.close(CloseCodes.SLOW_CONSUMER, reason);
  }

  /** The frame's correlation id if it is a valid one, so that even a malformed request gets a nack. */
  function correlationId(frame: { cid?: unknown }): number | undefined {
    const cid = frame.cid;
    return typeof cid === "number" && Number.isSafeInteger(cid) && cid >= 0 ? cid : undefined;
  }

  /** `bytes`: the frame's size, for the handling charge of work done after an await (see learning). */
  async function onPublish(ws: ServerWebSocket<ConnectionData>, codec: CodecName, frame: { t: number; cid?: unknown }, bytes: number): Promise<void> {
    const batch = frame.t === FrameType.PUBLISH_BATCH;
    const parsed = parsePublishFrame(frame);
    if (!parsed.ok) return sendError(ws, codec, new GatewayError(parsed.code, parsed.message), correlationId(frame));
    const req = parsed.frame;
    if (!ws.data.helloed) return sendError(ws, codec, new GatewayError("HANDSHAKE_REQUIRED", `send {t:${FrameType.HELLO}, v:${PROTOCOL_VERSION}} first`), req.cid);
    const events = "events" in req ? req.events : [req.event];
    const started = performance.now();
    let reserved = 0;
    ws.data.publishing = (ws.data.publishing ?? 0) + 1;
    try {
      const topic = publisher.topicFor(req.topic);
      const denied = ws.data.auth!.authorize("publish", topic, events);
      if (denied) throw denied;
      // A request bigger than the whole window could never be taken: retrying it is pointless.
      if (events.length > config.PUBLISH_WINDOW) {
        throw new GatewayError("BATCH_TOO_LARGE", `${events.length} events in one request; the window is ${config.PUBLISH_WINDOW}, so no request can hold more`);
      }
      if (ws.data.inflight + events.length > config.PUBLISH_WINDOW) {
        throw new GatewayError("WINDOW_EXCEEDED", `${ws.data.inflight} events unacknowledged; the window is ${config.PUBLISH_WINDOW}. Wait for acks before sending more`);
      }
      const limited = rateLimits.admitEvents(ws.data.rate!, principalOf(ws), events.length, RATE_HOLD_MIN_MS);
      if (limited) return refuseRate(ws, codec, limited, req.cid);
      // The first publish naming a topic waits for its own bounds (Kafka's DescribeConfigs), its
      // events counted in flight meanwhile: the window holds, and a close waits for its reply.
      const learning = publisher.learning(topic);
      if (learning) {
        reserved = events.length;
        ws.data.inflight += reserved;
        await learning;
      }
      // A client re-sends what was in flight when its last connection dropped right after this one's
      // hello; past RESEND_WINDOW_MS the mark is ignored, so it cannot make every publish wait.
      const resend = req.resend === true && performance.now() - ws.data.helloAt! < RESEND_WINDOW_MS;
      const preparing = learning ? performance.now() : 0;
      const prepared = publisher.prepare(events, topic, codec, "ws", deps.auth.authenticator.enabled ? { principal: ws.data.auth!.principal, author: ws.data.auth!.principal, resend } : { principal: `ip:${ws.data.remote}`, resend });
      // After the wait, prepare runs outside the frame's handling (ingress.ts), which charged only
      // the decode: charged here, or a client's publishes to new topics would be checked and encoded free.
      if (learning) ws.data.rate!.handling?.spend(performance.now() - preparing, bytes);
      ws.data.inflight += prepared.records.length - reserved;
      reserved = prepared.records.length;
      const outcome = await publisher.publish(prepared, "ws", ws.data.session);
      metrics.publishLatency.ws.observe((performance.now() - started) / 1000);
      sendOutcome(ws, codec, req.cid, batch, outcome);
    } catch (e) {
      sendError(ws, codec, e, req.cid);
    } finally {
      ws.data.inflight -= reserved;
      ws.data.publishing--;
      closeIfAnswered(ws);
    }
  }

  function onSubscribe(ws: ServerWebSocket<ConnectionData>, codec: CodecName, frame: { t: number; cid?: unknown }): void {
    const subscribe = frame.t === FrameType.SUBSCRIBE;
    const parsed = subscribe ? SubscribeSchema.safeParse(frame) : UnsubscribeSchema.safeParse(frame);
    const cid = correlationId(frame);
    if (!parsed.success) return sendError(ws, codec, new GatewayError(frameErrorCode(parsed.error), describeIssues(parsed.error)), cid);
    if (!ws.data.helloed) return sendError(ws, codec, new GatewayError("HANDSHAKE_REQUIRED", `send {t:${FrameType.HELLO}, v:${PROTOCOL_VERSION}} first`), cid);
    const conn = ws.data.subscriber!;
    if (subscribe) {
      const limited = rateLimits.admitSubscribe(ws.data.rate!, ws.data.remote, RATE_HOLD_MIN_MS);
      if (limited) return refuseRate(ws, codec, limited, cid);
      const f = parsed.data as SubscribeFrame;
      const denied = ws.data.auth!.authorizeAll("subscribe", f.topics ?? [f.topic!]);
      if (denied) return sendError(ws, codec, denied, cid);
      const replaying = readsHistory(f) ? rateLimits.admitReplay(ws.data.remote, RATE_HOLD_MIN_MS) : undefined;
      if (replaying) return refuseRate(ws, codec, replaying, cid);
    }
    try {
      const work = "sub" in parsed.data && !subscribe ? subscriptions.unsubscribe(conn, codec, parsed.data.cid, parsed.data.sub!) : subscriptions.subscribe(conn, codec, parsed.data as SubscribeFrame);
      if (work) answerLater(ws, codec, cid, work);
    } catch (e) {
      sendError(ws, codec, e, cid);
    }
  }

  /**
   * hello answers welcome, every time: a second hello (a client that re-handshakes after a
   * reconnect-less reset) gets the same session and limits again. A cid, if sent, is echoed.
   */
  function onHello(ws: ServerWebSocket<ConnectionData>, codec: CodecName, f: { cid?: unknown }): void {
    const cid = correlationId(f);
    const hello = HelloSchema.safeParse(f);
    if (!hello.success) return sendError(ws, codec, new GatewayError("INVALID_FRAME", describeIssues(hello.error)), cid);
    if (hello.data.v !== PROTOCOL_VERSION) {
      const err = toWireError("UNSUPPORTED_VERSION", `protocol version ${hello.data.v} is not supported; this gateway speaks ${PROTOCOL_VERSION}`);
      // A nack when the hello named itself with a cid, as every request with one is answered.
      send(ws, cid === undefined ? { t: FrameType.ERROR, ...err, supported: [PROTOCOL_VERSION] } : { t: FrameType.NACK, cid, ...err, supported: [PROTOCOL_VERSION] }, codec);
      metrics.framesRejected.inc({ transport: "ws", code: "UNSUPPORTED_VERSION" });
      // A later hello may follow publishes still in flight: their replies come before the close.
      return closeAfterReplies(ws, CloseCodes.UNSUPPORTED_VERSION, "unsupported protocol version", new GatewayError("UNSUPPORTED_VERSION", `not handled: the connection is closing (${CloseCodes.UNSUPPORTED_VERSION}) for an unsupported protocol version`));
    }
    // A token on a connection that has one is a refresh (auth-frames.ts), charged to the same bucket:
    // unlimited, 2,000 re-hellos were all verified and audited, where refresh frames were held to 1/s.
    if (hello.data.token !== undefined && deps.auth.authenticator.enabled && ws.data.auth!.identity) {
      const limited = rateLimits.admitRefresh(ws.data.rate!, RATE_HOLD_MIN_MS);
      if (limited) return refuseRate(ws, codec, limited, cid);
    }
    if (authFrames.helloToken(ws, codec, hello.data.token, cid)) return; // refused, or verifying (welcome follows)
    welcome(ws, codec, cid);
  }

  function welcome(ws: ServerWebSocket<ConnectionData>, codec: CodecName, cid: number | undefined): void {
    if (ws.data.closed) return;
    ws.data.helloed = true;
    ws.data.helloAt ??= performance.now();
    ws.data.cancelHelloTimer?.();
    ws.data.cancelHelloTimer = undefined; // an idle connection keeps nothing of its handshake
    if (ws.data.tokenless && ws.data.auth!.identity) {
      ws.data.tokenless = false;
      deps.onAuthenticated?.();
    }
    const welcome: Record<string, unknown> = {
      t: FrameType.WELCOME,
      v: PROTOCOL_VERSION,
      session: ws.data.session,
      server: SERVER_NAME,
      log: deps.logKind,
      limits: welcomeLimits,
    };
    if (cid !== undefined) welcome.cid = cid;
    authFrames.describe(ws, welcome);
    send(ws, welcome, codec);
  }

  /**
   * Asks the client to show it has read everything written to it so far: a ping carrying a number,
   * which it answers, in order, once it has read what came before. Nothing written since the last
   * ask: that one covers it.
   */
  function askRead(ws: ServerWebSocket<ConnectionData>): number {
    const proof = (ws.data.readProof ??= { asked: 0, answered: 0, at: -1 });
    const written = ws.data.outbound!.written;
    if (proof.asked > 0 && proof.at === written) return proof.asked;
    proof.asked++;
    proof.at = written;
    const payload = Buffer.allocUnsafe(4);
    payload.writeUInt32BE(proof.asked, 0);
    ws.ping(payload);
    return proof.asked;
  }

  /**
   * A socket that never completes hello can do nothing (every request is refused HANDSHAKE_REQUIRED)
   * but holds a connection slot, under MAX_CONNECTIONS_PER_IP too: it is closed. Without a valid token
   * (authentication on) the close says 4401, as a refused token does; otherwise 4002.
   */
  function helloTimedOut(ws: ServerWebSocket<ConnectionData>): void {
    if (ws.data.closed || ws.data.helloed) return;
    // A hello came in time and its token is being checked (a key set fetched): its outcome welcomes
    // or refuses it, and closes. Closed now, neither it nor the frames held behind it were answered.
    if (ws.data.held) return;
    metrics.helloTimeouts.inc();
    ws.data.outbound!.flush(true); // any nack HANDSHAKE_REQUIRED goes out before the close frame
    if (!ws.data.auth!.identity) ws.close(CloseCodes.REAUTHENTICATE, "no valid token in time; reconnect with one");
    else ws.close(CloseCodes.HELLO_TIMEOUT, `no hello within HELLO_TIMEOUT (${config.HELLO_TIMEOUT} ms)`);
  }

  const authFrames = createAuthFrames({
    auth: deps.auth,
    subscriptions,
    send,
    sendError,
    welcome,
    // Their turn came when they were read; metered now, as they run (Ingress.handleHeld).
    replay: (ws, raw) => ingress.handleHeld(ws, raw),
    // Not counted toward INVALID_FRAMES_CLOSE_AFTER: each is refused for the hello's token, not for
    // what it holds, and counted, 3,000 frames behind a refused hello were closed 4400 after 1,000.
    refuseHeld: (ws, raw, err) => {
      const cid = scanCid(raw);
      if (cid !== undefined) sendError(ws, typeof raw === "string" ? "json" : "msgpack", err, cid, false);
    },
    closeAfterReplies: (ws, code, reason, refusal) => closeAfterReplies(ws, code, reason, refusal),
    readAgain: (ws) => {
      const box = ws.data.inbox!;
      // Nor while it rests for its handling budget: read meanwhile, it would queue without bound.
      if (!ws.data.closed && !box.paused && !box.held && !box.resting) ws.resume();
    },
  });

  const ingress = new Ingress<ServerWebSocket<ConnectionData>>(
    { ...INGRESS, ...(deps.stalls ? { stalls: deps.stalls } : {}) },
    (ws) => ws.data.inbox!,
    (ws, raw) => handleFrame(ws, raw),
    () => metrics.ingressPauses.inc(),
    () => metrics.handlingRests.inc(),
  );

  function handleFrame(ws: ServerWebSocket<ConnectionData>, raw: string | Buffer): void {
    const codec: CodecName = typeof raw === "string" ? "json" : "msgpack";
    if (ws.data.closing) return refuseClosing(ws, raw);
    if (ws.data.refusedHello) return authFrames.refuseAfterHello(ws, raw);
    const bytes = frameBytes(raw);
    if (ws.data.held) {
      ws.data.held.push(typeof raw === "string" ? raw : (Buffer.from(raw) as Buffer<ArrayBuffer>));
      ws.data.heldBytes = (ws.data.heldBytes ?? 0) + bytes;
      // Past the bound the socket is not read until the token is verified (a key set being fetched can
      // take a while): the client meets TCP backpressure. Frames already read wait here in order too;
      // run at once instead, they were refused before the welcome, out of order, and a second hello
      // among them threw away every frame held before it, unanswered.
      if (ws.data.held.length >= MAX_HELD_FRAMES || ws.data.heldBytes >= MAX_HELD_BYTES) ws.pause();
      return;
    }
    ws.data.codec = codec;
    const limited = rateLimits.admitBytes(ws.data.rate!, principalOf(ws), bytes, RATE_HOLD_MIN_MS);
    if (limited) return refuseRate(ws, codec, limited, scanCid(raw));
    // A publish that would be refused whatever it holds is refused before it costs a decode (see
    // frame-peek.ts): the window is spent, or the events rate is in debt (a bucket in debt passes no
    // request, of any size). A pipelining client would otherwise buy all the CPU it liked with frames
    // that are refused anyway.
    const t = peekFrameType(raw);
    const chargedOne = !chargedOtherwise(t);
    if (t === FrameType.PUBLISH || t === FrameType.PUBLISH_BATCH) {
      const spent = ws.data.inflight >= config.PUBLISH_WINDOW;
      const overRate = spent ? undefined : rateLimits.admitEvents(ws.data.rate!, principalOf(ws), 0, RATE_HOLD_MIN_MS);
      // Refused unread only when its last `t`, the one the decoder keeps, says publish too: a frame
      // naming its type twice ({"t":10,"t":15} is a ping) goes on to be decoded as any other.
      if ((spent || overRate) && scanFrameType(raw) === t) return overRate ? refuseRate(ws, codec, overRate, scanCid(raw)) : sendError(ws, codec, windowSpent, scanCid(raw));
    } else if (chargedOne) {
      // Every other frame (ping, hello, unsubscribe, one of no known type) counts as one event: each
      // costs a reply and more of the gateway's time than its handling measures (Bun's callback, the
      // reply's write), and nothing else bounded them. One connection pipelining pings got 66,000
      // pongs a second and put another client's p99 from 6 to 40 ms; eight put it at 854 ms.
      const overRate = rateLimits.admitEvents(ws.data.rate!, principalOf(ws), 1, RATE_HOLD_MIN_MS);
      if (overRate) return refuseRate(ws, codec, overRate, scanCid(raw));
    }
    let frame: unknown;
    try {
      frame = decodeFrame(raw, codec, limits);
    } catch (e) {
      // Still a request if its cid can be read: it gets its nack, so the client can settle it.
      return sendError(ws, codec, e, scanCid(raw));
    }
    if (typeof frame !== "object" || frame === null || Array.isArray(frame) || frame instanceof Uint8Array || frame instanceof Date) {
      return sendError(ws, codec, new GatewayError("INVALID_FRAME", "a frame is a map with a numeric frame type t"));
    }
    const f = frame as { t?: unknown; cid?: unknown };
    if (typeof f.t !== "number") return sendError(ws, codec, new GatewayError("INVALID_FRAME", "a frame is a map with a numeric frame type t"), correlationId(f));
    // The peek read the first `t`, the decoder kept the last: {"t":12,"t":15} is a ping, and is
    // charged as one (uncharged, a flood of them was all ponged).
    if (!chargedOne && !chargedOtherwise(f.t)) {
      const overRate = rateLimits.admitEvents(ws.data.rate!, principalOf(ws), 1, RATE_HOLD_MIN_MS);
      if (overRate) return refuseRate(ws, codec, overRate, correlationId(f));
    }
    switch (f.t) {
      case FrameType.HELLO:
        return onHello(ws, codec, f);
      case FrameType.PUBLISH:
      case FrameType.PUBLISH_BATCH:
        void onPublish(ws, codec, f as { t: number; cid?: unknown }, bytes);
        return;
      case FrameType.SUBSCRIBE:
      case FrameType.UNSUBSCRIBE:
        return onSubscribe(ws, codec, f as { t: number; cid?: unknown });
      case FrameType.REFRESH: {
        const limited = ws.data.helloed ? rateLimits.admitRefresh(ws.data.rate!, RATE_HOLD_MIN_MS) : undefined;
        if (limited) return refuseRate(ws, codec, limited, correlationId(f));
        return answerLater(ws, codec, correlationId(f), authFrames.onRefresh(ws, codec, f, correlationId(f)));
      }
      case FrameType.PING: {
        // The cid is optional, but given and unreadable it is as any frame's: an error frame, not a
        // pong for no one.
        const ping = PingSchema.safeParse(f);
        if (!ping.success) return sendError(ws, codec, new GatewayError("INVALID_FRAME", describeIssues(ping.error)), correlationId(f));
        const cid = ping.data.cid;
        return send(ws, cid === undefined ? { t: FrameType.PONG } : { t: FrameType.PONG, cid }, codec);
      }
      default:
        return sendError(ws, codec, new GatewayError("UNKNOWN_FRAME_TYPE", `frame type ${f.t} is not one a client sends`), correlationId(f));
    }
  }

  const handler: WebSocketHandler<ConnectionData> = {
    maxPayloadLength: config.MAX_FRAME_BYTES * 4,
    backpressureLimit: 16 * 1024 * 1024,
    closeOnBackpressureLimit: false,
    idleTimeout: 120,
    sendPings: true,
    // Inflated frames are held to maxPayloadLength while they inflate (a small deflate bomb closes
    // 1009 before it costs memory), and decodeFrame holds them to MAX_FRAME_BYTES as any other.
    // The gateway sends uncompressed: compressing every ack would cost more CPU than it saves.
    perMessageDeflate: config.WS_PERMESSAGE_DEFLATE ? { compress: false, decompress: "shared" } : false,

    open(ws) {
      sockets.add(ws);
      ws.data.lastFrameAt = Date.now();
      metrics.connectionsOpen.inc();
      // Bun's send takes a compress flag second: the token is for other transports, not passed on.
      const socket = { send: (d: Uint8Array | string) => ws.send(d), getBufferedAmount: () => ws.getBufferedAmount(), cork: (w: () => void) => void ws.cork(w) };
      ws.data.unread = unread.share(ws.data.remote);
      const outbound = new Outbound(
        socket,
        { maxReplyBytes: REPLY_BUFFER_BYTES },
        () => closeNotReading(ws, "replies dropped: the client is not reading its acks"),
        (bytes) => holdsUnread(ws, bytes),
      );
      ws.data.outbound = outbound;
      ws.data.rate = rateLimits.connection();
      ws.data.inbox = inbox(ws.data.rate.handling);
      ws.data.auth = new ConnectionAuth(deps.auth, ws.data.session, {
        expiring: (err) => send(ws, { t: FrameType.ERROR, ...wireError(err) }, ws.data.codec ?? "json"),
        close: (reason) => closeAfterReplies(ws, CloseCodes.REAUTHENTICATE, reason, new GatewayError("UNAUTHENTICATED", `not handled: the connection is closing (${CloseCodes.REAUTHENTICATE}): ${reason}`)),
      }, ws.data.identity, ws.data.remote);
      ws.data.cancelHelloTimer = clientDeadline(config.HELLO_TIMEOUT, () => helloTimedOut(ws), deps.stalls);
      ws.data.subscriber = {
        subscriptions: new Map(),
        queuedEventBytes: 0,
        info: { connection: ws.data.session, peer: ws.data.remote, transport: "ws", principal: () => ws.data.auth?.principal ?? "anonymous" },
        frame: (f) => outbound.frame(f),
        discard: (f) => outbound.discard(f),
        reply: (data) => outbound.reply(data),
        flushAll: () => outbound.flush(true),
        backlogged: () => outbound.backlogged,
        askRead: () => askRead(ws),
        readAnswered: () => ws.data.readProof?.answered ?? 0,
        close: (code, reason) => ws.close(code, reason),
        mayRead: (topics) => ws.data.auth!.authorizeAll("subscribe", topics),
      };
    },

    drain(ws) {
      ws.data.outbound!.flush();
    },

    // uWebSockets answers a WebSocket PING itself, into the socket's buffer and past the outbound
    // queue, so a client that sends pings and never reads had their pongs held (up to
    // backpressureLimit, ~16 MiB) for as long as it liked: 30 such connections held 470 MB. Pongs
    // waiting are replies waiting; past PONG_BACKLOG_BYTES the client is closed as one not reading.
    ping(ws) {
      if (ws.data.closed) return;
      if (ws.getBufferedAmount() > PONG_BACKLOG_BYTES) closeNotReading(ws, "pongs unread: the client is not reading");
      else holdsUnread(ws, ws.data.outbound!.unreadBytes);
    },

    message(ws, raw) {
      ws.data.lastFrameAt = Date.now();
      ingress.offer(ws, raw as string | Buffer);
    },

    pong(ws, data) {
      // Only the drain's own ping's answer: a read proof's (below) is for an earlier point.
      if (data.length === DRAIN_PING.length && data.equals(DRAIN_PING)) ws.data.drainPong?.();
      // An answer to askRead: the client has read everything sent before that ping.
      const proof = ws.data.readProof;
      if (proof && data.length === 4) {
        const n = data.readUInt32BE(0);
        if (n <= proof.asked && n > proof.answered) proof.answered = n;
      }
    },

    close(ws) {
      sockets.delete(ws);
      ws.data.closed = true;
      ws.data.drainPong?.();
      clearTimeout(ws.data.closing?.deadline);
      ingress.closed(ws);
      ws.data.cancelHelloTimer?.();
      ws.data.outbound!.close();
      ws.data.unread!.release();
      ws.data.auth!.dispose();
      metrics.connectionsOpen.dec();
      subscriptions.onClose(ws.data.subscriber!);
      deps.onClosed?.(ws.data.remote, ws.data.tokenless === true);
    },
  };

  return {
    handler,
    get connections() {
      return sockets.size;
    },
    shedQuiet(quietMs) {
      const quietSince = Date.now() - quietMs;
      // By how likely the connection holds the memory: sent what it has not read; sending nothing, for
      // nothing (a frame Bun assembles, unseen, is held by such a one); a subscriber with nothing to
      // read, last. An idle subscriber was closed with the non-readers of its address (outside tester).
      const byAddress = [new Map<string, Array<ServerWebSocket<ConnectionData>>>(), new Map<string, Array<ServerWebSocket<ConnectionData>>>(), new Map<string, Array<ServerWebSocket<ConnectionData>>>()];
      for (const ws of sockets) {
        // Quiet: nothing whole received, and nothing sent taken either (a reading subscriber is not).
        if (ws.data.closed || ws.data.closing || (ws.data.lastFrameAt ?? 0) > quietSince || ws.data.outbound!.takenAt > quietSince) continue;
        const rank = ws.data.outbound!.backlogged ? 0 : (ws.data.subscriber?.subscriptions.size ?? 0) === 0 ? 1 : 2;
        const list = byAddress[rank]!.get(ws.data.remote);
        if (list) list.push(ws);
        else byAddress[rank]!.set(ws.data.remote, [ws]);
      }
      let most: Array<ServerWebSocket<ConnectionData>> = [];
      for (const ranked of byAddress) {
        for (const list of ranked.values()) if (list.length > most.length) most = list;
        if (most.length > 0) break;
      }
      const reason = "the gateway is over its memory limit; reconnect later";
      for (const ws of most) closeAfterReplies(ws, CloseCodes.TRY_AGAIN_LATER, reason, new GatewayError("UNAVAILABLE", `not handled: the connection is closing (${CloseCodes.TRY_AGAIN_LATER}): ${reason}`));
      if (most.length > 0) logger.warn("over the memory limit: closing the quiet connections of the client address holding the most", { address: most[0]!.data.remote, connections: most.length, quietMs });
      return most.length;
    },
    async closeAll(timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      ingress.drainAll();
      await Promise.all(
        [...sockets].map(async (ws) => {
          const left = () => Math.max(0, deadline - Date.now());
          await Promise.race([ws.data.outbound!.whenEmpty(), Bun.sleep(left())]);
          // Bun takes the close as done once the frame is handed over, and the process may end then:
          // a client not reading at that moment, and still sending, is reset, and the replies in the
          // kernel's buffers are lost with the connection (outside chaos tester). Its pong to a ping
          // sent behind them says it has read them all; replies to frames read meanwhile go too.
          if (!ws.data.closed) {
            await new Promise<void>((resolve) => {
              const timer = setTimeout(resolve, left());
              ws.data.drainPong = () => {
                ws.data.drainPong = undefined;
                clearTimeout(timer);
                resolve();
              };
              ws.ping(DRAIN_PING);
            });
            await Promise.race([ws.data.outbound!.whenEmpty(), Bun.sleep(left())]);
          }
          ws.close(CloseCodes.GOING_AWAY, "the gateway is shutting down; reconnect to another instance");
        }),
      );
    },
  };
}

// A connection over a rate is not read for at least this long: each resume reads what its socket
// buffers hold (up to half a MiB per read), all of it refused while still over, so a short hold
// would have a flooder's frames read and refused almost at line rate anyway. Its refusals' retry
// hints say so: a client told less would send into the hold, and what it sent would be read at once
// when the hold ends, and refused together.
const RATE_HOLD_MIN_MS = 100;
// And at most this long, however far in debt (a low rate and a big batch can mean minutes): unread,
// its pongs and refresh frames would go unanswered. Still over when read again, it is held again.
const RATE_HOLD_MAX_MS = 5000;

// How long past the publish deadline (KAFKA_MESSAGE_TIMEOUT_MS, by which every publish is answered)
// a connection to be closed waits for its replies: a margin for the worker's report to come back.
const CLOSE_AFTER_REPLIES_SLACK_MS = 5000;

// Frame handling per event-loop turn before frames wait their turn, and the bytes one connection may
// have waiting before its socket is paused: a few frames of the largest size.
const INGRESS = { sliceMs: 1, maxQueuedBytes: 4 * 1024 * 1024 };

// Frames, and their bytes, a client may pipeline behind a hello whose token is being verified before
// its socket is no longer read until the verification ends.
const MAX_HELD_FRAMES = 1024;
const MAX_HELD_BYTES = 4 * 1024 * 1024;

// Replies (acks, nacks) waiting for a client that does not read them: past this, it is disconnected.
const REPLY_BUFFER_BYTES = 16 * 1024 * 1024;

// Bytes in Bun's buffer for a socket when a WebSocket PING arrives past which the client counts as
// not reading. The outbound queue keeps that buffer near 256 KiB plus the frame being written, so
// only a client that leaves even its pongs unread gets there.
const PONG_BACKLOG_BYTES = 4 * 1024 * 1024;
