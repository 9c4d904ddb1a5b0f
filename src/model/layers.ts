/**
 * Finding the layer to prune: the model's Conv2D layers, in order, and the one a run uses
 * (`--layer NAME`, else the last Conv2D, the lab's choice).
 */
import type * as tf from "@tensorflow/tfjs";
import { UserError } from "../core/errors.ts";

/** A Conv2D layer of a model, as the pruning code sees it. */
export interface LayerRef {
  name: string;
  /** Position in `model.layers`. */
  index: number;
  className: string;
  /** Output channels (filters). */
  channels: number;
  /** The layer's output per image, `[H, W, C]`. */
  outputShape: number[];
  /** The layer's own (fused) activation: "relu", "sigmoid", "linear", ... */
  activation: string;
}

/** The class name of the layers we prune. */
export const CONV_CLASS = "Conv2D";

/** The per-image output shape of a layer in this model (its first inbound node's, batch dimension dropped). */
export function layerOutputShape(layer: tf.layers.Layer): number[] {
  // Read the node, not `layer.outputShape`, so a layer applied elsewhere too still answers.
  const node =
    (layer as unknown as { inboundNodes: { outputShapes: (number | null)[] | (number | null)[][] }[] })
      .inboundNodes[0];
  const shape = node ? node.outputShapes : layer.outputShape;
  const first = Array.isArray(shape[0]) ? shape[0] as (number | null)[] : shape as (number | null)[];
  return first.slice(1).map((d) => d ?? -1);
}

/** The name of a layer's activation ("linear" when it has none). */
export function activationName(layer: tf.layers.Layer): string {
  const act = (layer as unknown as { activation?: { getClassName(): string } }).activation;
  return act ? act.getClassName() : "linear";
}

function toRef(layer: tf.layers.Layer, index: number): LayerRef {
  const outputShape = layerOutputShape(layer);
  return {
    name: layer.name,
    index,
    className: layer.getClassName(),
    channels: outputShape[outputShape.length - 1],
    outputShape,
    activation: activationName(layer),
  };
}

/**
 * Any layer of `model` by name, as a `LayerRef` (for a cut after a layer that is not a conv, e.g.
 * a group's merge); an Error when there is no such layer.
 *
 * @example
 * ```ts
 * layerRef(model, "stage3_block3_add").outputShape; // [8, 8, 64]
 * ```
 */
export function layerRef(model: tf.LayersModel, name: string): LayerRef {
  const index = model.layers.findIndex((l) => l.name === name);
  if (index < 0) throw new Error(`no layer ${name} in the model`);
  return toRef(model.layers[index], index);
}

/**
 * Every Conv2D layer of `model`, in the model's (topological) order.
 *
 * @example
 * ```ts
 * convLayers(model).map((l) => `${l.name}: ${l.channels} ch`); // ["conv2d_1: 32 ch", ...]
 * ```
 */
export function convLayers(model: tf.LayersModel): LayerRef[] {
  const refs: LayerRef[] = [];
  model.layers.forEach((layer, index) => {
    if (layer.getClassName() === CONV_CLASS) refs.push(toRef(layer, index));
  });
  return refs;
}

/**
 * The conv layer to prune: `name` when given, else the last Conv2D. A name that does not
 * exist, or names a layer that is not a Conv2D, is a UserError that lists the conv layers.
 *
 * @example
 * ```ts
 * pickLayer(model).name;            // the last Conv2D
 * pickLayer(model, "conv2d_3").name; // "conv2d_3"
 * ```
 */
export function pickLayer(model: tf.LayersModel, name?: string): LayerRef {
  const convs = convLayers(model);
  const listing = convs.length > 0
    ? `the conv layers are: ${convs.map((c) => c.name).join(", ")}`
    : "the model has no Conv2D layer";
  if (name === undefined || name === "") {
    if (convs.length === 0) {
      throw new UserError(
        `the model has no Conv2D layer to prune; run 'deno task inspect' to see its layers.`,
      );
    }
    return convs[convs.length - 1];
  }
  const index = model.layers.findIndex((l) => l.name === name);
  if (index < 0) throw new UserError(`--layer ${name}: no layer of that name; ${listing}.`);
  const layer = model.layers[index];
  if (layer.getClassName() !== CONV_CLASS) {
    throw new UserError(`--layer ${name}: it is a ${layer.getClassName()} layer, not a Conv2D; ${listing}.`);
  }
  return toRef(layer, index);
}
