/** From uint8 images to the float tensors a model takes. */
import * as tf from "@tensorflow/tfjs";
import { type Dataset, datasetShape, type Preprocessing } from "../types.ts";

/**
 * Images `start..start+count` of `ds` as an N x H x W x C float32 tensor, preprocessed (channel c
 * of a grey image uses mean[0] and std[0]).
 * The arithmetic runs in float32 in JS, so every backend sees the same input values.
 *
 * @example
 * ```ts
 * const x = imagesToTensor(test, 0, 256, model.preprocessing);
 * ```
 */
export function imagesToTensor(ds: Dataset, start: number, count: number, prep: Preprocessing): tf.Tensor4D {
  const n = Math.min(count, ds.count - start);
  const { height, width, channels } = datasetShape(ds);
  const size = height * width * channels;
  const out = new Float32Array(n * size);
  const src = ds.images.subarray(start * size, (start + n) * size);
  const scale = Math.fround(prep.scale);
  const mean = prep.mean.map(Math.fround), std = prep.std.map(Math.fround);
  for (let i = 0; i < out.length; i++) {
    const c = channels === 3 ? i % 3 : 0;
    out[i] = Math.fround(Math.fround(Math.fround(src[i] * scale) - mean[c]) / std[c]);
  }
  return tf.tensor4d(out, [n, height, width, channels]);
}
