/**
 * The fast sweep engine. The part of the network before the pruned layer never runs again:
 * the layer's outputs (computed once, `LayerOutputs`) are masked and only the suffix runs, with
 * many K values batched together: one image batch is stacked under m masks (one per K) and
 * scored by one suffix call on m x B images.
 *
 * Pruning K channels here gives exactly what the lab's zeroing gives: each of the K first
 * channels of the ranking emits `split.activationOfZero` everywhere, every other value is
 * untouched (see mask.ts), and the suffix is the model's own layers (see split.ts). When
 * channel-local layers follow the cut (activation, BatchNorm, MaxPool), they run once per image
 * and the mask goes after them, with the constants they make of a pruned channel (`Pushdown`):
 * the same numbers, for less work per K.
 */
import * as tf from "@tensorflow/tfjs";
import type { Pushdown, SplitModel } from "../../model/split.ts";
import type { Ranking, SweepPoint } from "../../types.ts";
import { carriedBatch, type LayerOutputs } from "../../activations/layer_outputs.ts";
import { defaultMasking, maskChannelsStacked, type MaskingSite, maskStackInto } from "../mask.ts";
import { countCorrectByClass, splitClassCounts } from "../../model/evaluate.ts";
import {
  checkSweepInputs,
  DEFAULT_MEMORY_BUDGET,
  rankPositions,
  resolveKValues,
  sweepPoint,
} from "../kvalues.ts";
import { pauseForSignals } from "../../core/interrupt.ts";

/** Options of `sweepFast`. */
export interface FastSweepOptions {
  /** The K values to evaluate (default 0..C); evaluated and returned in ascending order, once each. */
  kValues?: number[];
  /** K values per suffix call (m); default from the memory budget. */
  kBatch?: number;
  /** Images per suffix call before stacking (B); default min(N, 256), less if the budget says so. */
  imageBatch?: number;
  /** Bytes the stacked batches may take (default `DEFAULT_MEMORY_BUDGET`). */
  memoryBudgetBytes?: number;
  /**
   * Where the m masked copies of a batch are built: "host" (JS copies, one upload; fast on
   * cpu and wasm) or "device" (`tf.where` with broadcasting; for GPU backends). Both are exact.
   * Default: "host" on the cpu and wasm backends, else "device".
   */
  masking?: MaskingSite;
  /**
   * Run the channel-local layers right after the cut (see `Pushdown`) once per image rather
   * than once per K (default true when the split has them; same counts either way).
   */
  pushdown?: boolean;
  /** Called when K values are finished, with how many are done. */
  onProgress?: (kDone: number) => void;
  /** Called after each suffix call with (image evaluations done, total): finer than `onProgress`. */
  onWork?: (done: number, total: number) => void;
}

/** How many K values (m) and images (B) go into one suffix call. */
export interface SweepBatching {
  kBatch: number;
  imageBatch: number;
}

/**
 * Choose m and B so that one stacked call (m x B images: the masked layer output, its select
 * inputs and the suffix's activations) fits `budget` bytes.
 */
export function planBatching(
  perImageLayer: number,
  perImageSuffix: number,
  images: number,
  kCount: number,
  opts: { kBatch?: number; imageBatch?: number; memoryBudgetBytes?: number } = {},
): SweepBatching {
  // Per stacked image: condition (1 B) + fill and input broadcasts + result (3 x 4 B) per layer
  // value, with slack, and the suffix's layer outputs, two alive at a time.
  const bytesPerImage = 16 * perImageLayer + 8 * perImageSuffix;
  const budget = opts.memoryBudgetBytes ?? DEFAULT_MEMORY_BUDGET;
  const maxStack = Math.max(1, Math.floor(budget / bytesPerImage));
  const imageBatch = Math.max(1, Math.min(images, Math.floor(opts.imageBatch ?? Math.min(256, maxStack))));
  const kBatch = Math.max(1, Math.min(kCount, Math.floor(opts.kBatch ?? maxStack / imageBatch)));
  return { kBatch, imageBatch };
}

/** The cached layer outputs run through `pushdown.head`, batch by batch. */
async function runHead(pushdown: Pushdown, out: LayerOutputs, batch = 256): Promise<LayerOutputs> {
  const [height, width, channels] = pushdown.shape;
  const perIn = out.height * out.width * out.channels;
  const perOut = height * width * channels;
  const data = new Float32Array(out.count * perOut);
  for (let first = 0; first < out.count; first += batch) {
    const n = Math.min(batch, out.count - first);
    const z = tf.tidy(() => {
      const y = tf.tensor4d(out.data.subarray(first * perIn, (first + n) * perIn), [
        n,
        out.height,
        out.width,
        out.channels,
      ]);
      return pushdown.head(y);
    });
    try {
      data.set(await z.data() as Float32Array, first * perOut);
    } finally {
      z.dispose();
    }
  }
  return { ...out, data, height, width, channels };
}

/**
 * Accuracy for each K (the K first channels of `ranking.order` pruned), from the layer's
 * cached outputs. `labels[i]` is the class of image i of `out`.
 *
 * @example
 * ```ts
 * const out = await computeLayerOutputs(split, test, prep);
 * const points = await sweepFast(split, out, test.labels, rankByMean(out), { onProgress: (k) => bar.update(k) });
 * points[0].accuracy; // the unpruned model's accuracy
 * ```
 */
export async function sweepFast(
  split: SplitModel,
  out: LayerOutputs,
  labels: Uint8Array,
  ranking: Ranking,
  opts: FastSweepOptions = {},
): Promise<SweepPoint[]> {
  const { count, channels } = out;
  checkSweepInputs(split.layer, out, labels);
  const ks = resolveKValues(opts.kValues, channels);
  const position = rankPositions(ranking, channels);
  // Run the channel-local layers after the cut (activation, BatchNorm, MaxPool) once per image,
  // then mask their output with what they make of a pruned channel: exactly the same numbers.
  const pushdown = opts.pushdown === false ? undefined : split.pushdown;
  const start = pushdown ? await runHead(pushdown, out) : out;
  const [height1, width1] = [start.height, start.width];
  const perImage = height1 * width1 * channels;
  const suffixSize = pushdown ? pushdown.tailElementsPerImage : split.suffixElementsPerImage;
  const { kBatch, imageBatch } = planBatching(perImage, suffixSize, count, ks.length, opts);
  const fill = pushdown ? pushdown.fill : split.activationOfZero;
  const rest = pushdown ? pushdown.tail : split.suffix;
  const masking = opts.masking ?? defaultMasking();
  const stack = masking === "host"
    ? new Float32Array(Math.min(kBatch, ks.length) * imageBatch * perImage)
    : null;
  const totalWork = ks.length * count;
  let workDone = 0;
  const points: SweepPoint[] = [];
  for (let g = 0; g < ks.length; g += kBatch) {
    const group = ks.slice(g, g + kBatch);
    const m = group.length;
    const masks = new Uint8Array(m * channels);
    group.forEach((k, j) => {
      for (let ch = 0; ch < channels; ch++) masks[j * channels + ch] = position[ch] < k ? 1 : 0;
    });
    let byClass: number[][] = [];
    for (let first = 0; first < count; first += imageBatch) {
      const n = Math.min(imageBatch, count - first);
      const batch = start.data.subarray(first * perImage, (first + n) * perImage);
      const counts = tf.tidy(() => {
        let input: tf.Tensor4D;
        if (stack) {
          const values = maskStackInto(stack.subarray(0, m * n * perImage), batch, channels, masks, m, fill);
          input = tf.tensor4d(values, [m * n, height1, width1, channels]);
        } else {
          const y = tf.tensor4d(batch, [n, height1, width1, channels]);
          input = maskChannelsStacked(y, masks, m, fill, "device");
        }
        const scores = rest(input, carriedBatch(split, out, first, n, m), { bits: masks, m });
        return countCorrectByClass(scores, labels.subarray(first, first + n), m);
      });
      try {
        const values = splitClassCounts(await counts.data(), m);
        await pauseForSignals();
        if (byClass.length === 0) byClass = values.map((row) => row.map(() => 0));
        values.forEach((row, j) => row.forEach((x, c) => (byClass[j][c] += x)));
      } finally {
        counts.dispose();
      }
      workDone += m * n;
      opts.onWork?.(workDone, totalWork);
    }
    group.forEach((k, j) => {
      const classCorrect = byClass[j] ?? [];
      points.push(sweepPoint(k, ranking, classCorrect.reduce((a, b) => a + b, 0), count, classCorrect));
    });
    opts.onProgress?.(points.length);
  }
  return points;
}
