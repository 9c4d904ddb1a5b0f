/**
 * What every sweep engine shares: the K values of a sweep, the rank position of each channel, one
 * sweep point per K, the device memory an engine aims to stay under, and the check of its inputs.
 */
import type { Ranking, SweepPoint } from "../types.ts";
import type { LayerRef } from "../model/layers.ts";
import type { LayerOutputs } from "../activations/layer_outputs.ts";

/** Device memory the fast sweep aims to stay under, unless told otherwise (256 MiB). */
export const DEFAULT_MEMORY_BUDGET = 256 * 2 ** 20;

/** The sorted, distinct K values of a sweep over `channels` channels (default: all, 0..C). */
export function resolveKValues(kValues: number[] | undefined, channels: number): number[] {
  if (!kValues) return Array.from({ length: channels + 1 }, (_, k) => k);
  for (const k of kValues) {
    if (!Number.isInteger(k) || k < 0 || k > channels) {
      throw new RangeError(`K = ${k} is not a whole number in 0..${channels}`);
    }
  }
  return [...new Set(kValues)].sort((a, b) => a - b);
}

/** The sweep point for K pruned channels. */
export function sweepPoint(
  k: number,
  ranking: Ranking,
  correct: number,
  total: number,
  classCorrect?: number[],
): SweepPoint {
  return {
    k,
    channelPrunedAtK: k > 0 ? ranking.order[k - 1] : null,
    correct,
    total,
    accuracy: total > 0 ? correct / total : 0,
    ...(classCorrect ? { classCorrect } : {}),
  };
}

/** The rank position of every channel: `position[order[i]] = i`. */
export function rankPositions(ranking: Ranking, channels: number): Int32Array {
  if (ranking.order.length !== channels) {
    throw new Error(`ranking has ${ranking.order.length} channels, the layer ${channels}`);
  }
  const position = new Int32Array(channels).fill(-1);
  ranking.order.forEach((c, i) => {
    if (!(c >= 0 && c < channels) || position[c] !== -1) {
      throw new Error(`ranking order is not a permutation`);
    }
    position[c] = i;
  });
  return position;
}

/** An Error (a bug of ours, not the user's) when `out` is not `layer`'s outputs or `labels` are too few. */
export function checkSweepInputs(layer: LayerRef, out: LayerOutputs, labels: Uint8Array): void {
  const { count, height, width, channels } = out;
  if (labels.length < count) throw new Error(`${labels.length} labels for ${count} images`);
  const [h, w, c] = layer.outputShape;
  if (h !== height || w !== width || c !== channels) {
    throw new Error(`layer outputs are ${height}x${width}x${channels}, the layer's ${h}x${w}x${c}`);
  }
}
