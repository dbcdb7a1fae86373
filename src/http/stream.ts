import type { Server } from "bun";
import type { Identity } from "../auth/authenticator";
import type { HttpAuth } from "./auth-guard";
import type { ClientAddress } from "./client-address";
import type { ConnectionLimiter } from "../limits/connections";
import type { RateLimits } from "../limits/rate-limits";
import type { Metrics } from "../observability/metrics";
import { CloseCodes } from "../protocol/codes";
import { GatewayError, toWireError } from "../protocol/errors";
import { encodeFrame } from "../protocol/codec";
import { atTime } from "../auth/deadline";
import { peekFrameType } from "../protocol/frame-peek";
import { assertPlainData } from "../protocol/plain-data";
import { FrameType, type SubscribeFrame, SubscribeSchema, describeIssues, frameErrorCode } from "../protocol/frames";
import { type SubscriberConnection, type SubscriptionManager, readsHistory } from "../subscribe/manager";
import { wireError } from "../ingest/publisher";
import { Outbound, type OutboundSocket } from "../ws/outbound";
import { unknownParam } from "./query";
import { errorResponse, lateErrorResponse, urlOf } from "./responses";
import type { RefusalDelay } from "../limits/refusal-delay";

/**
 * Server-sent events: `GET /api/v1/stream?topic=…&filter=…&start=…&policy=…`, a subscription for
 * clients that only read (EventSource in a browser, curl). Every frame a WebSocket subscriber would
 * get is one SSE message, named after its frame type (`subscribed`, `event`, `event_batch`, `live`,
 * `lagged`, `gap`, `unsubscribed`), its data the frame as JSON. Frames with a resume token carry it as the
 * message `id`, so a browser's automatic reconnect (which sends `Last-Event-ID`) resumes exactly
 * after the last frame it got. Frames go through the same ordered outbound queue as a socket's, so
 * slow-consumer policies and tokens mean the same; the stream's own buffer is its backpressure.
 */
export interface StreamDeps {
  subscriptions: SubscriptionManager;
  auth: HttpAuth;
  connections: ConnectionLimiter;
  metrics: Metrics;
  rateLimits: RateLimits;
  clientAddress: ClientAddress;
  /** Rate refusals are answered late, as refused connections are (refusal-delay.ts). */
  refusalDelay: RefusalDelay;
}

/**
 * The resume token a control frame carries (subscribed, live, lagged, gap, unsubscribed), for its
 * `id:`: only event frames were given one, so a stream dropped between `subscribed` and its first
 * event reconnected without Last-Event-ID (outside tester). These frames are few and small.
 */
function tokenIn(text: string): string | undefined {
  if (!text.includes('"token"')) return undefined;
  const token = (JSON.parse(text) as { token?: unknown }).token;
  return typeof token === "string" && !/[\r\n]/.test(token) ? token : undefined;
}

const EVENT_NAMES: Record<number, string> = {
  [FrameType.SUBSCRIBED]: "subscribed",
  [FrameType.EVENT]: "event",
  [FrameType.EVENT_BATCH]: "event_batch",
  [FrameType.LIVE]: "live",
  [FrameType.LAGGED]: "lagged",
  [FrameType.GAP]: "gap",
  [FrameType.UNSUBSCRIBED]: "unsubscribed",
  [FrameType.NACK]: "error",
  [FrameType.ERROR]: "error",
};
// What the stream may hold unread before frames wait in the outbound queue (where the policy applies).
const STREAM_HIGH_WATER = 256 * 1024;
// Nesting a filter may have in the query (a filter's own shape is two or three levels deep).
const FILTER_MAX_DEPTH = 16;
// A comment line this often keeps proxies and the client from taking a quiet stream for a dead one.
const HEARTBEAT_MS = 15_000;
const RECONNECT_HINT_MS = 1000;
// After the gateway ended the stream's subscription (KAFKA_DENIED): the browser comes back from the
// notice's token this much later, not every second while an operator has yet to grant the ACL.
const RECONNECT_AFTER_END_MS = 10_000;
const encoder = new TextEncoder();

/**
 * `head`, `text` and the blank line that ends an SSE event, as UTF-8 in one buffer of the exact size:
 * a frame can be a megabyte (a rope over shared entries), and a template string around it was
 * written out once more before being encoded.
 */
function sseEvent(head: string, text: string): Uint8Array {
  const headBytes = Buffer.byteLength(head);
  const out = Buffer.allocUnsafe(headBytes + Buffer.byteLength(text) + 2);
  out.write(head, 0);
  const end = headBytes + out.write(text, headBytes);
  out[end] = 0x0a;
  out[end + 1] = 0x0a;
  return out;
}
const decoder = new TextDecoder();

/** Query parameters that take one value (topic may be repeated: each names a topic). */
const SINGLE_PARAMS = ["filter", "start", "policy", "share", "lastEventId", "access_token"] as const;
const STREAM_PARAMS = ["topic", ...SINGLE_PARAMS] as const;

/** The query string (and Last-Event-ID) as the subscribe frame a WebSocket client would send. */
function subscribeFrame(req: Request, url: URL): SubscribeFrame {
  const q = url.searchParams;
  // Given twice, a parameter would be read as its first in silence: refused, naming it.
  for (const name of SINGLE_PARAMS) {
    if (q.getAll(name).length > 1) throw new GatewayError("INVALID_FRAME", `${name} is given more than once`);
  }
  const frame: Record<string, unknown> = { t: FrameType.SUBSCRIBE, cid: 0, sub: "sse" };
  const topics = q.getAll("topic").flatMap((t) => t.split(","));
  const unknown = unknownParam(q, STREAM_PARAMS);
  // The frame's own message ("give topic or topics") names a field a stream has no parameter for;
  // and a misspelt one (`topics`, `Topic`) is named with it.
  if (topics.length === 0) throw new GatewayError("INVALID_FRAME", `the \`topic\` parameter is missing: topic=T, repeated or comma-separated for several topics${unknown ? `; ${unknown.message}` : ""}`);
  if (unknown) throw unknown;
  if (topics.length === 1) frame.topic = topics[0];
  else if (topics.length > 1) frame.topics = topics;
  const filter = q.get("filter");
  if (filter !== null) {
    try {
      frame.filter = JSON.parse(filter);
    } catch {
      throw new GatewayError("INVALID_FILTER", "filter must be JSON, as in a subscribe frame");
    }
    // What a JSON subscribe frame is held to: finite numbers, well-formed Unicode (a lone surrogate
    // cannot be matched against UTF-8), nesting (BAD_FRAME).
    assertPlainData(frame.filter, FILTER_MAX_DEPTH);
  }
  const lastEventId = req.headers.get("last-event-id");
  // Bun joins a header given twice with ", ", and no token has a comma: refused as a parameter twice is.
  if (lastEventId?.includes(",")) throw new GatewayError("INVALID_FRAME", "Last-Event-ID is given more than once");
  const resume = lastEventId ?? q.get("lastEventId");
  const start = q.get("start");
  if (resume) frame.start = { token: resume };
  else if (start === "earliest" || start === "latest") frame.start = start;
  else if (start?.startsWith("token:")) frame.start = { token: start.slice("token:".length) };
  else if (start !== null) frame.start = { time: /^\d+$/.test(start) ? Number(start) : start };
  const policy = q.get("policy");
  if (policy !== null) frame.policy = policy;
  const share = q.get("share");
  if (share !== null) frame.share = share;
  const parsed = SubscribeSchema.safeParse(frame);
  if (!parsed.success) throw new GatewayError(frameErrorCode(parsed.error), describeIssues(parsed.error));
  return parsed.data;
}

export function createStreamRoute(deps: StreamDeps) {
  const open = new Set<() => void>();

  async function stream(req: Request, who: Identity, server: Server<unknown>): Promise<Response> {
    const frame = subscribeFrame(req, urlOf(req));
    const remote = deps.clientAddress(req, server);
    const limited = deps.rateLimits.admitSubscribe(null, remote);
    if (limited) throw limited.error;
    for (const topic of frame.topics ?? [frame.topic!]) {
      const denied = deps.auth.authorize(who, "subscribe", topic);
      if (denied) throw denied;
    }
    if (readsHistory(frame)) {
      const replaying = deps.rateLimits.admitReplay(remote);
      if (replaying) throw replaying.error;
    }
    const refused = deps.connections.acquire(remote);
    if (refused) throw refused;
    // Streams live as long as the client reads; Bun's idle timeout is for requests that stall.
    server.timeout(req, 0);

    let controller!: ReadableStreamDefaultController<Uint8Array>;
    let ended = false;
    const sse: OutboundSocket = {
      send(data, token) {
        if (ended) return 0;
        const text = typeof data === "string" ? data : decoder.decode(data);
        const type = peekFrameType(text) ?? -1;
        const name = EVENT_NAMES[type] ?? "message";
        const id = token ?? (type === FrameType.EVENT || type === FrameType.EVENT_BATCH ? undefined : tokenIn(text));
        controller.enqueue(sseEvent(`${id ? `id: ${id}\n` : ""}event: ${name}\ndata: `, text));
        return 1;
      },
      getBufferedAmount: () => (ended ? 0 : STREAM_HIGH_WATER - (controller.desiredSize ?? 0)),
      cork: (write) => write(),
    };
    const outbound = new Outbound(sse, { maxReplyBytes: 1024 * 1024 }, () => end());
    const conn: SubscriberConnection = {
      subscriptions: new Map(),
      queuedEventBytes: 0,
      info: { connection: `sse-${crypto.randomUUID()}`, peer: remote, transport: "sse", principal: () => who.principal },
      frame: (f) => outbound.frame(f),
      discard: (f) => outbound.discard(f),
      reply: (d) => outbound.reply(d),
      flushAll: () => outbound.flush(true),
      backlogged: () => outbound.backlogged,
      close: (code) => end(code),
      // A stream is its one subscription: ended by the gateway, it would stay open with nothing to
      // send, holding a connection slot, for as long as the client kept it.
      ended: () => {
        if (conn.subscriptions.size > 0 || ended) return;
        outbound.flush(true);
        controller.enqueue(encoder.encode(`retry: ${RECONNECT_AFTER_END_MS}\n\n`));
        end();
      },
    };
    // A stream cannot be given a new token: it ends when its token does, as a WebSocket connection
    // does that sends no refresh, with an `error` event saying so (the client reconnects with a new
    // one). Before, a stream opened with a short-lived token (EventSource's access_token) read on for good.
    const validUntil = deps.auth.validUntil(who);
    const cancelExpiry = Number.isFinite(validUntil)
      ? atTime(validUntil, () => {
          outbound.reply(encodeFrame({ t: FrameType.ERROR, ...toWireError("UNAUTHENTICATED", "the token has expired; reconnect with a new token") }, "json"));
          outbound.flush(true);
          end();
        })
      : null;
    const heartbeat = setInterval(() => !ended && controller.desiredSize !== null && controller.desiredSize > 0 && controller.enqueue(encoder.encode(": keep-alive\n\n")), HEARTBEAT_MS);

    /** Ends the stream once: the subscription, the slot, the timer. A slow-consumer close ends it too. */
    function end(code?: number): void {
      if (ended) return;
      if (code === CloseCodes.SLOW_CONSUMER) outbound.flush(true);
      ended = true;
      cancelExpiry?.();
      clearInterval(heartbeat);
      open.delete(end);
      outbound.close();
      deps.subscriptions.onClose(conn);
      deps.connections.release(remote);
      deps.metrics.streamsOpen.dec();
      try {
        controller.close();
      } catch {
        // already closed by the client going away
      }
    }

    const body = new ReadableStream<Uint8Array>(
      {
        start: (c) => {
          controller = c;
          // How soon a browser's EventSource reconnects after the stream ends (its default is ~3 s).
          c.enqueue(encoder.encode(`retry: ${RECONNECT_HINT_MS}\n\n`));
        },
        pull: () => outbound.flush(),
        cancel: () => end(),
      },
      { highWaterMark: STREAM_HIGH_WATER, size: (chunk) => chunk?.byteLength ?? 0 },
    );
    open.add(end);
    deps.metrics.streamsOpen.inc();
    try {
      await deps.subscriptions.subscribe(conn, "json", frame);
    } catch (e) {
      end();
      throw e;
    }
    return new Response(body, {
      headers: { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-store", "x-accel-buffering": "no" },
    });
  }

  return {
    /** The route: refusals (bad query, not granted, too many connections, unknown topic) as HTTP errors. */
    async stream(req: Request, who: Identity, server: Server<unknown>): Promise<Response> {
      try {
        return await stream(req, who, server);
      } catch (e) {
        const err = wireError(e);
        deps.metrics.framesRejected.inc({ transport: "http", code: err.code });
        // A client in a reconnect loop gets its 429 late, so it comes back no faster than it may:
        // answered at once, 8 loops got 13,700 a second (hostile tester).
        return err.code === "RATE_LIMITED" ? lateErrorResponse(deps.refusalDelay, err) : errorResponse(err);
      }
    },
    /** Ends every open stream (shutdown): clients reconnect, with Last-Event-ID, to another instance. */
    closeAll(): void {
      for (const end of [...open]) end();
    },
  };
}
