/**
 * The sweep command's loops: its rankings (on the test set, or on held-out data), the sweeps
 * over them, with one progress bar for all of them (every ranking swept by the same engine from
 * the same cached layer outputs), the held-out curve, and the K values of its confusion matrices.
 */
import type * as tf from "@tensorflow/tfjs";
import type { LayerOutputs } from "../activations/layer_outputs.ts";
import type { LayerRef } from "../model/layers.ts";
import type { SplitModel } from "../model/split.ts";
import type { ChannelGroup } from "../model/coupling.ts";
import { outputKind } from "../model/class_scores.ts";
import { type DeadChannel, deadChannels } from "../rank/activation.ts";
import { sweepStats } from "../rank/group_stats.ts";
import { computeRankings, type Criterion, type NamedRanking } from "../rank/registry.ts";
import type { CalibCurve, Dataset, Preprocessing } from "../types.ts";
import type { CalibSet } from "./session.ts";
import type { LoadedModel } from "../model/load.ts";
import type { SweepTarget } from "../model/coupling.ts";
import type { CriterionRun } from "../report/compare.ts";
import type { SweepEngine } from "../sweep/engine.ts";
import { Progress } from "../ui/progress.ts";
import { type ConfusionMatrix, sweepConfusion, type SweepConfusionInput } from "../surgery/confusion.ts";
import { writeConfusionFiles } from "../report/confusion_tables.ts";

/**
 * One run per ranking, each evaluated at `ks` (or every K when `kValues` is undefined).
 *
 * @example
 * ```ts
 * const runs = await sweepEveryRanking(sweeper, outputs, rankings, undefined, 129);
 * ```
 */
export async function sweepEveryRanking(
  sweeper: SweepEngine,
  outputs: LayerOutputs,
  rankings: NamedRanking[],
  kValues: number[] | undefined,
  kCount: number,
  label = "sweep",
): Promise<CriterionRun[]> {
  const bar = new Progress({
    label: sweeper.name === "naive" ? `naive ${label}` : label,
    total: kCount * rankings.length,
    unit: "K",
  });
  const runs: CriterionRun[] = [];
  for (const [i, r] of rankings.entries()) {
    const points = await sweeper.sweep(outputs, r.ranking, {
      kValues,
      onProgress: (done, total) => bar.set(i * kCount + Math.floor((done / total) * kCount)),
    });
    runs.push({
      criterion: r.criterion.name,
      label: r.criterion.label,
      seed: r.seed,
      ranking: r.ranking,
      results: points,
    });
  }
  bar.done();
  return runs;
}

/**
 * The confusion matrices at `ks` (naive: weights zeroed; else from the cached outputs), each
 * written as confusion_k<K>.csv / .json / chart into `out`.
 *
 * @example
 * ```ts
 * const matrices = await confusionFiles("out/sweep", false, [0, 42], input, { layer: "block5_conv3", criterion: "mean" });
 * ```
 */
export async function confusionFiles(
  out: string,
  naive: boolean,
  ks: number[],
  input: SweepConfusionInput,
  about: { layer: string; criterion: string },
): Promise<ConfusionMatrix[]> {
  const matrices = await sweepConfusion(naive, ks, input);
  for (const m of matrices) await writeConfusionFiles(out, m, about);
  return matrices;
}

/**
 * The engine's prefix pass over `count` images, with a progress bar.
 *
 * @example
 * ```ts
 * const outputs = await layerOutputsWithProgress(sweeper, test.count, 256);
 * ```
 */
export async function layerOutputsWithProgress(
  sweeper: SweepEngine,
  count: number,
  batch: number,
  label = "layer outputs",
): Promise<LayerOutputs> {
  const bar = new Progress({ label, total: count, unit: "img" });
  const outputs = await sweeper.layerOutputs({ batch, onProgress: (n) => bar.set(n) });
  bar.done();
  return outputs;
}

/** What ranking a sweep's layer needs besides the outputs and images it ranks on. */
export interface RankInput {
  model: tf.LayersModel;
  layer: LayerRef;
  members: LayerRef[];
  group: ChannelGroup | null;
  split: SplitModel;
  prep: Preprocessing;
  batch: number;
  gradientImages: () => Promise<Dataset>;
}

/**
 * Every criterion's rankings (seeded ones `seeds` times) from `outputs`, the layer's outputs over
 * `data` (the test set, or the held-out data with --calib), and the channels dead on it.
 *
 * @example
 * ```ts
 * const { rankings, dead } = await rankChannels(outputs, test, criteria, 5, input);
 * ```
 */
export async function rankChannels(
  outputs: LayerOutputs,
  data: Dataset,
  criteria: Criterion[],
  seeds: number,
  input: RankInput,
): Promise<{ rankings: NamedRanking[]; dead: DeadChannel[] }> {
  const { model, layer, members, group, split, prep, batch } = input;
  const stats = await sweepStats(model, group, outputs, data, prep, split.activationOfZero, batch);
  const rankings = await computeRankings(criteria, {
    model,
    layer,
    members,
    split,
    stats,
    prep,
    outputKind: outputKind(model),
    gradientImages: input.gradientImages,
  }, seeds);
  return { rankings, dead: deadChannels(stats) };
}

/**
 * The first ranking swept on the held-out data (its engine, its cached `outputs`): the curve
 * the 1/2/5-point K are read off.
 *
 * @example
 * ```ts
 * const curve = await calibCurve(calibSweeper, calibOutputs, rankings[0], undefined, 129, calib);
 * ```
 */
export async function calibCurve(
  sweeper: SweepEngine,
  outputs: LayerOutputs,
  ranking: NamedRanking,
  kValues: number[] | undefined,
  kCount: number,
  calib: CalibSet,
): Promise<CalibCurve> {
  const [run] = await sweepEveryRanking(sweeper, outputs, [ranking], kValues, kCount, "held-out sweep");
  return {
    source: calib.source,
    images: calib.data.count,
    baselineAccuracy: run.results.find((p) => p.k === 0)?.accuracy ?? NaN,
    results: run.results,
  };
}

/**
 * The sweep's first line: the model, the layer or group, which data ranks and chooses K (the
 * test set, or the held-out data) and which is reported, the backend and the preprocessing.
 *
 * @example
 * ```ts
 * console.error(sweepHeadline({ modelPath, loaded, target, tests: 10000, calib, backend: "wasm" }));
 * ```
 */
export function sweepHeadline(r: {
  modelPath: string;
  loaded: LoadedModel;
  target: SweepTarget;
  tests: number;
  calib?: CalibSet;
  backend: string;
}): string {
  const { layer, group, name } = r.target;
  const prep = r.loaded.preprocessing;
  const pre = `(x*${prep.scale.toPrecision(4)} - [${prep.mean}]) / [${prep.std}]`;
  const data = r.calib
    ? `ranked and K chosen on ${r.calib.data.count} held-out images (${r.calib.source}), ` +
      `accuracy reported on ${r.tests} test images`
    : `${r.tests} test images`;
  return `sweep: ${r.modelPath} (${r.loaded.format}), ${
    group ? "channel group" : "layer"
  } ${name} (${layer.channels} ` +
    `channels, ${layer.outputShape.join("x")}, ${layer.activation}), ${data}, backend ${r.backend}, ` +
    `preprocessing ${r.loaded.preprocessingSource} ${pre}`;
}
