/**
 * The sweep command's loops: over its rankings, with one progress bar for all of them (every
 * ranking swept by the same engine from the same cached layer outputs), and over the K values
 * of its confusion matrices.
 */
import type { LayerOutputs } from "../activations/layer_outputs.ts";
import type { NamedRanking } from "../rank/registry.ts";
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
): Promise<CriterionRun[]> {
  const bar = new Progress({
    label: sweeper.name === "naive" ? "naive sweep" : "sweep",
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
): Promise<LayerOutputs> {
  const bar = new Progress({ label: "layer outputs", total: count, unit: "img" });
  const outputs = await sweeper.layerOutputs({ batch, onProgress: (n) => bar.set(n) });
  bar.done();
  return outputs;
}
