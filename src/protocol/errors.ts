import { type ErrorCode, ErrorCodes } from "./codes";

// JavaScriptCore honours V8's Error.stackTraceLimit; the ES lib types do not declare it.
const V8Error = Error as ErrorConstructor & { stackTraceLimit: number };

/**
 * Which limit a RATE_LIMITED refusal is for: the connection's own rate, its principal's (shared by
 * all the principal's connections and requests), or its address's new connections.
 */
export type RateScope = "connection" | "principal" | "address" | "instance";

/** What some refusals carry besides their code and message. */
export interface ErrorDetail {
  /** For RATE_LIMITED: the milliseconds after which the same request would pass. */
  retryAfterMs?: number;
  /** For RATE_LIMITED: which limit refused it. */
  scope?: RateScope;
  /**
   * Kafka (or librdkafka, for the whole message timeout) did not know the event's topic: an
   * UNKNOWN_TOPIC refusal, or a timeout before any partition of it was ever known (never sent).
   * The publisher tells such events KAFKA_REJECTED when Kafka also lacked the topic when asked.
   */
  topicUnknown?: boolean;
}

/**
 * The one error type that crosses module boundaries: a stable code plus a human message.
 *
 * It is a refusal the client is told about, not a fault: nothing reads its stack, so none is
 * captured. Capturing one was 14% of the gateway's CPU under a reconnect flood (one refusal each).
 */
export class GatewayError extends Error {
  readonly code: ErrorCode;
  readonly retryAfterMs?: number;
  readonly scope?: RateScope;
  readonly topicUnknown?: boolean;
  constructor(code: ErrorCode, message: string, detail?: ErrorDetail) {
    const limit = V8Error.stackTraceLimit;
    V8Error.stackTraceLimit = 0;
    try {
      super(message);
    } finally {
      V8Error.stackTraceLimit = limit;
    }
    this.name = "GatewayError";
    this.code = code;
    if (detail?.retryAfterMs !== undefined) this.retryAfterMs = detail.retryAfterMs;
    if (detail?.scope !== undefined) this.scope = detail.scope;
    if (detail?.topicUnknown === true) this.topicUnknown = true;
  }
  get num(): number {
    return ErrorCodes[this.code].num;
  }
  get retriable(): boolean {
    return ErrorCodes[this.code].retriable;
  }
}

/** What a draining gateway answers any request, on every path (publish, subscribe, HTTP). */
export function shuttingDown(): GatewayError {
  return new GatewayError("SHUTTING_DOWN", "the gateway is shutting down; reconnect to another instance");
}

export function isGatewayError(e: unknown): e is GatewayError {
  return e instanceof GatewayError;
}

/** The wire form of an error, shared by nack frames, error frames and HTTP bodies. */
export interface WireError {
  code: ErrorCode;
  num: number;
  message: string;
  retriable: boolean;
  mayBePersisted: boolean;
  /** When a retry may pass (RATE_LIMITED); absent otherwise. */
  retryAfterMs?: number;
  /** Which limit refused it (RATE_LIMITED); absent otherwise. */
  scope?: RateScope;
}

export function toWireError(code: ErrorCode, message: string, detail?: ErrorDetail): WireError {
  const c = ErrorCodes[code];
  const err: WireError = { code, num: c.num, message, retriable: c.retriable, mayBePersisted: c.mayBePersisted };
  if (detail?.retryAfterMs !== undefined) err.retryAfterMs = detail.retryAfterMs;
  if (detail?.scope !== undefined) err.scope = detail.scope;
  return err;
}
