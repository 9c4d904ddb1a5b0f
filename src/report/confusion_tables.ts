/**
 * A confusion matrix as a table (`confusion_k<K>.csv`, and the report's table): one row per true
 * class, one column per predicted class, then the row's images and the class's accuracy; and
 * the files of one matrix (CSV, JSON, chart).
 */
import { join } from "node:path";
import type { ConfusionMatrix } from "../surgery/confusion.ts";
import { confusionChart } from "../viz/class_charts.ts";
import type { Table } from "./criteria_tables.ts";
import { writeChart, writeCsv, writeJson } from "./outputs.ts";

/**
 * The rows of `confusion_k<K>.csv`.
 *
 * @example
 * ```ts
 * confusionTable(m).header; // ["true_class", "airplane", ..., "truck", "images", "accuracy"]
 * ```
 */
export function confusionTable(m: ConfusionMatrix): Table {
  return {
    header: ["true_class", ...m.classes, "images", "accuracy"],
    rows: m.counts.map((row, t) => {
      const images = row.reduce((s, x) => s + x, 0);
      return [m.classes[t], ...row, images, images > 0 ? row[t] / images : null];
    }),
  };
}

/**
 * Write `confusion_k<K>.csv`, `.json` (the matrix and `about`) and `.svg` / `.png` into `dir`;
 * past {@link MAX_CHART_CLASSES} classes the chart is left out (its cells would be unreadable, and
 * drawing 10,000 of them takes half a minute): the CSV and JSON hold it all.
 *
 * @example
 * ```ts
 * await writeConfusionFiles("out/sweep", m, { layer: "block5_conv3", criterion: "mean" });
 * ```
 */
export async function writeConfusionFiles(
  dir: string,
  m: ConfusionMatrix,
  about: { layer: string; criterion: string },
): Promise<void> {
  const base = join(dir, `confusion_k${m.k}`);
  const t = confusionTable(m);
  await writeCsv(`${base}.csv`, t.header, t.rows);
  await writeJson(`${base}.json`, { ...about, ...m });
  if (m.classes.length <= MAX_CHART_CLASSES) {
    await writeChart(base, confusionChart(m, { title: `${about.layer}, K = ${m.k}` }));
  }
}

/** The most classes a confusion chart is drawn for. */
export const MAX_CHART_CLASSES = 20;
