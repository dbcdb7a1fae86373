import { type ErrorCode, ErrorCodes } from "./codes";

// JavaScriptCore honours V8's Error.stackTraceLimit; the ES lib types do not declare it.
const V8Error = Error as ErrorConstructor & { stackTraceLimit: number };

/**
 * The one error type that crosses module boundaries: a stable code plus a human message.
 *
 * It is a refusal the client is told about, not a fault: nothing reads its stack, so none is
 * captured. Capturing one was 14% of the gateway's CPU under a reconnect flood (one refusal each).
 */
export class GatewayError extends Error {
  readonly code: ErrorCode;
  /** For RATE_LIMITED: the milliseconds after which the same request would pass. */
  readonly retryAfterMs?: number;
  constructor(code: ErrorCode, message: string, detail?: { retryAfterMs?: number }) {
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
  }
  get num(): number {
    return ErrorCodes[this.code].num;
  }
  get retriable(): boolean {
    return ErrorCodes[this.code].retriable;
  }
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
}

export function toWireError(code: ErrorCode, message: string, retryAfterMs?: number): WireError {
  const c = ErrorCodes[code];
  const err: WireError = { code, num: c.num, message, retriable: c.retriable, mayBePersisted: c.mayBePersisted };
  if (retryAfterMs !== undefined) err.retryAfterMs = retryAfterMs;
  return err;
}
