import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import * as tf from "@tensorflow/tfjs";
import { setupBackend } from "../../src/backend.ts";
import { loadTestSet } from "../../src/data/cifar10.ts";
import { imagesToTensor } from "../../src/data/tensors.ts";
import { UserError } from "../../src/core/errors.ts";
import { modelCost } from "../../src/surgery/cost.ts";
import { type ChannelRemoval, removeChannels, zeroChannels } from "../../src/surgery/remove.ts";
import { traceChannels } from "../../src/surgery/trace.ts";
import { DEFAULT_PREPROCESSING } from "../../src/types.ts";
import { randomize } from "../_helpers.ts";

await setupBackend("cpu");

const TINY_DATA = fileURLToPath(new URL("../../fixtures/cifar10-tiny", import.meta.url));
const TOLERANCE = 1e-5;

type LayerFactory = () => tf.layers.Layer;
const conv = (name: string, filters: number, activation = "relu", padding: "same" | "valid" = "same") => () =>
  tf.layers.conv2d({ name, filters, kernelSize: 3, padding, activation: activation as "relu" });
const bn = (name: string) => () => tf.layers.batchNormalization({ name });
const pool = (name: string) => () => tf.layers.maxPooling2d({ name, poolSize: 2 });
const flatten = () => tf.layers.flatten({ name: "flatten" });
const logits = () => tf.layers.dense({ name: "logits", units: 10 });

/** A seeded Sequential 32x32x3 -> 10 logits model from layer factories. */
function sequential(name: string, layers: LayerFactory[], seed: number): tf.Sequential {
  const m = tf.sequential({ name });
  m.add(tf.layers.inputLayer({ inputShape: [32, 32, 3], name: "image" }));
  for (const make of layers) m.add(make());
  randomize(m, seed);
  return m;
}

function maxAbsDiff(a: tf.LayersModel, b: tf.LayersModel, x: tf.Tensor4D): number {
  return tf.tidy(() => {
    const ya = a.predict(x) as tf.Tensor, yb = b.predict(x) as tf.Tensor;
    return tf.max(tf.abs(tf.sub(ya, yb))).dataSync()[0];
  });
}

const realImages = async (n: number) =>
  imagesToTensor(await loadTestSet(TINY_DATA, n), 0, n, DEFAULT_PREPROCESSING);

/**
 * Prune `removals` from `model` and check the slim model against the masked one on random
 * and real images; returns the surgery report and the slim model.
 */
async function checkExact(model: tf.LayersModel, removals: ChannelRemoval[]) {
  const masked = await zeroChannels(model, removals);
  const result = await removeChannels(model, removals);
  const random = tf.randomNormal([16, 32, 32, 3], 0, 1, "float32", 5) as tf.Tensor4D;
  const real = await realImages(32);
  try {
    // The pruning must change the model, or the comparison proves nothing.
    assert.ok(maxAbsDiff(model, masked, random) > 1e-3, "masking changed nothing");
    for (const [what, x] of [["random", random], ["real", real]] as const) {
      const diff = maxAbsDiff(masked, result.model, x);
      assert.ok(diff <= TOLERANCE, `slim vs masked on ${what} inputs: max |diff| ${diff}`);
    }
    for (const r of removals) {
      const rep = result.layers.find((l) => l.layer === r.layer)!;
      const kernel = result.model.getLayer(r.layer).getWeights()[0];
      assert.equal(kernel.shape[3], rep.channelsBefore - rep.removed.length);
      assert.equal(rep.channelsAfter, kernel.shape[3]);
    }
    assert.ok(modelCost(result.model).parameters < modelCost(model).parameters);
  } finally {
    random.dispose();
    real.dispose();
    masked.dispose();
  }
  return result;
}

Deno.test("conv + BN + pool + Flatten + Dense: BN's constant folds into the dense bias exactly", async () => {
  const model = sequential("bn_dense", [
    conv("conv1", 6),
    pool("pool1"),
    conv("conv2", 12),
    bn("bn2"),
    pool("pool2"),
    () => tf.layers.dropout({ name: "drop", rate: 0.3 }),
    flatten,
    logits,
  ], 1);
  const trace = traceChannels(model, [{ layer: "conv2", channels: [] }]);
  assert.deepEqual(trace.consumers.map((u) => u.layer.name), ["logits"]);
  assert.deepEqual(trace.between[0], ["bn2", "pool2", "drop", "flatten"]);
  const result = await checkExact(model, [{ layer: "conv2", channels: [0, 3, 4, 11] }]);
  const rep = result.layers[0];
  assert.equal(rep.fold, "bias");
  assert.ok(rep.largestConstant > 0.01, "BN(0) should be a real constant");
  assert.deepEqual(rep.removed, [0, 3, 4, 11]);
  assert.deepEqual(rep.batchNorms, ["bn2"]);
  // Flatten's H x W x C rows: 8 x 8 positions x 8 channels kept.
  assert.deepEqual(result.model.getLayer("logits").getWeights()[0].shape, [8 * 8 * 8, 10]);
  assert.deepEqual(result.model.getLayer("bn2").getWeights().map((w) => w.shape[0]), [8, 8, 8, 8]);
  model.dispose();
  result.model.dispose();
});

Deno.test("conv (sigmoid, no BN) + Flatten + Dense: activation(0) = 0.5 folds exactly", async () => {
  const model = sequential("nobn_dense", [conv("conv1", 8, "sigmoid"), pool("pool1"), flatten, logits], 2);
  const result = await checkExact(model, [{ layer: "conv1", channels: [1, 2, 6] }]);
  assert.equal(result.layers[0].fold, "bias");
  assert.ok(Math.abs(result.layers[0].largestConstant - 0.5) < 1e-6);
  model.dispose();
  result.model.dispose();
});

Deno.test("conv -> conv with 'valid' padding: the constant folds into the next conv's bias", async () => {
  const model = sequential("valid", [
    conv("conv1", 8, "sigmoid"),
    pool("pool1"),
    conv("conv2", 6, "relu", "valid"),
    pool("pool2"),
    flatten,
    logits,
  ], 3);
  const result = await checkExact(model, [{ layer: "conv1", channels: [0, 5, 7] }]);
  const rep = result.layers[0];
  assert.equal(rep.consumer, "conv2");
  assert.equal(rep.consumerKind, "conv");
  assert.equal(rep.fold, "bias");
  assert.equal(rep.carrier, null);
  assert.deepEqual(result.model.getLayer("conv2").getWeights()[0].shape, [3, 3, 5, 6]);
  model.dispose();
  result.model.dispose();
});

Deno.test("conv + BN -> conv with 'same' padding: a carrier channel keeps the border-exact constant", async () => {
  const model = sequential("same", [
    conv("conv1", 8),
    bn("bn1"),
    conv("conv2", 6),
    pool("pool1"),
    flatten,
    logits,
  ], 4);
  const result = await checkExact(model, [{ layer: "conv1", channels: [1, 2, 4, 7] }]);
  const rep = result.layers[0];
  assert.equal(rep.fold, "carrier");
  assert.ok(rep.carrier !== null && [1, 2, 4, 7].includes(rep.carrier));
  assert.equal(rep.removed.length, 3);
  assert.equal(rep.channelsAfter, 5);

  // Folding into the bias instead would be wrong at the borders: check the claim itself.
  const naive = await removeChannels(model, [{ layer: "conv1", channels: [1, 2, 4, 7] }]);
  const masked = await zeroChannels(model, [{ layer: "conv1", channels: [1, 2, 4, 7] }]);
  const x = tf.randomNormal([4, 32, 32, 3], 0, 1, "float32", 9) as tf.Tensor4D;
  // Same slim weights, but the carrier's interior contribution moved into the bias.
  const w = naive.model.getLayer("conv2").getWeights();
  const kept = Array.from({ length: 8 }, (_, c) => c).filter((c) => !rep.removed.includes(c));
  const at = kept.indexOf(rep.carrier!);
  const constant = constantOf(model, "bn1", rep.carrier!);
  const kernel = tf.tidy(() => {
    const parts = tf.split(w[0], kept.length, 2);
    parts[at] = tf.zerosLike(parts[at]);
    return tf.concat(parts, 2);
  });
  const folded = tf.tidy(() =>
    w[1].add(tf.slice(w[0], [0, 0, at, 0], [3, 3, 1, 6]).sum([0, 1, 2]).mul(constant))
  );
  naive.model.getLayer("conv2").setWeights([kernel, folded]);
  assert.ok(maxAbsDiff(masked, naive.model, x) > 1e-3, "a bias fold should be wrong at the borders");
  [x, kernel, folded].forEach((t) => t.dispose()); // w holds the live variables: not ours to dispose
  [model, result.model, naive.model, masked].forEach((m) => m.dispose());
});

/** The value BN layer `bnName` gives channel `c` for a zero input (what a pruned relu channel sends). */
function constantOf(model: tf.LayersModel, bnName: string, c: number): number {
  return tf.tidy(() => {
    const y = model.getLayer(bnName).apply(tf.zeros([1, 1, 1, 8])) as tf.Tensor;
    return y.dataSync()[c];
  });
}

Deno.test("relu without BN -> 'same' conv: constants are 0, channels removed outright", async () => {
  const model = sequential("relu_same", [conv("conv1", 8), conv("conv2", 6), pool("p"), flatten, logits], 6);
  const result = await checkExact(model, [{ layer: "conv1", channels: [0, 3] }]);
  assert.equal(result.layers[0].fold, "none");
  assert.equal(result.layers[0].carrier, null);
  assert.equal(result.layers[0].channelsAfter, 6);
  model.dispose();
  result.model.dispose();
});

Deno.test("a plan over three consecutive conv + BN layers (VGG's block 5) is exact", async () => {
  const model = sequential("block5", [
    conv("c0", 8),
    pool("p0"),
    pool("p1"),
    pool("p2"),
    conv("b5c1", 10),
    bn("b5bn1"),
    conv("b5c2", 10),
    bn("b5bn2"),
    conv("b5c3", 12),
    bn("b5bn3"),
    pool("b5pool"),
    () => tf.layers.dropout({ name: "b5drop", rate: 0.1 }),
    flatten,
    () => tf.layers.dense({ name: "fc1", units: 16, activation: "relu" }),
    logits,
  ], 7);
  const removals = [
    { layer: "b5c3", channels: [0, 1, 2, 5, 9] },
    { layer: "b5c1", channels: [2, 3, 8] },
    { layer: "b5c2", channels: [9, 0, 4, 5] },
  ];
  const result = await checkExact(model, removals);
  const by = Object.fromEntries(result.layers.map((l) => [l.layer, l]));
  assert.equal(by.b5c1.fold, "carrier");
  assert.equal(by.b5c2.fold, "carrier");
  assert.equal(by.b5c3.fold, "bias");
  assert.deepEqual(result.model.getLayer("b5c2").getWeights()[0].shape, [3, 3, 8, 7]);
  assert.deepEqual(result.model.getLayer("b5c3").getWeights()[0].shape, [3, 3, 7, 12 - 5]);
  model.dispose();
  result.model.dispose();
});

Deno.test("global average pooling before the dense layer: rows indexed by channel", async () => {
  const model = sequential("gap", [
    conv("conv1", 8),
    bn("bn1"),
    () => tf.layers.globalAveragePooling2d({ name: "gap" }),
    logits,
  ], 8);
  const result = await checkExact(model, [{ layer: "conv1", channels: [2, 6] }]);
  assert.equal(result.layers[0].fold, "bias");
  assert.deepEqual(result.model.getLayer("logits").getWeights()[0].shape, [6, 10]);
  model.dispose();
  result.model.dispose();
});

Deno.test("the tiny-bn fixture model: slim equals masked", {
  ignore: !existsSync(new URL("../../fixtures/models/tiny-bn/model.json", import.meta.url)),
}, async () => {
  const { loadModel } = await import("../../src/model/load.ts");
  const path = fileURLToPath(new URL("../../fixtures/models/tiny-bn/model.json", import.meta.url));
  const { model } = await loadModel(path);
  const result = await checkExact(model, [{ layer: "conv2", channels: [0, 1, 2, 3, 10] }]);
  assert.equal(result.layers[0].consumer, "scores");
  model.dispose();
  result.model.dispose();
});

function existsSync(url: URL): boolean {
  try {
    Deno.statSync(url);
    return true;
  } catch {
    return false;
  }
}

Deno.test("what surgery refuses, with a UserError", async () => {
  // A residual branch after the conv.
  const input = tf.input({ shape: [32, 32, 3] });
  const a = tf.layers.conv2d({ name: "a", filters: 4, kernelSize: 3, padding: "same" }).apply(input);
  const b = tf.layers.conv2d({ name: "b", filters: 4, kernelSize: 3, padding: "same" }).apply(a);
  const sum = tf.layers.add({ name: "sum" }).apply([a, b] as tf.SymbolicTensor[]);
  const out = tf.layers.dense({ units: 10 }).apply(tf.layers.flatten().apply(sum)) as tf.SymbolicTensor;
  const residual = tf.model({ inputs: input, outputs: out });
  await assert.rejects(() => removeChannels(residual, [{ layer: "a", channels: [0] }]), UserError);

  // Zero padding between a BN'd conv and the next conv: the constant varies over the map.
  const padded = sequential("padded", [
    conv("conv1", 4),
    bn("bn1"),
    () => tf.layers.zeroPadding2d({ name: "pad", padding: 1 }),
    conv("conv2", 4, "relu", "valid"),
    flatten,
    logits,
  ], 9);
  await assert.rejects(
    () => removeChannels(padded, [{ layer: "conv1", channels: [0] }]),
    (e: Error) => e instanceof UserError && /varies/.test(e.message),
  );
  // All channels, a bad channel, a layer that is not a conv.
  const small = sequential("small", [conv("conv1", 4), pool("p"), flatten, logits], 10);
  await assert.rejects(() => removeChannels(small, [{ layer: "conv1", channels: [0, 1, 2, 3] }]), UserError);
  await assert.rejects(() => removeChannels(small, [{ layer: "conv1", channels: [4] }]), UserError);
  await assert.rejects(() => removeChannels(small, [{ layer: "logits", channels: [0] }]), UserError);
  await assert.rejects(
    () => removeChannels(small, [{ layer: "conv1", channels: [0] }, { layer: "conv1", channels: [1] }]),
    UserError,
  );
  [residual, padded, small].forEach((m) => m.dispose());
});

Deno.test("surgery leaves the original model unchanged and leaks no tensors", async () => {
  const model = sequential("leak", [conv("conv1", 6), bn("bn1"), pool("p"), flatten, logits], 11);
  const before = model.getWeights().map((w) => Array.from(w.dataSync()));
  const tensors = tf.memory().numTensors;
  const result = await removeChannels(model, [{ layer: "conv1", channels: [1, 4] }]);
  result.model.dispose();
  const masked = await zeroChannels(model, [{ layer: "conv1", channels: [1, 4] }]);
  masked.dispose();
  assert.equal(tf.memory().numTensors, tensors);
  model.getWeights().forEach((w, i) => assert.deepEqual(Array.from(w.dataSync()), before[i]));
  model.dispose();
});

Deno.test("the lab's VGG (width 1/8): block4_conv3 and all of block 5 in one plan, exact", async () => {
  const { buildVgg } = await import("../../src/model/vgg.ts");
  const model = buildVgg({ width: 0.125 });
  randomize(model, 12);
  const removals = [
    { layer: "block4_conv3", channels: [1, 5, 9, 33, 60] },
    { layer: "block5_conv1", channels: [0, 2, 4, 6, 8, 10, 12, 14] },
    { layer: "block5_conv2", channels: [63, 1, 30] },
    { layer: "block5_conv3", channels: Array.from({ length: 40 }, (_, i) => i + 3) },
  ];
  const result = await checkExact(model, removals);
  const by = Object.fromEntries(result.layers.map((l) => [l.layer, l]));
  assert.equal(by.block4_conv3.consumer, "block5_conv1");
  assert.deepEqual(by.block4_conv3.between, ["block4_bn3", "block4_pool", "block4_drop"]);
  assert.equal(by.block5_conv3.consumer, "fc1");
  assert.equal(by.block5_conv3.fold, "bias");
  assert.equal(by.block5_conv3.channelsAfter, 64 - 40);
  model.dispose();
  result.model.dispose();
});

const SHARED_MODELS = new URL("../../../shared/models/", import.meta.url);
const SHARED_TEST = new URL("../../../shared/cifar10/test_batch.bin", import.meta.url);

Deno.test("third-party models from ../shared: slim equals masked on real images", {
  ignore: !existsSync(SHARED_MODELS) || !existsSync(SHARED_TEST),
}, async () => {
  const { loadModel } = await import("../../src/model/load.ts");
  const cases: [string, ChannelRemoval[]][] = [
    // A TF.js export whose dense layer declares its input width (1024): it must shrink too.
    ["tfjs-cnn-zz632893783/model.json", [{ layer: "conv2d_Conv2D3", channels: [0, 7, 8, 21, 40, 63] }]],
    // Keras 2 VGG with BN: conv2d_10 -> BN -> 'same' conv (carrier), conv2d_11 -> BN -> dense.
    ["keras2-vgg-bn-denisko28/cifar10_model.FULL_DERIVED.h5", [
      { layer: "conv2d_10", channels: [3, 4, 5, 100] },
      { layer: "conv2d_11", channels: [0, 10, 20, 30, 127] },
    ]],
  ];
  const test = await loadTestSet(
    fileURLToPath(new URL("cifar10", new URL("../../../shared/", import.meta.url))),
    16,
  );
  for (const [file, removals] of cases) {
    const { model, preprocessing } = await loadModel(fileURLToPath(new URL(file, SHARED_MODELS)));
    const masked = await zeroChannels(model, removals);
    const { model: slim, artifacts } = await removeChannels(model, removals);
    const x = imagesToTensor(test, 0, test.count, preprocessing);
    const diff = maxAbsDiff(masked, slim, x);
    assert.ok(diff <= TOLERANCE, `${file}: max |diff| ${diff}`);
    assert.ok(modelCost(slim).parameters < modelCost(model).parameters);
    if (file.startsWith("tfjs")) {
      const dense = JSON.stringify(artifacts.modelTopology).match(/"batch_input_shape":\[null,(\d+)\]/);
      assert.equal(Number(dense?.[1]), 16 * (64 - 6));
    }
    x.dispose();
    [model, masked, slim].forEach((m) => m.dispose());
  }
});
