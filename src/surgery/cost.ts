/**
 * What a model costs: parameters and multiply-adds of one forward pass of one image, counted
 * from the layers' weight shapes and output shapes (no tensor is read or run).
 *
 * Multiply-adds are counted for the layers that do the arithmetic: Conv2D, DepthwiseConv2D and
 * Dense. Each output value of such a layer costs (kernel elements / output channels)
 * multiply-adds: kh * kw * Cin for a conv, the input width for a dense layer, kh * kw for a
 * depthwise conv. Bias adds, activations, BatchNorm and pooling are not counted (the usual
 * convention; they are a rounding error next to the convs).
 */
import type * as tf from "@tensorflow/tfjs";
import { layerOutputShape } from "../model/layers.ts";

/** The classes whose multiply-adds are counted. */
export const COUNTED_CLASSES = ["Conv2D", "DepthwiseConv2D", "Dense"];

/** The cost of one layer. */
export interface LayerCost {
  name: string;
  className: string;
  /** Weights of the layer, trainable or not (BatchNorm moving statistics included). */
  parameters: number;
  /** Multiply-adds per image (0 for layers that are not counted). */
  multiplyAdds: number;
}

/** The cost of a whole model. */
export interface ModelCost {
  /** All weights, as `model.countParams()`. */
  parameters: number;
  trainableParameters: number;
  /** Multiply-adds per image, conv and dense layers. */
  multiplyAdds: number;
  layers: LayerCost[];
}

function product(shape: readonly number[]): number {
  return shape.reduce((p, d) => p * d, 1);
}

/**
 * Multiply-adds per image of one layer of a built model (0 unless Conv2D, DepthwiseConv2D or Dense).
 *
 * @example
 * ```ts
 * // conv 3x3, 3 -> 8 channels, 'same' on 32x32: 32 * 32 * 8 * (3 * 3 * 3) = 221,184
 * layerMultiplyAdds(model.getLayer("conv1"));
 * ```
 */
export function layerMultiplyAdds(layer: tf.layers.Layer): number {
  if (!COUNTED_CLASSES.includes(layer.getClassName())) return 0;
  const kernel = layer.weights.find((w) => w.shape.length >= 2);
  if (!kernel) return 0;
  const shape = kernel.shape as number[];
  const out = layerOutputShape(layer);
  const outChannels = out[out.length - 1];
  return product(out) * product(shape) / outChannels;
}

/**
 * Parameters and multiply-adds of `model`, in total and per layer.
 *
 * @example
 * ```ts
 * const cost = modelCost(model);
 * console.log(`${cost.parameters} parameters, ${(cost.multiplyAdds / 1e6).toFixed(1)}M multiply-adds`);
 * ```
 */
export function modelCost(model: tf.LayersModel): ModelCost {
  const layers = model.layers.map((layer) => ({
    name: layer.name,
    className: layer.getClassName(),
    parameters: layer.countParams(),
    multiplyAdds: layerMultiplyAdds(layer),
  }));
  const trainableParameters = model.trainableWeights.reduce((s, w) => s + product(w.shape as number[]), 0);
  return {
    parameters: model.countParams(),
    trainableParameters,
    multiplyAdds: layers.reduce((s, l) => s + l.multiplyAdds, 0),
    layers,
  };
}
