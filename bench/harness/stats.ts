/** Summaries of repeated runs: the issues ask for the median and range, never the best run. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** "median [min–max]". */
export function spread(xs: number[], digits = 2): string {
  if (xs.length === 0) return "";
  const fmt = (x: number) => x.toFixed(digits);
  return `${fmt(median(xs))} [${fmt(Math.min(...xs))}–${fmt(Math.max(...xs))}]`;
}
