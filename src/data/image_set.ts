/**
 * Helpers every reader in src/data/ shares: the size checks made before allocating, the label
 * check, and taking the first N images. The set itself is `Dataset` (src/types.ts) with its shape
 * and class names filled in.
 */
import { UserError } from "../core/errors.ts";
import type { Dataset, ImageShape } from "../types.ts";

export type { ImageShape, Pixels } from "../types.ts";

/** A labelled image set with its shape and class names: what every reader in src/data/ returns. */
export interface ImageSet extends Dataset {
  shape: ImageShape;
  classNames: string[];
}

/** Bytes of one image. */
export function imageBytes(shape: ImageShape): number {
  return shape.height * shape.width * shape.channels;
}

/** "28x28x1". */
export function describeShape(shape: ImageShape): string {
  return `${shape.height}x${shape.width}x${shape.channels}`;
}

/**
 * The largest image set a reader builds in memory (4 GiB of pixels): past it, a hostile header
 * would make us allocate without bound.
 */
export const MAX_SET_BYTES = 4 * 2 ** 30;

/**
 * Check a header's claim before allocating for it: `count` images of `shape` fit the cap.
 *
 * @example
 * ```ts
 * checkSetSize(10000, { height: 28, width: 28, channels: 1 }, "t10k-images-idx3-ubyte");
 * ```
 */
export function checkSetSize(count: number, shape: ImageShape, source: string): void {
  const bytes = count * imageBytes(shape);
  if (!Number.isSafeInteger(bytes) || bytes > MAX_SET_BYTES) {
    throw new UserError(
      `${source}: ${count} images of ${describeShape(shape)} would take ${
        (bytes / 2 ** 30).toFixed(1)
      } GiB, over the ${MAX_SET_BYTES / 2 ** 30} GiB limit: use fewer or smaller images (--limit).`,
    );
  }
}

/**
 * Throw a UserError naming the first label outside 0..classes-1.
 *
 * @example
 * ```ts
 * checkLabels(new Uint8Array([0, 3, 9]), 10, "y_test in test.npz");
 * ```
 */
export function checkLabels(labels: ArrayLike<number>, classes: number, source: string): void {
  for (let i = 0; i < labels.length; i++) {
    const y = labels[i];
    if (!Number.isInteger(y) || y < 0 || y >= classes) {
      throw new UserError(
        `${source}: label ${y} at index ${i} is outside 0..${classes - 1}: the labels do not match ` +
          `the ${classes} classes; check the file (or --classes).`,
      );
    }
  }
}

/** Take the first `limit` images (a view, no copy). */
export function limitSet(set: ImageSet, limit: number): ImageSet {
  if (!(limit < set.count)) return set;
  const count = Math.max(0, Math.floor(limit));
  return {
    ...set,
    images: set.images.subarray(0, count * imageBytes(set.shape)),
    labels: set.labels.subarray(0, count),
    count,
  };
}

/**
 * The bytes of a data file, or a one-line UserError: `missing` (what to do) when it does not
 * exist, the system's reason otherwise.
 *
 * @example
 * ```ts
 * const bytes = await readDataFile("data/test.bin", "CIFAR-100 file missing: data/test.bin. Pass --data DIR.");
 * ```
 */
export async function readDataFile(path: string, missing: string): Promise<Uint8Array> {
  try {
    return await Deno.readFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new UserError(missing);
    throw new UserError(`cannot read ${path}: ${(e as Error).message}`);
  }
}
