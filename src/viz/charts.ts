/**
 * The charts prunescope draws, as vega-lite specs: pure functions of the numbers, no IO.
 * Render one with `writeChart` (src/report/outputs.ts) or `vegaLiteToSvg` + `svgToPng` (render.ts).
 * Accuracies are fractions 0..1 and are shown as percentages.
 */
import type { TopLevelSpec } from "vega-lite";

/** A vega-lite spec as these functions return it. */
export type ChartSpec = TopLevelSpec;

/** One criterion's accuracy-vs-K line, with an optional min..max band (e.g. `random` over seeds). */
export interface AccuracySeries {
  criterion: string;
  points: { k: number; accuracy: number }[];
  band?: { k: number; min: number; max: number }[];
}

/** One epoch of training history. */
export interface EpochRecord {
  epoch: number;
  trainAccuracy: number;
  valAccuracy: number;
  trainLoss?: number;
  valLoss?: number;
}

/** One layer's accuracy as a growing fraction of its filters is pruned. */
export interface LayerSensitivity {
  layer: string;
  points: { fraction: number; accuracy: number }[];
}

const SCHEMA = "https://vega.github.io/schema/vega-lite/v6.json";
const WIDTH = 640;
const HEIGHT = 360;
const RULE_COLOUR = "#555555";

/** "93.41%" for 0.93412. */
export function percentLabel(fraction: number): string {
  return `${(fraction * 100).toFixed(2)}%`;
}

/** A dashed horizontal rule at `y` with a label above its right end. */
function labelledRule(
  y: number,
  label: string,
  x: number | undefined,
  style: { colour: string; dash: number[] },
): object[] {
  return [
    {
      data: { values: [{}] },
      mark: { type: "rule", color: style.colour, strokeDash: style.dash, strokeWidth: 1.25 },
      encoding: { y: { datum: y } },
    },
    {
      data: { values: [{}] },
      mark: {
        type: "text",
        color: style.colour,
        align: "right",
        baseline: "bottom",
        dy: -3,
        ...(x === undefined ? { x: "width" } : {}),
        fontSize: 11,
      },
      encoding: {
        y: { datum: y },
        ...(x === undefined ? {} : { x: { datum: x } }),
        text: { value: label },
      },
    },
  ];
}

function colourScale(names: string[]): object {
  return names.length > 10 ? { domain: names, scheme: "tableau20" } : { domain: names };
}

/**
 * Test accuracy against the number of pruned channels K, one line per criterion, an optional
 * shaded min..max band per series, and the unpruned baseline as a dashed rule with its value.
 * The colour legend appears only when there is more than one series.
 *
 * @example
 * ```ts
 * const spec = accuracyChart(
 *   [{ criterion: "mean", points: [{ k: 0, accuracy: 0.93 }, { k: 512, accuracy: 0.1 }] }],
 *   { title: "conv2d_12: accuracy vs pruned channels", baseline: 0.93, channels: 512 },
 * );
 * ```
 */
export function accuracyChart(
  series: AccuracySeries[],
  opts: { title: string; baseline: number; channels: number; xTitle?: string },
): ChartSpec {
  const names = series.map((s) => s.criterion);
  const colour = {
    field: "criterion",
    type: "nominal",
    title: "criterion",
    scale: colourScale(names),
    legend: series.length > 1
      ? {
        orient: "bottom-left",
        fillColor: "white",
        padding: 6,
        symbolType: "stroke",
        symbolStrokeWidth: 2.5,
        symbolOpacity: 1,
      }
      : null,
  };
  const x = {
    field: "k",
    type: "quantitative",
    title: opts.xTitle ?? "pruned channels (K)",
    scale: { domain: [0, opts.channels], nice: false },
    axis: { format: "d", tickMinStep: 1 },
  };
  const yScale = { domain: [0, 1] };
  const y = {
    field: "accuracy",
    type: "quantitative",
    title: "test accuracy",
    scale: yScale,
    axis: { format: ".0%" },
  };
  const bands = series.flatMap((s) =>
    (s.band ?? []).map((b) => ({ criterion: s.criterion, k: b.k, min: b.min, max: b.max }))
  );
  const lines = series.flatMap((s) =>
    s.points.map((p) => ({ criterion: s.criterion, k: p.k, accuracy: p.accuracy }))
  );
  const layer: object[] = [];
  if (bands.length > 0) {
    layer.push({
      data: { values: bands },
      mark: { type: "area", opacity: 0.2 },
      encoding: {
        x,
        y: { field: "min", type: "quantitative", scale: yScale, title: "test accuracy" },
        y2: { field: "max" },
        color: colour,
      },
    });
  }
  layer.push({
    data: { values: lines },
    mark: { type: "line", strokeWidth: 1.75, interpolate: "linear" },
    encoding: {
      x,
      y,
      color: colour,
    },
  });
  // Invisible points carrying the tooltips (report.html; nothing shows in the SVG and PNG).
  layer.push({
    data: { values: lines },
    mark: { type: "point", opacity: 0, filled: true, size: 60 },
    encoding: {
      x,
      y,
      tooltip: [
        { field: "criterion" },
        { field: "k", type: "quantitative", title: "K" },
        { field: "accuracy", type: "quantitative", format: ".2%" },
      ],
    },
  });
  layer.push(
    ...labelledRule(opts.baseline, `baseline ${percentLabel(opts.baseline)}`, undefined, {
      colour: RULE_COLOUR,
      dash: [6, 4],
    }),
  );
  return {
    $schema: SCHEMA,
    title: {
      text: opts.title,
      anchor: "start",
      ...(bands.length > 0 ? { subtitle: "shaded: min–max range", subtitleColor: "#666666" } : {}),
    },
    width: WIDTH,
    height: HEIGHT,
    background: "white",
    layer,
  } as unknown as ChartSpec;
}

/**
 * Training history: train and validation accuracy per epoch, and, when any epoch has losses,
 * a second panel with train and validation loss below it.
 *
 * @example
 * ```ts
 * const spec = trainingCurveChart(
 *   [{ epoch: 1, trainAccuracy: 0.4, valAccuracy: 0.45, trainLoss: 1.6, valLoss: 1.5 }],
 *   { title: "VGG-16 on CIFAR-10" },
 * );
 * ```
 */
export function trainingCurveChart(epochs: EpochRecord[], opts: { title: string }): ChartSpec {
  const accuracy = epochs.flatMap((e) => [
    { epoch: e.epoch, split: "train", value: e.trainAccuracy },
    { epoch: e.epoch, split: "validation", value: e.valAccuracy },
  ]);
  const loss = epochs.flatMap((e) => [
    ...(e.trainLoss === undefined ? [] : [{ epoch: e.epoch, split: "train", value: e.trainLoss }]),
    ...(e.valLoss === undefined ? [] : [{ epoch: e.epoch, split: "validation", value: e.valLoss }]),
  ]);
  const showPoints = epochs.length <= 40;
  const x = { field: "epoch", type: "quantitative", title: "epoch", axis: { format: "d", tickMinStep: 1 } };
  const colour = {
    field: "split",
    type: "nominal",
    title: null,
    scale: { domain: ["train", "validation"] },
    legend: { orient: "top", direction: "horizontal" },
  };
  const panel = (values: object[], yTitle: string, yAxis: object, yScale: object) => ({
    width: WIDTH,
    height: loss.length > 0 ? 220 : HEIGHT,
    data: { values },
    mark: { type: "line", point: showPoints, strokeWidth: 1.75 },
    encoding: {
      x,
      y: { field: "value", type: "quantitative", title: yTitle, axis: yAxis, scale: yScale },
      color: colour,
    },
  });
  const accuracyPanel = panel(accuracy, "accuracy", { format: ".0%" }, { domain: [0, 1] });
  const base = { $schema: SCHEMA, title: { text: opts.title, anchor: "start" }, background: "white" };
  if (loss.length === 0) return { ...base, ...accuracyPanel } as unknown as ChartSpec;
  const lossPanel = panel(loss, "loss", {}, { zero: true });
  return {
    ...base,
    vconcat: [accuracyPanel, lossPanel],
    resolve: { scale: { color: "shared", y: "independent" } },
  } as unknown as ChartSpec;
}

/**
 * Per-layer pruning sensitivity in the style of Li et al. 2017, Fig. 2: for each conv layer pruned
 * alone, accuracy against the fraction of that layer's filters removed; one line (and marker
 * shape) per layer, legend in the given layer order, baseline as a dashed rule.
 *
 * @example
 * ```ts
 * const spec = sensitivityChart(
 *   [{ layer: "conv2d_1", points: [{ fraction: 0, accuracy: 0.93 }, { fraction: 0.5, accuracy: 0.9 }] }],
 *   { title: "sensitivity to pruning", baseline: 0.93 },
 * );
 * ```
 */
export function sensitivityChart(
  layers: LayerSensitivity[],
  opts: { title: string; baseline: number },
): ChartSpec {
  const names = layers.map((l) => l.layer);
  const values = layers.flatMap((l) =>
    l.points.map((p) => ({ layer: l.layer, fraction: p.fraction, accuracy: p.accuracy }))
  );
  const legend = { title: "layer", orient: "right" };
  return {
    $schema: SCHEMA,
    title: { text: opts.title, anchor: "start" },
    width: WIDTH,
    height: HEIGHT,
    background: "white",
    layer: [
      {
        data: { values },
        mark: { type: "line", point: { filled: true, size: 36 }, strokeWidth: 1.5 },
        encoding: {
          x: {
            field: "fraction",
            type: "quantitative",
            title: "fraction of the layer's filters pruned",
            scale: { domain: [0, 1], nice: false },
            axis: { format: ".0%" },
          },
          y: {
            field: "accuracy",
            type: "quantitative",
            title: "test accuracy",
            scale: { domain: [0, 1] },
            axis: { format: ".0%" },
          },
          color: { field: "layer", type: "nominal", scale: colourScale(names), legend },
          shape: { field: "layer", type: "nominal", scale: { domain: names }, legend },
          tooltip: [
            { field: "layer" },
            { field: "fraction", type: "quantitative", title: "pruned", format: ".0%" },
            { field: "accuracy", type: "quantitative", format: ".2%" },
          ],
        },
      },
      ...labelledRule(opts.baseline, `baseline ${percentLabel(opts.baseline)}`, undefined, {
        colour: RULE_COLOUR,
        dash: [6, 4],
      }),
    ],
  } as unknown as ChartSpec;
}

/**
 * Recovery by fine-tuning after pruning: accuracy per fine-tuning epoch, with the unpruned
 * accuracy (`before`, dashed) and the pruned accuracy before any fine-tuning (`masked`, dotted)
 * as labelled rules. The y axis zooms to the data rather than starting at 0%.
 *
 * @example
 * ```ts
 * const spec = recoveryChart([{ epoch: 1, accuracy: 0.9 }, { epoch: 2, accuracy: 0.92 }], {
 *   title: "fine-tuning after pruning 256 channels",
 *   before: 0.93,
 *   masked: 0.71,
 * });
 * ```
 */
export function recoveryChart(
  points: { epoch: number; accuracy: number }[],
  opts: { title: string; before: number; masked: number; start?: string },
): ChartSpec {
  return {
    $schema: SCHEMA,
    title: { text: opts.title, anchor: "start" },
    width: WIDTH,
    height: HEIGHT,
    background: "white",
    layer: [
      {
        data: { values: points.map((p) => ({ epoch: p.epoch, accuracy: p.accuracy })) },
        mark: { type: "line", point: { filled: true, size: 40 }, strokeWidth: 1.75, color: "#4c78a8" },
        encoding: {
          x: {
            field: "epoch",
            type: "quantitative",
            title: "fine-tuning epoch",
            axis: { format: "d", tickMinStep: 1 },
          },
          y: {
            field: "accuracy",
            type: "quantitative",
            title: "test accuracy",
            scale: { zero: false, padding: 12 },
            axis: { format: ".1%" },
          },
        },
      },
      ...labelledRule(opts.before, `before pruning ${percentLabel(opts.before)}`, undefined, {
        colour: RULE_COLOUR,
        dash: [6, 4],
      }),
      ...labelledRule(
        opts.masked,
        `${opts.start ?? "pruned, not fine-tuned"} ${percentLabel(opts.masked)}`,
        undefined,
        {
          colour: "#c0392b",
          dash: [2, 3],
        },
      ),
    ],
  } as unknown as ChartSpec;
}

/** One point of the Pareto chart: a method's plan at one budget, at one stage. */
export interface ParetoPoint {
  method: string;
  stage: string;
  /** Multiply-adds kept (fraction of the original). */
  macsKept: number;
  accuracy: number;
}

/**
 * Accuracy against cost: test accuracy over the fraction of multiply-adds kept, one line per
 * method and stage (colour: method; dash: stage), with the unpruned accuracy as a rule.
 *
 * @example
 * ```ts
 * paretoChart([{ method: "sensitivity", stage: "pruned", macsKept: 0.6, accuracy: 0.78 }], { title: "VGG", before: 0.81 });
 * ```
 */
export function paretoChart(points: ParetoPoint[], opts: { title: string; before: number }): ChartSpec {
  return {
    $schema: SCHEMA,
    title: { text: opts.title, anchor: "start" },
    width: WIDTH,
    height: HEIGHT,
    background: "white",
    layer: [
      {
        data: { values: points.map((p) => ({ ...p, series: `${p.method}, ${p.stage}` })) },
        mark: { type: "line", point: { filled: true, size: 45 }, strokeWidth: 1.75 },
        encoding: {
          x: {
            field: "macsKept",
            type: "quantitative",
            title: "multiply-adds kept",
            scale: { zero: false, padding: 12 },
            axis: { format: ".0%" },
          },
          y: {
            field: "accuracy",
            type: "quantitative",
            title: "test accuracy",
            scale: { zero: false, padding: 12 },
            axis: { format: ".1%" },
          },
          color: { field: "method", type: "nominal", title: "method" },
          // Stage by dash and by point shape: the legend shows the shapes (a dash alone draws as a dot).
          strokeDash: { field: "stage", type: "nominal", title: "stage" },
          shape: { field: "stage", type: "nominal", title: "stage" },
          detail: { field: "series", type: "nominal" },
        },
      },
      ...labelledRule(opts.before, `unpruned ${percentLabel(opts.before)}`, undefined, {
        colour: RULE_COLOUR,
        dash: [6, 4],
      }),
    ],
  } as unknown as ChartSpec;
}
