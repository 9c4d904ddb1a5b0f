/**
 * The sensitivity results as tables, in the layouts other tools read: Distiller's long CSV
 * (parameter, sparsity, top1, top5, loss; accuracies in percent, as Distiller writes them) and
 * NNI's wide CSV (one row per layer, one column per sparsity; top-1 accuracy as a fraction).
 * Pure functions of the numbers: header + rows for `writeCsv`.
 */
import type { CsvCell } from "./outputs.ts";
import type { LayerSensitivityResult } from "../sensitivity/scan.ts";

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
