import type { ErrorCode } from "./codes";
import { FrameType, type PublishBatchFrame, PublishBatchSchema, type PublishFrame, PublishSchema, TOPIC_NAME, describeIssues, frameErrorCode } from "./frames";

export type PublishFrameResult = { ok: true; frame: PublishFrame | PublishBatchFrame } | { ok: false; code: ErrorCode; message: string };

/**
 * Checks a publish or publish_batch frame. As with envelopes (./envelope.ts), the schema is the
 * definition and this only short-cuts the shape every client sends: zod's copy of a 100-event
 * array cost 6% of the gateway's ingest time. Anything unusual goes to the schema.
 */
export function parsePublishFrame(frame: { t: number; cid?: unknown; topic?: unknown; event?: unknown; events?: unknown; resend?: unknown }): PublishFrameResult {
  const cid = frame.cid;
  const topic = frame.topic;
  const resend = frame.resend;
  if (
    typeof cid === "number" &&
    Number.isSafeInteger(cid) &&
    cid >= 0 &&
    (topic === undefined || (typeof topic === "string" && TOPIC_NAME.test(topic))) &&
    (frame.t === FrameType.PUBLISH ? frame.event !== undefined : Array.isArray(frame.events)) &&
    (resend === undefined || resend === true) &&
    // t, cid, event or events, and topic and resend if given: no field the schema would refuse.
    fieldCount(frame) === 3 + (topic === undefined ? 0 : 1) + (resend === undefined ? 0 : 1)
  ) {
    return { ok: true, frame: frame as PublishFrame | PublishBatchFrame };
  }
  const parsed = frame.t === FrameType.PUBLISH_BATCH ? PublishBatchSchema.safeParse(frame) : PublishSchema.safeParse(frame);
  return parsed.success ? { ok: true, frame: parsed.data } : { ok: false, code: frameErrorCode(parsed.error), message: describeIssues(parsed.error) };
}

function fieldCount(frame: object): number {
  let n = 0;
  for (const _ in frame) n++;
  return n;
}
