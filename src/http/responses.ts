import { ErrorCodes } from "../protocol/codes";
import { GatewayError, type WireError, toWireError } from "../protocol/errors";
import type { ErrorCode } from "../protocol/codes";
import type { RefusalDelay } from "../limits/refusal-delay";

export function json(body: unknown, status = 200, headers?: Record<string, string>): Response {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });
}

/** Retry-After in whole seconds (its unit), rounded up from the error's hint; 1 s when it gives none. */
export function retryAfter(err: WireError): Record<string, string> | undefined {
  if (!err.retriable) return undefined;
  return { "retry-after": String(err.retryAfterMs === undefined ? 1 : Math.max(1, Math.ceil(err.retryAfterMs / 1000))) };
}

/** An error response: the HTTP status comes from the code's table entry, the body is the wire error. */
export function errorResponse(err: WireError): Response {
  return json({ error: err }, ErrorCodes[err.code].http, retryAfter(err));
}

/**
 * A rate refusal answered late (refusal-delay.ts), its retry hint less the time it waited, so that a
 * client honouring it waits no longer in all than it would have.
 */
export function lateErrorResponse(delay: RefusalDelay, err: WireError): Response | Promise<Response> {
  const after = err.retryAfterMs ?? 0;
  return delay.answer((waited) => {
    const left = Math.max(0, after - waited);
    // The message names the wait too: it says what is left, as the hint does.
    return errorResponse({ ...err, retryAfterMs: left, message: err.message.replace(/retry in \d+ ms/, `retry in ${left} ms`) });
  });
}

export function error(code: ErrorCode, message: string, headers?: Record<string, string>): Response {
  const err = toWireError(code, message);
  return json({ error: err }, ErrorCodes[code].http, { ...retryAfter(err), ...headers });
}

// HTTP/1.0 needs no Host (HAProxy's `option httpchk` sends none), and Bun then gives the path alone;
// Bun itself answers 400 to an HTTP/1.1 request without one. The name only completes the URL: the
// origin checks read the Host header itself.
const HOSTLESS_BASE = "http://gateway.invalid";

/** The request's URL: with a Host, as sent; an HTTP/1.0 request without one, its path; null when they form none. */
export function requestUrl(req: Request): URL | null {
  // Joined, not resolved against the base: "//evil.example/x" resolved is a URL of that host.
  return URL.parse(req.url) ?? (req.url.startsWith("/") && !req.headers.has("host") ? URL.parse(HOSTLESS_BASE + req.url) : null);
}

/**
 * A request whose Host header and path do not form a URL: every handler reads its URL, and one that
 * threw was answered 500 INTERNAL (outside tester). Handlers run behind this check read it with urlOf().
 */
export function unreadableUrl(req: Request): Response | null {
  return requestUrl(req) ? null : error("BAD_FRAME", "the request's Host header and path do not form a URL");
}

/** The URL of a request that passed unreadableUrl(). */
export function urlOf(req: Request): URL {
  const url = requestUrl(req);
  if (url === null) throw new GatewayError("BAD_FRAME", "the request's Host header and path do not form a URL");
  return url;
}
