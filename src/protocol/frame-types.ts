// The frame type numbers and the protocol version: plain constants with no dependencies, so the
// client SDK (src/client/, which runs in browsers) shares them with the server without pulling in
// the server's schemas.

/** Protocol version spoken by this gateway. A hello with another version is refused. */
export const PROTOCOL_VERSION = 1;

/**
 * Frame types with stable numeric codes (`t` in every frame). Like error codes, these are only
 * ever added. 1–19 are client requests, 20–39 are server replies.
 */
export const FrameType = {
  HELLO: 1,
  WELCOME: 2,
  PUBLISH: 10,
  PUBLISH_BATCH: 11,
  SUBSCRIBE: 12,
  UNSUBSCRIBE: 13,
  REFRESH: 14,
  // A liveness check: answered `pong` in order behind everything queued for the client, so a client
  // that hears nothing back knows the connection (or the instance) is stuck, not merely quiet.
  PING: 15,
  ACK: 20,
  NACK: 21,
  BATCH_ACK: 22,
  SUBSCRIBED: 23,
  EVENT: 24,
  EVENT_BATCH: 25,
  LIVE: 26,
  LAGGED: 27,
  UNSUBSCRIBED: 28,
  REFRESHED: 29,
  ERROR: 30,
  PONG: 31,
  // Records a subscription will never get, found while reading: retention deleted them first, or the
  // partition's log was reset (its offsets start over).
  GAP: 32,
} as const;
export type FrameTypeName = keyof typeof FrameType;
