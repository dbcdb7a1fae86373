import { ErrorCodes } from "../protocol/codes";
import { type WireError, toWireError } from "../protocol/errors";
import type { ErrorCode } from "../protocol/codes";

export function json(body: unknown, status = 200, headers?: Record<string, string>): Response {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });
}

export function retryAfter(err: WireError): Record<string, string> | undefined {
  return err.retriable ? { "retry-after": "1" } : undefined;
}

/** An error response: the HTTP status comes from the code's table entry, the body is the wire error. */
export function errorResponse(err: WireError): Response {
  return json({ error: err }, ErrorCodes[err.code].http, retryAfter(err));
}

export function error(code: ErrorCode, message: string, headers?: Record<string, string>): Response {
  const err = toWireError(code, message);
  return json({ error: err }, ErrorCodes[code].http, { ...retryAfter(err), ...headers });
}
