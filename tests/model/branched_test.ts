/**
 * Branched CNNs with seeded random weights, built in memory: a small MobileNet-style model
 * (depthwise convs, an inverted residual) and a small Inception-style one (two branches joined
 * by a Concatenate). Fast == naive for every K on a group, on a conv before a depthwise conv and
 * on a conv feeding a Concatenate; a group through a Reshape is one line naming the layer path.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { setupBackend } from "../../src/backend.ts";
import { loadTestSet } from "../../src/data/cifar10.ts";
import { imagesToTensor } from "../../src/data/tensors.ts";
import { pickLayer } from "../../src/model/layers.ts";
import { channelGroup } from "../../src/model/coupling.ts";
import { splitModelAsync } from "../../src/model/split.ts";
import { openEngine } from "../../src/sweep/engine.ts";
import { rankRandom } from "../../src/rank/random.ts";
import type { Dataset, Preprocessing } from "../../src/types.ts";
import { fixture, oneLineUserError, randomize } from "../_helpers.ts";
import { inceptionStyle, mobilenetStyle } from "../_nets.ts";

const PREP: Preprocessing = { scale: 1 / 255, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] };
type Sym = tf.SymbolicTensor;

/** Images labelled with the model's own classes (100% at K = 0, so any change shows). */
async function selfLabelled(model: tf.LayersModel): Promise<Dataset> {
  // No class bias, so that the predictions follow the features.
  const dense = model.getLayer("scores");
  const [kernel, bias] = dense.getWeights();
  dense.setWeights([kernel.mul(10), tf.zerosLike(bias)]);
  const data = await loadTestSet(fixture("cifar10-tiny"), 30);
  const classes = tf.tidy(() =>
    (model.predict(imagesToTensor(data, 0, data.count, PREP)) as tf.Tensor2D).argMax(1).dataSync()
  );
  return { ...data, labels: Uint8Array.from(classes) };
}

async function fastEqualsNaive(model: tf.LayersModel, name: string) {
  const data = await selfLabelled(model);
  const picked = pickLayer(model, name);
  const g = channelGroup(model, picked);
  const layer = g ? g.members[0] : picked;
  const split = await splitModelAsync(model, layer, g ? g.members.slice(1).map((m) => m.name) : []);
  const task = { model, layer, split, data, prep: PREP };
  using fast = await openEngine("exact", task);
  using naive = await openEngine("naive", task);
  const outputs = await fast.layerOutputs();
  for (const seed of [1, 2]) {
    const ranking = rankRandom(layer.channels, seed);
    const a = await fast.sweep(outputs, ranking);
    const b = await naive.sweep(outputs, ranking);
    assert.deepEqual(a.map((p) => p.correct), b.map((p) => p.correct), `${name}, seed ${seed}`);
    assert.ok(new Set(a.map((p) => p.correct)).size > 1, `${name}: flat curve ${a.map((p) => p.correct)}`);
  }
  return g;
}

Deno.test("mobilenet-style: fast == naive for every K on the Add's group and on the conv before the depthwise", async () => {
  await setupBackend("wasm");
  const model = mobilenetStyle();
  randomize(model, 21, 2);
  // randomize takes the depthwise kernel's fan-in as 3 x 3 x C; its true fan-in is 3 x 3.
  const dw = model.getLayer("dw");
  dw.setWeights(dw.getWeights().map((w, i) => i === 0 ? w.mul(4) : w.clone()));
  const project = model.getLayer("project");
  project.setWeights(project.getWeights().map((w, i) => i === 0 ? w.mul(4) : w.clone()));
  const g = await fastEqualsNaive(model, "project");
  assert.deepEqual(g?.members.map((m) => m.name), ["stem", "project"]);
  assert.equal(await fastEqualsNaive(model, "expand"), null);
  model.dispose();
});

Deno.test("inception-style: a conv feeding a Concatenate is not coupled; fast == naive for every K", async () => {
  await setupBackend("wasm");
  const model = inceptionStyle();
  randomize(model, 22, 2);
  assert.equal(await fastEqualsNaive(model, "branch_1x1"), null);
  assert.equal(await fastEqualsNaive(model, "branch_reduce"), null);
  model.dispose();
});

Deno.test("a group through a Reshape is one line naming the layer path", async () => {
  await setupBackend("wasm");
  const input = tf.input({ shape: [8, 8, 3] });
  const a = tf.layers.conv2d({ name: "a", filters: 4, kernelSize: 1 }).apply(input) as Sym;
  const b = tf.layers.conv2d({ name: "b", filters: 4, kernelSize: 1 }).apply(input) as Sym;
  const r = tf.layers.reshape({ name: "odd", targetShape: [8, 8, 4] }).apply(b) as Sym;
  const sum = tf.layers.add({ name: "sum" }).apply([a, r]) as Sym;
  const out = tf.layers.dense({ units: 2 }).apply(tf.layers.flatten().apply(sum) as Sym) as Sym;
  const model = tf.model({ inputs: input, outputs: out });
  assert.throws(
    () => channelGroup(model, pickLayer(model, "a")),
    oneLineUserError(/sum \(Add\) <- odd \(Reshape\)/, /not supported/),
  );
  model.dispose();
});
