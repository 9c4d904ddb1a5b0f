/**
 * Per-class results of a sweep: the correct images of each true class at every K, gathered from
 * the sweep points (`SweepPoint.classCorrect`, which every engine counts), as a table
 * (`sweep_classes.csv`) and as a chart of per-class accuracy against K (`sweep_classes.svg`,
 * `.png`; the heatmap report.html shows).
 */
import { join } from "node:path";
import type { SweepPoint } from "../types.ts";
import { classAccuracyChart, type ClassAccuracyData } from "../viz/class_charts.ts";
import type { ChartSpec } from "../viz/charts.ts";
import type { Table } from "./criteria_tables.ts";
import { writeChart, writeCsv } from "./outputs.ts";

/**
 * The per-class counts of `points`, named: `names` where it has one name per class (the class
 * count is the counts' length, the model's output width), else "class 0", "class 1", ...;
 * `images[c]` counts class c among the first `count` of `labels`. Undefined when the points
 * carry no per-class counts.
 *
 * @example
 * ```ts
 * const d = classAccuracyData(points, loaded.classNames, test.labels, test.count);
 * d?.points[0].correct; // per class, at the first K
 * ```
 */
export function classAccuracyData(
  points: SweepPoint[],
  names: string[],
  labels: ArrayLike<number>,
  count: number,
): ClassAccuracyData | undefined {
  const classes = points[0]?.classCorrect?.length ?? 0;
  if (classes === 0 || points.some((p) => p.classCorrect?.length !== classes)) return undefined;
  const images = new Array<number>(classes).fill(0);
  for (let i = 0; i < count; i++) images[labels[i]]++;
  return {
    classes: names.length === classes ? names : Array.from({ length: classes }, (_, c) => `class ${c}`),
    images,
    points: points.map((p) => ({ k: p.k, correct: p.classCorrect! })),
  };
}

/**
 * The rows of `sweep_classes.csv`: k, then the correct images of each class, then each class's
 * accuracy (of its `images`).
 *
 * @example
 * ```ts
 * classTable(d).header; // ["k", "correct_airplane", ..., "accuracy_airplane", ...]
 * ```
 */
export function classTable(d: ClassAccuracyData): Table {
  return {
    header: ["k", ...d.classes.map((c) => `correct_${c}`), ...d.classes.map((c) => `accuracy_${c}`)],
    rows: d.points.map((p) => [
      p.k,
      ...p.correct,
      ...p.correct.map((x, c) => d.images[c] > 0 ? x / d.images[c] : null),
    ]),
  };
}

/** The chart of per-class accuracy against K for `layer`. */
export function classChart(d: ClassAccuracyData, layer: string): ChartSpec {
  return classAccuracyChart(d, { title: `${layer}: accuracy of each class` });
}

/**
 * Write `sweep_classes.csv` and `sweep_classes.svg` / `.png` into `dir`.
 *
 * @example
 * ```ts
 * await writeClassFiles("out/sweep", d, "block5_conv3");
 * ```
 */
export async function writeClassFiles(dir: string, d: ClassAccuracyData, layer: string): Promise<void> {
  const t = classTable(d);
  await writeCsv(join(dir, "sweep_classes.csv"), t.header, t.rows);
  await writeChart(join(dir, "sweep_classes"), classChart(d, layer));
}
