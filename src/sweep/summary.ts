/** Reading a sweep: how far can K go before accuracy leaves a tolerance band around the baseline. */
import type { CalibCurve, SweepPoint } from "../types.ts";

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

/** The K of one tolerance band, the data that chose it, and its test accuracy. */
export interface BandChoice {
  points: number;
  k: number;
  /** "calib": read off the held-out curve; "test": read off the test curve itself (the lab's way). */
  chosenOn: "calib" | "test";
  testAccuracy: number;
  /** The held-out accuracy at K, when the held-out curve chose. */
  calibAccuracy?: number;
}

/**
 * The largest K within each band: on the held-out curve when there is one (then the test curve
 * only reports it), else on the test curve.
 *
 * @example
 * ```ts
 * bandChoices(result.results, result.calib); // [{ points: 1, k: 40, chosenOn: "calib", ... }, ...]
 * ```
 */
export function bandChoices(
  test: SweepPoint[],
  calib?: Pick<CalibCurve, "results">,
  bands = SUMMARY_BANDS,
): BandChoice[] {
  return bands.map((points) => {
    const k = largestKWithin(calib?.results ?? test, points);
    const testPoint = test.find((p) => p.k === k);
    if (!testPoint) throw new Error(`the test sweep has no point at K = ${k}`);
    return {
      points,
      k,
      chosenOn: calib ? "calib" : "test",
      testAccuracy: testPoint.accuracy,
      ...(calib ? { calibAccuracy: calib.results.find((p) => p.k === k)!.accuracy } : {}),
    };
  });
}

/** "chosen on the held-out data" or "read off the test curve": what chose a band's K. */
export function chosenOnText(c: Pick<BandChoice, "chosenOn">): string {
  return c.chosenOn === "calib" ? "chosen on the held-out data" : "read off the test curve";
}

/**
 * A warning line when `accuracy` on `images` images is no better than guessing among `classes`
 * (within three standard errors of 1/classes, and at least 2 points): such a baseline usually
 * means the model is not being fed what it was trained on. Null when the accuracy is fine.
 *
 * @example
 * ```ts
 * chanceLevelWarning(0.101, 10000); // "warning: the baseline accuracy (K = 0) is 10.10% ..."
 * chanceLevelWarning(0.81, 10000); // null
 * ```
 */
export function chanceLevelWarning(accuracy: number, images: number, classes = 10): string | null {
  const chance = 1 / classes;
  const margin = Math.max(0.02, 3 * Math.sqrt(chance * (1 - chance) / Math.max(1, images)));
  if (!(accuracy <= chance + margin)) return null;
  return `warning: the baseline accuracy (K = 0) is ${(accuracy * 100).toFixed(2)}% on ${images} images, ` +
    `chance level for ${classes} classes, so the chart says nothing about pruning. Likely causes: wrong ` +
    `preprocessing (--scale, --mean, --std), a different class order than the data's, or an untrained model.`;
}
