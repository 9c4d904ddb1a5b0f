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
 * Correct predictions per block and per true class: `scores` as in {@link countCorrect}
 * (`blocks` blocks of n rows, `classes` columns); returns int32 `[blocks, classes]`, entry
 * (j, c) the images of true class c that block j gets right. Row j sums to `countCorrect`'s j.
 *
 * @example
 * ```ts
 * const byClass = countCorrectByClass(scores, labels, 2); // [2, classes]
 * ```
 */
export function countCorrectByClass(
  scores: tf.Tensor2D,
  labels: Uint8Array | Int32Array,
  blocks = 1,
): tf.Tensor2D {
  const n = labels.length;
  if (scores.shape[0] !== blocks * n) {
    throw new Error(`countCorrectByClass: ${scores.shape[0]} score rows, expected ${blocks} x ${n}`);
  }
  const classes = scores.shape[1];
  return tf.tidy(() => {
    const predicted = tf.argMax(scores, 1).reshape([blocks, n]);
    const truth = tf.tensor2d(Int32Array.from(labels), [1, n], "int32");
    const right = tf.equal(predicted, truth).cast("float32");
    // [blocks, n] x [n, classes] one-hot of the labels: whole numbers below 2^24, exact in float32.
    const onehot = tf.oneHot(tf.tensor1d(Int32Array.from(labels), "int32"), classes).cast("float32");
    return tf.matMul(right, onehot).round().cast("int32") as tf.Tensor2D;
  });
}

/**
 * Per-class correct counts as rows: `values` (blocks x classes, row-major) into one array per block.
 */
export function splitClassCounts(values: ArrayLike<number>, blocks: number): number[][] {
  const classes = values.length / blocks;
  return Array.from(
    { length: blocks },
    (_, j) => Array.from({ length: classes }, (_, c) => values[j * classes + c]),
  );
}

/**
 * Evaluate `model` on `ds`: how many images its top class gets right (`classCorrect[c]`: of true
 * class c).
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
): Promise<{ correct: number; total: number; classCorrect: number[] }> {
  const size = Math.max(1, Math.floor(batch));
  let correct = 0;
  let classCorrect: number[] = [];
  for (let start = 0; start < ds.count; start += size) {
    const n = Math.min(size, ds.count - start);
    const counts = tf.tidy(() => {
      const scores = model.predict(imagesToTensor(ds, start, n, prep), { batchSize: n }) as tf.Tensor2D;
      return countCorrectByClass(scores, ds.labels.subarray(start, start + n), 1);
    });
    try {
      const byClass = await counts.data();
      if (classCorrect.length === 0) classCorrect = new Array<number>(byClass.length).fill(0);
      byClass.forEach((x, c) => {
        classCorrect[c] += x;
        correct += x;
      });
      await pauseForSignals();
    } finally {
      counts.dispose();
    }
  }
  return { correct, total: ds.count, classCorrect };
}
