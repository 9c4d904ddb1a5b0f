/**
 * The prefix pass: the pruned layer's output for every image, computed once and kept in one
 * Float32Array (N x H x W x C, NHWC), from which the ranking, the average feature maps and the
 * fast sweep all read.
 */
import * as tf from "@tensorflow/tfjs";
import { UserError } from "../core/errors.ts";
import type { SplitModel } from "../model/split.ts";
import type { Dataset, Preprocessing } from "../types.ts";
import { imagesToTensor } from "../data/tensors.ts";
import { pauseForSignals } from "../core/interrupt.ts";

/** The layer's output for `count` images, NHWC. */
export interface LayerOutputs {
  /** count * height * width * channels values, image-major (NHWC). */
  data: Float32Array;
  count: number;
  height: number;
  width: number;
  channels: number;
  /**
   * The split's carried tensors for the same images (`SplitModel.carried`, in order), each
   * count x its per-image size; absent when nothing crosses the cut.
   */
  carried?: Float32Array[];
}

/** Per-image sizes of the split's carried tensors. */
export function carriedSizes(split: SplitModel): number[] {
  return split.carried.map((t) => t.shape.reduce((a, b) => a * b, 1));
}

/**
 * The carried tensors of images `start .. start+n-1` of `out`, each repeated `m` times (block j
 * for mask j, as `maskChannelsStacked` stacks the layer's output), as tensors; none without
 * carried tensors. The caller owns them (or runs this in a tidy).
 */
export function carriedBatch(
  split: SplitModel,
  out: LayerOutputs,
  start: number,
  n: number,
  m = 1,
): tf.Tensor[] | undefined {
  if (split.carried.length === 0) return undefined;
  if (!out.carried || out.carried.length !== split.carried.length) {
    throw new Error(
      `the layer outputs hold no carried tensors for the ${split.carried.length} the split needs`,
    );
  }
  const sizes = carriedSizes(split);
  return split.carried.map((t, i) =>
    tf.tidy(() => {
      const x = tf.tensor(out.carried![i].subarray(start * sizes[i], (start + n) * sizes[i]), [
        n,
        ...t.shape,
      ]);
      return m === 1 ? x : tf.tile(x, [m, ...t.shape.map(() => 1)]);
    })
  );
}

/** The most bytes `computeLayerOutputs` keeps in memory unless told otherwise (2 GiB). */
export const DEFAULT_MAX_OUTPUT_BYTES = 2 ** 31;

/** Options of `computeLayerOutputs`. */
export interface LayerOutputsOptions {
  /** Images per prefix call (default 256). */
  batch?: number;
  /** Called after each batch with the number of images done. */
  onProgress?: (done: number) => void;
  /** Refuse (UserError) when the outputs would need more bytes than this. */
  maxBytes?: number;
}

/**
 * Run the prefix of `split` over every image of `ds`, once, and gather the layer's outputs.
 *
 * @example
 * ```ts
 * const out = await computeLayerOutputs(split, test, prep, { onProgress: (n) => bar.update(n) });
 * out.data.length === out.count * out.height * out.width * out.channels;
 * ```
 */
export async function computeLayerOutputs(
  split: SplitModel,
  ds: Dataset,
  prep: Preprocessing,
  opts: LayerOutputsOptions = {},
): Promise<LayerOutputs> {
  const [height, width, channels] = split.layer.outputShape;
  const perImage = height * width * channels;
  const sizes = carriedSizes(split);
  const bytes = ds.count * (perImage + sizes.reduce((a, b) => a + b, 0)) * 4;
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_OUTPUT_BYTES;
  if (bytes > maxBytes) {
    throw new UserError(
      `layer ${split.layer.name}'s outputs for ${ds.count} images need ${(bytes / 2 ** 30).toFixed(1)} GiB ` +
        `(${height}x${width}x${channels} per image${
          sizes.length > 0 ? ` and ${sizes.length} tensors that cross the cut` : ""
        }), more than the ${(maxBytes / 2 ** 30).toFixed(1)} GiB allowed: ` +
        `use fewer images (--limit) or a later, smaller layer.`,
    );
  }
  const batch = Math.max(1, Math.floor(opts.batch ?? 256));
  const data = new Float32Array(ds.count * perImage);
  const carried = sizes.map((size) => new Float32Array(ds.count * size));
  let broken = 0;
  for (let start = 0; start < ds.count; start += batch) {
    const ys = tf.tidy(() => {
      const x = imagesToTensor(ds, start, batch, prep);
      return sizes.length > 0 ? split.prefixAll(x) : [split.prefix(x)];
    });
    try {
      const values = await ys[0].data() as Float32Array;
      await pauseForSignals();
      data.set(values, start * perImage);
      broken += nonFiniteRows(values, perImage);
      for (let i = 0; i < sizes.length; i++) {
        carried[i].set(await ys[i + 1].data() as Float32Array, start * sizes[i]);
      }
    } finally {
      ys.forEach((y) => y.dispose());
    }
    opts.onProgress?.(Math.min(ds.count, start + batch));
  }
  if (broken > 0) throw nonFiniteError(`layer ${split.layer.name}'s outputs`, broken, ds.count);
  return { data, count: ds.count, height, width, channels, ...(sizes.length > 0 ? { carried } : {}) };
}

/** How many of the rows of `width` values in `values` hold NaN or Infinity. */
function nonFiniteRows(values: Float32Array, width: number): number {
  let rows = 0;
  for (let r = 0; r * width < values.length; r++) {
    const end = Math.min(values.length, (r + 1) * width);
    for (let i = r * width; i < end; i++) {
      if (!Number.isFinite(values[i])) {
        rows++;
        break;
      }
    }
  }
  return rows;
}

function nonFiniteError(what: string, images: number, of: number): UserError {
  return new UserError(
    `${what} are NaN or infinite for ${images} of ${of} images: check the preprocessing ` +
      `(--scale, --mean, --std; a zero std divides by zero) and the model's weights; stopping here.`,
  );
}

/**
 * Run the suffix at K = 0 (nothing pruned) over the cached layer outputs, `batch` images at a time,
 * and throw a one-line UserError when some image's class scores are NaN or infinite.
 *
 * @example
 * ```ts
 * await assertFiniteScores(split, outputs, 256);
 * ```
 */
export async function assertFiniteScores(split: SplitModel, out: LayerOutputs, batch = 256): Promise<void> {
  const perImage = out.height * out.width * out.channels;
  let broken = 0;
  for (let start = 0; start < out.count; start += batch) {
    const n = Math.min(batch, out.count - start);
    const bad = tf.tidy(() => {
      const y = tf.tensor4d(
        out.data.subarray(start * perImage, (start + n) * perImage),
        [n, out.height, out.width, out.channels],
      );
      const scores = split.suffix(y, carriedBatch(split, out, start, n));
      return tf.logicalNot(tf.isFinite(scores)).any(1).cast("int32").sum();
    });
    broken += (await bad.data())[0];
    bad.dispose();
  }
  if (broken > 0) {
    throw nonFiniteError(`the class scores at K = 0 (after ${split.layer.name})`, broken, out.count);
  }
}

/**
 * The lab's average feature maps: the layer's output averaged over the images, H x W x C
 * (HWC, channel last), accumulated in float64.
 *
 * @example
 * ```ts
 * const maps = averageMaps(out); // maps[(y * W + x) * C + c]
 * ```
 */
export function averageMaps(out: LayerOutputs): Float32Array {
  const perImage = out.height * out.width * out.channels;
  const sum = new Float64Array(perImage);
  const { data } = out;
  for (let n = 0; n < out.count; n++) {
    const base = n * perImage;
    for (let i = 0; i < perImage; i++) sum[i] += data[base + i];
  }
  const maps = new Float32Array(perImage);
  for (let i = 0; i < perImage; i++) maps[i] = out.count > 0 ? sum[i] / out.count : 0;
  return maps;
}
