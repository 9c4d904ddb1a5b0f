/**
 * The change-only sweep engine: the suffix runs only for the (image, K) pairs whose input
 * actually changed since the previous K.
 *
 * Pruning one more channel leaves an image's masked layer output bit for bit the same when that
 * channel already holds the pruned value (activation(0)) at every position for that image (a
 * relu channel that is silent on that image). Its scores, and so whether it is correct, are then
 * the same as at the previous K, so the engine carries the result forward instead of running the
 * suffix again. Every row it does run is exactly the row `sweepFast` would build (same masked
 * values, same suffix), so the counts equal `sweepFast`'s and `sweepNaive`'s.
 *
 * The rows come from a `RowSource`: `maskedRows` (the masked layer outputs, or the masked output
 * of the channel-local layers after the cut; exact) or, with the
 * algebra, `linearRows` in ../linear_head.ts (the first dense layer's pre-activations, updated per
 * pruned channel; not bit-exact, see there).
 */
import * as tf from "@tensorflow/tfjs";
import type { SplitModel } from "../../model/split.ts";
import type { Ranking, SweepPoint } from "../../types.ts";
import { carriedBatch, type LayerOutputs } from "../../activations/layer_outputs.ts";
import type { RowSource } from "../rows.ts";
import {
  checkSweepInputs,
  DEFAULT_MEMORY_BUDGET,
  rankPositions,
  resolveKValues,
  sweepPoint,
} from "../kvalues.ts";
import { pauseForSignals } from "../../core/interrupt.ts";

/** Options of `sweepIncremental`. */
export interface IncrementalSweepOptions {
  /** The K values to evaluate (default 0..C); evaluated and returned in ascending order, once each. */
  kValues?: number[];
  /** Bytes the stacked rows of one suffix call and the loaded images may take (default `DEFAULT_MEMORY_BUDGET`). */
  memoryBudgetBytes?: number;
  /** Rows per suffix call (default: from the budget, at most 1024). */
  rowsPerCall?: number;
  /** Images loaded at a time (default: from the budget, at most 1024). */
  imageBatch?: number;
  /** Where the rows come from (default `maskedRows(split)`: exact). */
  rows?: RowSource;
  /** Called after each suffix call with (rows done, rows the sweep is expected to need). */
  onWork?: (done: number, total: number) => void;
  /**
   * Called after each suffix call with its rows: `images[r]` (index in `out`), `steps[r]` (index
   * of the K value) and `predicted[r]` (class), r < m. Later K values of an image that are not
   * listed keep its last prediction. For diagnostics (comparing two row sources).
   */
  onRows?: (images: Int32Array, steps: Int32Array, predicted: Int32Array, m: number) => void;
}

/** The bit pattern a float32 store of `x` leaves. */
export function float32Bits(x: number): number {
  return new Uint32Array(Float32Array.of(x).buffer)[0];
}

/**
 * The exact row source: rows are the layer outputs with the pruned channels set to the pruned
 * value, scored by `split.suffix`; or, when the split has a `pushdown` (channel-local layers
 * such as BatchNorm and max-pooling right after the cut) and `pushdown` is not false, the
 * output of those layers, computed once per image, with pruned channels set to the constant
 * those layers make of activation(0), scored by `pushdown.tail`: the same numbers as
 * `sweepFast` either way.
 *
 * @example
 * ```ts
 * const points = await sweepIncremental(split, out, labels, ranking, { rows: maskedRows(split) });
 * ```
 */
export function maskedRows(split: SplitModel, opts: { pushdown?: boolean } = {}): RowSource {
  const pushdown = opts.pushdown === false ? undefined : split.pushdown;
  const [height, width, channels] = pushdown ? pushdown.shape : split.layer.outputShape;
  const perImage = height * width * channels;
  const fills = pushdown ? pushdown.fill : new Float32Array(channels).fill(split.activationOfZero);
  const fillBits = new Uint32Array(Float32Array.from(fills).buffer);
  let state = new Float32Array(0);
  let bits = new Uint32Array(0);
  let loaded = 0;
  let source: { out: LayerOutputs; start: number } | undefined;
  return {
    rowShape: [height, width, channels],
    bytesPerRow: 8 * perImage + 8 * (pushdown ? pushdown.tailElementsPerImage : split.suffixElementsPerImage),
    stateBytesPerImage: 8 * perImage,
    async begin(src, start, n) {
      if (state.length < n * perImage) {
        state = new Float32Array(n * perImage);
        bits = new Uint32Array(state.buffer);
      }
      const perIn = src.height * src.width * src.channels;
      const values = src.data.subarray(start * perIn, (start + n) * perIn);
      if (pushdown) {
        const head = tf.tidy(() =>
          pushdown.head(tf.tensor4d(values, [n, src.height, src.width, src.channels]))
        );
        try {
          state.set(await head.data() as Float32Array);
        } finally {
          head.dispose();
        }
      } else {
        state.set(values);
      }
      loaded = n;
      source = { out: src, start };
    },
    prune(c, changed) {
      const fill = fillBits[c];
      for (let i = 0; i < loaded; i++) {
        const end = (i + 1) * perImage;
        let hit = 0;
        for (let at = i * perImage + c; at < end; at += channels) {
          if (bits[at] !== fill) {
            bits[at] = fill;
            hit = 1;
          }
        }
        if (hit) changed[i] = 1;
      }
    },
    row(i, dst) {
      dst.set(state.subarray(i * perImage, (i + 1) * perImage));
    },
    scores(rows, images) {
      // The tensors that cross the cut, for each row's image (none for a plain chain).
      const all = source ? carriedBatch(split, source.out, source.start, loaded) : undefined;
      const rowImages = images ?? Int32Array.from({ length: rows.shape[0] }, (_, r) => r);
      const carried = all?.map((t) => tf.gather(t, tf.tensor1d(rowImages, "int32")));
      return pushdown
        ? pushdown.tail(rows as tf.Tensor4D, carried)
        : split.suffix(rows as tf.Tensor4D, carried);
    },
  };
}

/**
 * For each K (sorted, distinct) the number of images whose input changes from the previous K:
 * all `out.count` images at the first K, then those for which a channel newly pruned is not
 * already the pruned value `fill` everywhere. The change-only engine runs that many suffix rows
 * per K; the parallel pool splits K ranges by it.
 *
 * @example
 * ```ts
 * const rows = changeCounts(out, split.activationOfZero, ranking.order, [0, 1, 2]);
 * rows[0] === out.count;
 * ```
 */
export function changeCounts(out: LayerOutputs, fill: number, order: number[], ks: number[]): Int32Array {
  const { count, channels } = out;
  const positions = out.height * out.width;
  const perImage = positions * channels;
  const fillBits = float32Bits(fill);
  const bits = new Uint32Array(out.data.buffer, out.data.byteOffset, count * perImage);
  // stepOf[rank position] = the index of the first K that prunes it (ks.length when none does).
  const stepOf = new Int32Array(channels).fill(ks.length);
  for (let j = ks.length - 1; j >= 0; j--) {
    for (let p = j > 0 ? ks[j - 1] : 0; p < ks[j]; p++) stepOf[p] = j;
  }
  const stepOfChannel = new Int32Array(channels);
  order.forEach((c, p) => (stepOfChannel[c] = stepOf[p]));
  const counts = new Int32Array(ks.length);
  const seen = new Uint8Array(ks.length);
  const live = new Uint8Array(channels);
  for (let i = 0; i < count; i++) {
    live.fill(0);
    const base = i * perImage;
    for (let p = 0; p < positions; p++) {
      const row = base + p * channels;
      for (let c = 0; c < channels; c++) if (bits[row + c] !== fillBits) live[c] = 1;
    }
    seen.fill(0);
    seen[0] = 1;
    for (let c = 0; c < channels; c++) {
      const j = stepOfChannel[c];
      if (live[c] && j > 0 && j < ks.length) seen[j] = 1;
    }
    for (let j = 0; j < ks.length; j++) counts[j] += seen[j];
  }
  return counts;
}

/** Argmax per row of `scores`, downloaded. */
async function predictedClasses(scores: tf.Tensor2D): Promise<Int32Array> {
  const classes = tf.tidy(() => tf.argMax(scores, 1));
  try {
    return await classes.data() as Int32Array;
  } finally {
    classes.dispose();
  }
}

/**
 * Accuracy for each K (the K first channels of `ranking.order` pruned), running the suffix only
 * where an image's input changed. Same counts as `sweepFast` with the default (exact) rows.
 *
 * @example
 * ```ts
 * const out = await computeLayerOutputs(split, test, prep);
 * const points = await sweepIncremental(split, out, test.labels, rankByMean(out));
 * ```
 */
export async function sweepIncremental(
  split: SplitModel,
  out: LayerOutputs,
  labels: Uint8Array,
  ranking: Ranking,
  opts: IncrementalSweepOptions = {},
): Promise<SweepPoint[]> {
  const { count, channels } = out;
  checkSweepInputs(split.layer, out, labels);
  if (split.members.length > 0) {
    // A member after the cut changes an image's scores where the cut's values did not change.
    throw new Error(
      `the change-only engine sweeps one layer; ${split.layer.name} heads a group: use sweepFast`,
    );
  }
  const ks = resolveKValues(opts.kValues, channels);
  rankPositions(ranking, channels); // validates the ranking
  const order = ranking.order;
  const source = opts.rows ?? maskedRows(split);
  const rowSize = source.rowShape.reduce((a, b) => a * b, 1);
  const budget = opts.memoryBudgetBytes ?? DEFAULT_MEMORY_BUDGET;
  const rowsPerCall = Math.max(
    1,
    Math.floor(opts.rowsPerCall ?? Math.min(1024, budget / source.bytesPerRow)),
  );
  const imageBatch = Math.max(
    1,
    Math.min(
      count,
      Math.floor(
        opts.imageBatch ?? Math.min(1024, source.imageBatch ?? 1024, budget / 4 / source.stateBytesPerImage),
      ),
    ),
  );
  const totalRows = opts.onWork
    ? changeCounts(out, split.activationOfZero, order, ks).reduce((a, b) => a + b, 0)
    : 0;

  const diff = new Float64Array(ks.length);
  // diff split by true class: classDiff[j * classes + c] (the class count is the scores' width,
  // known at the first suffix call).
  let classes = 0;
  let classDiff = new Float64Array(0);
  const stack = new Float32Array(rowsPerCall * rowSize);
  const rowImage = new Int32Array(rowsPerCall);
  const rowStep = new Int32Array(rowsPerCall);
  let filled = 0;
  let rowsDone = 0;
  let start = 0;
  let current = new Uint8Array(0); // correct (1) or not (0) at the last evaluated K, per loaded image

  const flush = async () => {
    if (filled === 0) return;
    const m = filled;
    filled = 0;
    const scores = source.scoreRows ? source.scoreRows(stack, m, rowImage) : tf.tidy(() =>
      source.scores(
        tf.tensor(stack.subarray(0, m * rowSize), [m, ...source.rowShape]),
        rowImage.subarray(0, m),
      )
    );
    if (classes === 0) {
      classes = scores.shape[1];
      classDiff = new Float64Array(ks.length * classes);
    }
    let predicted: Int32Array;
    try {
      predicted = await predictedClasses(scores);
    } finally {
      scores.dispose();
    }
    if (opts.onRows) {
      opts.onRows(rowImage.map((i) => start + i).subarray(0, m), rowStep.subarray(0, m), predicted, m);
    }
    for (let r = 0; r < m; r++) {
      const i = rowImage[r];
      const label = labels[start + i];
      const ok = predicted[r] === label ? 1 : 0;
      diff[rowStep[r]] += ok - current[i];
      classDiff[rowStep[r] * classes + label] += ok - current[i];
      current[i] = ok;
    }
    rowsDone += m;
    opts.onWork?.(rowsDone, Math.max(totalRows, rowsDone));
  };

  const changed = new Uint8Array(imageBatch);
  for (start = 0; start < count; start += imageBatch) {
    const n = Math.min(imageBatch, count - start);
    await source.begin(out, start, n);
    await pauseForSignals();
    current = new Uint8Array(n);
    for (let j = 0; j < ks.length; j++) {
      changed.fill(j === 0 ? 1 : 0);
      for (let p = j > 0 ? ks[j - 1] : 0; p < ks[j]; p++) source.prune(order[p], changed);
      for (let i = 0; i < n; i++) {
        if (!changed[i]) continue;
        source.row(i, stack.subarray(filled * rowSize, (filled + 1) * rowSize));
        rowImage[filled] = i;
        rowStep[filled] = j;
        if (++filled === rowsPerCall) await flush();
      }
    }
    await flush();
  }
  opts.onWork?.(rowsDone, rowsDone);
  const points: SweepPoint[] = [];
  let correct = 0;
  const classCorrect = new Array<number>(classes).fill(0);
  ks.forEach((k, j) => {
    correct += diff[j];
    for (let c = 0; c < classes; c++) classCorrect[c] += classDiff[j * classes + c];
    points.push(sweepPoint(k, ranking, correct, count, classCorrect.slice()));
  });
  return points;
}
