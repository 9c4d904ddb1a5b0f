/**
 * A confusion matrix as a table (`confusion_k<K>.csv`, and the report's table): one row per true
 * class, one column per predicted class, then the row's images and the class's accuracy.
 */
import type { ConfusionMatrix } from "../prune/confusion.ts";
import type { Table } from "./criteria_tables.ts";

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
