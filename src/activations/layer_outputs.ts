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
  const bytes = ds.count * perImage * 4;
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_OUTPUT_BYTES;
  if (bytes > maxBytes) {
    throw new UserError(
      `layer ${split.layer.name}'s outputs for ${ds.count} images need ${(bytes / 2 ** 30).toFixed(1)} GiB ` +
        `(${height}x${width}x${channels} per image), more than the ${
          (maxBytes / 2 ** 30).toFixed(1)
        } GiB allowed: ` +
        `use fewer images (--limit) or a later, smaller layer.`,
    );
  }
  const batch = Math.max(1, Math.floor(opts.batch ?? 256));
  const data = new Float32Array(ds.count * perImage);
  let broken = 0;
  for (let start = 0; start < ds.count; start += batch) {
    const y = tf.tidy(() => split.prefix(imagesToTensor(ds, start, batch, prep)));
    try {
      const values = await y.data() as Float32Array;
      await pauseForSignals();
      data.set(values, start * perImage);
      broken += nonFiniteRows(values, perImage);
    } finally {
      y.dispose();
    }
    opts.onProgress?.(Math.min(ds.count, start + batch));
  }
  if (broken > 0) throw nonFiniteError(`layer ${split.layer.name}'s outputs`, broken, ds.count);
  return { data, count: ds.count, height, width, channels };
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
      const scores = split.suffix(y);
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
