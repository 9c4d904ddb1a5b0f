/**
 * The WebGPU half of backends_test.ts, run in a process of its own (`deno run`, not a test
 * module): a `deno test` process that has so much as requested a WebGPU adapter can crash as it
 * exits (a double free or a segmentation fault, about one run in ten here), while `deno run`
 * processes close cleanly.
 *
 * `probe`: exit 0 when WebGPU has an adapter (any, software ones included), else 3.
 * `<naiveImages>`: on WebGPU, for tiny-bn and tiny-nobn, the mean ranking, the split's
 * constants, the fast sweep's counts at every K on all fixture test images, the naive and fast
 * counts at every K on the first `naiveImages`, and whether the synchronous split is refused;
 * printed as one JSON line.
 */
import { hasGpuAdapter, setupBackend } from "../src/backend.ts";
import { loadTestSet } from "../src/data/cifar10.ts";
import { loadModel } from "../src/model/load.ts";
import { pickLayer } from "../src/model/layers.ts";
import { splitModel, splitModelAsync } from "../src/model/split.ts";
import { computeLayerOutputs } from "../src/activations/layer_outputs.ts";
import { rankByMean } from "../src/rank/criteria.ts";
import { sweepFast } from "../src/sweep/engines/masked.ts";
import { sweepNaive } from "../src/sweep/engines/naive.ts";
import { fixture } from "./_helpers.ts";

if (Deno.args[0] === "probe") Deno.exit((await hasGpuAdapter()) ? 0 : 3);
const naiveImages = Number(Deno.args[0] ?? 32);

await setupBackend("webgpu");
const result: Record<string, unknown> = {};
for (const name of ["tiny-bn", "tiny-nobn"]) {
  const { model, preprocessing } = await loadModel(fixture(`models/${name}/model.json`));
  const layer = pickLayer(model);
  const split = await splitModelAsync(model, layer);
  const all = await loadTestSet(fixture("cifar10-tiny"));
  const out = await computeLayerOutputs(split, all, preprocessing);
  const ranking = rankByMean(out);
  const correct = (points: { correct: number }[]) => points.map((p) => p.correct);
  const fast = correct(await sweepFast(split, out, all.labels, ranking));
  const few = await loadTestSet(fixture("cifar10-tiny"), naiveImages);
  const fewOut = await computeLayerOutputs(split, few, preprocessing);
  const fastFew = correct(await sweepFast(split, fewOut, few.labels, ranking));
  const naiveFew = correct(await sweepNaive(model, layer, few, preprocessing, ranking));
  let syncRefused = false;
  try {
    splitModel(model, layer);
  } catch (e) {
    syncRefused = /use splitModelAsync/.test((e as Error).message);
  }
  result[name] = {
    order: ranking.order,
    scores: Array.from(ranking.scores),
    channels: layer.channels,
    activationOfZero: split.activationOfZero,
    fill: split.pushdown ? Array.from(split.pushdown.fill) : null,
    fast,
    fastFew,
    naiveFew,
    syncRefused,
  };
  model.dispose();
}
console.log(JSON.stringify(result));
Deno.exit(0);
