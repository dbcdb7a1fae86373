import type { LoopStalls } from "../limits/loop-stalls";

// setTimeout takes at most 2^31−1 ms (about 24.8 days); a token may live longer.
const MAX_TIMER_MS = 2 ** 31 - 1;
/** What a deadline that ran out across a stall of the gateway gets on top, after each such stall. */
export const AFTER_STALL_MS = 1_000;

/** Calls `then` at `time` (ms since the epoch; at once if past), however far off; returns the cancel. */
export function atTime(time: number, then: () => void): () => void {
  let timer: Timer;
  const step = () => {
    const left = time - Date.now();
    if (left > 0) timer = setTimeout(step, Math.min(left, MAX_TIMER_MS));
    else then();
  };
  timer = setTimeout(step, Math.min(Math.max(0, time - Date.now()), MAX_TIMER_MS));
  return () => clearTimeout(timer);
}

/**
 * A deadline the client has to meet (a hello, a refresh): calls `then` `ms` from now, unless the
 * gateway itself stood still meanwhile, in which case the client gets AFTER_STALL_MS more. When the
 * gateway wakes its timers run before its sockets are read, so what the client sent in time is still
 * unread (a 2.5 s stop closed every connection opened just before it, 3 of 3). Returns the cancel.
 */
export function clientDeadline(ms: number, then: () => void, stalls?: LoopStalls): () => void {
  let seen = stalls?.total ?? 0;
  let cancel: () => void;
  const due = () => {
    if (stalls) {
      stalls.observe(performance.now());
      if (stalls.total !== seen) {
        seen = stalls.total;
        cancel = atTime(Date.now() + AFTER_STALL_MS, due);
        return;
      }
    }
    then();
  };
  cancel = atTime(Date.now() + ms, due);
  return () => cancel();
}
