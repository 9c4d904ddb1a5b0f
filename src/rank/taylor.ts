/**
 * The `taylor` criterion (Molchanov et al. 2017): the first-order Taylor estimate of how much the
 * loss changes when a channel is replaced by zero. For image n and channel c it is
 * |mean over positions of a * dL/da|, with a the layer's output and L the cross-entropy of that
 * image; the score averages it over the images, and the smallest is pruned first.
 *
 * The gradient comes from the split model: prefix once (no gradient), then the gradient of the
 * summed loss through the suffix with respect to the layer's output (each image's loss depends
 * only on its own output, inference mode, so the sum gives every image its own gradient).
 */
import * as tf from "@tensorflow/tfjs";
import type { SplitModel } from "../model/split.ts";
import type { Dataset, Preprocessing, Ranking } from "../types.ts";
import { imagesToTensor } from "../data/tensors.ts";
import type { LayerOutputs } from "../activations/layer_outputs.ts";
import { ascendingOrder } from "./criteria.ts";
import { crossEntropyPerImage, type OutputKind } from "../model/class_scores.ts";

/**
 * Taylor scores from the layer's outputs and the loss gradients at them (same shape, NHWC):
 * score[c] = (1/N) sum_n |(1/HW) sum_hw a[n,h,w,c] * g[n,h,w,c]|, in float64. The reference the
 * device version (`taylorScores`) is tested against.
 *
 * @example
 * ```ts
 * taylorScoresFrom(outputs, gradients)[c];
 * ```
 */
export function taylorScoresFrom(act: LayerOutputs, grad: LayerOutputs): Float64Array {
  const { count, height, width, channels } = act;
  if (grad.count !== count || grad.height !== height || grad.width !== width || grad.channels !== channels) {
    throw new Error("activations and gradients differ in shape");
  }
  const scores = new Float64Array(channels);
  const hw = height * width;
  const perImage = new Float64Array(channels);
  for (let n = 0; n < count; n++) {
    perImage.fill(0);
    const base = n * hw * channels;
    for (let p = 0; p < hw; p++) {
      const at = base + p * channels;
      for (let c = 0; c < channels; c++) perImage[c] += act.data[at + c] * grad.data[at + c];
    }
    for (let c = 0; c < channels; c++) scores[c] += Math.abs(perImage[c] / hw);
  }
  return scores.map((s) => count > 0 ? s / count : 0);
}

/**
 * `taylor`: the channel with the smallest Taylor score first.
 *
 * @example
 * ```ts
 * rankByTaylor(await taylorScores(split, train, prep, "probabilities")).order[0];
 * ```
 */
export function rankByTaylor(scores: Float64Array): Ranking {
  return { criterion: "taylor", order: ascendingOrder(scores), scores: Float64Array.from(scores) };
}

/** Options of `taylorScores`. */
export interface TaylorOptions {
  /** Images per prefix + gradient call (default 64). */
  batch?: number;
  /** Called after each batch with the images done. */
  onProgress?: (done: number) => void;
}

/**
 * Taylor scores of the split's layer over the images of `ds` (typically a sample of training
 * images), computed on the device batch by batch.
 *
 * @example
 * ```ts
 * const scores = await taylorScores(split, await loadTrainSet(dir, 512), prep, outputKind(model));
 * ```
 */
export async function taylorScores(
  split: SplitModel,
  ds: Dataset,
  prep: Preprocessing,
  kind: OutputKind,
  opts: TaylorOptions = {},
): Promise<Float64Array> {
  const channels = split.layer.channels;
  const [height, width] = split.layer.outputShape;
  const sums = new Float64Array(channels);
  const batch = Math.max(1, Math.floor(opts.batch ?? 64));
  for (let start = 0; start < ds.count; start += batch) {
    const n = Math.min(batch, ds.count - start);
    const perChannel = tf.tidy(() => {
      const a = split.prefix(imagesToTensor(ds, start, n, prep));
      const labels = tf.tensor1d(Int32Array.from(ds.labels.subarray(start, start + n)), "int32");
      const lossOf = (y: tf.Tensor) =>
        crossEntropyPerImage(split.suffix(y as tf.Tensor4D), labels, kind).sum();
      const g = tf.grad(lossOf)(a);
      // |mean over positions of a * g| per image and channel, summed over the images.
      return tf.mul(a, g).sum([1, 2]).div(height * width).abs().sum(0);
    });
    try {
      const values = await perChannel.data();
      for (let c = 0; c < channels; c++) sums[c] += values[c];
    } finally {
      perChannel.dispose();
    }
    opts.onProgress?.(start + n);
  }
  return sums.map((s) => ds.count > 0 ? s / ds.count : 0);
}
