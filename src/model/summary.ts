/**
 * A model's layers as the table a Keras user knows from `model.summary()`: name (type), output
 * shape, parameter count; plus which layers are Conv2D (prunable) and which is the last one
 * (the default `--layer`).
 */
import type * as tf from "@tensorflow/tfjs";
import { CONV_CLASS } from "./layers.ts";

/** One layer's row of the summary. */
export interface SummaryRow {
  name: string;
  className: string;
  /** Keras style, e.g. "(None, 16, 16, 32)". */
  outputShape: string;
  params: number;
  isConv: boolean;
  isLastConv: boolean;
}

/** A model's summary. */
export interface ModelSummary {
  rows: SummaryRow[];
  totalParams: number;
  trainableParams: number;
  /** The model's name (as Keras prints it in the title). */
  name?: string;
}

function shapeText(shape: (number | null)[]): string {
  return `(${shape.map((d) => d === null || d === undefined ? "None" : String(d)).join(", ")}${
    shape.length === 1 ? "," : ""
  })`;
}

/** A layer's output shape as Keras prints it, read from the layer's first node. */
function outputShapeText(layer: tf.layers.Layer): string {
  const node = (layer as unknown as { inboundNodes: { outputShapes: unknown }[] }).inboundNodes[0];
  let shape: unknown;
  try {
    shape = node ? node.outputShapes : layer.outputShape;
  } catch {
    return "?";
  }
  if (Array.isArray(shape) && shape.length > 0 && Array.isArray(shape[0])) {
    const shapes = shape as (number | null)[][];
    return shapes.length === 1 ? shapeText(shapes[0]) : `[${shapes.map(shapeText).join(", ")}]`;
  }
  return shapeText(shape as (number | null)[]);
}

/**
 * The rows and parameter totals of `model.summary()`, as data.
 *
 * @example
 * ```ts
 * const s = modelSummary(model);
 * s.rows.find((r) => r.isLastConv)?.name; // the default --layer
 * ```
 */
export function modelSummary(model: tf.LayersModel): ModelSummary {
  const layers = model.layers;
  let last = -1;
  layers.forEach((l, i) => {
    if (l.getClassName() === CONV_CLASS) last = i;
  });
  const rows = layers.map((layer, i): SummaryRow => ({
    name: layer.name,
    className: layer.getClassName(),
    outputShape: outputShapeText(layer),
    params: layer.countParams(),
    isConv: layer.getClassName() === CONV_CLASS,
    isLastConv: i === last,
  }));
  const size = (ws: tf.LayerVariable[]) =>
    ws.reduce((s, w) => s + w.shape.reduce((p: number, d) => p * (d ?? 1), 1), 0);
  return {
    rows,
    totalParams: size(model.weights),
    trainableParams: size(model.trainableWeights),
    name: model.name,
  };
}

const grouped = (n: number) => n.toLocaleString("en-US");

/**
 * The summary as the text table Keras prints, with a last column marking the conv layers
 * ("conv") and the last one ("conv, last: the default --layer").
 *
 * @example
 * ```ts
 * console.log(formatSummary(modelSummary(model)));
 * ```
 */
export function formatSummary(summary: ModelSummary): string {
  const header = ["Layer (type)", "Output Shape", "Param #", "Prunable"];
  const cells = summary.rows.map((r) => [
    `${r.name} (${r.className})`,
    r.outputShape,
    grouped(r.params),
    r.isLastConv ? "conv, last: the default --layer" : r.isConv ? "conv" : "",
  ]);
  const widths = header.map((h, c) => Math.max(h.length, ...cells.map((row) => row[c].length)) + 3);
  const line = (row: string[]) => (" " + row.map((cell, c) => cell.padEnd(widths[c])).join("")).trimEnd();
  const width = widths.reduce((a, b) => a + b, 1);
  const thin = "_".repeat(width);
  const thick = "=".repeat(width);
  const body: string[] = [];
  cells.forEach((row, i) => {
    body.push(line(row));
    if (i < cells.length - 1) body.push(thin);
  });
  return [
    ...(summary.name ? [`Model: "${summary.name}"`] : []),
    thin,
    line(header),
    thick,
    ...body,
    thick,
    `Total params: ${grouped(summary.totalParams)}`,
    `Trainable params: ${grouped(summary.trainableParams)}`,
    `Non-trainable params: ${grouped(summary.totalParams - summary.trainableParams)}`,
    thin,
  ].join("\n");
}
