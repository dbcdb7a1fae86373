/**
 * Every error a client can see, with a stable string code and number. Clients switch on these, so
 * entries are only ever added: never renumbered, renamed or removed. docs/protocol.md is checked
 * against this table by test/protocol/docs.test.ts.
 *
 * `retriable`: sending the same event again may succeed. `mayBePersisted`: the event may already be
 * in Kafka although it was not acked, so a blind retry can duplicate it (send a stable `id`).
 */
export const ErrorCodes = {
  // 1xxx: the request is wrong; sending it again unchanged fails again.
  BAD_FRAME: { num: 1000, http: 400, retriable: false, mayBePersisted: false },
  FRAME_TOO_LARGE: { num: 1001, http: 413, retriable: false, mayBePersisted: false },
  NESTING_TOO_DEEP: { num: 1002, http: 400, retriable: false, mayBePersisted: false },
  UNKNOWN_FRAME_TYPE: { num: 1003, http: 400, retriable: false, mayBePersisted: false },
  INVALID_FRAME: { num: 1004, http: 400, retriable: false, mayBePersisted: false },
  INVALID_EVENT: { num: 1005, http: 400, retriable: false, mayBePersisted: false },
  UNSUPPORTED_VERSION: { num: 1006, http: 400, retriable: false, mayBePersisted: false },
  HANDSHAKE_REQUIRED: { num: 1007, http: 400, retriable: false, mayBePersisted: false },
  BATCH_TOO_LARGE: { num: 1008, http: 413, retriable: false, mayBePersisted: false },
  INVALID_TOPIC: { num: 1009, http: 400, retriable: false, mayBePersisted: false },
  UNSUPPORTED_MEDIA_TYPE: { num: 1010, http: 415, retriable: false, mayBePersisted: false },
  NOT_FOUND: { num: 1011, http: 404, retriable: false, mayBePersisted: false },
  EVENT_TOO_LARGE: { num: 1012, http: 413, retriable: false, mayBePersisted: false },
  INVALID_FILTER: { num: 1013, http: 400, retriable: false, mayBePersisted: false },
  INVALID_POSITION: { num: 1014, http: 400, retriable: false, mayBePersisted: false },
  REPLAY_OUT_OF_RANGE: { num: 1015, http: 400, retriable: false, mayBePersisted: false },
  UNKNOWN_SUBSCRIPTION: { num: 1016, http: 404, retriable: false, mayBePersisted: false },
  SUBSCRIPTION_EXISTS: { num: 1017, http: 409, retriable: false, mayBePersisted: false },
  METHOD_NOT_ALLOWED: { num: 1018, http: 405, retriable: false, mayBePersisted: false },
  TIME_SKEW: { num: 1019, http: 400, retriable: false, mayBePersisted: false },
  // No valid token (none, bad signature, expired, wrong issuer/audience/type): get a new one.
  UNAUTHENTICATED: { num: 1020, http: 401, retriable: false, mayBePersisted: false },
  // A valid token whose claims do not grant this action on this topic (or event type).
  FORBIDDEN: { num: 1021, http: 403, retriable: false, mayBePersisted: false },
  // Subscribing never creates a topic: one that does not exist is refused with this.
  UNKNOWN_TOPIC: { num: 1022, http: 404, retriable: false, mayBePersisted: false },
  // A browser page whose Origin is not in ALLOWED_ORIGINS (nor the gateway's own host): refused before any work.
  ORIGIN_NOT_ALLOWED: { num: 1023, http: 403, retriable: false, mayBePersisted: false },
  // A publish naming a topic beyond the MAX_TOPICS this instance publishes to: the instance's set of topics only grows.
  TOO_MANY_TOPICS: { num: 1024, http: 422, retriable: false, mayBePersisted: false },
  // 2xxx: the gateway or Kafka could not take it now; retry with backoff.
  WINDOW_EXCEEDED: { num: 2000, http: 429, retriable: true, mayBePersisted: false },
  OVERLOADED: { num: 2001, http: 503, retriable: true, mayBePersisted: false },
  WORKER_LOST: { num: 2002, http: 503, retriable: true, mayBePersisted: true },
  UNAVAILABLE: { num: 2003, http: 503, retriable: true, mayBePersisted: false },
  PUBLISH_TIMEOUT: { num: 2004, http: 504, retriable: true, mayBePersisted: true },
  KAFKA_RETRIABLE: { num: 2005, http: 503, retriable: true, mayBePersisted: true },
  SHUTTING_DOWN: { num: 2006, http: 503, retriable: true, mayBePersisted: false },
  TOO_MANY_SUBSCRIPTIONS: { num: 2007, http: 429, retriable: true, mayBePersisted: false },
  TOO_MANY_CONNECTIONS: { num: 2008, http: 503, retriable: true, mayBePersisted: false },
  // Over a publish rate (RATE_LIMIT_*): retry after retryAfterMs (HTTP: Retry-After).
  RATE_LIMITED: { num: 2009, http: 429, retriable: true, mayBePersisted: false },
  // 3xxx: Kafka refused the write for good (unknown topic with auto-create off, record too large…).
  KAFKA_REJECTED: { num: 3000, http: 422, retriable: false, mayBePersisted: false },
  // Kafka's ACLs refuse the gateway's own principal (not the client's grants): an operator must grant it.
  KAFKA_DENIED: { num: 3001, http: 403, retriable: false, mayBePersisted: false },
  // 5xxx: a bug on our side. Logged with detail; the client gets only the code.
  INTERNAL: { num: 5000, http: 500, retriable: false, mayBePersisted: false },
} as const;

export type ErrorCode = keyof typeof ErrorCodes;

/** WebSocket close codes the gateway uses (4000–4999 is the application range). */
export const CloseCodes = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  PROTOCOL_ERROR: 1002,
  MESSAGE_TOO_BIG: 1009,
  INTERNAL: 1011,
  // The gateway could not decide now (a hello's token not checkable: the key set unreachable): reconnect later, same token.
  TRY_AGAIN_LATER: 1013,
  UNSUPPORTED_VERSION: 4000,
  SLOW_CONSUMER: 4001,
  // No hello completed within HELLO_TIMEOUT: the connection did nothing a client can use, and held a slot.
  HELLO_TIMEOUT: 4002,
  // 4400–4499 mirror HTTP's 4xx. 4401: the token expired (and no refresh came) or was refused: reconnect with a new one.
  REAUTHENTICATE: 4401,
  // The client kept sending frames refused for request errors, 1xxx codes (INVALID_FRAMES_CLOSE_AFTER): fix it.
  INVALID_REQUESTS: 4400,
  // The client kept sending into RATE_LIMITED refusals (RATE_LIMIT_CLOSE_AFTER): reconnect later, slower.
  RATE_LIMITED: 4429,
} as const;
