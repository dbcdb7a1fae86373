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
 * A view of thousands of subscriptions takes tens of milliseconds of the event loop to build, and
 * anyone allowed to ask (everyone, with authentication off) could ask in a loop: four clients
 * polling 2,000 rows back to back kept a control's p99 at 3-6 times its quiet value (outside
 * tester). Builds are spaced so that they take at most a quarter of the loop (each waits three times
 * the last one's cost after it), and at most MAX_WAITING requests wait for their turn; more get 429.
 * One builds at a time: on Kafka a build awaits the topics' watermarks from the workers, and every
 * request arriving meanwhile had started a build of its own (a burst of 30 built side by side).
 */
const SPACING = 3;
const MAX_WAITING = 8;
/** The least a build is taken to cost when telling a refused client when to come back. */
const MIN_COST_MS = 10;

/** False when the client went away first. */
function untilTurnOrGone(turn: Promise<unknown>, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const left = () => resolve(false);
    signal.addEventListener("abort", left, { once: true });
    turn.then(() => {
      signal.removeEventListener("abort", left);
      resolve(true);
    });
  });
}

/** The answer to a client that has gone: nobody reads it. */
const gone = () => new Response(null, { status: 499 });

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
  let nextBuildAt = 0;
  let lastCostMs = 0;
  let waiting = 0;
  /** Settles when the build under way ends; null when none is. */
  let building: Promise<void> | null = null;
  let buildStartedAt = 0;
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
    if (building || nextBuildAt > performance.now()) {
      if (waiting >= MAX_WAITING) {
        // When the builds waiting now would be done: the next build's turn, then each waiter's build and spacing.
        // Before any build has ended, the one under way has cost at least what it has run so far.
        const now = performance.now();
        const cost = Math.max(lastCostMs, building ? now - buildStartedAt : 0, MIN_COST_MS);
        const retryAfterMs = Math.ceil(Math.max(0, nextBuildAt - now) + (waiting + 1) * (1 + SPACING) * cost);
        return errorResponse(toWireError("RATE_LIMITED", `${MAX_WAITING} requests for the delivery view are waiting their turn already (each build costs ${lastCostMs.toFixed(0)} ms of the gateway's time); retry after ${retryAfterMs} ms`, { retryAfterMs, scope: "instance" }));
      }
      waiting++;
      try {
        // Woken together, the first to run takes the turn (synchronously, below); the others wait again.
        // A client that leaves gives its place up at once: it would otherwise hold one of the few
        // places, and then build a view nobody reads.
        while (building || nextBuildAt > performance.now()) {
          if (!(await untilTurnOrGone(building ?? Bun.sleep(nextBuildAt - performance.now()), req.signal))) return gone();
        }
      } finally {
        waiting--;
      }
    }
    if (req.signal.aborted) return gone();
    let ended!: () => void;
    building = new Promise((resolve) => (ended = resolve));
    buildStartedAt = performance.now();
    try {
      const view = await deps.subscriptions.delivery(limit);
      return json(
        { time: Date.now(), ready: deps.ready(), bufferBytes: deps.bufferBytes, total: view.total, subscriptions: view.rows, ended: view.ended, health: deps.health() },
        200,
        // Live figures: never from a cache.
        { "cache-control": "no-store" },
      );
    } finally {
      // The await for watermarks inside is not the loop's time, but is counted: the spacing errs long.
      lastCostMs = performance.now() - buildStartedAt;
      nextBuildAt = performance.now() + SPACING * lastCostMs;
      building = null;
      ended();
    }
  };
}
