import { isIP } from "node:net";
import type { Server } from "bun";
import type { Metrics } from "../observability/metrics";
import { error, unreadableUrl } from "./responses";

/**
 * Which browser pages may use the gateway (ALLOWED_ORIGINS), for WebSocket upgrades and HTTP alike.
 *
 * Browsers do not apply the same-origin policy to WebSockets, and a page's fetch of a simple request
 * reaches the server before CORS hides the answer: so a request from an origin not allowed is refused
 * here, before any work, rather than merely left without CORS headers. A request without Origin is
 * not from a browser page (curl, services, SDKs) and passes: Origin guards browsers' users, not the
 * gateway. The gateway's own host is allowed: that page is not cross-site.
 *
 * "Its own host" is what the Host header says, and after a DNS rebinding a page of the attacker's
 * (http://attacker.example, its name now pointing at the gateway) sends Host: attacker.example with
 * its own origin, and same-origin GETs with no Origin at all. With authentication on that gains it
 * nothing (tokens are never ambient). With it off, a browser's request to the gateway's own host is
 * served only when that host is one the gateway knows for its own: an IP address, localhost, or a
 * name in ALLOWED_HOSTS. A browser's request is one with Origin, or with Sec-Fetch-Site other than
 * `none` (which a typed URL or a bookmark sends).
 */
export class OriginPolicy {
  private readonly any: boolean;
  private readonly exact: ReadonlySet<string>;
  private readonly anyHost: boolean;
  private readonly hosts: ReadonlySet<string>;

  /**
   * `spec`: ALLOWED_ORIGINS as the config normalised it (`*`, or exact origins joined by commas);
   * `hosts`: ALLOWED_HOSTS (host names, or `*`); `authEnabled`: tokens guard every request.
   */
  constructor(spec: string, hosts = "", private readonly authEnabled = false) {
    const list = spec.split(",").filter(Boolean);
    this.any = list.includes("*");
    this.exact = new Set(list);
    const names = hosts.split(",").map((h) => h.trim().toLowerCase()).filter(Boolean);
    this.anyHost = names.includes("*");
    this.hosts = new Set(names);
  }

  /** Whether a request carrying this Origin header may go on. */
  allows(origin: string, host: string | null): boolean {
    if (this.any || this.exact.has(origin)) return true;
    // Same host: http(s)://HOST[:port] against the Host header the browser set for the same URL. Any
    // scheme passed before (chrome-extension://HOST, found by the outside security tester); https is
    // kept for a gateway behind a proxy that ends TLS, which it cannot tell from its own listener.
    const at = origin.startsWith("http://") ? 7 : origin.startsWith("https://") ? 8 : -1;
    return at > 0 && host !== null && origin.slice(at) === host.toLowerCase() && this.ownHost(host);
  }

  /** Whether a browser request with no Origin (a same-origin GET) may go on: only to a host of the gateway's own. */
  allowsSameOrigin(host: string | null): boolean {
    return this.any || (host !== null && this.ownHost(host));
  }

  private ownHost(host: string): boolean {
    if (this.authEnabled || this.anyHost) return true;
    const name = hostName(host.toLowerCase());
    return isIP(name) !== 0 || name === "localhost" || name.endsWith(".localhost") || this.hosts.has(name);
  }
}

/** The host of a Host header, without its port; an IPv6 literal without its brackets. */
function hostName(host: string): string {
  if (host.startsWith("[")) return host.slice(1, host.indexOf("]") >>> 0);
  const colon = host.lastIndexOf(":");
  return colon > 0 ? host.slice(0, colon) : host;
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
    const bad = unreadableUrl(req);
    if (bad) return bad;
    const origin = req.headers.get("origin");
    if (origin === null) {
      // A browser's same-origin GET carries no Origin, only Sec-Fetch-Site (none: typed or bookmarked).
      const site = req.headers.get("sec-fetch-site");
      if (site === null || site === "none" || policy.allowsSameOrigin(req.headers.get("host"))) return handler(req, server);
      metrics.originsRefused.inc({ transport });
      return error("ORIGIN_NOT_ALLOWED", hostRefusal(req));
    }
    if (!policy.allows(origin, req.headers.get("host"))) {
      metrics.originsRefused.inc({ transport });
      const sameHost = origin.slice(origin.indexOf("://") + 3) === (req.headers.get("host") ?? "").toLowerCase();
      return error("ORIGIN_NOT_ALLOWED", sameHost ? hostRefusal(req) : `origin ${origin.slice(0, 200)} is not allowed; the gateway's operator lists the allowed ones in ALLOWED_ORIGINS`);
    }
    const res = handler(req, server);
    return res instanceof Promise ? res.then((r) => cors(r, origin)) : cors(res, origin);
  }) as H;
}

function hostRefusal(req: Request): string {
  return `host ${(req.headers.get("host") ?? "").slice(0, 200)} is not one of this gateway's names, so a browser page there may not use it while authentication is off (a page whose name was rebound to the gateway's address looks just like this); the operator lists the gateway's names in ALLOWED_HOSTS, or turns authentication on`;
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
