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

const PREP: Preprocessing = { scale: 1 / 255, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] };
type Sym = tf.SymbolicTensor;

/** conv -> BN -> relu, then an inverted residual (1x1 expand, depthwise, 1x1 project, Add), GAP, Dense. */
function mobilenetStyle(): tf.LayersModel {
  const input = tf.input({ shape: [32, 32, 3] });
  const bn = (name: string, x: Sym) => tf.layers.batchNormalization({ name }).apply(x) as Sym;
  const relu = (name: string, x: Sym) => tf.layers.reLU({ name }).apply(x) as Sym;
  let x = tf.layers.conv2d({ name: "stem", filters: 8, kernelSize: 3, strides: 2, padding: "same" }).apply(
    input,
  ) as Sym;
  x = relu("stem_relu", bn("stem_bn", x));
  let y = tf.layers.conv2d({ name: "expand", filters: 16, kernelSize: 1 }).apply(x) as Sym;
  y = relu("expand_relu", bn("expand_bn", y));
  y = tf.layers.depthwiseConv2d({ name: "dw", kernelSize: 3, padding: "same" }).apply(y) as Sym;
  y = relu("dw_relu", bn("dw_bn", y));
  y = tf.layers.conv2d({ name: "project", filters: 8, kernelSize: 1 }).apply(y) as Sym;
  y = bn("project_bn", y);
  x = tf.layers.add({ name: "add" }).apply([x, y]) as Sym;
  x = tf.layers.conv2d({ name: "head", filters: 12, kernelSize: 1, activation: "relu" }).apply(x) as Sym;
  x = tf.layers.globalAveragePooling2d({ name: "gap" }).apply(x) as Sym;
  const out = tf.layers.dense({ name: "scores", units: 10, activation: "softmax" }).apply(x) as Sym;
  return tf.model({ inputs: input, outputs: out });
}

/** A stem conv, two branches (1x1 and 3x3 convs) joined by a Concatenate, a conv, GAP, Dense. */
function inceptionStyle(): tf.LayersModel {
  const input = tf.input({ shape: [32, 32, 3] });
  const conv = (name: string, filters: number, k: number, x: Sym, strides = 1) =>
    tf.layers.conv2d({ name, filters, kernelSize: k, strides, padding: "same", activation: "relu" }).apply(
      x,
    ) as Sym;
  const x = conv("stem", 8, 3, input, 2);
  const a = conv("branch_1x1", 6, 1, x);
  const b = conv("branch_3x3", 10, 3, conv("branch_reduce", 4, 1, x));
  let y = tf.layers.concatenate({ name: "concat" }).apply([a, b]) as Sym;
  y = conv("after", 12, 3, y, 2);
  y = tf.layers.globalAveragePooling2d({ name: "gap" }).apply(y) as Sym;
  const out = tf.layers.dense({ name: "scores", units: 10, activation: "softmax" }).apply(y) as Sym;
  return tf.model({ inputs: input, outputs: out });
}

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
