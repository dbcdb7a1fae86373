import type { Config } from "../config/schema";
import type { PublishOutcome } from "../ingest/publisher";
import { FrameType } from "../protocol/frames";

/** The reply to a publish (ack or nack) or publish_batch (batch_ack, with an error per refused event). */
export function outcomeFrame(cid: number, batch: boolean, o: PublishOutcome): Record<string, unknown> {
  if (!batch) {
    const err = o.errors?.[0];
    // No `id` key at all when none was read: msgpack would carry undefined as an ext type.
    const id = o.ids[0];
    if (err) return id === undefined ? { t: FrameType.NACK, cid, ...err } : { t: FrameType.NACK, cid, id, ...err };
    return { t: FrameType.ACK, cid, id, topic: o.topic, partition: o.partitions[0], offset: o.offsets[0] };
  }
  const ids = Array.from({ length: o.ids.length }, (_, i) => o.ids[i] ?? null);
  const frame: Record<string, unknown> = { t: FrameType.BATCH_ACK, cid, topic: o.topic, ids, partitions: o.partitions, offsets: o.offsets };
  if (o.errors) {
    const errors = [];
    for (let i = 0; i < o.errors.length; i++) if (o.errors[i]) errors.push({ i, ...o.errors[i] });
    frame.errors = errors;
  }
  return frame;
}

/** Every limit a client can plan for, sent in welcome, so an SDK need not learn them from refusals (0: none). */
// How long after its hello a connection's publishes marked `resend` are checked against the log
// before being written (docs/protocol.md, Idempotent publish): a reconnected client re-sends its
// window at once. Advertised, so a client marks re-sends only for a gateway that takes the mark.
export const RESEND_WINDOW_MS = 30_000;

export function limitsFor(config: Config): Record<string, number> {
  return {
    resendWindowMs: RESEND_WINDOW_MS,
    maxFrameBytes: config.MAX_FRAME_BYTES,
    maxBatchEvents: config.MAX_BATCH_EVENTS,
    maxDepth: config.MAX_DEPTH,
    window: config.PUBLISH_WINDOW,
    maxMapKeys: config.MAX_MAP_KEYS,
    maxEventValues: config.MAX_EVENT_VALUES,
    maxFrameValues: config.MAX_FRAME_VALUES,
    maxHeadersPerEvent: config.MAX_HEADERS_PER_EVENT,
    maxHeaderBytes: config.MAX_HEADER_BYTES,
    timeSkewFutureMs: config.TIME_SKEW_FUTURE,
    timeSkewPastMs: config.TIME_SKEW_PAST,
    maxSubscriptions: config.MAX_SUBSCRIPTIONS_PER_CONNECTION,
    subscribesPerSec: config.SUBSCRIBE_RATE_LIMIT,
    eventsPerSec: config.RATE_LIMIT_EVENTS,
    bytesPerSec: config.RATE_LIMIT_BYTES,
    principalEventsPerSec: config.RATE_LIMIT_PRINCIPAL_EVENTS,
    principalBytesPerSec: config.RATE_LIMIT_PRINCIPAL_BYTES,
    burstSeconds: config.RATE_LIMIT_BURST_SECONDS,
  };
}
