import type { Server } from "bun";
import { errorResponse, lateErrorResponse, urlOf } from "./responses";
import { toWireError } from "../protocol/errors";
import { GatewayError } from "../protocol/errors";
import type { Audit } from "../auth/audit";
import { ANONYMOUS, type Authenticator, type Identity } from "../auth/authenticator";
import { bearerChallenge, bearerFromAuthorization, tokenGivenTwice } from "../auth/bearer";
import { type Action, check } from "../auth/policy";
import type { ClientAddress } from "./client-address";
import { wireError } from "../ingest/publisher";
import type { RateLimits } from "../limits/rate-limits";
import type { RefusalDelay } from "../limits/refusal-delay";
import type { Metrics } from "../observability/metrics";

/**
 * HTTP's side of authentication and authorization: `guard` answers 401 before a handler runs when the
 * request has no valid `Authorization: Bearer` token; `authorize` is the handler's per-topic check.
 */
/** What the guard needs besides the authenticator: who is asking, and the rate of refused tokens. */
export interface HttpAuthDeps {
  clientAddress: ClientAddress;
  rateLimits: RateLimits;
  refusalDelay: RefusalDelay;
  metrics: Metrics;
}

export function createHttpAuth(authenticator: Authenticator, audit: Audit, deps: HttpAuthDeps) {
  const { clientAddress, rateLimits, refusalDelay, metrics } = deps;
  const challenge = (err: GatewayError) => {
    const res = errorResponse(toWireError(err.code, err.message));
    const value = bearerChallenge(err);
    if (value) res.headers.set("www-authenticate", value);
    return res;
  };
  return {
    /**
     * `queryToken`: also take the token from `?access_token=`, for EventSource, which cannot set
     * headers (a token in a URL can end up in proxy logs: prefer short-lived ones there).
     */
    guard(handler: (req: Request, who: Identity, server: Server<unknown>) => Promise<Response>, opts: { queryToken?: boolean } = {}): (req: Request, server: Server<unknown>) => Promise<Response> {
      if (!authenticator.enabled) return (req, server) => handler(req, ANONYMOUS, server);
      return async (req, server) => {
        // Authorization in another scheme (Basic, for a proxy in front) is not ours: the query's token
        // then. A Bearer header without a token of the form is a bad token, as at the upgrade.
        const header = bearerFromAuthorization(req);
        const query = opts.queryToken ? (urlOf(req).searchParams.get("access_token") ?? undefined) : undefined;
        const token = header ?? query;
        const address = clientAddress(req, server);
        const tooMany = rateLimits.admitTokenCheck(address);
        if (tooMany) {
          metrics.rateLimited.inc({ transport: "http", scope: "address", unit: tooMany.unit });
          return lateErrorResponse(refusalDelay, wireError(tooMany.error));
        }
        let who: Identity;
        try {
          const twice = tokenGivenTwice(header, query, "access_token");
          if (twice) throw twice;
          if (!token) throw new GatewayError("UNAUTHENTICATED", "send Authorization: Bearer <token>");
          who = await authenticator.verify(token);
        } catch (e) {
          const err = e instanceof GatewayError ? e : new GatewayError("UNAUTHENTICATED", "the token is not accepted");
          rateLimits.tokenRefused(address);
          audit.record({ principal: "anonymous", action: "authenticate", outcome: "deny", code: err.code, reason: err.message, transport: "http", address });
          return challenge(err);
        }
        audit.record({ principal: who.principal, action: "authenticate", outcome: "allow", transport: "http", expiresAt: who.expiresAt, address });
        return handler(req, who, server);
      };
    },
    /** When `who`'s token stops being valid (exp plus the clock tolerance, ms since the epoch); Infinity without authentication. */
    validUntil(who: Identity): number {
      return authenticator.validUntil(who);
    },
    /** For the delivery-health view: FORBIDDEN unless the token's claim says `admin: true` (always, with authentication off). */
    authorizeAdmin(who: Identity): GatewayError | undefined {
      const err = who.grants.admin ? undefined : new GatewayError("FORBIDDEN", "the token does not grant admin (the delivery-health view needs admin: true in its claim)");
      audit.record({ principal: who.principal, action: "admin", outcome: err ? "deny" : "allow", ...(err ? { code: err.code, reason: err.message } : {}), transport: "http" });
      return err;
    },
    /** The refusal (FORBIDDEN), or undefined; every decision goes to the audit log. */
    authorize(who: Identity, action: Action, topic: string, events?: readonly unknown[]): GatewayError | undefined {
      const err = check(who.grants, action, topic, events);
      audit.record({ principal: who.principal, action, topic, outcome: err ? "deny" : "allow", ...(err ? { code: err.code, reason: err.message } : {}), transport: "http" });
      return err;
    },
  };
}

export type HttpAuth = ReturnType<typeof createHttpAuth>;
