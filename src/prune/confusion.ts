/**
 * Confusion matrices at chosen K, two ways. `confusionAtK` is the lab's literal method: the K
 * first channels of a ranking get their kernel slices and bias entries zeroed in the layer's own
 * weights (as `sweepNaive` does), the whole model predicts every image, and the weights are put
 * back; slow (one full pass over the data per K) and independent of the fast engines.
 * `confusionFromOutputs` masks the cached layer outputs (mask.ts, as the exact engine does) and
 * runs only the suffix: the same predictions (tested cell for cell), for a fraction of the time.
 */
import * as tf from "@tensorflow/tfjs";
import type { LayerRef } from "../model/layers.ts";
import type { SplitModel } from "../model/split.ts";
import type { LayerOutputs } from "./activations.ts";
import { maskChannels } from "./mask.ts";
import type { Dataset, Preprocessing, Ranking } from "../types.ts";
import { imagesToTensor } from "../data/tensors.ts";

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
 * The top class `model` predicts for every image of `ds` (argmax of its scores), in order.
 *
 * @example
 * ```ts
 * const predicted = await predictClasses(model, test, prep); // Int32Array(test.count)
 * ```
 */
export async function predictClasses(
  model: tf.LayersModel,
  ds: Dataset,
  prep: Preprocessing,
  batch = 256,
): Promise<Int32Array> {
  const size = Math.max(1, Math.floor(batch));
  const predicted = new Int32Array(ds.count);
  for (let start = 0; start < ds.count; start += size) {
    const n = Math.min(size, ds.count - start);
    const top = tf.tidy(() => {
      const scores = model.predict(imagesToTensor(ds, start, n, prep), { batchSize: n }) as tf.Tensor2D;
      return tf.argMax(scores, 1);
    });
    try {
      predicted.set(await top.data() as Int32Array, start);
    } finally {
      top.dispose();
    }
  }
  return predicted;
}

/**
 * Run `fn` with `channels` of `layer` zeroed (every kernel entry of output channel c, and
 * bias[c]) in `model`'s own weights, then restore the original weights, also when `fn` throws.
 *
 * @example
 * ```ts
 * const predicted = await withChannelsZeroed(model, layer, [3, 7], () => predictClasses(model, test, prep));
 * ```
 */
export async function withChannelsZeroed<T>(
  model: tf.LayersModel,
  layer: LayerRef,
  channels: number[],
  fn: () => Promise<T>,
): Promise<T> {
  const conv = model.getLayer(layer.name);
  const c = layer.channels;
  const live = conv.getWeights();
  const shapes = live.map((t) => t.shape);
  // getWeights() returns the live variables: copy their values (read asynchronously for WebGPU).
  const originals = (await Promise.all(live.map((t) => t.data() as Promise<Float32Array>))).map((v) =>
    v.slice()
  );
  const kernelAt = shapes.findIndex((s) => s.length === 4 && s[3] === c);
  const biasAt = shapes.findIndex((s) => s.length === 1 && s[0] === c);
  if (kernelAt < 0) throw new Error(`layer ${layer.name} has no 4-D kernel with ${c} output channels`);
  const working = originals.map((v) => v.slice());
  for (const ch of channels) {
    if (!(Number.isInteger(ch) && ch >= 0 && ch < c)) {
      throw new RangeError(`channel ${ch} is not in 0..${c - 1}`);
    }
    const kernel = working[kernelAt];
    for (let i = ch; i < kernel.length; i += c) kernel[i] = 0;
    if (biasAt >= 0) working[biasAt][ch] = 0;
  }
  const set = (values: Float32Array[]) => {
    const tensors = values.map((v, i) => tf.tensor(v, shapes[i], "float32"));
    try {
      conv.setWeights(tensors);
    } finally {
      tensors.forEach((t) => t.dispose());
    }
  };
  set(working);
  try {
    return await fn();
  } finally {
    set(originals);
  }
}

/**
 * The confusion matrix of `model` on `ds` with the K first channels of `ranking` pruned, for
 * each K of `ks`, by zeroing weights and predicting every image (the naive method).
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
): Promise<ConfusionMatrix[]> {
  const matrices: ConfusionMatrix[] = [];
  for (const k of ks) {
    if (!(Number.isInteger(k) && k >= 0 && k <= ranking.order.length)) {
      throw new RangeError(`K = ${k} is not in 0..${ranking.order.length}`);
    }
    const predicted = await withChannelsZeroed(
      model,
      layer,
      ranking.order.slice(0, k),
      () => predictClasses(model, ds, prep, batch),
    );
    matrices.push(confusionMatrix(k, classes, ds.labels.subarray(0, ds.count), predicted));
  }
  return matrices;
}

/**
 * The same matrices as {@link confusionAtK}, from the layer's cached outputs: for each K the
 * K first channels of `ranking` are set to `split.activationOfZero` (`maskChannels`) and the
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
  const { count, height, width, channels } = out;
  if (labels.length < count) throw new Error(`${labels.length} labels for ${count} images`);
  const perImage = height * width * channels;
  const size = Math.max(1, Math.floor(batch));
  const matrices: ConfusionMatrix[] = [];
  for (const k of ks) {
    if (!(Number.isInteger(k) && k >= 0 && k <= ranking.order.length)) {
      throw new RangeError(`K = ${k} is not in 0..${ranking.order.length}`);
    }
    const pruned = new Uint8Array(channels);
    for (const c of ranking.order.slice(0, k)) pruned[c] = 1;
    const predicted = new Int32Array(count);
    for (let start = 0; start < count; start += size) {
      const n = Math.min(size, count - start);
      const top = tf.tidy(() => {
        const y = tf.tensor4d(out.data.subarray(start * perImage, (start + n) * perImage), [
          n,
          height,
          width,
          channels,
        ]);
        return tf.argMax(split.suffix(maskChannels(y, pruned, split.activationOfZero)), 1);
      });
      try {
        predicted.set(await top.data() as Int32Array, start);
      } finally {
        top.dispose();
      }
    }
    matrices.push(confusionMatrix(k, classes, labels.subarray(0, count), predicted));
  }
  return matrices;
}
