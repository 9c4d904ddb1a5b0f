/**
 * Confusion matrices at chosen K, two ways. `confusionAtK` is the lab's literal method: a copy
 * of the model with the K first channels of a ranking zeroed (kernel slices and bias entries,
 * surgery.ts's `zeroChannels`) predicts every image; slow (the whole model per K) and
 * independent of the fast engines. `confusionFromOutputs` masks the cached layer outputs and
 * runs only the suffix (measure.ts's `maskedClasses`, the exact engine's computation): the same
 * predictions, tested cell for cell, for a fraction of the time.
 */
import type * as tf from "@tensorflow/tfjs";
import type { LayerRef } from "../model/layers.ts";
import type { SplitModel } from "../model/split.ts";
import type { Dataset, Preprocessing, Ranking } from "../types.ts";
import type { LayerOutputs } from "../activations/layer_outputs.ts";
import { maskedClasses, predictClasses } from "./measure.ts";
import { zeroChannels } from "./remove.ts";

/** A confusion matrix: `counts[t][p]` images of true class t predicted as class p. */
export interface ConfusionMatrix {
  /** Channels pruned (the K first of the ranking). */
  k: number;
  /** Class names, indexing both axes. */
  classes: string[];
  /** classes x classes counts, row = true class, column = predicted class. */
  counts: number[][];
  /** Images counted: the sum of every cell. */
  total: number;
  /** Images on the diagonal. */
  correct: number;
}

/**
 * Count (true, predicted) pairs into a classes x classes matrix. Throws on a label or a
 * prediction outside 0..classes-1, or on lengths that differ.
 *
 * @example
 * ```ts
 * const m = confusionMatrix(0, ["cat", "dog"], Uint8Array.of(0, 1, 1), Int32Array.of(0, 0, 1));
 * m.counts; // [[1, 0], [1, 1]]; m.correct === 2
 * ```
 */
export function confusionMatrix(
  k: number,
  classes: string[],
  labels: ArrayLike<number>,
  predicted: ArrayLike<number>,
): ConfusionMatrix {
  const n = classes.length;
  if (labels.length !== predicted.length) {
    throw new Error(`${labels.length} labels but ${predicted.length} predictions`);
  }
  const counts = Array.from({ length: n }, () => new Array<number>(n).fill(0));
  let correct = 0;
  for (let i = 0; i < labels.length; i++) {
    const t = labels[i], p = predicted[i];
    if (!(t >= 0 && t < n && p >= 0 && p < n)) {
      throw new Error(`image ${i}: class ${t} predicted as ${p}, outside 0..${n - 1}`);
    }
    counts[t][p]++;
    if (t === p) correct++;
  }
  return { k, classes, counts, total: labels.length, correct };
}

/**
 * The confusion matrix of `model` on `ds` with the K first channels of `ranking` pruned, for
 * each K of `ks`, by zeroing weights (in `layer` and the other `members` of its channel group)
 * and predicting every image (the naive method).
 *
 * @example
 * ```ts
 * const [m0, m42] = await confusionAtK(model, layer, test, prep, ranking, [0, 42], CLASS_NAMES);
 * m0.correct === sweep[0].correct;
 * ```
 */
export async function confusionAtK(
  model: tf.LayersModel,
  layer: LayerRef,
  ds: Dataset,
  prep: Preprocessing,
  ranking: Ranking,
  ks: number[],
  classes: string[],
  batch = 256,
  members: string[] = [],
): Promise<ConfusionMatrix[]> {
  const matrices: ConfusionMatrix[] = [];
  for (const k of ks) {
    checkK(k, ranking);
    const channels = ranking.order.slice(0, k);
    const masked = await zeroChannels(
      model,
      [layer.name, ...members].map((name) => ({ layer: name, channels })),
    );
    try {
      const predicted = await predictClasses(masked, ds, prep, { batch });
      matrices.push(confusionMatrix(k, classes, ds.labels.subarray(0, ds.count), predicted));
    } finally {
      masked.dispose();
    }
  }
  return matrices;
}

function checkK(k: number, ranking: Ranking): void {
  if (!(Number.isInteger(k) && k >= 0 && k <= ranking.order.length)) {
    throw new RangeError(`K = ${k} is not in 0..${ranking.order.length}`);
  }
}

/**
 * The same matrices as {@link confusionAtK}, from the layer's cached outputs: for each K the
 * K first channels of `ranking` are set to `split.activationOfZero` (`maskedClasses`) and the
 * suffix predicts every image. `labels[i]` is the class of image i of `out`.
 *
 * @example
 * ```ts
 * const [m0] = await confusionFromOutputs(split, outputs, test.labels, ranking, [0], CLASS_NAMES);
 * ```
 */
export async function confusionFromOutputs(
  split: SplitModel,
  out: LayerOutputs,
  labels: Uint8Array,
  ranking: Ranking,
  ks: number[],
  classes: string[],
  batch = 256,
): Promise<ConfusionMatrix[]> {
  if (labels.length < out.count) throw new Error(`${labels.length} labels for ${out.count} images`);
  const matrices: ConfusionMatrix[] = [];
  for (const k of ks) {
    checkK(k, ranking);
    const predicted = await maskedClasses(split, out, ranking.order.slice(0, k), batch);
    matrices.push(confusionMatrix(k, classes, labels.subarray(0, out.count), predicted));
  }
  return matrices;
}

/** What {@link sweepConfusion} needs: a sweep's model, layer, data, cached outputs and ranking. */
export interface SweepConfusionInput {
  model: tf.LayersModel;
  layer: LayerRef;
  /** The other members of the layer's channel group, zeroed with it by the naive method. */
  members?: string[];
  split: SplitModel;
  data: Dataset;
  outputs: LayerOutputs;
  prep: Preprocessing;
  ranking: Ranking;
  classes: string[];
  batch?: number;
}

/**
 * The confusion matrices of a sweep at `ks`: by the naive method (weights zeroed, the whole
 * model run) when `naive`, else from the cached layer outputs (the same counts).
 *
 * @example
 * ```ts
 * const [k0, k1] = await sweepConfusion(false, [0, 42], { model, layer, split, data, outputs, prep, ranking, classes });
 * ```
 */
export function sweepConfusion(
  naive: boolean,
  ks: number[],
  s: SweepConfusionInput,
): Promise<ConfusionMatrix[]> {
  return naive
    ? confusionAtK(s.model, s.layer, s.data, s.prep, s.ranking, ks, s.classes, s.batch, s.members)
    : confusionFromOutputs(s.split, s.outputs, s.data.labels, s.ranking, ks, s.classes, s.batch);
}
