/**
 * Latencies counted in 10 µs buckets up to 100 ms (one more bucket for anything slower), so
 * that the histograms of several processes add up to one and percentiles of millions of
 * samples need no sorting.
 */
const BUCKET_MS = 0.01;
const BUCKETS = 10_000;

export class LatencyHistogram {
  private readonly buckets: number[];

  constructor(counts?: readonly number[]) {
    this.buckets = counts ? [...counts] : new Array<number>(BUCKETS + 1).fill(0);
  }

  record(ms: number): void {
    this.buckets[Math.min(BUCKETS, Math.floor(ms / BUCKET_MS))]!++;
  }

  /** Adds another histogram's counts to this one. */
  add(counts: readonly number[]): void {
    counts.forEach((c, i) => (this.buckets[i]! += c));
  }

  counts(): number[] {
    return [...this.buckets];
  }

  get total(): number {
    return this.buckets.reduce((a, b) => a + b, 0);
  }

  /** The upper edge (ms) of the bucket holding the p-th percentile (0..100); NaN when empty. */
  percentile(p: number): number {
    const total = this.total;
    if (total === 0) return NaN;
    const rank = Math.max(1, Math.ceil((p / 100) * total));
    let seen = 0;
    for (let i = 0; i < this.buckets.length; i++) {
      seen += this.buckets[i]!;
      if (seen >= rank) return i === BUCKETS ? Infinity : (i + 1) * BUCKET_MS;
    }
    return Infinity;
  }
}
