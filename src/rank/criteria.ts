/**
 * Ranking criteria: each a small pure function from the layer's outputs to a `Ranking`
 * (`order[0]` is the channel pruned first).
 */
import type { Ranking } from "../types.ts";
import type { LayerOutputs } from "../activations/layer_outputs.ts";

/** The criterion name `rankByMean` records. */
export const MEAN_ACTIVATION = "mean_activation";

/** Channel indices sorted by ascending score; equal scores by channel index; NaN last. */
export function ascendingOrder(scores: Float64Array): number[] {
  const key = (c: number) => Number.isNaN(scores[c]) ? Infinity : scores[c];
  return Array.from(scores, (_, c) => c).sort((a, b) => {
    const ka = key(a), kb = key(b);
    return ka < kb ? -1 : ka > kb ? 1 : a - b;
  });
}

/**
 * The lab's criterion: each channel's mean activation over all images and positions
 * (accumulated in float64), weakest first.
 *
 * @example
 * ```ts
 * const ranking = rankByMean(out);
 * ranking.order[0];                  // the channel with the lowest mean activation
 * ranking.scores[ranking.order[0]];  // its mean
 * ```
 */
export function rankByMean(out: LayerOutputs): Ranking {
  const { data, channels } = out;
  const sums = new Float64Array(channels);
  const positions = out.count * out.height * out.width;
  for (let p = 0; p < positions; p++) {
    const base = p * channels;
    for (let c = 0; c < channels; c++) sums[c] += data[base + c];
  }
  const scores = sums.map((s) => positions > 0 ? s / positions : 0);
  return { criterion: MEAN_ACTIVATION, order: ascendingOrder(scores), scores };
}
