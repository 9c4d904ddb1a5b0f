/**
 * Per-layer pruning sensitivity: one conv layer pruned alone, its K weakest channels (by one
 * criterion) replaced by the pruned value, for a list of K, scored top-1 / top-5 / loss over the
 * images. Each layer pays one pass over its prefix: the layer's outputs are cached and every K is
 * evaluated on the suffix only (many K per call, as in the fast sweep).
 *
 * When a layer's outputs for all images do not fit in `maxCacheBytes` (an early, wide layer:
 * 32x32x64 floats x 10,000 images = 2.6 GB), the images are streamed in chunks: each chunk's
 * outputs are computed, scored under every mask and dropped, and the tallies carry over, which
 * gives exactly the counts and losses of the one-chunk run. Activation criteria (mean, apoz,
 * largest) then need their statistics before the first mask, so those layers pay a second,
 * statistics-only prefix pass.
 */
import type * as tf from "@tensorflow/tfjs";
import { UserError } from "../core/errors.ts";
import type { LayerRef } from "../model/layers.ts";
import { splitModelAsync } from "../model/split.ts";
import type { Dataset, Preprocessing, Ranking } from "../types.ts";
import { sliceDataset } from "../data/cifar10.ts";
import { computeLayerOutputs } from "../activations/layer_outputs.ts";
import {
  accumulateChannelStats,
  type ChannelStats,
  type DeadChannel,
  deadChannels,
  emptyChannelStats,
} from "../rank/activation.ts";
import { assertGroupCriterion, type Criterion, type RankingContext } from "../rank/registry.ts";
import { mergedOutputStats } from "../rank/group_stats.ts";
import { type MaskTally, tallyMasks } from "./evaluate_masks.ts";
import { rankPositions, resolveKValues } from "../sweep/kvalues.ts";
import type { OutputKind } from "../model/class_scores.ts";
import { channelGroup, groupName, kernelName } from "../model/coupling.ts";

/** Bytes of cached layer outputs a layer may hold at once before it is streamed (default 1 GiB). */
export const DEFAULT_MAX_CACHE_BYTES = 2 ** 30;

/** One K of one layer. */
export interface SensitivityPoint {
  k: number;
  /** K / C: the fraction of the layer's channels pruned. */
  sparsity: number;
  /** Top-1 and top-5 accuracy (fractions 0..1) and mean cross-entropy. */
  top1: number;
  top5: number;
  loss: number;
  correct: number;
  correctTop5: number;
  total: number;
}

/** One layer's sensitivity. */
export interface LayerSensitivityResult {
  /** The layer, or a coupled channel group's members joined by "+". */
  layer: string;
  /** A coupled channel group's conv layers, pruned together (absent for one layer). */
  members?: string[];
  /** The kernel variable (Distiller's "parameter"), e.g. "conv2/kernel". */
  parameter: string;
  channels: number;
  outputShape: number[];
  criterion: string;
  ranking: Ranking;
  points: SensitivityPoint[];
  /** Channels that always emit the pruned value: pruning them costs nothing. */
  dead: DeadChannel[];
  /** Images per chunk (all of them when the outputs fit). */
  chunkImages: number;
  /** Passes over the prefix (1, or 2 when streamed with an activation criterion). */
  prefixPasses: number;
  /** With `stopBelow`: the curve ended early, after `evaluated` of the `planned` K values. */
  stopped?: { points: number; evaluated: number; planned: number };
  seconds: number;
}

/** K values evaluated at a time when a curve may stop early (`stopBelow`). */
export const STOP_CHUNK = 4;

/**
 * The K values for fractions of C channels: round(f * C), distinct, ascending.
 *
 * @example
 * ```ts
 * kValuesFromFractions([0, 0.25, 0.5], 64); // [0, 16, 32]
 * ```
 */
export function kValuesFromFractions(fractions: number[], channels: number): number[] {
  return [...new Set(fractions.map((f) => Math.round(f * channels)))].sort((a, b) => a - b);
}

/**
 * Every `step`-th K from 0, and C itself: 0, step, 2 step, ..., C.
 *
 * @example
 * ```ts
 * kValuesFromStep(16, 40); // [0, 16, 32, 40]
 * ```
 */
export function kValuesFromStep(step: number, channels: number): number[] {
  const ks: number[] = [];
  for (let k = 0; k < channels; k += step) ks.push(k);
  ks.push(channels);
  return ks;
}

/** Images per chunk for a layer whose per-image output is `perImage` floats. */
export function chunkImages(perImage: number, count: number, maxCacheBytes: number): number {
  return Math.max(1, Math.min(count, Math.floor(maxCacheBytes / (perImage * 4))));
}

/** Options of `layerSensitivity`. */
export interface SensitivityOptions {
  criterion: Criterion;
  /** Seed of a seeded criterion (default 1). */
  seed?: number;
  /** The K values (whole numbers in 0..C); evaluated and returned ascending, once each. */
  kValues: number[];
  outputKind: OutputKind;
  /** See `DEFAULT_MAX_CACHE_BYTES`. */
  maxCacheBytes?: number;
  /** Images per prefix call (default 256). */
  batch?: number;
  /** Images for gradient criteria (loaded on first use). */
  gradientImages?: () => Promise<Dataset>;
  gradientBatch?: number;
  /** Passed to the evaluator (see `tallyMasks`). */
  kBatch?: number;
  imageBatch?: number;
  memoryBudgetBytes?: number;
  /** Called as work is done, in the units of `plannedWork`. */
  onWork?: (units: number) => void;
  /**
   * Opt-in early stop (NNI's): end the curve once top-1 falls more than this many points below
   * K = 0's (which `kValues` must hold), `STOP_CHUNK` K values at a time. Every point returned is
   * the one the full curve has; layers whose outputs are streamed in chunks evaluate every K.
   */
  stopBelow?: number;
}

/**
 * The work units `layerSensitivity` reports for this layer: one per image per prefix pass, one
 * per image per K evaluated, one per gradient image. For a progress bar over a whole run.
 *
 * @example
 * ```ts
 * const total = layers.reduce((s, l) => s + plannedWork(l, test.count, ks(l).length, criterion, max, 512), 0);
 * ```
 */
export function plannedWork(
  layer: LayerRef,
  images: number,
  kCount: number,
  criterion: Criterion,
  maxCacheBytes: number,
  gradientImages: number,
): number {
  const perImage = layer.outputShape.reduce((p, d) => p * d, 1);
  const streamed = chunkImages(perImage, images, maxCacheBytes) < images;
  const passes = streamed && criterion.source === "activations" ? 2 : 1;
  return passes * images + kCount * images + (criterion.source === "gradients" ? gradientImages : 0);
}

/**
 * Prune `layer` of `model` alone, for every K of `opts.kValues`, and score each over `ds`.
 *
 * @example
 * ```ts
 * const r = await layerSensitivity(model, pickLayer(model, "conv2"), test, prep, {
 *   criterion: criterionByName("mean"), kValues: kValuesFromFractions([0, 0.5, 1], 16), outputKind: "probabilities",
 * });
 * r.points[1].top1; // accuracy with half of conv2's channels pruned
 * ```
 */
export async function layerSensitivity(
  model: tf.LayersModel,
  layer: LayerRef,
  ds: Dataset,
  prep: Preprocessing,
  opts: SensitivityOptions,
): Promise<LayerSensitivityResult> {
  const t0 = performance.now();
  // A coupled conv is analysed with its whole channel group, cut at the member that runs first.
  const group = channelGroup(model, layer);
  if (group) {
    assertGroupCriterion(opts.criterion, groupName(group));
    layer = group.members[0];
  }
  const members = group ? group.members.slice(1) : [];
  const split = await splitModelAsync(model, layer, members.map((m) => m.name));
  const [height, width, channels] = layer.outputShape;
  const perImage = height * width * channels;
  const maxCacheBytes = opts.maxCacheBytes ?? DEFAULT_MAX_CACHE_BYTES;
  const chunk = chunkImages(perImage, ds.count, maxCacheBytes);
  const streamed = chunk < ds.count;
  const work = (n: number) => opts.onWork?.(n);
  const batch = opts.batch ?? 256;
  const outputsOf = (part: Dataset) => {
    let reported = 0;
    return computeLayerOutputs(split, part, prep, {
      batch,
      maxBytes: Math.max(maxCacheBytes, part.count * perImage * 4),
      onProgress: (done) => {
        work(done - reported);
        reported = done;
      },
    });
  };
  const stats = emptyChannelStats(channels, split.activationOfZero);
  const ks = resolveKValues(opts.kValues, channels);
  const masksFor = (ranking: Ranking) => {
    const position = rankPositions(ranking, channels);
    const masks = new Uint8Array(ks.length * channels);
    ks.forEach((k, j) => {
      for (let c = 0; c < channels; c++) masks[j * channels + c] = position[c] < k ? 1 : 0;
    });
    return masks;
  };
  const rank = (s: ChannelStats | undefined) => {
    const ctx: RankingContext = {
      model,
      layer,
      members,
      split,
      stats: s,
      seed: opts.seed ?? 1,
      prep,
      outputKind: opts.outputKind,
      gradientImages: opts.gradientImages,
      gradientBatch: opts.gradientBatch,
    };
    let reported = 0;
    ctx.onGradientProgress = (done) => {
      work(done - reported);
      reported = done;
    };
    return opts.criterion.rank(ctx).then((r) => ({ ...r, criterion: opts.criterion.name }));
  };
  // A group's activation criteria read its merged output (rank/group_stats.ts).
  const rankingStats = (own: ChannelStats) =>
    group && opts.criterion.source === "activations"
      ? mergedOutputStats(model, group, ds, prep, { fill: split.activationOfZero, batch })
      : Promise.resolve(own);
  const tallyOpts = (into: MaskTally[] | undefined) => ({
    kBatch: opts.kBatch,
    imageBatch: opts.imageBatch,
    memoryBudgetBytes: opts.memoryBudgetBytes,
    onWork: work,
    into,
  });

  let ranking: Ranking;
  let tallies: MaskTally[] | undefined;
  let prefixPasses = 1;
  let stopped: LayerSensitivityResult["stopped"];
  if (opts.stopBelow !== undefined && ks[0] !== 0) {
    throw new UserError(`stopping below the baseline needs K = 0 among the K values (fraction 0).`);
  }
  if (!streamed) {
    const out = await outputsOf(ds);
    accumulateChannelStats(stats, out);
    ranking = await rank(await rankingStats(stats));
    const masks = masksFor(ranking);
    const step = opts.stopBelow === undefined ? ks.length : STOP_CHUNK;
    tallies = [];
    for (let j = 0; j < ks.length; j += step) {
      const m = Math.min(step, ks.length - j);
      const part = masks.subarray(j * channels, (j + m) * channels);
      tallies.push(
        ...await tallyMasks(split, out, ds.labels, part, m, opts.outputKind, tallyOpts(undefined)),
      );
      const p = opts.stopBelow;
      if (p === undefined || j + m >= ks.length) continue;
      const floor = tallies[0].top1 / tallies[0].total - p / 100;
      if (tallies.some((t) => t.top1 / t.total < floor - 1e-12)) {
        stopped = { points: p, evaluated: j + m, planned: ks.length };
        work((ks.length - j - m) * ds.count); // the skipped work, so a progress total still ends at 100%
        break;
      }
    }
  } else {
    const needsStatsFirst = opts.criterion.source === "activations";
    if (needsStatsFirst) {
      prefixPasses = 2;
      for (let start = 0; start < ds.count; start += chunk) {
        accumulateChannelStats(stats, await outputsOf(sliceDataset(ds, start, chunk)));
      }
    }
    ranking = await rank(needsStatsFirst ? await rankingStats(stats) : undefined);
    const masks = masksFor(ranking);
    for (let start = 0; start < ds.count; start += chunk) {
      const part = sliceDataset(ds, start, chunk);
      const out = await outputsOf(part);
      if (!needsStatsFirst) accumulateChannelStats(stats, out);
      tallies = await tallyMasks(
        split,
        out,
        part.labels,
        masks,
        ks.length,
        opts.outputKind,
        tallyOpts(tallies),
      );
    }
  }
  const points = ks.slice(0, tallies!.length).map((k, j): SensitivityPoint => {
    const t = tallies![j];
    return {
      k,
      sparsity: channels > 0 ? k / channels : 0,
      top1: t.total > 0 ? t.top1 / t.total : 0,
      top5: t.total > 0 ? t.top5 / t.total : 0,
      loss: t.total > 0 ? t.lossSum / t.total : 0,
      correct: t.top1,
      correctTop5: t.top5,
      total: t.total,
    };
  });
  return {
    layer: group ? groupName(group) : layer.name,
    ...(group ? { members: group.members.map((m) => m.name) } : {}),
    parameter: kernelName(model, layer),
    channels,
    outputShape: layer.outputShape,
    criterion: opts.criterion.name,
    ranking,
    points,
    dead: deadChannels(stats),
    chunkImages: chunk,
    prefixPasses,
    ...(stopped ? { stopped } : {}),
    seconds: (performance.now() - t0) / 1000,
  };
}
