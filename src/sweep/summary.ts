/** Reading a sweep: how far can K go before accuracy leaves a tolerance band around the baseline. */
import type { SweepPoint } from "../types.ts";

/**
 * The largest K such that every evaluated K' <= K keeps accuracy within `points` percentage
 * points of the baseline (K = 0). Returns 0 when even the first pruned K falls outside.
 *
 * @example
 * ```ts
 * largestKWithin(results, 1); // e.g. 57: pruning up to 57 channels costs at most 1 point
 * ```
 */
export function largestKWithin(results: SweepPoint[], points: number): number {
  const sorted = [...results].sort((a, b) => a.k - b.k);
  const base = sorted.find((r) => r.k === 0);
  if (!base) throw new Error("sweep has no K = 0 point");
  const floor = base.accuracy - points / 100;
  let best = 0;
  for (const r of sorted) {
    if (r.accuracy < floor - 1e-12) break;
    best = r.k;
  }
  return best;
}

/** The tolerance bands the summary reports, in percentage points. */
export const SUMMARY_BANDS = [1, 2, 5];
