import { z } from "zod";
import type { ErrorCode } from "./codes";
import { HEADERS_HARD_MAX, TIME_MAX_CHARS } from "./limits";
import { clip } from "./clip";

export { FrameType, type FrameTypeName, PROTOCOL_VERSION } from "./frame-types";
import { FrameType } from "./frame-types";

// Kafka's own rule for topic names.
/** Kafka's legal topic names: 1–249 of these characters, and neither "." nor "..", which Kafka refuses. */
export const TOPIC_NAME = /^(?!\.\.?$)[a-zA-Z0-9._-]{1,249}$/;

const bytes = z.instanceof(Uint8Array);
const RESERVED_HEADER = /^(ce_|content-type$)/i;

// UTF-8, which every record field is written in, cannot carry an unpaired surrogate (JSON can
// spell one, "\ud800"): such text would be stored as U+FFFD, a different type, key or header.
const isWellFormed = (s: string) => (s as unknown as { isWellFormed(): boolean }).isWellFormed();
/**
 * A string of `min` to `max` UTF-16 code units, as docs/protocol.md states every text limit and as the
 * fast paths count (`.length`). zod's own min/max count code points, which lets twice as many units
 * through for text outside the Basic Multilingual Plane.
 */
export const units = (min: number, max: number) =>
  z.string().check((ctx) => {
    const n = ctx.value.length;
    if (n < min || n > max) ctx.issues.push({ code: "custom", input: ctx.value, message: n < min ? (min === 1 ? "must not be empty" : `must be at least ${min} characters (UTF-16 code units)`) : `must be at most ${max} characters (UTF-16 code units); this has ${n}` });
  });
const text = (min: number, max: number) => units(min, max).refine(isWellFormed, "must be well-formed Unicode (no unpaired surrogates)");
const headerValue = z.union([text(0, 65536), bytes]);

/**
 * Headers by hand rather than z.record: zod's record drops a key named "__proto__" without a word
 * (and without checking its value), while the fast path and the record keep it. Here every own key
 * is checked and the object is returned as it is, so both paths keep it. The count is capped at
 * HEADERS_HARD_MAX whatever MAX_HEADERS_PER_EVENT says: the record layouts count headers in 16 bits.
 */
const HeadersSchema = z.unknown().superRefine((v, ctx) => {
  const proto = typeof v === "object" && v !== null ? Object.getPrototypeOf(v) : undefined;
  if (Array.isArray(v) || v instanceof Uint8Array || (proto !== Object.prototype && proto !== null)) {
    ctx.addIssue({ code: "custom", message: "headers must be a map of names to strings or bytes" });
    return;
  }
  const names = Object.keys(v as object);
  if (names.length > HEADERS_HARD_MAX) {
    ctx.addIssue({ code: "custom", message: `at most ${HEADERS_HARD_MAX} headers` });
    return;
  }
  for (const name of names) {
    if (name.length < 1 || name.length > 256 || !isWellFormed(name)) ctx.addIssue({ code: "custom", path: [name], message: "header names are 1–256 characters of well-formed Unicode" });
    // Kafka's C and Go clients (librdkafka's produce and read among them) end a header name at a NUL:
    // "content-type\0" went into Kafka as a second content-type, past the reserved names.
    else if (name.includes("\0")) ctx.addIssue({ code: "custom", path: [name], message: "header names cannot hold U+0000" });
    else if (RESERVED_HEADER.test(name)) ctx.addIssue({ code: "custom", path: [name], message: "header names starting with ce_, and content-type, are reserved for envelope fields" });
    const r = headerValue.safeParse((v as Record<string, unknown>)[name]);
    if (!r.success) for (const i of r.error.issues) ctx.addIssue({ ...i, code: "custom", path: [name, ...i.path] } as never);
  }
}) as unknown as z.ZodType<Record<string, string | Uint8Array>>;

/**
 * The event envelope, with CloudEvents attribute names. `data` is any plain value (already checked
 * by plain-data) or bytes; `data_base64` is the CloudEvents JSON spelling of bytes for JSON frames.
 */
export const EnvelopeSchema = z
  .strictObject({
    specversion: z.literal("1.0").optional(),
    id: text(1, 256).optional(),
    source: text(1, 1024).optional(),
    type: text(1, 256),
    subject: text(1, 1024).optional(),
    time: z.union([z.iso.datetime({ offset: true }).max(TIME_MAX_CHARS), z.date()]).optional(),
    datacontenttype: text(1, 256).optional(),
    data: z.unknown().optional(),
    data_base64: z.base64().optional(),
    key: z.union([text(0, 32768), bytes]).optional(),
    headers: HeadersSchema.optional(),
  })
  .superRefine((e, ctx) => {
    if (e.data !== undefined && e.data_base64 !== undefined) ctx.addIssue({ code: "custom", message: "give data or data_base64, not both" });
  });
export type Envelope = z.infer<typeof EnvelopeSchema>;

const correlationId = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const topic = z.string().regex(TOPIC_NAME, "topic names are 1–249 characters of a-z, A-Z, 0-9, '.', '_' and '-', and not '.' or '..'");

// Any string: its bounds (16 KiB, the shape) are the authenticator's, whose refusal is
// UNAUTHENTICATED and closes a hello 4401, as the limits table says; the frame bounds its size.
const bearerToken = z.string();
export const HelloSchema = z.strictObject({ t: z.literal(FrameType.HELLO), v: z.number().int(), cid: correlationId.optional(), client: units(0, 256).optional(), token: bearerToken.optional() });
/** A new access token for a connection whose token expires (docs/security.md). */
export const RefreshSchema = z.strictObject({ t: z.literal(FrameType.REFRESH), cid: correlationId, token: bearerToken });
/** A liveness check; its cid, when given, is echoed in the pong. */
export const PingSchema = z.strictObject({ t: z.literal(FrameType.PING), cid: correlationId.optional() });
export const PublishSchema = z.strictObject({
  t: z.literal(FrameType.PUBLISH),
  cid: correlationId,
  topic: topic.optional(),
  event: z.unknown(),
  /** The event was sent before, on a connection that dropped before its answer (see docs/protocol.md, Idempotent publish). */
  resend: z.literal(true).optional(),
});
export const PublishBatchSchema = z.strictObject({
  t: z.literal(FrameType.PUBLISH_BATCH),
  cid: correlationId,
  topic: topic.optional(),
  events: z.array(z.unknown()),
  resend: z.literal(true).optional(),
});

const subscriptionId = units(1, 128);

/** Where a subscription starts reading. */
export const StartSchema = z.union([
  z.enum(["latest", "earliest"]),
  // Any non-negative integer is a time in ms, however it is encoded: past 2^53 a JSON number is not
  // exact and msgpack's uint64 is a BigInt, and either is far in the future (so, from the end).
  z.strictObject({ time: z.union([z.iso.datetime({ offset: true }).max(TIME_MAX_CHARS), z.number().min(0).refine(Number.isInteger, "must be an integer"), z.bigint().min(0n), z.date()]) }),
  z.strictObject({ token: units(1, 65536) }),
]);
export type Start = z.infer<typeof StartSchema>;

export const SubscribeSchema = z
  .strictObject({
    t: z.literal(FrameType.SUBSCRIBE),
    cid: correlationId,
    sub: subscriptionId.optional(),
    topic: topic.optional(),
    topics: z.array(topic).min(1).max(16).optional(),
    filter: z.unknown().optional(),
    start: StartSchema.optional(),
    policy: z.enum(["drop-oldest", "disconnect"]).optional(),
    share: z.string().regex(/^[a-zA-Z0-9._-]{1,128}$/, "share group names are 1–128 characters of a-z, A-Z, 0-9, '.', '_' and '-'").optional(),
  })
  .refine((f) => (f.topic === undefined) !== (f.topics === undefined), "give topic or topics, one of them")
  .refine((f) => f.share === undefined || f.start === undefined || f.start === "latest", "a shared subscription reads from its group's position; it takes no start");
export const UnsubscribeSchema = z.strictObject({ t: z.literal(FrameType.UNSUBSCRIBE), cid: correlationId, sub: subscriptionId });
export type SubscribeFrame = z.infer<typeof SubscribeSchema>;
/**
 * How an event that could not be encoded whole reaches a subscriber (docs/protocol.md, "Events that
 * cannot be encoded"): "data", the payload as stored bytes; "headers", that and only the first
 * headers; "event", only the envelope's text fields.
 */
export type Degraded = "data" | "headers" | "event";

/**
 * A stretch of a partition a subscription skips, told in `subscribed.gaps` when it starts past it, or
 * in a `gap` frame when found while reading:
 * - `retention`: deleted by retention before the subscription's position could be read;
 * - `replay_max_duration`: for `earliest`, records at the partition's head whose timestamps are older
 *   than REPLAY_MAX_DURATION allows;
 * - `log_reset`: the partition's log was reset (the topic deleted and created again) and its
 *   offsets start over: reading goes on at `to`, below `from`.
 */
export interface Gap {
  topic: string;
  partition: number;
  /** The first offset not delivered. */
  from: number;
  /** The first offset delivered: `to - from` records are skipped (for `log_reset`, the new log's start). */
  to: number;
  reason: "retention" | "replay_max_duration" | "log_reset";
}

export type HelloFrame = z.infer<typeof HelloSchema>;
export type PublishFrame = z.infer<typeof PublishSchema>;
export type PublishBatchFrame = z.infer<typeof PublishBatchSchema>;

/**
 * The code for a frame the schema refused: INVALID_TOPIC when a topic name is a string that is not
 * a legal one (as over HTTP), INVALID_FRAME for every other problem with the frame's own fields.
 */
export function frameErrorCode(error: z.ZodError): ErrorCode {
  return error.issues.some((i) => i.code === "invalid_format" && (i.path[0] === "topic" || i.path[0] === "topics")) ? "INVALID_TOPIC" : "INVALID_FRAME";
}

/** How much of a path segment, and of an issue's message, a refusal repeats: both can hold a client's own strings. */
const SEGMENT_CHARS = 64;
const ISSUE_CHARS = 300;

/**
 * Turns a zod failure into one readable line: the path and the problem. A header name or an unknown
 * key of 60,000 characters was repeated whole in its refusal; each segment and message is clipped.
 */
export function describeIssues(error: z.ZodError, prefix = ""): string {
  return error.issues
    .slice(0, 3)
    .map((i) => {
      const path = [prefix, ...i.path.map((p) => clip(String(p), SEGMENT_CHARS))].filter(Boolean).join(".");
      const message = clip(i.message, ISSUE_CHARS);
      return path ? `${path}: ${message}` : message;
    })
    .join("; ");
}
