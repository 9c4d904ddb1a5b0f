/**
 * Comparing criteria on one layer: the sweeps of several rankings (one per criterion, several
 * seeds for `random`) summarised per criterion as one accuracy line with a min..max band, and
 * read at fixed fractions of the layer's channels ("which criterion keeps accuracy best at 50%?").
 */
import type { Ranking, SweepPoint } from "../types.ts";

/** One sweep of one ranking. */
export interface CriterionRun {
  criterion: string;
  /** Chart label. */
  label: string;
  /** Seeded criteria only. */
  seed?: number;
  ranking: Ranking;
  results: SweepPoint[];
}

/** A criterion's accuracy at one K over its runs (one run: mean = min = max). */
export interface ComparisonPoint {
  k: number;
  accuracy: number;
  min: number;
  max: number;
}

/** A criterion over all its runs. */
export interface CriterionSummary {
  criterion: string;
  label: string;
  runs: number;
  seeds: number[];
  points: ComparisonPoint[];
}

/**
 * Group runs by criterion (first-seen order) and take the mean, min and max accuracy at each K
 * over each criterion's runs. Every run of a criterion must cover the same K values.
 *
 * @example
 * ```ts
 * summarizeRuns(runs).find((s) => s.criterion === "random")!.points[10]; // { k: 10, accuracy, min, max }
 * ```
 */
export function summarizeRuns(runs: CriterionRun[]): CriterionSummary[] {
  const groups = new Map<string, CriterionRun[]>();
  for (const r of runs) groups.set(r.criterion, [...(groups.get(r.criterion) ?? []), r]);
  return [...groups.values()].map((group) => {
    const ks = group[0].results.map((p) => p.k);
    const points = ks.map((k, i) => {
      const accs = group.map((r) => {
        const p = r.results[i];
        if (!p || p.k !== k) throw new Error(`runs of ${r.criterion} differ in their K values`);
        return p.accuracy;
      });
      return {
        k,
        accuracy: accs.reduce((s, a) => s + a, 0) / accs.length,
        min: Math.min(...accs),
        max: Math.max(...accs),
      };
    });
    return {
      criterion: group[0].criterion,
      label: group[0].label,
      runs: group.length,
      seeds: group.flatMap((r) => r.seed === undefined ? [] : [r.seed]),
      points,
    };
  });
}

/** The point of `points` whose K is nearest round(fraction * channels) (lower K on a tie). */
export function pointNearFraction(
  points: ComparisonPoint[],
  fraction: number,
  channels: number,
): ComparisonPoint {
  const target = Math.round(fraction * channels);
  return points.reduce((best, p) => Math.abs(p.k - target) < Math.abs(best.k - target) ? p : best);
}

/** Each criterion's (mean) accuracy at a fraction of the channels pruned, and the best one. */
export interface FractionVerdict {
  fraction: number;
  k: number;
  accuracies: { criterion: string; accuracy: number }[];
  /** The criteria with the highest accuracy there (several on a tie). */
  best: string[];
}

/**
 * For each fraction, every criterion's accuracy at K nearest fraction x C, and the best criteria.
 *
 * @example
 * ```ts
 * verdictsAt(summaries, [0.25, 0.5, 0.75], 512)[1].best; // e.g. ["l1"]
 * ```
 */
export function verdictsAt(
  summaries: CriterionSummary[],
  fractions: number[],
  channels: number,
): FractionVerdict[] {
  return fractions.map((fraction) => {
    const accuracies = summaries.map((s) => ({
      criterion: s.criterion,
      accuracy: pointNearFraction(s.points, fraction, channels).accuracy,
      k: pointNearFraction(s.points, fraction, channels).k,
    }));
    const top = Math.max(...accuracies.map((a) => a.accuracy));
    return {
      fraction,
      k: accuracies[0]?.k ?? 0,
      accuracies: accuracies.map(({ criterion, accuracy }) => ({ criterion, accuracy })),
      best: accuracies.filter((a) => a.accuracy === top).map((a) => a.criterion),
    };
  });
}
