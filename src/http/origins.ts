import type { Server } from "bun";
import type { Metrics } from "../observability/metrics";
import { error } from "./responses";

/**
 * Which browser pages may use the gateway (ALLOWED_ORIGINS), for WebSocket upgrades and HTTP alike.
 *
 * Browsers do not apply the same-origin policy to WebSockets, and a page's fetch of a simple request
 * reaches the server before CORS hides the answer: so a request from an origin not allowed is refused
 * here, before any work, rather than merely left without CORS headers. A request without Origin is
 * not from a browser page (curl, services, SDKs) and passes: Origin guards browsers' users, not the
 * gateway. The gateway's own host is always allowed: that page is not cross-site.
 */
export class OriginPolicy {
  private readonly any: boolean;
  private readonly exact: ReadonlySet<string>;

  /** `spec`: ALLOWED_ORIGINS as the config normalised it (`*`, or exact origins joined by commas). */
  constructor(spec: string) {
    const list = spec.split(",").filter(Boolean);
    this.any = list.includes("*");
    this.exact = new Set(list);
  }

  /** Whether a request carrying this Origin header may go on. */
  allows(origin: string, host: string | null): boolean {
    if (this.any || this.exact.has(origin)) return true;
    // Same host: scheme://HOST[:port] against the Host header the browser set for the same URL.
    const at = origin.indexOf("://");
    return at > 0 && host !== null && origin.slice(at + 3) === host.toLowerCase();
  }
}

type Handler = (req: Request, server: Server<any>) => Response | undefined | Promise<Response | undefined>;

// Browsers cache a preflight for at most this long (Chrome caps it at 2 h): a change of
// ALLOWED_ORIGINS reaches them within 10 min.
export const PREFLIGHT_MAX_AGE_S = 600;
/** The request headers a page may send: the token and the body's type; nothing else is read. */
export const CORS_ALLOW_HEADERS = "Authorization, Content-Type";
// Readable by the page: the error's advice, the challenge and the methods of a 405.
const CORS_EXPOSE_HEADERS = "Retry-After, WWW-Authenticate, Allow";

/**
 * Wraps a handler with the origin check and CORS response headers: no Origin, unchanged; a refused
 * one, 403 ORIGIN_NOT_ALLOWED; an allowed one, the handler's response with the Origin echoed.
 */
export function withOrigin<H extends Handler>(policy: OriginPolicy, metrics: Metrics, transport: "http" | "ws", handler: H): H {
  return ((req: Request, server: Server<any>) => {
    const origin = req.headers.get("origin");
    if (origin === null) return handler(req, server);
    if (!policy.allows(origin, req.headers.get("host"))) {
      metrics.originsRefused.inc({ transport });
      return error("ORIGIN_NOT_ALLOWED", `origin ${origin.slice(0, 200)} is not allowed; the gateway's operator lists the allowed ones in ALLOWED_ORIGINS`);
    }
    const res = handler(req, server);
    return res instanceof Promise ? res.then((r) => cors(r, origin)) : cors(res, origin);
  }) as H;
}

function cors(res: Response | undefined, origin: string): Response | undefined {
  if (!res) return res; // upgraded: there is no HTTP response
  res.headers.set("access-control-allow-origin", origin);
  res.headers.append("vary", "Origin");
  res.headers.set("access-control-expose-headers", CORS_EXPOSE_HEADERS);
  return res;
}

/**
 * OPTIONS on a route: a CORS preflight (Origin and Access-Control-Request-Method) is answered with
 * what the route takes; a plain OPTIONS with Allow. The origin check runs before (withOrigin).
 */
export function preflight(allow: string): Handler {
  return (req) => {
    if (req.headers.get("origin") === null || req.headers.get("access-control-request-method") === null) {
      return new Response(null, { status: 204, headers: { allow } });
    }
    return new Response(null, {
      status: 204,
      headers: {
        allow,
        "access-control-allow-methods": allow,
        "access-control-allow-headers": CORS_ALLOW_HEADERS,
        "access-control-max-age": String(PREFLIGHT_MAX_AGE_S),
      },
    });
  };
}
