/**
 * Per-class charts, as vega-lite specs (pure functions of the numbers, no IO): a confusion
 * matrix as a heatmap with its counts, and per-class accuracy against K as a heatmap. Render one
 * with `writeChart` (src/report/outputs.ts), or inline it in report.html.
 */
import type { ChartSpec } from "./charts.ts";

const SCHEMA = "https://vega.github.io/schema/vega-lite/v6.json";

/** The numbers {@link confusionChart} draws (a `ConfusionMatrix` fits). */
export interface ConfusionData {
  k: number;
  classes: string[];
  /** counts[true][predicted]. */
  counts: number[][];
}

/**
 * A confusion matrix: true class down, predicted class across, each cell shaded by the share of
 * its true class (row) and labelled with its count; tooltips give the count and the share.
 *
 * @example
 * ```ts
 * const spec = confusionChart({ k: 0, classes: ["cat", "dog"], counts: [[9, 1], [2, 8]] }, { title: "K = 0" });
 * ```
 */
export function confusionChart(m: ConfusionData, opts: { title: string }): ChartSpec {
  const values = m.counts.flatMap((row, t) => {
    const sum = row.reduce((s, x) => s + x, 0);
    return row.map((count, p) => ({
      true: m.classes[t],
      predicted: m.classes[p],
      count,
      share: sum > 0 ? count / sum : 0,
    }));
  });
  const side = Math.max(200, 32 * m.classes.length);
  const axis = (title: string) => ({
    field: title,
    type: "nominal",
    sort: m.classes,
    title: `${title} class`,
  });
  return {
    $schema: SCHEMA,
    title: { text: opts.title, anchor: "start" },
    width: side,
    height: side,
    background: "white",
    data: { values },
    encoding: { x: { ...axis("predicted"), axis: { labelAngle: -40 } }, y: axis("true") },
    layer: [
      {
        mark: { type: "rect", stroke: "white", strokeWidth: 1 },
        encoding: {
          color: {
            field: "share",
            type: "quantitative",
            title: "share of true class",
            scale: { scheme: "blues", domain: [0, 1] },
            legend: { format: ".0%" },
          },
          tooltip: [
            { field: "true", title: "true" },
            { field: "predicted", title: "predicted" },
            { field: "count", type: "quantitative", title: "images" },
            { field: "share", type: "quantitative", title: "share of true class", format: ".1%" },
          ],
        },
      },
      {
        mark: { type: "text", fontSize: 10 },
        encoding: {
          text: { field: "count", type: "quantitative" },
          color: { condition: { test: "datum.share > 0.5", value: "white" }, value: "#222222" },
        },
      },
    ],
  } as unknown as ChartSpec;
}

/** Per-class correct counts at each K (what `sweep_classes.csv` holds). */
export interface ClassAccuracyData {
  classes: string[];
  /** One entry per evaluated K: correct[i] images of class i right, of images[i]. */
  points: { k: number; correct: number[] }[];
  /** Test images of each class. */
  images: number[];
}

/**
 * Per-class accuracy against K as a heatmap: K across, one row per class, colour = accuracy.
 *
 * @example
 * ```ts
 * const spec = classAccuracyChart(
 *   { classes: ["cat", "dog"], images: [10, 10], points: [{ k: 0, correct: [9, 8] }, { k: 1, correct: [7, 8] }] },
 *   { title: "per-class accuracy" },
 * );
 * ```
 */
export function classAccuracyChart(d: ClassAccuracyData, opts: { title: string }): ChartSpec {
  const values = d.points.flatMap((p) =>
    d.classes.map((name, i) => ({
      k: p.k,
      class: name,
      accuracy: d.images[i] > 0 ? p.correct[i] / d.images[i] : 0,
      correct: p.correct[i],
    }))
  );
  return {
    $schema: SCHEMA,
    title: { text: opts.title, anchor: "start" },
    width: 640,
    height: Math.max(120, 22 * d.classes.length),
    background: "white",
    data: { values },
    mark: { type: "rect" },
    encoding: {
      x: { field: "k", type: "ordinal", title: "pruned channels (K)", axis: { labelOverlap: "greedy" } },
      y: { field: "class", type: "nominal", sort: d.classes, title: null },
      color: {
        field: "accuracy",
        type: "quantitative",
        scale: { scheme: "viridis", domain: [0, 1] },
        legend: { format: ".0%" },
      },
      tooltip: [
        { field: "class" },
        { field: "k", type: "quantitative", title: "K" },
        { field: "accuracy", type: "quantitative", format: ".2%" },
        { field: "correct", type: "quantitative", title: "correct" },
      ],
    },
  } as unknown as ChartSpec;
}
