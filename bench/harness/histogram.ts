import * as hdr from "hdr-histogram-js";

/**
 * Latency in microseconds, in an HDR histogram: fixed memory, 3 significant digits at any
 * magnitude, and percentiles that are exact to that precision, unlike a sampled array.
 */
export class LatencyHistogram {
  private readonly h = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: 3, bitBucketSize: 64 });

  /** Records `micros` for `count` events that share it (the events of one frame). */
  record(micros: number, count = 1): void {
    const v = Math.max(1, Math.min(600_000_000, Math.round(micros)));
    if (count === 1) this.h.recordValue(v);
    else this.h.recordValueWithCount(v, count);
  }

  add(other: LatencyHistogram): void {
    this.h.add(other.h);
  }

  get count(): number {
    return this.h.totalCount;
  }

  /** Milliseconds at percentile `p` (0–100). */
  percentileMs(p: number): number {
    return this.h.totalCount === 0 ? 0 : this.h.getValueAtPercentile(p) / 1000;
  }

  summaryMs(): LatencySummary {
    const r = (x: number) => Number(x.toFixed(3));
    return {
      count: this.h.totalCount,
      p50: r(this.percentileMs(50)),
      p90: r(this.percentileMs(90)),
      p99: r(this.percentileMs(99)),
      p999: r(this.percentileMs(99.9)),
      max: r(this.h.maxValue / 1000),
    };
  }

  /** The percentile curve for the report: (percentile, ms) points on a log scale of 1/(1-p). */
  curveMs(): Array<[number, number]> {
    const out: Array<[number, number]> = [];
    if (this.h.totalCount === 0) return out;
    for (const p of [0, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99, 99.999, 100]) out.push([p, this.percentileMs(p)]);
    return out;
  }

  reset(): void {
    this.h.reset();
  }
}

export interface LatencySummary {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
}
