/**
 * The tensor ops that apply a channel mask exactly as the lab's zeroing does: a pruned
 * channel's value becomes `fill` (the layer's activation of 0) at every position; every other
 * value is passed through by a select (`tf.where`), never by arithmetic, so it stays
 * bit-identical.
 */
import * as tf from "@tensorflow/tfjs";

/** `fill` as one float32 value per channel. */
function fills(fill: number | Float32Array, channels: number): Float32Array {
  if (typeof fill === "number") return new Float32Array(channels).fill(fill);
  if (fill.length !== channels) throw new Error(`${fill.length} fill values for ${channels} channels`);
  return fill;
}

function maskBits(pruned: ArrayLike<boolean | number>, channels: number): Uint8Array {
  if (pruned.length !== channels) {
    throw new Error(`mask has ${pruned.length} entries but the layer has ${channels} channels`);
  }
  return Uint8Array.from({ length: channels }, (_, c) => pruned[c] ? 1 : 0);
}

/**
 * `y` (N x H x W x C) with every channel `c` where `pruned[c]` replaced by `fill`.
 *
 * @example
 * ```ts
 * const masked = maskChannels(y, [true, false, false], split.activationOfZero); // channel 0 pruned
 * ```
 */
export function maskChannels(y: tf.Tensor4D, pruned: boolean[] | Uint8Array, fill: number): tf.Tensor4D {
  const channels = y.shape[3];
  const bits = maskBits(pruned, channels);
  return tf.tidy(() => {
    const fillValue: tf.Tensor = tf.scalar(fill, "float32");
    return tf.where(tf.tensor1d(bits, "bool"), fillValue, y as tf.Tensor) as tf.Tensor4D;
  });
}

/** Where stacked masks are built: in JS ("host") or with `tf.where` on the device ("device"). */
export type MaskingSite = "host" | "device";

/** The masking a backend does best: host copies for cpu and wasm (their broadcasts are slow), device selects elsewhere. */
export function defaultMasking(backend: string = tf.getBackend()): MaskingSite {
  return backend === "cpu" || backend === "wasm" ? "host" : "device";
}

/**
 * One batch under many masks at once: `masks` holds m masks of C entries (row-major, m x C);
 * the result is (m*N) x H x W x C, mask j applied to images j*N .. j*N+N-1. Each block equals
 * `maskChannels(y, mask_j, fill)` exactly, wherever it is built (`site`, default
 * `defaultMasking()`). `fill` is one value, or one per channel. The "host" site reads `y`
 * synchronously, so it is for cpu and wasm only (an Error on WebGPU, which cannot); the
 * "device" site reads nothing and broadcasts in rank 4 (WebGPU tiles rank-5 tensors on the CPU,
 * through a synchronous read).
 *
 * @example
 * ```ts
 * const stacked = maskChannelsStacked(y, masks, 2, 0); // 2 masks -> 2N images
 * ```
 */
export function maskChannelsStacked(
  y: tf.Tensor4D,
  masks: Uint8Array,
  m: number,
  fill: number | Float32Array,
  site: MaskingSite = defaultMasking(),
): tf.Tensor4D {
  const [n, h, w, c] = y.shape;
  if (masks.length !== m * c) throw new Error(`masks hold ${masks.length} entries, not ${m} x ${c}`);
  if (site === "host") {
    if (tf.getBackend() === "webgpu") {
      throw new Error('host masking reads the batch synchronously, which WebGPU cannot do: use "device"');
    }
    const src = y.dataSync() as Float32Array;
    return tf.tensor4d(maskStackInto(new Float32Array(m * src.length), src, c, masks, m, fill), [
      m * n,
      h,
      w,
      c,
    ]);
  }
  return tf.tidy(() => {
    // Images and rows folded into one axis: [m, 1, 1, C] masks against [1, N*H, W, C] values.
    const cond = tf.tensor(masks, [m, 1, 1, c], "bool");
    const fillValue: tf.Tensor = typeof fill === "number"
      ? tf.scalar(fill, "float32")
      : tf.tensor1d(fills(fill, c));
    const stacked = tf.where(cond, fillValue, y.reshape([1, n * h, w, c]));
    return stacked.reshape([m * n, h, w, c]) as tf.Tensor4D;
  });
}

/**
 * The host twin of `maskChannelsStacked`, for backends where building the stack in JS is
 * cheaper than broadcasting on the device (cpu, wasm): writes into `dst` (m*N*H*W*C values)
 * block j = `src` (N*H*W*C, NHWC) with the channels of mask j set to `fill` (one value, or one
 * per channel). Kept values are copied bit for bit; the result equals `maskChannelsStacked`
 * exactly.
 *
 * @example
 * ```ts
 * const dst = new Float32Array(m * src.length);
 * maskStackInto(dst, src, channels, masks, m, fill);
 * ```
 */
export function maskStackInto(
  dst: Float32Array,
  src: Float32Array,
  channels: number,
  masks: Uint8Array,
  m: number,
  fill: number | Float32Array,
): Float32Array {
  const size = src.length;
  if (size % channels !== 0) {
    throw new Error(`${size} values are not a whole number of ${channels}-channel rows`);
  }
  if (dst.length < m * size) throw new Error(`destination holds ${dst.length} values, needs ${m * size}`);
  if (masks.length !== m * channels) {
    throw new Error(`masks hold ${masks.length} entries, not ${m} x ${channels}`);
  }
  const values = fills(fill, channels);
  for (let j = 0; j < m; j++) {
    const block = dst.subarray(j * size, (j + 1) * size);
    block.set(src);
    const pruned = Int32Array.from({ length: channels }, (_, c) => c).filter((c) =>
      masks[j * channels + c] !== 0
    );
    const np = pruned.length;
    if (np === 0) continue;
    const prunedValues = Float32Array.from(pruned, (c) => values[c]);
    for (let row = 0; row < size; row += channels) {
      for (let i = 0; i < np; i++) block[row + pruned[i]] = prunedValues[i];
    }
  }
  return dst;
}
