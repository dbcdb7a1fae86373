import type { Identity } from "../auth/authenticator";
import type { SubscriptionManager } from "../subscribe/manager";
import type { HttpAuth } from "./auth-guard";
import { error, errorResponse, json, urlOf } from "./responses";
import { unknownParam } from "./query";
import { toWireError } from "../protocol/errors";

const DEFAULT_ROWS = 500;
// Each row shows a bounded part of what its client chose (delivery-report.ts), so a page of this
// many is at most a few MB to build and send.
const MAX_ROWS = 2_000;

/**
 * GET /api/v1/admin/delivery: the delivery-health view (docs/dashboard.md). Every subscription on
 * this instance (the `limit` worst, most queued first) with what it was handed, queued, dropped and
 * told, its filter's selectivity and its lag; the ones that recently ended after losing events; and
 * what /health says of the instance, with readiness. It shows every client's peer and filter, so with
 * authentication on the token must carry `admin: true` in its claim.
 */
export function createDeliveryRoute(deps: {
  subscriptions: SubscriptionManager;
  auth: HttpAuth;
  bufferBytes: number;
  health: () => { log: { ready: boolean } };
  ready: () => boolean;
}) {
  return async (req: Request, who: Identity): Promise<Response> => {
    const denied = deps.auth.authorizeAdmin(who);
    if (denied) return errorResponse(toWireError(denied.code, denied.message));
    // Digits only, and once (docs/protocol.md: parameters given twice are refused): Number() would
    // also read 1e3, 0x10 and " 10".
    const params = urlOf(req).searchParams;
    const unknown = unknownParam(params, ["limit"]);
    if (unknown) return error(unknown.code, unknown.message);
    const given = params.getAll("limit");
    const limit = given.length === 0 ? DEFAULT_ROWS : given.length === 1 && /^[0-9]{1,7}$/.test(given[0]!) ? Number(given[0]) : Number.NaN;
    if (!(limit >= 1 && limit <= MAX_ROWS)) return error("INVALID_FRAME", `limit must be a whole number from 1 to ${MAX_ROWS}, given once`);
    const { total, rows, ended } = await deps.subscriptions.delivery(limit);
    return json(
      { time: Date.now(), ready: deps.ready(), bufferBytes: deps.bufferBytes, total, subscriptions: rows, ended, health: deps.health() },
      200,
      // Live figures: never from a cache.
      { "cache-control": "no-store" },
    );
  };
}
