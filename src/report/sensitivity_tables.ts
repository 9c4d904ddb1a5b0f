/**
 * The sensitivity results as tables, in the layouts other tools read: Distiller's long CSV
 * (parameter, sparsity, top1, top5, loss; accuracies in percent, as Distiller writes them) and
 * NNI's wide CSV (one row per layer, one column per sparsity; top-1 accuracy as a fraction).
 * Pure functions of the numbers: header + rows for `writeCsv`.
 */
import type { CsvCell } from "./outputs.ts";
import type { LayerSensitivityResult } from "../sensitivity/scan.ts";
import { largestKWithin } from "../sweep/summary.ts";
import { formatSeconds } from "../ui/progress.ts";

/** A CSV table: header and rows. */
export interface Table {
  header: string[];
  rows: CsvCell[][];
}

/**
 * Distiller's `sensitivity.csv`: one row per layer and evaluated K, sparsity = K / C, top1 and
 * top5 in percent, loss the mean cross-entropy.
 *
 * @example
 * ```ts
 * distillerTable(results).header; // ["parameter", "sparsity", "top1", "top5", "loss"]
 * ```
 */
export function distillerTable(results: LayerSensitivityResult[]): Table {
  return {
    header: ["parameter", "sparsity", "top1", "top5", "loss"],
    rows: results.flatMap((r) =>
      r.points.map((p) => [r.parameter, p.sparsity, 100 * p.top1, 100 * p.top5, p.loss])
    ),
  };
}

/**
 * NNI's layout: `layername`, then one column per sparsity. With `fractions` (the requested
 * ones), column f holds the top-1 accuracy at K = round(f * C); without, the columns are every
 * K / C that any layer evaluated, and a layer's cell is empty where it has no such point.
 *
 * @example
 * ```ts
 * nniTable(results, [0, 0.5]).header; // ["layername", "0", "0.5"]
 * ```
 */
export function nniTable(results: LayerSensitivityResult[], fractions?: number[]): Table {
  if (fractions) {
    return {
      header: ["layername", ...fractions.map(String)],
      rows: results.map((r) => [
        r.layer,
        ...fractions.map((f) => r.points.find((p) => p.k === Math.round(f * r.channels))?.top1 ?? null),
      ]),
    };
  }
  const sparsities = [...new Set(results.flatMap((r) => r.points.map((p) => p.sparsity)))].sort((a, b) =>
    a - b
  );
  return {
    header: ["layername", ...sparsities.map(String)],
    rows: results.map((
      r,
    ) => [r.layer, ...sparsities.map((s) => r.points.find((p) => p.sparsity === s)?.top1 ?? null)]),
  };
}

/** The lines `sensitivity` prints at the end: per layer, how far it prunes within 1 point, and top-1 near 50%. */
export function sensitivitySummary(
  results: LayerSensitivityResult[],
  skipped: { layer: string }[],
  baseline: number,
  timings: Record<string, number>,
  out: string,
): string {
  const pct = (x: number) => `${(x * 100).toFixed(2)}%`;
  const width = Math.max(5, ...results.map((r) => r.layer.length));
  const lines = [
    `baseline top-1: ${pct(baseline)}`,
    `${"layer".padEnd(width)}  channels  dead  largest pruned fraction within 1 point  top-1 at ~50%`,
    ...results.map((r) => {
      const k1 = largestKWithin(
        r.points.map((p) => ({
          k: p.k,
          channelPrunedAtK: null,
          correct: p.correct,
          total: p.total,
          accuracy: p.top1,
        })),
        1,
      );
      const half = r.points.reduce((b, p) => Math.abs(p.sparsity - 0.5) < Math.abs(b.sparsity - 0.5) ? p : b);
      return `${r.layer.padEnd(width)}  ${String(r.channels).padStart(8)}  ${
        String(r.dead.length).padStart(4)
      }  ` +
        `${`${(100 * k1 / r.channels).toFixed(0)}% (K = ${k1})`.padEnd(38)}  ${
          pct(half.top1)
        } (K = ${half.k})`;
    }),
    ...(skipped.length > 0 ? [`skipped (coupled): ${skipped.map((s) => s.layer).join(", ")}`] : []),
    `timings: ${Object.entries(timings).map(([k, v]) => `${k} ${formatSeconds(v)}`).join(", ")}`,
    `outputs in ${out}/`,
  ];
  return lines.join("\n");
}
