/**
 * Measuring models for the compression report: per-image predicted classes (so two models can
 * be compared image by image), the largest output difference between two models, and
 * inference latency (models timed in turns).
 */
import * as tf from "@tensorflow/tfjs";
import type { SplitModel } from "../model/split.ts";
import type { Dataset, Preprocessing } from "../types.ts";
import { imagesToTensor } from "../data/tensors.ts";
import { carriedBatch, type LayerOutputs } from "../activations/layer_outputs.ts";
import { maskChannelsStacked } from "../sweep/mask.ts";

/** Latency of one batch size: the median of timed runs after warm-up runs. */
export interface Latency {
  batch: number;
  medianMs: number;
  runsMs: number[];
}

/** The median of `xs` (the mean of the middle two for an even count). */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * Time `model.predict` of each model on one random batch of `batch` images, including the
 * read-back of the scores (so asynchronous backends are timed to completion). The models take
 * turns run by run, so a machine that gets busier or quieter meanwhile shifts them alike;
 * `warmup` untimed rounds first. One `Latency` per model, in order.
 *
 * @example
 * ```ts
 * const [before, after] = await compareLatency([model, slim], 256);
 * before.medianMs / after.medianMs; // the speed-up
 * ```
 */
export async function compareLatency(
  models: tf.LayersModel[],
  batch: number,
  runs = 5,
  warmup = 2,
): Promise<Latency[]> {
  const shape = models[0].inputs[0].shape.slice(1) as number[];
  const x = tf.randomUniform([batch, ...shape], -1, 1, "float32", 1234);
  const runsMs: number[][] = models.map(() => []);
  try {
    for (let i = 0; i < warmup + runs; i++) {
      for (const [m, model] of models.entries()) {
        const t0 = performance.now();
        const y = model.predict(x) as tf.Tensor;
        try {
          await y.data();
        } finally {
          y.dispose();
        }
        if (i >= warmup) runsMs[m].push(performance.now() - t0);
      }
    }
  } finally {
    x.dispose();
  }
  return runsMs.map((r) => ({ batch, medianMs: r.length > 0 ? median(r) : NaN, runsMs: r }));
}

async function readClasses(scores: tf.Tensor, into: Int32Array, at: number): Promise<void> {
  const classes = tf.tidy(() => scores.argMax(-1));
  try {
    into.set(await classes.data() as Int32Array, at);
  } finally {
    classes.dispose();
  }
}

/**
 * The top class `model` predicts for every image of `ds`.
 *
 * @example
 * ```ts
 * const classes = await predictClasses(model, test, prep);
 * const correct = classes.filter((c, i) => c === test.labels[i]).length;
 * ```
 */
export async function predictClasses(
  model: tf.LayersModel,
  ds: Dataset,
  prep: Preprocessing,
  opts: { batch?: number; onProgress?: (done: number) => void } = {},
): Promise<Int32Array> {
  const batch = Math.max(1, Math.floor(opts.batch ?? 256));
  const out = new Int32Array(ds.count);
  for (let start = 0; start < ds.count; start += batch) {
    const n = Math.min(batch, ds.count - start);
    const scores = tf.tidy(() =>
      model.predict(imagesToTensor(ds, start, n, prep), { batchSize: n }) as tf.Tensor
    );
    try {
      await readClasses(scores, out, start);
    } finally {
      scores.dispose();
    }
    opts.onProgress?.(start + n);
  }
  return out;
}

/**
 * The top class of every image when the channels `pruned` of the split layer are masked (the
 * fast sweep's computation: cached layer outputs, masked, through the suffix).
 *
 * @example
 * ```ts
 * const masked = await maskedClasses(split, outputs, ranking.order.slice(0, k));
 * ```
 */
export async function maskedClasses(
  split: SplitModel,
  outputs: LayerOutputs,
  pruned: number[],
  batch = 256,
): Promise<Int32Array> {
  const { count, height, width, channels } = outputs;
  const bits = new Uint8Array(channels);
  for (const c of pruned) bits[c] = 1;
  const perImage = height * width * channels;
  const out = new Int32Array(count);
  for (let start = 0; start < count; start += batch) {
    const n = Math.min(batch, count - start);
    const scores = tf.tidy(() => {
      const y = tf.tensor4d(outputs.data.subarray(start * perImage, (start + n) * perImage), [
        n,
        height,
        width,
        channels,
      ]);
      const carried = carriedBatch(split, outputs, start, n);
      return split.suffix(maskChannelsStacked(y, bits, 1, split.activationOfZero), carried, { bits, m: 1 });
    });
    try {
      await readClasses(scores, out, start);
    } finally {
      scores.dispose();
    }
  }
  return out;
}

/** How many entries of `classes` equal `labels`. */
export function countMatches(classes: Int32Array, labels: ArrayLike<number>): number {
  let n = 0;
  for (let i = 0; i < classes.length; i++) if (classes[i] === labels[i]) n++;
  return n;
}

/**
 * The largest |a(x) - b(x)| over the outputs of the first `count` images of `ds`.
 *
 * @example
 * ```ts
 * await maxOutputDifference(masked, slim, test, prep, 256); // ~1e-7: the same function
 * ```
 */
export async function maxOutputDifference(
  a: tf.LayersModel,
  b: tf.LayersModel,
  ds: Dataset,
  prep: Preprocessing,
  count = 256,
): Promise<number> {
  const largest = tf.tidy(() => {
    const x = imagesToTensor(ds, 0, Math.min(count, ds.count), prep);
    return tf.max(tf.abs(tf.sub(a.predict(x) as tf.Tensor, b.predict(x) as tf.Tensor)));
  });
  try {
    return (await largest.data())[0];
  } finally {
    largest.dispose();
  }
}

/**
 * The latencies of `before` and `after` at batch 1 and at batch 256, `runs` timed runs each
 * (the two models in turns); null when `runs` is 0.
 *
 * @example
 * ```ts
 * const [b, a] = (await latencyBeforeAfter(model, slim, 5))!; // b.batch1.medianMs / a.batch1.medianMs
 * ```
 */
export async function latencyBeforeAfter(
  before: tf.LayersModel,
  after: tf.LayersModel,
  runs: number,
): Promise<{ batch1: Latency; batch256: Latency }[] | null> {
  if (runs <= 0) return null;
  const [b1, a1] = await compareLatency([before, after], 1, runs);
  const [b256, a256] = await compareLatency([before, after], 256, runs);
  return [{ batch1: b1, batch256: b256 }, { batch1: a1, batch256: a256 }];
}
