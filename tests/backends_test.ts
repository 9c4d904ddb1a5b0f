/**
 * The backends we can run agree on a fixture sweep: the same ranking (channel means equal to
 * float32 rounding) and the same correct count for every K. cpu and wasm always run; WebGPU
 * too when this machine has a real (non-fallback) adapter.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { type BackendName, hasRealGpu, setupBackend } from "../src/backend.ts";
import { loadTestSet } from "../src/data/cifar10.ts";
import { loadModel } from "../src/model/load.ts";
import { pickLayer } from "../src/model/layers.ts";
import { splitModel } from "../src/model/split.ts";
import { computeLayerOutputs } from "../src/prune/activations.ts";
import { rankByMean } from "../src/prune/criteria.ts";
import { sweepFast } from "../src/prune/sweep.ts";
import { sweepNaive } from "../src/prune/naive.ts";
import type { Ranking } from "../src/types.ts";

const fixture = (p: string) => fileURLToPath(new URL(`../fixtures/${p}`, import.meta.url));
const gpu = await hasRealGpu();

/** On `backend`: the mean ranking and the fast sweep's counts under `ranking` (default: its own). */
async function sweepOn(backend: Exclude<BackendName, "auto">, name: string, ranking?: Ranking) {
  await setupBackend(backend);
  const { model, preprocessing } = await loadModel(fixture(`models/${name}/model.json`));
  const ds = await loadTestSet(fixture("cifar10-tiny"));
  const layer = pickLayer(model);
  const split = splitModel(model, layer);
  const out = await computeLayerOutputs(split, ds, preprocessing);
  const own = rankByMean(out);
  const points = await sweepFast(split, out, ds.labels, ranking ?? own);
  model.dispose();
  return { own, counts: points.map((p) => p.correct) };
}

async function compare(other: Exclude<BackendName, "auto">, name: string) {
  const wasm = await sweepOn("wasm", name);
  const there = await sweepOn(other, name, wasm.own);
  // The rankings agree: channel means equal to float32 rounding, hence the same order here.
  wasm.own.scores.forEach((s, c) => {
    assert.ok(Math.abs(s - there.own.scores[c]) <= 1e-5 * Math.max(1, Math.abs(s)), `channel ${c}`);
  });
  assert.deepEqual(there.own.order, wasm.own.order);
  // And under the same ranking every K scores the same number of images.
  assert.deepEqual(there.counts, wasm.counts, `${other} vs wasm`);
}

for (const name of ["tiny-bn", "tiny-nobn"]) {
  Deno.test(`backends: cpu and wasm agree on the ${name} sweep`, async () => {
    await compare("cpu", name);
  });
}

Deno.test({
  name: "backends: webgpu agrees with wasm on the tiny-bn and tiny-nobn sweeps, fast and naive",
  ignore: !gpu,
  fn: async () => {
    for (const name of ["tiny-bn", "tiny-nobn"]) {
      await compare("webgpu", name);
      // On the GPU too, the fast sweep matches the lab's literal method.
      await setupBackend("webgpu");
      const { model, preprocessing } = await loadModel(fixture(`models/${name}/model.json`));
      const ds = await loadTestSet(fixture("cifar10-tiny"));
      const layer = pickLayer(model);
      const split = splitModel(model, layer);
      const out = await computeLayerOutputs(split, ds, preprocessing);
      const ranking = rankByMean(out);
      const fast = await sweepFast(split, out, ds.labels, ranking);
      const naive = await sweepNaive(model, layer, ds, preprocessing, ranking);
      assert.deepEqual(fast.map((p) => p.correct), naive.map((p) => p.correct), `${name} on webgpu`);
      model.dispose();
    }
  },
});
