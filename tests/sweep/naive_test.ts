/**
 * The fast sweep against the lab's literal method: identical correct counts for every K on a
 * fixture with BatchNorm after the pruned conv, one with a sigmoid conv (activation(0) = 0.5)
 * and a Functional one (linear conv, separate ReLU, residual block after the cut). Plus: the
 * naive sweep puts the weights back (also on error), and the identity test would catch a wrong
 * fill value.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import * as tf from "@tensorflow/tfjs";
import { setupBackend } from "../../src/backend.ts";
import { loadTestSet } from "../../src/data/cifar10.ts";
import { loadModel } from "../../src/model/load.ts";
import { pickLayer } from "../../src/model/layers.ts";
import { splitModel } from "../../src/model/split.ts";
import { computeLayerOutputs } from "../../src/activations/layer_outputs.ts";
import { rankByMean } from "../../src/rank/criteria.ts";
import { sweepFast } from "../../src/sweep/engines/masked.ts";
import { evaluate } from "../../src/model/evaluate.ts";
import { sweepNaive } from "../../src/sweep/engines/naive.ts";
import { fixture } from "../_helpers.ts";

async function setup(name: string, images?: number) {
  await setupBackend("wasm");
  const { model, preprocessing } = await loadModel(fixture(`models/${name}/model.json`));
  const ds = await loadTestSet(fixture("cifar10-tiny"), images);
  const layer = pickLayer(model, "conv2");
  const split = splitModel(model, layer);
  const out = await computeLayerOutputs(split, ds, preprocessing);
  return { model, preprocessing, ds, layer, split, out, ranking: rankByMean(out) };
}

function weightBits(model: tf.LayersModel, layer: string): number[][] {
  return model.getLayer(layer).getWeights().map((w) =>
    Array.from(new Uint32Array((w.dataSync() as Float32Array).slice().buffer))
  );
}

for (const name of ["tiny-bn", "tiny-nobn", "tiny-func"]) {
  Deno.test(`fast == naive on ${name}: identical correct counts for every K = 0..C`, async () => {
    const { model, preprocessing, ds, layer, split, out, ranking } = await setup(name);
    const original = weightBits(model, layer.name);
    const before = tf.memory().numTensors;
    const fast = await sweepFast(split, out, ds.labels, ranking);
    const naive = await sweepNaive(model, layer, ds, preprocessing, ranking);
    assert.equal(tf.memory().numTensors, before, "a sweep leaked tensors");
    assert.equal(fast.length, layer.channels + 1);
    assert.deepEqual(fast.map((p) => p.correct), naive.map((p) => p.correct));
    assert.deepEqual(fast, naive);
    // Masking at the layer itself (no pushdown through BN / pool / ReLU) gives the same counts too.
    const atLayer = await sweepFast(split, out, ds.labels, ranking, { pushdown: false });
    assert.deepEqual(atLayer, naive);
    // The counts vary with K, so agreeing is not trivial.
    assert.ok(new Set(fast.map((p) => p.correct)).size >= 4, fast.map((p) => p.correct).join(" "));
    // The layer's weights are back, bit for bit, and the model scores as before.
    assert.deepEqual(weightBits(model, layer.name), original);
    assert.equal((await evaluate(model, ds, preprocessing)).correct, naive[0].correct);
  });
}

Deno.test("fast == naive with odd batch sizes (a last batch of one image)", async () => {
  const { model, preprocessing, ds, layer, split, out, ranking } = await setup("tiny-bn");
  const kValues = [0, 1, 5, 9, 12, 16];
  const naive = await sweepNaive(model, layer, ds, preprocessing, ranking, { kValues, batch: 199 });
  // The last image runs alone (M = 1 rows) in the naive sweep, among m x 200 rows in the fast one.
  const fast = await sweepFast(split, out, ds.labels, ranking, { kValues });
  assert.deepEqual(fast.map((p) => p.correct), naive.map((p) => p.correct));
});

Deno.test("the identity test has teeth: a wrong fill value (0 instead of sigmoid(0)) breaks it", async () => {
  const { model, preprocessing, ds, layer, split, out, ranking } = await setup("tiny-nobn");
  assert.equal(split.activationOfZero, 0.5);
  const kValues = [0, 4, 8, 12, 16];
  const naive = await sweepNaive(model, layer, ds, preprocessing, ranking, { kValues });
  const want = naive.map((p) => p.correct);
  const right = await sweepFast(split, out, ds.labels, ranking, { kValues, pushdown: false });
  assert.deepEqual(right.map((p) => p.correct), want);
  // Masking at the layer with 0 ...
  const wrong = await sweepFast({ ...split, activationOfZero: 0 }, out, ds.labels, ranking, {
    kValues,
    pushdown: false,
  });
  assert.notDeepEqual(wrong.map((p) => p.correct), want);
  // ... or after the max-pool with 0.
  const pushdown = { ...split.pushdown!, fill: new Float32Array(16) };
  const wrongAfter = await sweepFast({ ...split, pushdown }, out, ds.labels, ranking, { kValues });
  assert.notDeepEqual(wrongAfter.map((p) => p.correct), want);
});

Deno.test("tiny-bn's BatchNorm turns a pruned channel into a non-zero constant downstream", async () => {
  await setupBackend("wasm");
  const { model } = await loadModel(fixture("models/tiny-bn/model.json"));
  const bn = model.getLayer("bn");
  const [gamma, beta, mean, variance] = bn.getWeights().map((w) => w.dataSync());
  const epsilon = (bn.getConfig() as { epsilon: number }).epsilon;
  const constants = Array.from(
    gamma,
    (g, c) => beta[c] + g * (0 - mean[c]) / Math.sqrt(variance[c] + epsilon),
  );
  assert.ok(constants.some((v) => Math.abs(v) > 0.05), constants.join(" "));
  // What the BN layer itself makes of an all-zero input is that constant.
  const out = tf.tidy(() => (bn.apply(tf.zeros([1, 1, 1, 16])) as tf.Tensor).dataSync());
  constants.forEach((v, c) => assert.ok(Math.abs(out[c] - v) < 1e-5));
});

Deno.test("sweepNaive restores the weights when evaluation fails midway", async () => {
  const { model, preprocessing, ds, layer, ranking } = await setup("tiny-bn", 20);
  const original = weightBits(model, layer.name);
  await assert.rejects(
    sweepNaive(model, layer, ds, preprocessing, ranking, {
      kValues: [0, 3, 6],
      onProgress: (k) => {
        if (k === 2) throw new Error("stop here");
      },
    }),
    /stop here/,
  );
  assert.deepEqual(weightBits(model, layer.name), original);
});

const shared = (p: string) => fileURLToPath(new URL(`../../../shared/${p}`, import.meta.url));
const sharedModel = shared("models/tfjs-cnn-zz632893783/model.json");
const haveShared = (() => {
  try {
    Deno.statSync(shared("cifar10/test_batch.bin"));
    Deno.statSync(sharedModel);
    return true;
  } catch {
    return false;
  }
})();

Deno.test({
  name: "fast == naive on a third-party TF.js model and real CIFAR-10 test images (../shared)",
  ignore: !haveShared,
  fn: async () => {
    await setupBackend("wasm");
    const { model, preprocessing } = await loadModel(sharedModel);
    const ds = await loadTestSet(shared("cifar10"), 300);
    const layer = pickLayer(model);
    assert.deepEqual([layer.name, layer.channels], ["conv2d_Conv2D3", 64]);
    const split = splitModel(model, layer);
    const out = await computeLayerOutputs(split, ds, preprocessing, { batch: 128 });
    const ranking = rankByMean(out);
    const kValues = [0, 1, 8, 24, 40, 63, 64];
    const fast = await sweepFast(split, out, ds.labels, ranking, { kValues });
    const naive = await sweepNaive(model, layer, ds, preprocessing, ranking, { kValues, batch: 128 });
    assert.deepEqual(fast, naive);
    // Masking at the layer itself (before the max-pool) gives the same counts too.
    const atLayer = await sweepFast(split, out, ds.labels, ranking, { kValues, pushdown: false });
    assert.deepEqual(atLayer, naive);
    assert.ok(fast[0].accuracy > 0.5, `baseline ${fast[0].accuracy}`); // a trained model
    assert.ok(fast[6].accuracy < fast[0].accuracy);
  },
});
