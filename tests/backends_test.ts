/**
 * The backends we can run agree on a fixture sweep: the same ranking (channel means equal to
 * float32 rounding) and the same correct count for every K. cpu and wasm always run; WebGPU
 * whenever this machine offers an adapter, a software one (llvmpipe) included: every read on
 * the sweep path is asynchronous, as WebGPU needs in Deno.
 *
 * Tensors cannot move off WebGPU here (the move reads synchronously), so each backend loads its
 * own model and data; WebGPU runs last in each test and the test returns to wasm after it.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import * as tf from "@tensorflow/tfjs";
import { type BackendName, hasGpuAdapter, setupBackend } from "../src/backend.ts";
import { loadTestSet } from "../src/data/cifar10.ts";
import { loadModel } from "../src/model/load.ts";
import { pickLayer } from "../src/model/layers.ts";
import { splitModel, splitModelAsync } from "../src/model/split.ts";
import { computeLayerOutputs } from "../src/prune/activations.ts";
import { rankByMean } from "../src/prune/criteria.ts";
import { sweepFast } from "../src/prune/sweep.ts";
import { sweepNaive } from "../src/prune/naive.ts";
import type { Ranking } from "../src/types.ts";

const fixture = (p: string) => fileURLToPath(new URL(`../fixtures/${p}`, import.meta.url));
const gpu = await hasGpuAdapter();

type Backend = Exclude<BackendName, "auto">;

/** Images of the naive sweeps on WebGPU (a software adapter runs the whole model slowly). */
const NAIVE_IMAGES = 32;

/**
 * On `backend`, from a freshly loaded model and the first `opts.images` test images (default
 * all 200): the mean ranking, and the fast sweep's counts at every K under `opts.ranking`
 * (default: its own); with `opts.naive`, the literal method's counts too.
 */
async function sweepOn(
  backend: Backend,
  name: string,
  opts: { ranking?: Ranking; images?: number; naive?: boolean } = {},
) {
  const { ranking, images, naive } = opts;
  await setupBackend(backend);
  const { model, preprocessing } = await loadModel(fixture(`models/${name}/model.json`));
  try {
    const ds = await loadTestSet(fixture("cifar10-tiny"), images);
    const layer = pickLayer(model);
    const split = await splitModelAsync(model, layer);
    const out = await computeLayerOutputs(split, ds, preprocessing);
    const own = rankByMean(out);
    const used = ranking ?? own;
    const fast = (await sweepFast(split, out, ds.labels, used)).map((p) => p.correct);
    const slow = naive
      ? (await sweepNaive(model, layer, ds, preprocessing, used)).map((p) => p.correct)
      : undefined;
    return {
      own,
      channels: layer.channels,
      fast,
      naive: slow,
      activationOfZero: split.activationOfZero,
      fill: split.pushdown?.fill,
    };
  } finally {
    model.dispose();
  }
}

/**
 * `other` against wasm on fixture `name`: the rankings, the split's constants and the fast
 * sweep's counts at every K (all 200 images); with `naive`, the literal method too, at every K
 * on the first `NAIVE_IMAGES` images, against wasm's and against the fast sweep's counts there.
 */
async function compare(other: Backend, name: string, naive = false) {
  const wasm = await sweepOn("wasm", name);
  const there = await sweepOn(other, name, { ranking: wasm.own });
  // The rankings agree: channel means equal to float32 rounding, hence the same order here.
  wasm.own.scores.forEach((s, c) => {
    assert.ok(Math.abs(s - there.own.scores[c]) <= 1e-5 * Math.max(1, Math.abs(s)), `channel ${c}`);
  });
  assert.deepEqual(there.own.order, wasm.own.order);
  // activation(0) is exact; what BatchNorm makes of it (the pushdown's fill) agrees to rounding
  // (each backend computes BatchNorm its own way: cpu and wasm already differ in the last bit).
  assert.equal(there.activationOfZero, wasm.activationOfZero);
  assert.equal(there.fill?.length, wasm.fill?.length);
  wasm.fill?.forEach((v, c) => {
    assert.ok(Math.abs(v - there.fill![c]) <= 1e-5 * Math.max(1, Math.abs(v)), `fill of channel ${c}`);
  });
  // And under the same ranking every K scores the same number of images.
  assert.deepEqual(there.fast, wasm.fast, `${other} vs wasm, fast`);
  assert.equal(there.fast.length, wasm.channels + 1, "every K, 0..C");
  if (naive) {
    const opts = { ranking: wasm.own, images: NAIVE_IMAGES, naive: true };
    const wasmFew = await sweepOn("wasm", name, opts);
    const thereFew = await sweepOn(other, name, opts);
    assert.deepEqual(wasmFew.naive, wasmFew.fast, `wasm: naive vs fast`);
    assert.deepEqual(thereFew.naive, wasmFew.naive, `${other} vs wasm, naive`);
    assert.deepEqual(thereFew.fast, thereFew.naive, `${other}: fast vs naive`);
  }
}

for (const name of ["tiny-bn", "tiny-nobn"]) {
  Deno.test(`backends: cpu and wasm agree on the ${name} sweep`, async () => {
    await compare("cpu", name);
  });
}

Deno.test("backends: splitModel and splitModelAsync give the same split, bit for bit", async () => {
  await setupBackend("wasm");
  const { model } = await loadModel(fixture("models/tiny-bn/model.json"));
  const layer = pickLayer(model);
  const sync = splitModel(model, layer);
  const async = await splitModelAsync(model, layer);
  assert.equal(async.activationOfZero, sync.activationOfZero);
  assert.ok(sync.pushdown && async.pushdown, "tiny-bn has BatchNorm after the cut: a pushdown");
  assert.deepEqual(async.pushdown.layers, sync.pushdown.layers);
  assert.deepEqual(Array.from(async.pushdown.fill), Array.from(sync.pushdown.fill));
  assert.deepEqual(async.suffixLayers, sync.suffixLayers);
  assert.equal(async.suffixElementsPerImage, sync.suffixElementsPerImage);
  model.dispose();
});

Deno.test({
  name: "backends: webgpu (any adapter) agrees with wasm at every K on tiny-bn and tiny-nobn, fast and naive",
  ignore: !gpu,
  // The WebGPU device keeps a few timers and buffers alive between tests.
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    try {
      for (const name of ["tiny-bn", "tiny-nobn"]) await compare("webgpu", name, true);
    } finally {
      await setupBackend("wasm");
    }
  },
});

Deno.test({
  name: "backends: on webgpu the synchronous split refuses with a clear error",
  ignore: !gpu,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    try {
      await setupBackend("webgpu");
      const { model } = await loadModel(fixture("models/tiny-nobn/model.json"));
      const before = tf.memory().numTensors;
      assert.throws(() => splitModel(model, pickLayer(model)), /use splitModelAsync/);
      assert.equal(tf.memory().numTensors, before, "the refused split leaked tensors");
      model.dispose();
    } finally {
      await setupBackend("wasm");
    }
  },
});
