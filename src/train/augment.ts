/**
 * The standard CIFAR-10 augmentation: a random 32x32 crop of the image padded by 4 zero pixels
 * on each side, and a horizontal flip with probability 1/2. Works on uint8 HWC images.
 */
import { IMAGE_BYTES } from "../data/cifar10.ts";

/**
 * Copy image `src` (32x32x3 uint8) into `dst` shifted by (dy, dx) in -pad..pad, zero-filled,
 * mirrored left-right when `flip`.
 */
export function cropFlip(src: Uint8Array, dst: Uint8Array, dy: number, dx: number, flip: boolean): void {
  dst.fill(0);
  for (let y = 0; y < 32; y++) {
    const sy = y + dy;
    if (sy < 0 || sy >= 32) continue;
    for (let x = 0; x < 32; x++) {
      const sx0 = x + dx;
      if (sx0 < 0 || sx0 >= 32) continue;
      const sx = flip ? 31 - sx0 : sx0;
      const s = (sy * 32 + sx) * 3, d = (y * 32 + x) * 3;
      dst[d] = src[s];
      dst[d + 1] = src[s + 1];
      dst[d + 2] = src[s + 2];
    }
  }
}

/** Gather `indices` from `images` into a new batch, augmented with `rand` when `augment`. */
export function gatherBatch(
  images: Uint8Array,
  indices: ArrayLike<number>,
  augment: boolean,
  rand: () => number,
  pad = 4,
): Uint8Array {
  const out = new Uint8Array(indices.length * IMAGE_BYTES);
  for (let i = 0; i < indices.length; i++) {
    const src = images.subarray(indices[i] * IMAGE_BYTES, (indices[i] + 1) * IMAGE_BYTES);
    const dst = out.subarray(i * IMAGE_BYTES, (i + 1) * IMAGE_BYTES);
    if (!augment) {
      dst.set(src);
      continue;
    }
    const dy = Math.floor(rand() * (2 * pad + 1)) - pad;
    const dx = Math.floor(rand() * (2 * pad + 1)) - pad;
    cropFlip(src, dst, dy, dx, rand() < 0.5);
  }
  return out;
}
