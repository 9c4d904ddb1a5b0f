/**
 * What the class scores say beyond the top-1 count: top-5 hits and the cross-entropy loss per
 * image, for the sensitivity tables (Distiller's top1, top5, loss) and for the Taylor criterion's
 * gradient. Top-1 is counted by `countCorrect` (evaluate.ts), as the sweeps count it.
 */
import * as tf from "@tensorflow/tfjs";
import { activationName } from "./layers.ts";

/** How a model's output is to be read: softmax probabilities, or raw logits. */
export type OutputKind = "probabilities" | "logits";

/** Keras's clipping of probabilities before the log (`backend.epsilon()`). */
export const PROBABILITY_EPSILON = 1e-7;

/**
 * "probabilities" when the model's output layer ends in a softmax (a softmax activation or a
 * Softmax layer), else "logits".
 *
 * @example
 * ```ts
 * outputKind(model); // "probabilities" for the lab's VGG (dense + softmax)
 * ```
 */
export function outputKind(model: tf.LayersModel): OutputKind {
  const last = (model.outputs[0] as unknown as { sourceLayer: tf.layers.Layer }).sourceLayer;
  return last.getClassName() === "Softmax" || activationName(last) === "softmax" ? "probabilities" : "logits";
}

/**
 * Cross-entropy of each row of `scores` (n x classes) against its label, as a length-n tensor:
 * `-log(clip(p[label], 1e-7, 1 - 1e-7))` for probabilities (Keras's rule), `-logSoftmax[label]`
 * for logits.
 *
 * @example
 * ```ts
 * const losses = crossEntropyPerImage(scores, labelsTensor, "probabilities");
 * ```
 */
export function crossEntropyPerImage(
  scores: tf.Tensor2D,
  labels: tf.Tensor1D,
  kind: OutputKind,
): tf.Tensor1D {
  return tf.tidy(() => {
    const oneHot = tf.oneHot(labels.cast("int32"), scores.shape[1]).cast("float32");
    const logp = kind === "probabilities"
      ? tf.log(tf.clipByValue(scores, PROBABILITY_EPSILON, 1 - PROBABILITY_EPSILON))
      : tf.logSoftmax(scores);
    return tf.neg(tf.sum(tf.mul(oneHot, logp), 1)) as tf.Tensor1D;
  });
}

/**
 * Top-5 hits per block: `scores` holds `blocks` blocks of n rows, each scored against the same n
 * `labels`; a row is a hit when its label is among its 5 highest scores (all classes when there
 * are fewer than 5). Returns `blocks` int32 counts.
 *
 * @example
 * ```ts
 * const hits = countTop5(scores, labels, 1);
 * ```
 */
export function countTop5(scores: tf.Tensor2D, labels: Uint8Array | Int32Array, blocks = 1): tf.Tensor1D {
  const n = labels.length;
  if (scores.shape[0] !== blocks * n) {
    throw new Error(`countTop5: ${scores.shape[0]} score rows, expected ${blocks} x ${n}`);
  }
  return tf.tidy(() => {
    const k = Math.min(5, scores.shape[1]);
    const { indices } = tf.topk(scores, k);
    const truth = tf.tensor3d(Int32Array.from(labels), [1, n, 1], "int32");
    const hit = tf.equal(indices.reshape([blocks, n, k]), truth).any(2);
    return hit.cast("int32").sum(1) as tf.Tensor1D;
  });
}
