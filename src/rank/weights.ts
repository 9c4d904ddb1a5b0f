/**
 * Criteria read from the weights alone, no data: `l1` and `l2` (the norm of each filter of the
 * conv kernel, smallest first; Li et al. 2017) and `bn-gamma` (|gamma| of the BatchNormalization
 * right after the conv, smallest first; Liu et al. 2017, network slimming).
 */
import type { Ranking } from "../types.ts";
import { ascendingOrder } from "./criteria.ts";

/**
 * The p-norm (p = 1 or 2) of each output filter of a conv kernel stored as TF.js keeps it:
 * `[kh, kw, cin, cout]` flattened, output channel last (`kernel[i * cout + c]`). Bias excluded.
 *
 * @example
 * ```ts
 * filterNorms(Float32Array.of(1, -2, 3, 4), 2, 1); // filter 0: |1|+|3| = 4, filter 1: |-2|+|4| = 6
 * ```
 */
export function filterNorms(kernel: Float32Array, channels: number, p: 1 | 2): Float64Array {
  if (channels <= 0 || kernel.length % channels !== 0) {
    throw new Error(`a kernel of ${kernel.length} values is not a whole number of ${channels} filters`);
  }
  const norms = new Float64Array(channels);
  for (let i = 0; i < kernel.length; i++) {
    const v = kernel[i];
    norms[i % channels] += p === 1 ? Math.abs(v) : v * v;
  }
  return p === 1 ? norms : norms.map(Math.sqrt);
}

/**
 * `l1`: the filter with the smallest sum of absolute kernel weights first.
 *
 * @example
 * ```ts
 * rankByL1(kernel, 64).order[0]; // the filter with the smallest L1 norm
 * ```
 */
export function rankByL1(kernel: Float32Array, channels: number): Ranking {
  const scores = filterNorms(kernel, channels, 1);
  return { criterion: "l1", order: ascendingOrder(scores), scores };
}

/**
 * `l2`: the filter with the smallest Euclidean norm of its kernel weights first.
 *
 * @example
 * ```ts
 * rankByL2(kernel, 64).scores[c]; // sqrt(sum of squares of filter c)
 * ```
 */
export function rankByL2(kernel: Float32Array, channels: number): Ranking {
  const scores = filterNorms(kernel, channels, 2);
  return { criterion: "l2", order: ascendingOrder(scores), scores };
}

/**
 * `bn-gamma`: the channel whose BatchNormalization scale |gamma| is smallest first.
 *
 * @example
 * ```ts
 * rankByBnGamma(Float32Array.of(0.5, -0.1, 2)).order; // [1, 0, 2]
 * ```
 */
export function rankByBnGamma(gamma: Float32Array): Ranking {
  const scores = Float64Array.from(gamma, Math.abs);
  return { criterion: "bn-gamma", order: ascendingOrder(scores), scores };
}
