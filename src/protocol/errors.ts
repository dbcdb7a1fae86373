import { type ErrorCode, ErrorCodes } from "./codes";

/** The one error type that crosses module boundaries: a stable code plus a human message. */
export class GatewayError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string) {
    super(message);
    this.name = "GatewayError";
    this.code = code;
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
}

export function toWireError(code: ErrorCode, message: string): WireError {
  const c = ErrorCodes[code];
  return { code, num: c.num, message, retriable: c.retriable, mayBePersisted: c.mayBePersisted };
}
