import http from "node:http";
import type { Server } from "bun";
import type { Metrics } from "../observability/metrics";
import { type OriginPolicy, preflight, withOrigin } from "./origins";
import { error } from "./responses";

type RouteHandler = (req: Request, server: Server<any>) => Response | Promise<Response>;
type Routes = Record<string, Record<string, RouteHandler>>;

/**
 * The methods Bun's router dispatches (besides OPTIONS, which every path has). Each one a path does
 * not take is routed there too, to a 405: the router matches the path as sent, so a request that
 * reaches the fallback with one of these methods was sent with another path, one whose . or ..
 * segments resolve to a route (req.url has them resolved), and is a 404 whatever its method.
 */
export const ROUTED_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"] as const;

/** The 405 for `req` on a known `path` that takes only the methods `allow` lists. */
export function methodNotAllowed(req: Request, path: string, allow: string): Response {
  return error("METHOD_NOT_ALLOWED", `${req.method} is not allowed on ${path}; use ${allow}`, { allow });
}

/**
 * The route table as Bun.serve takes it: every handler behind the origin check (src/http/origins.ts),
 * and OPTIONS on every path, answering CORS preflights and plain OPTIONS alike with what it takes.
 * While `closing()`, each answer closes its connection (closingAnswers).
 */
export function httpRoutes<R extends Routes>(origins: OriginPolicy, metrics: Metrics, routes: R, closing: () => boolean): { routes: Routes; allowed: Map<string, string> } {
  const out: Routes = {};
  /** Each path's methods, for Allow on OPTIONS and on a 405. */
  const allowed = new Map<string, string>();
  for (const [path, methods] of Object.entries(routes)) {
    // Bun answers HEAD for every GET route by itself.
    const allow = [...Object.keys(methods), ...("GET" in methods ? ["HEAD"] : []), "OPTIONS"].join(", ");
    allowed.set(path, allow);
    const wrapped: Record<string, RouteHandler> = {};
    for (const [method, handler] of Object.entries(methods)) wrapped[method] = closingAnswers(closing, withOrigin(origins, metrics, "http", handler));
    const refuse: RouteHandler = (req) => methodNotAllowed(req, path, allow);
    for (const method of ROUTED_METHODS) if (!allow.split(", ").includes(method)) wrapped[method] = closingAnswers(closing, withOrigin(origins, metrics, "http", refuse));
    wrapped.OPTIONS = closingAnswers(closing, withOrigin(origins, metrics, "http", preflight(allow) as RouteHandler));
    out[path] = wrapped;
  }
  return { routes: out, allowed };
}

/**
 * `handler`, whose answers close their connection (`Connection: close`, which Bun honours) while the
 * gateway drains. Kept alive, a connection answered 503 SHUTTING_DOWN carried the client's next
 * request, and the process ended with it read and unanswered: a reset, the client not knowing
 * whether it was taken (outside probe: 5-20 requests a drain, 6 of 9 drains). On a new connection,
 * it is answered, or refused before it is sent once the gateway stops listening.
 */
export function closingAnswers<A extends unknown[]>(closing: () => boolean, handler: (req: Request, ...rest: A) => Response | Promise<Response>): (req: Request, ...rest: A) => Response | Promise<Response> {
  const close = (res: Response): Response => {
    if (closing()) res.headers.set("connection", "close");
    return res;
  };
  return (req, ...rest) => {
    const res = handler(req, ...rest);
    return res instanceof Response ? close(res) : res.then(close);
  };
}

/**
 * The largest request head Bun's HTTP server reads (request line and headers): past it, Bun answers
 * 431 and closes. Bun takes it process-wide from node:http's maxHeaderSize (what --max-http-header-size
 * sets), so it is set here, before the server starts; it bounds what one connection can make the
 * gateway buffer before any handler runs.
 */
export function applyHttpHeaderLimit(bytes: number): void {
  (http as { maxHeaderSize: number }).maxHeaderSize = bytes;
}
