/**
 * Cutting a model at a conv layer: prefix then suffix computes what the whole model computes
 * (Sequential and Functional), the layer output is the Conv2D's own output, activation(0) is
 * right, skip connections across the cut are carried, the model is left untouched; and the
 * layer picking (default = last Conv2D, clear errors).
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { setupBackend } from "../../src/backend.ts";
import { UserError } from "../../src/core/errors.ts";
import { loadTestSet } from "../../src/data/cifar10.ts";
import { imagesToTensor } from "../../src/data/tensors.ts";
import { loadModel } from "../../src/model/load.ts";
import { convLayers, pickLayer } from "../../src/model/layers.ts";
import { splitModel } from "../../src/model/split.ts";
import { fixture, maxAbsDiff } from "../_helpers.ts";

const modelPath = (name: string) => fixture(`models/${name}/model.json`);

async function images(count: number): Promise<tf.Tensor4D> {
  const ds = await loadTestSet(fixture("cifar10-tiny"), count);
  return imagesToTensor(ds, 0, count, { scale: 1 / 255, mean: [0, 0, 0], std: [1, 1, 1] });
}

for (const name of ["tiny-bn", "tiny-nobn", "tiny-func"]) {
  Deno.test(`split ${name} at conv2: prefix then suffix equals model.predict`, async () => {
    await setupBackend("wasm");
    const { model } = await loadModel(modelPath(name));
    const split = splitModel(model, pickLayer(model, "conv2"));
    const x = await images(24);
    const before = tf.memory().numTensors;
    const y = split.prefix(x);
    assert.deepEqual(y.shape, [24, 16, 16, 16]);
    const viaSplit = split.suffix(y);
    const whole = model.predict(x) as tf.Tensor2D;
    assert.deepEqual(viaSplit.shape, [24, 10]);
    assert.ok(maxAbsDiff(viaSplit, whole) <= 1e-6, `differs by ${maxAbsDiff(viaSplit, whole)}`);
    // Same layers, same calls: in fact bit-identical.
    assert.deepEqual(Array.from(viaSplit.dataSync()), Array.from(whole.dataSync()));
    tf.dispose([y, viaSplit, whole]);
    assert.equal(tf.memory().numTensors, before, "prefix/suffix leaked tensors");
    x.dispose();
  });
}

Deno.test("split: the layer output is the Conv2D's own output, after its own activation", async () => {
  await setupBackend("wasm");
  const x = await images(8);
  // tiny-func: conv2 is linear, a separate ReLU layer follows -> the cut sees negative values.
  const func = (await loadModel(modelPath("tiny-func"))).model;
  const fsplit = splitModel(func, pickLayer(func, "conv2"));
  assert.equal(fsplit.layer.activation, "linear");
  assert.equal(fsplit.activationOfZero, 0);
  assert.deepEqual(fsplit.suffixLayers, ["relu2", "conv3", "residual", "gap", "scores"]);
  const fy = fsplit.prefix(x);
  assert.ok(fy.min().dataSync()[0] < 0, "a linear conv's output should have negative values");
  // tiny-nobn: conv2 is sigmoid-activated -> values in (0, 1) and a pruned channel emits 0.5.
  const nobn = (await loadModel(modelPath("tiny-nobn"))).model;
  const nsplit = splitModel(nobn, pickLayer(nobn, "conv2"));
  assert.equal(nsplit.layer.activation, "sigmoid");
  assert.equal(nsplit.activationOfZero, 0.5);
  const ny = nsplit.prefix(x);
  assert.ok(ny.min().dataSync()[0] > 0 && ny.max().dataSync()[0] < 1);
  // tiny-bn: relu conv, BN after it -> BN is the suffix's first layer.
  const bn = (await loadModel(modelPath("tiny-bn"))).model;
  const bsplit = splitModel(bn, pickLayer(bn, "conv2"));
  assert.equal(bsplit.activationOfZero, 0);
  assert.deepEqual(bsplit.suffixLayers, ["bn", "pool2", "flatten", "scores"]);
  tf.dispose([x, fy, ny]);
});

Deno.test("split: the channel-local layers after the cut (pushdown) and their constants", async () => {
  await setupBackend("wasm");
  const x = await images(6);
  const expect = {
    "tiny-bn": { layers: ["bn", "pool2"], shape: [8, 8, 16] },
    "tiny-nobn": { layers: ["pool2"], shape: [8, 8, 16] },
    // relu2 feeds both conv3 and the residual add: the chain stops after it.
    "tiny-func": { layers: ["relu2"], shape: [16, 16, 16] },
  };
  for (const [name, want] of Object.entries(expect)) {
    const { model } = await loadModel(modelPath(name));
    const split = splitModel(model, pickLayer(model, "conv2"));
    const p = split.pushdown!;
    assert.deepEqual({ layers: p.layers, shape: p.shape }, want, name);
    // head then tail is the suffix, bit for bit.
    const y = split.prefix(x);
    const whole = split.suffix(y);
    const parts = tf.tidy(() => p.tail(p.head(y)));
    assert.deepEqual(Array.from(parts.dataSync()), Array.from(whole.dataSync()), name);
    // The constants are what the channel-local layers make of a map of activation(0).
    const viaLayers = tf.tidy(() => {
      let t: tf.Tensor = tf.fill([1, 16, 16, 16], split.activationOfZero);
      for (const l of p.layers) t = model.getLayer(l).apply(t) as tf.Tensor;
      return t.dataSync().slice(0, 16);
    });
    assert.deepEqual(Array.from(p.fill), Array.from(viaLayers), name);
    tf.dispose([y, whole, parts]);
  }
  // tiny-bn: BN's constants are not all zero (so they matter); tiny-nobn: sigmoid(0) everywhere.
  const bnModel = (await loadModel(modelPath("tiny-bn"))).model;
  const bn = splitModel(bnModel, pickLayer(bnModel, "conv2"));
  assert.ok(Array.from(bn.pushdown!.fill).some((v) => Math.abs(v) > 0.05));
  const nobn = (await loadModel(modelPath("tiny-nobn"))).model;
  assert.deepEqual(
    Array.from(splitModel(nobn, pickLayer(nobn, "conv2")).pushdown!.fill),
    new Array(16).fill(0.5),
  );
  x.dispose();
});

Deno.test("split: an in-memory Functional model with a branch after the cut", async () => {
  await setupBackend("wasm");
  const input = tf.input({ shape: [32, 32, 3] });
  const c1 = tf.layers.conv2d({
    name: "a",
    filters: 4,
    kernelSize: 3,
    activation: "tanh",
    kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }),
  }).apply(input) as tf.SymbolicTensor;
  const left = tf.layers.conv2d({
    name: "left",
    filters: 4,
    kernelSize: 1,
    kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }),
  }).apply(c1) as tf.SymbolicTensor;
  const right = tf.layers.activation({ activation: "relu", name: "right" }).apply(c1) as tf.SymbolicTensor;
  const joined = tf.layers.concatenate({ name: "join" }).apply([left, right]) as tf.SymbolicTensor;
  const flat = tf.layers.flatten().apply(joined) as tf.SymbolicTensor;
  const out = tf.layers.dense({ units: 10, kernelInitializer: tf.initializers.glorotUniform({ seed: 3 }) })
    .apply(flat) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: out });
  const split = splitModel(model, pickLayer(model, "a"));
  assert.equal(split.activationOfZero, 0); // tanh(0)
  assert.equal(split.pushdown, undefined); // two layers take the cut: nothing is channel-local alone
  const x = await images(5);
  const got = tf.tidy(() => split.suffix(split.prefix(x)));
  const want = model.predict(x) as tf.Tensor;
  assert.deepEqual(Array.from(got.dataSync()), Array.from(want.dataSync()));
  tf.dispose([x, got, want]);
  model.dispose();
});

Deno.test("split: a skip connection across the cut is carried: prefixAll then suffix equals model.predict", async () => {
  await setupBackend("wasm");
  // tiny-func's last conv (conv3) sits inside a residual block: its output is added to relu2's.
  const { model } = await loadModel(modelPath("tiny-func"));
  const last = pickLayer(model);
  assert.equal(last.name, "conv3");
  const split = splitModel(model, last);
  assert.deepEqual(split.carried.map((t) => t.shape), [[16, 16, 16]]);
  assert.match(split.carried[0].name, /relu2/);
  const x = await images(8);
  const [y, ...carried] = split.prefixAll(x);
  const got = split.suffix(y as tf.Tensor4D, carried);
  const want = model.predict(x) as tf.Tensor2D;
  assert.deepEqual(Array.from(got.dataSync()), Array.from(want.dataSync()));
  assert.throws(() => split.suffix(y as tf.Tensor4D), /carried/);
  tf.dispose([x, y, ...carried, got, want]);
});

Deno.test("split: the model's graph is left untouched and can be split again", async () => {
  await setupBackend("wasm");
  const { model } = await loadModel(modelPath("tiny-func"));
  const nodes = model.layers.map((l) => (l as unknown as { inboundNodes: unknown[] }).inboundNodes.length);
  const a = splitModel(model, pickLayer(model, "conv2"));
  const b = splitModel(model, pickLayer(model, "conv1"));
  assert.deepEqual(
    model.layers.map((l) => (l as unknown as { inboundNodes: unknown[] }).inboundNodes.length),
    nodes,
  );
  for (const l of model.layers) assert.ok(l.output); // would throw with several inbound nodes
  const x = await images(4);
  const viaA = tf.tidy(() => a.suffix(a.prefix(x)));
  const viaB = tf.tidy(() => b.suffix(b.prefix(x)));
  assert.deepEqual(Array.from(viaA.dataSync()), Array.from(viaB.dataSync()));
  tf.dispose([x, viaA, viaB]);
});

Deno.test("pickLayer: default is the last Conv2D; a name picks that conv layer", async () => {
  await setupBackend("wasm");
  const { model } = await loadModel(modelPath("tiny-bn"));
  assert.deepEqual(convLayers(model).map((l) => l.name), ["conv1", "conv2"]);
  const last = pickLayer(model);
  assert.equal(last.name, "conv2");
  assert.equal(last.className, "Conv2D");
  assert.equal(last.channels, 16);
  assert.deepEqual(last.outputShape, [16, 16, 16]);
  assert.equal(last.activation, "relu");
  assert.equal(model.layers[last.index].name, "conv2");
  const first = pickLayer(model, "conv1");
  assert.deepEqual([first.name, first.channels, first.outputShape], ["conv1", 8, [32, 32, 8]]);
});

Deno.test("pickLayer: an unknown name and a non-conv name give a UserError listing the conv layers", async () => {
  await setupBackend("wasm");
  const { model } = await loadModel(modelPath("tiny-bn"));
  assert.throws(
    () => pickLayer(model, "conv9"),
    (e: unknown) =>
      e instanceof UserError && /no layer of that name/.test(e.message) && /conv1, conv2/.test(e.message),
  );
  assert.throws(
    () => pickLayer(model, "bn"),
    (e: unknown) =>
      e instanceof UserError && /BatchNormalization/.test(e.message) && /not a Conv2D/.test(e.message) &&
      /conv1, conv2/.test(e.message),
  );
  const dense = tf.sequential({ layers: [tf.layers.dense({ inputShape: [4], units: 2 })] });
  assert.throws(
    () => pickLayer(dense),
    (e: unknown) => e instanceof UserError && /no Conv2D/.test(e.message),
  );
  dense.dispose();
});
