/**
 * Latency percentiles of a row measured in several slices (the rows of bench/access.ts take
 * turns, so that a change in the machine's load hits every row alike): each slice reports its
 * request count and its latency at a list of percentiles (wrk and autocannon print no raw
 * histogram); the percentile of all slices together is found on the request-weighted mixture
 * of the slices' distributions, each read as a step function between its reported points.
 */

/** The percentiles a load run of wrk or of bench/paced-load.ts reports (autocannon has its own fixed list). */
export const REPORTED_PERCENTILES = [1, 5, 10, 20, 30, 40, 50, 60, 70, 75, 80, 85, 90, 95, 97, 98, 99, 99.5, 99.9, 99.99];

/** One slice: how many requests, and [percentile (0..100), latency ms] pairs, ascending. */
export interface QuantileSlice {
  requests: number;
  points: Array<[number, number]>;
}

/** The fraction (0..1) of a slice's requests at or below `ms`, from its reported points (in order of percentile). */
function fractionAtOrBelow(slice: QuantileSlice, ms: number): number {
  let fraction = 0;
  for (const [p, v] of slice.points) {
    if (v > ms) break;
    fraction = p / 100;
  }
  return fraction;
}

/** The p-th percentile (0..100) of all slices together: the least reported latency that covers p% of all requests. */
export function mergedPercentile(slices: readonly QuantileSlice[], p: number): number {
  const total = slices.reduce((a, s) => a + s.requests, 0);
  if (total === 0) return NaN;
  const candidates = [...new Set(slices.flatMap((s) => s.points.map(([, v]) => v)))].sort((a, b) => a - b);
  for (const ms of candidates) {
    const covered = slices.reduce((a, s) => a + s.requests * fractionAtOrBelow(s, ms), 0);
    // A small tolerance: the reported percentiles are rounded.
    if (covered >= (p / 100) * total - 1e-6) return ms;
  }
  return candidates[candidates.length - 1] ?? NaN;
}
