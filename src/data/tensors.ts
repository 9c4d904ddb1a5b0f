/** From uint8 images to the float tensors a model takes. */
import * as tf from "@tensorflow/tfjs";
import type { Dataset, Preprocessing } from "../types.ts";
import { IMAGE_BYTES } from "./cifar10.ts";

/**
 * Images `start..start+count` of `ds` as an N x 32 x 32 x 3 float32 tensor, preprocessed.
 * The arithmetic runs in float32 in JS, so every backend sees the same input values.
 *
 * @example
 * ```ts
 * const x = imagesToTensor(test, 0, 256, model.preprocessing);
 * ```
 */
export function imagesToTensor(ds: Dataset, start: number, count: number, prep: Preprocessing): tf.Tensor4D {
  const n = Math.min(count, ds.count - start);
  const out = new Float32Array(n * IMAGE_BYTES);
  const src = ds.images.subarray(start * IMAGE_BYTES, (start + n) * IMAGE_BYTES);
  const scale = Math.fround(prep.scale);
  const mean = prep.mean.map(Math.fround), std = prep.std.map(Math.fround);
  for (let i = 0; i < out.length; i++) {
    const c = i % 3;
    out[i] = Math.fround(Math.fround(Math.fround(src[i] * scale) - mean[c]) / std[c]);
  }
  return tf.tensor4d(out, [n, 32, 32, 3]);
}
