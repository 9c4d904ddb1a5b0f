/**
 * The activation statistics of a coupled channel group: those of its merged output (the output
 * of the group's last merge layer, e.g. the `Add` that ends a residual stage), where the
 * members' channel c have all been summed into one channel c. The group scores of `mean`,
 * `apoz` and `largest` read these (see the README).
 */
import type * as tf from "@tensorflow/tfjs";
import type { Dataset, Preprocessing } from "../types.ts";
import type { ChannelGroup } from "../model/coupling.ts";
import { layerRef } from "../model/layers.ts";
import { splitModelAsync } from "../model/split.ts";
import { computeLayerOutputs, type LayerOutputs } from "../activations/layer_outputs.ts";
import { type ChannelStats, channelStats } from "./activation.ts";

/**
 * Per-channel statistics of `group`'s merged output over `ds` (one more prefix pass, to the
 * last merge). `fill`: the value counted as "pruned" (`atFill`), the first member's activation of 0.
 *
 * @example
 * ```ts
 * const stats = await mergedOutputStats(model, group, test, prep, { fill: split.activationOfZero });
 * rankByMeanStats(stats); // the group's mean ranking
 * ```
 */
export async function mergedOutputStats(
  model: tf.LayersModel,
  group: ChannelGroup,
  ds: Dataset,
  prep: Preprocessing,
  opts: { fill: number; batch?: number; onProgress?: (done: number) => void },
): Promise<ChannelStats> {
  const merge = layerRef(model, group.merges[group.merges.length - 1]);
  const split = await splitModelAsync(model, merge);
  const out = await computeLayerOutputs(split, ds, prep, { batch: opts.batch, onProgress: opts.onProgress });
  return channelStats({ ...out, carried: undefined }, opts.fill);
}

/**
 * The activation statistics a sweep ranks by: the cut layer's own (from its cached outputs),
 * or, for a channel group, its merged output's (one more pass, to the group's last merge).
 *
 * @example
 * ```ts
 * const stats = await sweepStats(model, group, outputs, test, prep, split.activationOfZero, 256);
 * ```
 */
export async function sweepStats(
  model: tf.LayersModel,
  group: ChannelGroup | null,
  outputs: LayerOutputs,
  ds: Dataset,
  prep: Preprocessing,
  fill: number,
  batch?: number,
): Promise<ChannelStats> {
  return group
    ? await mergedOutputStats(model, group, ds, prep, { fill, batch })
    : channelStats(outputs, fill);
}
