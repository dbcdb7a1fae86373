// setTimeout takes at most 2^31−1 ms (about 24.8 days); a token may live longer.
const MAX_TIMER_MS = 2 ** 31 - 1;

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
