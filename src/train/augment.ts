/**
 * The standard CIFAR-10 augmentation: a random crop of the image padded by 4 zero pixels on each
 * side, and a horizontal flip with probability 1/2. Works on HWC images of any size (bytes or
 * floats); CIFAR-10's 32 x 32 x 3 unless told.
 */
import { CIFAR10_SHAPE, type ImageShape, type Pixels } from "../types.ts";

/**
 * Copy image `src` (`shape`, HWC) into `dst` shifted by (dy, dx) in -pad..pad, zero-filled,
 * mirrored left-right when `flip`.
 */
export function cropFlip(
  src: Pixels,
  dst: Pixels,
  dy: number,
  dx: number,
  flip: boolean,
  shape: ImageShape = CIFAR10_SHAPE,
): void {
  const { height: h, width: w, channels: c } = shape;
  dst.fill(0);
  for (let y = 0; y < h; y++) {
    const sy = y + dy;
    if (sy < 0 || sy >= h) continue;
    for (let x = 0; x < w; x++) {
      const sx0 = x + dx;
      if (sx0 < 0 || sx0 >= w) continue;
      const sx = flip ? w - 1 - sx0 : sx0;
      const s = (sy * w + sx) * c, d = (y * w + x) * c;
      for (let k = 0; k < c; k++) dst[d + k] = src[s + k];
    }
  }
}

/** Gather `indices` from `images` (of `shape`) into a new batch, augmented with `rand` when `augment`. */
export function gatherBatch<P extends Pixels>(
  images: P,
  indices: ArrayLike<number>,
  augment: boolean,
  rand: () => number,
  pad = 4,
  shape: ImageShape = CIFAR10_SHAPE,
): P {
  const size = shape.height * shape.width * shape.channels;
  const out =
    (images instanceof Float32Array
      ? new Float32Array(indices.length * size)
      : new Uint8Array(indices.length * size)) as P;
  for (let i = 0; i < indices.length; i++) {
    const src = images.subarray(indices[i] * size, (indices[i] + 1) * size);
    const dst = out.subarray(i * size, (i + 1) * size);
    if (!augment) {
      dst.set(src);
      continue;
    }
    const dy = Math.floor(rand() * (2 * pad + 1)) - pad;
    const dx = Math.floor(rand() * (2 * pad + 1)) - pad;
    cropFlip(src, dst, dy, dx, rand() < 0.5, shape);
  }
  return out;
}
