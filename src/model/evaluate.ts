/**
 * Counting correct predictions on the device: one argmax per row, compared with the labels.
 * The fast sweep and the naive sweep both count through here, so they cannot disagree on how;
 * and evaluating a whole model on a data set (the naive sweep, fine-tuning, prune's checks).
 */
import * as tf from "@tensorflow/tfjs";
import type { Dataset, Preprocessing } from "../types.ts";
import { imagesToTensor } from "../data/tensors.ts";
import { pauseForSignals } from "../core/interrupt.ts";

/**
 * Correct predictions per block: `scores` holds `blocks` blocks of n rows (blocks*n x classes),
 * each block scored against the same n `labels`. Returns `blocks` int32 counts.
 *
 * @example
 * ```ts
 * const counts = countCorrect(scores, labels, 1); // one count for a plain batch
 * ```
 */
export function countCorrect(scores: tf.Tensor2D, labels: Uint8Array | Int32Array, blocks = 1): tf.Tensor1D {
  const n = labels.length;
  if (scores.shape[0] !== blocks * n) {
    throw new Error(`countCorrect: ${scores.shape[0]} score rows, expected ${blocks} x ${n}`);
  }
  return tf.tidy(() => {
    const predicted = tf.argMax(scores, 1).reshape([blocks, n]);
    const truth = tf.tensor2d(Int32Array.from(labels), [1, n], "int32");
    return tf.equal(predicted, truth).cast("int32").sum(1) as tf.Tensor1D;
  });
}

/**
 * Evaluate `model` on `ds`: how many images its top class gets right.
 *
 * @example
 * ```ts
 * const { correct, total } = await evaluate(model, test, prep);
 * ```
 */
export async function evaluate(
  model: tf.LayersModel,
  ds: Dataset,
  prep: Preprocessing,
  batch = 256,
): Promise<{ correct: number; total: number }> {
  const size = Math.max(1, Math.floor(batch));
  let correct = 0;
  for (let start = 0; start < ds.count; start += size) {
    const n = Math.min(size, ds.count - start);
    const counts = tf.tidy(() => {
      const scores = model.predict(imagesToTensor(ds, start, n, prep), { batchSize: n }) as tf.Tensor2D;
      return countCorrect(scores, ds.labels.subarray(start, start + n), 1);
    });
    try {
      correct += (await counts.data())[0];
      await pauseForSignals();
    } finally {
      counts.dispose();
    }
  }
  return { correct, total: ds.count };
}
