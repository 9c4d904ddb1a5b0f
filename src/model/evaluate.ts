/**
 * Counting correct predictions on the device: one argmax per row, compared with the labels.
 * The fast sweep and the naive sweep both count through here, so they cannot disagree on how.
 */
import * as tf from "@tensorflow/tfjs";

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
