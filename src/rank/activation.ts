/**
 * Criteria read from the layer's outputs: per-channel statistics accumulated in one pass
 * (so they can also be gathered chunk by chunk when the outputs do not fit in memory), and the
 * rankings built from them: `mean` (the lab's, ascending), `largest` (its reverse, a sanity
 * floor), `apoz` (Hu et al. 2016: Average Percentage of Zeros, most zeros first), and the dead
 * channels, whose pruning changes nothing.
 */
import type { Ranking } from "../types.ts";
import type { LayerOutputs } from "../activations/layer_outputs.ts";
import { ascendingOrder } from "./criteria.ts";

/** Per-channel statistics of a layer's outputs over every image and position seen so far. */
export interface ChannelStats {
  channels: number;
  /** Values seen per channel (images x height x width). */
  positions: number;
  /** Sum of the values per channel, accumulated in float64 in image-major position order. */
  sums: Float64Array;
  /** How many values were exactly 0, per channel. */
  zeros: Float64Array;
  /** How many values were exactly `fill` (what a pruned channel emits), per channel. */
  atFill: Float64Array;
  /** The value a pruned channel emits (the layer's activation of 0). */
  fill: number;
}

/** Empty statistics for `channels` channels whose pruned value is `fill`. */
export function emptyChannelStats(channels: number, fill: number): ChannelStats {
  return {
    channels,
    positions: 0,
    sums: new Float64Array(channels),
    zeros: new Float64Array(channels),
    atFill: new Float64Array(channels),
    fill,
  };
}

/**
 * Add `out` (the next images, in order) to `stats`, in place. Gathering the images chunk by chunk
 * in order gives bit-identical sums to gathering them all at once.
 *
 * @example
 * ```ts
 * const stats = emptyChannelStats(out.channels, split.activationOfZero);
 * accumulateChannelStats(stats, out);
 * ```
 */
export function accumulateChannelStats(stats: ChannelStats, out: LayerOutputs): ChannelStats {
  const { data, channels } = out;
  if (channels !== stats.channels) {
    throw new Error(`outputs have ${channels} channels, the statistics ${stats.channels}`);
  }
  const positions = out.count * out.height * out.width;
  const { sums, zeros, atFill, fill } = stats;
  for (let p = 0; p < positions; p++) {
    const base = p * channels;
    for (let c = 0; c < channels; c++) {
      const v = data[base + c];
      sums[c] += v;
      if (v === 0) zeros[c]++;
      if (v === fill) atFill[c]++;
    }
  }
  stats.positions += positions;
  return stats;
}

/**
 * The statistics of `out` in one call.
 *
 * @example
 * ```ts
 * const stats = channelStats(out, 0); // relu layer: a pruned channel emits 0
 * ```
 */
export function channelStats(out: LayerOutputs, fill: number): ChannelStats {
  return accumulateChannelStats(emptyChannelStats(out.channels, fill), out);
}

/** Mean activation per channel (0 when nothing was seen). */
export function channelMeans(stats: ChannelStats): Float64Array {
  return stats.sums.map((s) => stats.positions > 0 ? s / stats.positions : 0);
}

/** Fraction of exactly-zero values per channel (APoZ, Hu et al. 2016). */
export function channelApoz(stats: ChannelStats): Float64Array {
  return stats.zeros.map((z) => stats.positions > 0 ? z / stats.positions : 0);
}

/** Channel indices by descending score; equal scores by channel index; NaN last. */
export function descendingOrder(scores: Float64Array): number[] {
  const key = (c: number) => Number.isNaN(scores[c]) ? -Infinity : scores[c];
  return Array.from(scores, (_, c) => c).sort((a, b) => {
    const ka = key(a), kb = key(b);
    return ka > kb ? -1 : ka < kb ? 1 : a - b;
  });
}

/**
 * `mean`: lowest mean activation first (the lab's criterion; same order as `rankByMean`).
 *
 * @example
 * ```ts
 * rankByMeanStats(channelStats(out, 0)).order; // === rankByMean(out).order
 * ```
 */
export function rankByMeanStats(stats: ChannelStats): Ranking {
  const scores = channelMeans(stats);
  return { criterion: "mean", order: ascendingOrder(scores), scores };
}

/**
 * `largest`: the reverse of `mean`, highest mean activation first (a sanity floor: it should
 * be the worst criterion).
 *
 * @example
 * ```ts
 * rankLargest(stats).order; // === rankByMeanStats(stats).order.reverse()
 * ```
 */
export function rankLargest(stats: ChannelStats): Ranking {
  const scores = channelMeans(stats);
  return { criterion: "largest", order: ascendingOrder(scores).reverse(), scores };
}

/**
 * `apoz`: the channel with the largest fraction of zero activations first; equal fractions by
 * channel index. `scores` holds the APoZ of each channel.
 *
 * @example
 * ```ts
 * rankByApoz(stats).scores[c]; // fraction of c's values that are exactly 0
 * ```
 */
export function rankByApoz(stats: ChannelStats): Ranking {
  const scores = channelApoz(stats);
  return { criterion: "apoz", order: descendingOrder(scores), scores };
}

/** A channel whose output never differs from what pruning it gives. */
export interface DeadChannel {
  channel: number;
  mean: number;
  apoz: number;
}

/**
 * Channels that emit exactly the pruned value (`stats.fill`, the activation of 0) at every
 * position of every image: pruning them changes nothing, so it costs exactly no accuracy. For a
 * relu layer this is "mean activation 0" and "APoZ = 1" (relu outputs are never negative).
 *
 * @example
 * ```ts
 * deadChannels(stats).map((d) => d.channel); // e.g. [3, 17]
 * ```
 */
export function deadChannels(stats: ChannelStats): DeadChannel[] {
  const means = channelMeans(stats);
  const apoz = channelApoz(stats);
  const dead: DeadChannel[] = [];
  if (stats.positions === 0) return dead;
  for (let c = 0; c < stats.channels; c++) {
    if (stats.atFill[c] === stats.positions) dead.push({ channel: c, mean: means[c], apoz: apoz[c] });
  }
  return dead;
}
