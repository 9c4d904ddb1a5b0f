/**
 * Tables and chart series of a criteria comparison (`sweep --criterion a,b,...`): the wide
 * `sweep.csv` (k, one accuracy column per criterion, seeded ones as mean/min/max), each
 * criterion's detailed `sweep_<criterion>.csv`, its `ranking_<criterion>.csv`, and the series
 * of the overlay chart. Pure functions of the numbers.
 */
import type { CsvCell } from "./outputs.ts";
import type { CriterionRun, CriterionSummary } from "./compare.ts";
import type { AccuracySeries } from "../viz/charts.ts";
import type { CalibCurve } from "../types.ts";

/** A CSV table: header and rows. */
export interface Table {
  header: string[];
  rows: CsvCell[][];
}

/**
 * `k`, then `accuracy_<criterion>` per criterion, or `accuracy_<criterion>_mean`, `_min`, `_max`
 * for a criterion with several runs (random over seeds). All criteria must cover the same K.
 *
 * @example
 * ```ts
 * comparisonTable(summaries).header; // ["k", "accuracy_mean", "accuracy_random_mean", "accuracy_random_min", ...]
 * ```
 */
export function comparisonTable(summaries: CriterionSummary[]): Table {
  const header = ["k"];
  for (const s of summaries) {
    if (s.runs > 1) {
      header.push(
        `accuracy_${s.criterion}_mean`,
        `accuracy_${s.criterion}_min`,
        `accuracy_${s.criterion}_max`,
      );
    } else header.push(`accuracy_${s.criterion}`);
  }
  const ks = summaries[0]?.points.map((p) => p.k) ?? [];
  const rows = ks.map((k, i) => {
    const row: CsvCell[] = [k];
    for (const s of summaries) {
      const p = s.points[i];
      if (p.k !== k) throw new Error(`criterion ${s.criterion} has other K values`);
      if (s.runs > 1) row.push(p.accuracy, p.min, p.max);
      else row.push(p.accuracy);
    }
    return row;
  });
  return { header, rows };
}

/**
 * One criterion's detailed sweep: the single-criterion `sweep.csv` columns (k,
 * channel_pruned_at_k, accuracy, correct, total), preceded by `seed` for a seeded criterion
 * (one block of rows per seed).
 *
 * @example
 * ```ts
 * detailTable(runs.filter((r) => r.criterion === "random")).header[0]; // "seed"
 * ```
 */
export function detailTable(runs: CriterionRun[]): Table {
  const seeded = runs.some((r) => r.seed !== undefined);
  const header = ["k", "channel_pruned_at_k", "accuracy", "correct", "total"];
  return {
    header: seeded ? ["seed", ...header] : header,
    rows: runs.flatMap((r) =>
      r.results.map((p) => {
        const row: CsvCell[] = [p.k, p.channelPrunedAtK, p.accuracy, p.correct, p.total];
        return seeded ? [r.seed ?? null, ...row] : row;
      })
    ),
  };
}

/**
 * A criterion's ranking: rank, channel and its score (`scoreName` column), preceded by `seed`
 * for a seeded criterion.
 *
 * @example
 * ```ts
 * rankingTable([run], "mean_activation").header; // ["rank", "channel", "mean_activation"]
 * ```
 */
export function rankingTable(runs: CriterionRun[], scoreName: string): Table {
  const seeded = runs.some((r) => r.seed !== undefined);
  return {
    header: seeded ? ["seed", "rank", "channel", scoreName] : ["rank", "channel", scoreName],
    rows: runs.flatMap((r) =>
      r.ranking.order.map((ch, i) => {
        const row: CsvCell[] = [i, ch, r.ranking.scores[ch]];
        return seeded ? [r.seed ?? null, ...row] : row;
      })
    ),
  };
}

/**
 * The overlay chart's series: one line per criterion (the mean over its runs), with a min..max
 * band for a criterion with several runs, labelled "random (5 seeds)".
 *
 * @example
 * ```ts
 * accuracyChart(comparisonSeries(summaries), { title, baseline, channels });
 * ```
 */
export function comparisonSeries(summaries: CriterionSummary[]): AccuracySeries[] {
  return summaries.map((s) => ({
    criterion: s.runs > 1 ? `${s.label} (${s.runs} seeds)` : s.label,
    points: s.points.map((p) => ({ k: p.k, accuracy: p.accuracy })),
    ...(s.runs > 1 ? { band: s.points.map((p) => ({ k: p.k, min: p.min, max: p.max })) } : {}),
  }));
}

/**
 * sweep.csv: one ranking's `detailTable`, or several criteria's `comparisonTable`; with held-out
 * data, its curve as `calib_accuracy`, `calib_correct`, `calib_total` columns after them (the
 * source is in sweep.json's `calib`).
 *
 * @example
 * ```ts
 * sweepTable(runs, summaries, result.calib).header; // ["k", ..., "calib_accuracy", "calib_correct", "calib_total"]
 * ```
 */
export function sweepTable(runs: CriterionRun[], summaries: CriterionSummary[], calib?: CalibCurve): Table {
  const table = runs.length === 1 ? detailTable(runs) : comparisonTable(summaries);
  if (!calib) return table;
  const kAt = table.header.indexOf("k");
  const byK = new Map(calib.results.map((p) => [p.k, p]));
  return {
    header: [...table.header, "calib_accuracy", "calib_correct", "calib_total"],
    rows: table.rows.map((row) => {
      const p = byK.get(row[kAt] as number);
      return [...row, p?.accuracy ?? null, p?.correct ?? null, p?.total ?? null];
    }),
  };
}
