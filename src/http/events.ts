import type { Server } from "bun";
import type { Identity } from "../auth/authenticator";
import type { HttpAuth } from "./auth-guard";
import type { ClientAddress } from "./client-address";
import type { Config } from "../config/schema";
import type { RateLimits, Refusal } from "../limits/rate-limits";
import type { RefusalDelay } from "../limits/refusal-delay";
import { type PublishOutcome, type Publisher, wireError } from "../ingest/publisher";
import type { Metrics } from "../observability/metrics";
import { decodeFrame, decodeLimits } from "../protocol/codec";
import { ErrorCodes } from "../protocol/codes";
import { GatewayError, shuttingDown } from "../protocol/errors";
import { clip } from "../protocol/clip";
import { charsetOf, isJsonMediaType, isUtf8Charset } from "../protocol/media-types";
import { TurnBudget } from "../limits/turn-budget";
import { unknownParam } from "./query";
import { errorResponse, json, lateErrorResponse, retryAfter, urlOf } from "./responses";

/** The publish routes' one query parameter. */
const PUBLISH_PARAMS = ["topic"] as const;
// Milliseconds of HTTP request work per turn of the event loop (at least one request's): see TurnBudget.
const HTTP_SLICE_MS = 1;

/**
 * HTTP ingestion for clients that cannot hold a socket: the same validation, codes and records as
 * the WebSocket path, JSON in and out. A batch is not all-or-nothing: valid events are published
 * and each invalid one gets its own error, exactly as publish_batch does over a socket.
 */
export function createEventRoutes(deps: { config: Config; publisher: Publisher; metrics: Metrics; auth: HttpAuth; rateLimits: RateLimits; refusalDelay: RefusalDelay; authEnabled: boolean; clientAddress: ClientAddress }) {
  const { config, publisher, metrics, rateLimits } = deps;
  /**
   * Whose share of MAX_TOPICS a new topic takes (MAX_TOPICS_PER_PRINCIPAL): the principal, named as the
   * WebSocket edge names it so that both transports fill one share, or without authentication the
   * client address.
   */
  function topicOwner(req: Request, who: Identity, server: Server<unknown>): string {
    return deps.authEnabled ? who.principal : principalOf(req, who, server);
  }
  /** The token's subject, written with the events (publisher.prepare's `author`); none with authentication off. */
  function authorOf(who: Identity): string | undefined {
    return deps.authEnabled ? who.principal : undefined;
  }
  /** Who sent a request, for its rates and its turn in the log: the token's subject, or the client address with authentication off. */
  function principalOf(req: Request, who: Identity, server: Server<unknown>): string {
    return deps.authEnabled ? `sub:${who.principal}` : `ip:${deps.clientAddress(req, server)}`;
  }
  /** Counts a rate refusal and throws it (429 with Retry-After). */
  function refuse(refusal: Refusal): never {
    metrics.rateLimited.inc({ transport: "http", scope: refusal.scope, unit: refusal.unit });
    throw refusal.error;
  }
  /**
   * Charges a request to its principal's rates, as if its requests shared one connection: the body's
   * bytes, then its events. Throws RATE_LIMITED (429 with Retry-After). Its events are charged with
   * no bytes, and the bytes bucket is not asked again then: a body larger than the burst leaves it in
   * debt, which refused the request's own events, every time it was sent.
   */
  function charge(req: Request, who: Identity, server: Server<unknown>, bytes: number, events: number): void {
    if (!rateLimits.enabled) return;
    const principal = principalOf(req, who, server);
    const client = rateLimits.httpClient(principal);
    const refusal = (bytes > 0 ? rateLimits.admitBytes(client, principal, bytes) : undefined) ?? rateLimits.admitEvents(client, principal, events);
    if (refusal) refuse(refusal);
  }
  /**
   * Runs `work` (a decode, a prepare) on a body of `bytes`, charged to the principal's handling time
   * (RATE_LIMIT_HANDLING_MS): what the gateway spends on a body is not what its bytes say (JSON dense
   * with long integers costs twenty times a string of the same size). With `admit` (the decode), a
   * client already past it is refused RATE_LIMITED before the work; a request's later work is
   * charged, not refused, so a request costing more than the whole burst still goes through once.
   */
  // HTTP work takes its turn as WebSocket frames do (ws/ingress.ts: a millisecond a turn).
  const turns = new TurnBudget(HTTP_SLICE_MS);
  async function handled<T>(req: Request, who: Identity, server: Server<unknown>, bytes: number, work: () => T, admit = false): Promise<T> {
    const client = rateLimits.httpClient(principalOf(req, who, server));
    if (!client.handling) return turns.run(work);
    const admitted = () => {
      const refusal = admit ? rateLimits.admitHandling(client, bytes) : undefined;
      if (refusal) refuse(refusal);
    };
    admitted();
    return turns.run(() => {
      // Again on its turn: bodies admitted together all ran, back to back, before any was charged.
      admitted();
      const started = performance.now();
      try {
        return work();
      } finally {
        client.handling!.spend(performance.now() - started, bytes);
      }
    });
  }
  /** The topic policy, after the topic is known and before anything is prepared or written. */
  function authorize(who: Identity, topic: string, events: readonly unknown[]): void {
    const denied = deps.auth.authorize(who, "publish", topic, events);
    if (denied) throw denied;
  }
  const limits = decodeLimits(config);
  /** Bytes of request bodies being read now (HTTP_BODY_BYTES_TOTAL). */
  let bodyBytesHeld = 0;
  /**
   * Requests whose body is still arriving, each ended by the drain: their answer is SHUTTING_DOWN
   * whatever the rest says, and waited for, a body trickled in slowly was cut off unanswered when the
   * process ended (outside probe).
   */
  const reading = new Set<(e: GatewayError) => void>();
  let draining = false;

  /** `read`, unless the drain begins first. */
  async function untilDrain<T>(read: Promise<T>): Promise<T> {
    if (draining) throw shuttingDown();
    let stop!: (e: GatewayError) => void;
    const stopped = new Promise<never>((_, reject) => (stop = reject));
    reading.add(stop);
    read.catch(() => {}); // given up on at the drain, it may still fail later: that is no one's to hear
    try {
      return await Promise.race([read, stopped]);
    } finally {
      reading.delete(stop);
    }
  }

  /** The decoded body and its size, once its bytes are paid for (a decode costs in proportion to them). */
  async function readBody(req: Request, who: Identity, server: Server<unknown>): Promise<{ value: unknown; bytes: number }> {
    // Draining, the answer is known before the body is read.
    if (draining) throw shuttingDown();
    // Bodies are read as sent, never inflated (a compressed body would cost its inflated size
    // unbounded by the frame limit); refused before they are read.
    const encoding = req.headers.get("content-encoding");
    if (encoding !== null && !/^\s*identity\s*$/i.test(encoding)) {
      throw new GatewayError("UNSUPPORTED_MEDIA_TYPE", `bodies are not decompressed; send it without Content-Encoding (got ${encoding.slice(0, 100)})`);
    }
    // A declared body is paid for before it is read: read first, the bodies a client declares and
    // never finishes were held whole (Bun keeps a body until it ends), each its full length.
    const declared = declaredLength(req);
    if (declared !== null) charge(req, who, server, declared, 0);
    const body = await untilDrain(bodyBytes(req, declared));
    if (declared === null) charge(req, who, server, body.byteLength, 0);
    await stillAnswerable(req);
    const type = req.headers.get("content-type") ?? "";
    if (!isJsonMediaType(type)) {
      throw new GatewayError("UNSUPPORTED_MEDIA_TYPE", `send Content-Type: application/json (got ${type || "none"})`);
    }
    // JSON is UTF-8 (RFC 8259), and the body is read so: a body declared in another charset would be read as other text.
    const charset = charsetOf(type);
    if (charset !== undefined && !isUtf8Charset(charset)) {
      throw new GatewayError("UNSUPPORTED_MEDIA_TYPE", `JSON bodies are UTF-8; send charset=utf-8 or none (got charset=${charset})`);
    }
    return { value: await handled(req, who, server, body.byteLength, () => decodeFrame(body, "json", limits), true), bytes: body.byteLength };
  }

  /**
   * Refuses a request whose connection closed once its body was in: nothing it asks is done when
   * its answer can reach no one. A chunked body's trailer section (legal HTTP/1.1) is the case
   * seen: Bun hands the body over whole, then takes the trailer for a request of its own, answers
   * that `400 Bad Request` and closes the connection, on its next turn. The client read that 400 as
   * its publish's answer ("not written") while the event was written (outside tester).
   */
  async function stillAnswerable(req: Request): Promise<void> {
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (req.signal.aborted) throw new GatewayError("BAD_FRAME", "the connection closed before the request could be answered (a trailer section after a chunked body, which Bun refuses?): nothing of it was done");
  }

  /**
   * The body, read to its end even when it is too large: answering 413 while the client is still
   * sending makes it see a broken pipe instead of the answer. Past MAX_FRAME_BYTES the rest is
   * discarded as it arrives, so memory stays bounded; Bun cuts off at HTTP_BODY_DRAIN_LIMIT.
   */
  async function bodyBytes(req: Request, declared: number | null): Promise<Uint8Array> {
    try {
      return await readBodyBytes(req, declared);
    } catch (e) {
      if (e instanceof GatewayError) throw e;
      // The client went away mid-body (Bun ends the stream with an error): its doing, not ours, and
      // counted INTERNAL it set off the alerts meant for the gateway's own faults (outside tester).
      throw new GatewayError("BAD_FRAME", "the request body ended before it was whole");
    }
  }

  async function readBodyBytes(req: Request, declared: number | null): Promise<Uint8Array> {
    if (!req.body) return new Uint8Array(0);
    if (declared !== null) {
      holdBody(declared);
      try {
        return new Uint8Array(await req.arrayBuffer());
      } finally {
        bodyBytesHeld -= declared;
      }
    }
    // Too large, or chunked (no length said): kept only while it may still fit.
    const chunks: Uint8Array[] = [];
    let size = 0;
    let held = 0;
    try {
      for await (const chunk of req.body) {
        size += chunk.byteLength;
        if (size <= config.MAX_FRAME_BYTES) {
          holdBody(chunk.byteLength);
          held += chunk.byteLength;
          chunks.push(chunk);
        }
      }
    } finally {
      bodyBytesHeld -= held;
    }
    if (size > config.MAX_FRAME_BYTES) throw new GatewayError("FRAME_TOO_LARGE", `body of ${size} bytes exceeds the ${config.MAX_FRAME_BYTES}-byte limit`);
    return Buffer.concat(chunks);
  }

  /** The Content-Length of a body that may be read whole (at most MAX_FRAME_BYTES); null for any other. */
  function declaredLength(req: Request): number | null {
    const length = req.headers.get("content-length");
    if (length === null || !req.body) return null;
    const n = Number(length);
    return Number.isSafeInteger(n) && n >= 0 && n <= config.MAX_FRAME_BYTES ? n : null;
  }

  /** Counts `bytes` of body being read against HTTP_BODY_BYTES_TOTAL, or refuses them (503 OVERLOADED). */
  function holdBody(bytes: number): void {
    if (config.HTTP_BODY_BYTES_TOTAL > 0 && bodyBytesHeld + bytes > config.HTTP_BODY_BYTES_TOTAL) {
      throw new GatewayError("OVERLOADED", `the gateway is reading ${bodyBytesHeld} bytes of request bodies, its maximum (HTTP_BODY_BYTES_TOTAL); retry shortly`, { retryAfterMs: 1000 });
    }
    bodyBytesHeld += bytes;
  }

  function rejected(e: unknown): Response | Promise<Response> {
    const err = wireError(e);
    metrics.framesRejected.inc({ transport: "http", code: err.code });
    // A request loop over its rate is closed-loop, as a reconnect loop is (refusal-delay.ts): answered
    // at once, it comes straight back.
    return err.code === "RATE_LIMITED" ? lateErrorResponse(deps.refusalDelay, err) : errorResponse(err);
  }

  /**
   * The request's topic: from the body (a batch's `topic`) or the query, given once. Twice, or in both
   * places with different names, it is ambiguous, and a guess could write to the wrong topic.
   */
  function topicOf(req: Request, fromBody?: string): string {
    const params = urlOf(req).searchParams;
    const unknown = unknownParam(params, PUBLISH_PARAMS);
    if (unknown) throw unknown;
    const query = params.getAll("topic");
    if (query.length > 1) throw new GatewayError("INVALID_TOPIC", `the topic is given ${query.length} times in the query; give it once`);
    if (fromBody !== undefined && query.length === 1 && query[0] !== fromBody) {
      throw new GatewayError("INVALID_TOPIC", `the body names topic "${clip(fromBody, 256)}" and the query "${clip(query[0]!, 256)}"; give one`);
    }
    return publisher.topicFor(fromBody ?? query[0]);
  }

  /** `{topic?, events: [...]}` or a bare array of events. */
  function batchOf(body: unknown): { topic?: string; events: unknown[] } {
    if (Array.isArray(body)) return { events: body };
    if (typeof body === "object" && body !== null && Array.isArray((body as { events?: unknown }).events)) {
      // Only these two: a misspelt `topc`, ignored, published to the default topic.
      for (const k in body) if (k !== "topic" && k !== "events") throw new GatewayError("INVALID_FRAME", `unknown batch field ${JSON.stringify(k.slice(0, 100))}; a batch is {"topic"?, "events": [...]}`);
      const { topic, events } = body as { topic?: unknown; events: unknown[] };
      if (topic !== undefined && typeof topic !== "string") throw new GatewayError("INVALID_FRAME", "topic must be a string");
      return { topic: topic as string | undefined, events };
    }
    throw new GatewayError("INVALID_FRAME", "a batch is {\"events\": [...]} or a JSON array of events");
  }

  function results(o: PublishOutcome) {
    // `ids` has holes where an event was rejected before its id was read: iterate by index.
    return Array.from({ length: o.ids.length }, (_, i) => {
      const err = o.errors?.[i];
      const id = o.ids[i] ?? null;
      return err ? { index: i, id, error: err } : { index: i, id, partition: o.partitions[i], offset: o.offsets[i] };
    });
  }

  /**
   * The body is in: from here the request waits only for the log, whose answer comes by the publish
   * deadline (KAFKA_MESSAGE_TIMEOUT_MS + 5 s) however Kafka behaves. HTTP_IDLE_TIMEOUT must not cut
   * that wait (the client would see a reset instead of its ack or PUBLISH_TIMEOUT). Bun 1.4 happens to
   * stop the idle timer once a body has been read to its end, but not for a request without one; this
   * says it for this request, whatever Bun's next version does.
   */
  function awaitingLog(req: Request, server: Server<any>): void {
    server.timeout(req, 0);
  }

  return {
    /** The drain begins: requests still reading their body are answered SHUTTING_DOWN now, and any after. */
    drain(): void {
      draining = true;
      for (const stop of reading) stop(shuttingDown());
      reading.clear();
    },

    async publishOne(req: Request, who: Identity, server: Server<unknown>): Promise<Response> {
      const started = performance.now();
      try {
        const { value: event, bytes } = await readBody(req, who, server);
        awaitingLog(req, server);
        const topic = topicOf(req);
        authorize(who, topic, [event]);
        charge(req, who, server, 0, 1);
        await publisher.learning(topic);
        // Each principal's requests share one turn in the log's fair share, as one connection's do.
        const o = await publisher.publish(await handled(req, who, server, bytes, () => publisher.prepare([event], topic, "json", "http", { principal: topicOwner(req, who, server), author: authorOf(who) })), "http", `http ${principalOf(req, who, server)}`);
        metrics.publishLatency.http.observe((performance.now() - started) / 1000);
        const err = o.errors?.[0];
        if (err) return json({ id: o.ids[0], error: err }, ErrorCodes[err.code].http, retryAfter(err));
        return json({ id: o.ids[0], topic, partition: o.partitions[0], offset: o.offsets[0] }, 202);
      } catch (e) {
        return rejected(e);
      }
    },

    async publishBatch(req: Request, who: Identity, server: Server<unknown>): Promise<Response> {
      const started = performance.now();
      try {
        const { value, bytes } = await readBody(req, who, server);
        const batch = batchOf(value);
        awaitingLog(req, server);
        const topic = topicOf(req, batch.topic);
        authorize(who, topic, batch.events);
        charge(req, who, server, 0, batch.events.length);
        await publisher.learning(topic);
        const o = await publisher.publish(await handled(req, who, server, bytes, () => publisher.prepare(batch.events, topic, "json", "http", { principal: topicOwner(req, who, server), author: authorOf(who) })), "http", `http ${principalOf(req, who, server)}`);
        metrics.publishLatency.http.observe((performance.now() - started) / 1000);
        // 202 all published; 207 some; all failed: the first error's status (400 invalid, 503 retry…).
        const firstError = o.errors?.find(Boolean);
        const status = o.failed === 0 ? 202 : o.failed < o.ids.length ? 207 : ErrorCodes[firstError!.code].http;
        return json({ topic, published: o.ids.length - o.failed, failed: o.failed, results: results(o) }, status, firstError && o.failed === o.ids.length ? retryAfter(firstError) : undefined);
      } catch (e) {
        return rejected(e);
      }
    },

    /** Dry run: the same checks as a publish, nothing written. */
    async validate(req: Request, who: Identity, server: Server<unknown>): Promise<Response> {
      try {
        const { value: body, bytes } = await readBody(req, who, server);
        const isBatch = Array.isArray(body) || (typeof body === "object" && body !== null && "events" in body);
        const batch = isBatch ? batchOf(body) : { topic: undefined, events: [body] };
        const topic = topicOf(req, batch.topic);
        authorize(who, topic, batch.events);
        await publisher.learning(topic);
        const p = await handled(req, who, server, bytes, () => publisher.prepare(batch.events, topic, "json", "http", { dryRun: true, principal: topicOwner(req, who, server), author: authorOf(who) }));
        const errors = (p.errors ?? []).flatMap((err, index) => (err ? [{ index, error: err }] : []));
        return json({ valid: errors.length === 0, topic, count: p.total, errors }, errors.length === 0 ? 200 : 400);
      } catch (e) {
        return rejected(e);
      }
    },
  };
}
