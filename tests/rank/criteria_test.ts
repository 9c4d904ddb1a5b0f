/**
 * The ranking criteria against rankings worked out by hand on tiny layer outputs and kernels,
 * and the device Taylor scores against a gradient derived by hand for conv -> global average
 * pool -> dense softmax.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { setupBackend } from "../../src/backend.ts";
import { UserError } from "../../src/core/errors.ts";
import { decodeRecords } from "../../src/data/cifar10.ts";
import { syntheticCifar } from "../../src/data/synthetic.ts";
import { imagesToTensor } from "../../src/data/tensors.ts";
import { pickLayer } from "../../src/model/layers.ts";
import { splitModel } from "../../src/model/split.ts";
import type { LayerOutputs } from "../../src/activations/layer_outputs.ts";
import { rankByMean } from "../../src/rank/criteria.ts";
import {
  accumulateChannelStats,
  channelStats,
  deadChannels,
  emptyChannelStats,
  rankByApoz,
  rankByMeanStats,
  rankLargest,
} from "../../src/rank/activation.ts";
import { filterNorms, rankByBnGamma, rankByL1, rankByL2 } from "../../src/rank/weights.ts";
import { rankRandom } from "../../src/rank/random.ts";
import { rankByTaylor, taylorScores, taylorScoresFrom } from "../../src/rank/taylor.ts";
import { outputKind } from "../../src/model/class_scores.ts";
import { batchNormAfter, batchNormGammaAfter, convKernel } from "../../src/model/coupling.ts";
import { DEFAULT_PREPROCESSING } from "../../src/types.ts";

await setupBackend("cpu");

/** 2 images, 1 x 2 positions, 4 channels; values listed per position (c0, c1, c2, c3). */
function handOutputs(): LayerOutputs {
  // image 0: positions 0, 1; image 1: positions 0, 1
  const data = Float32Array.from([
    ...[0, 2, 1, 0],
    ...[0, 0, 3, 0],
    ...[4, 0, 1, 0],
    ...[0, 2, 1, 0],
  ]);
  return { data, count: 2, height: 1, width: 2, channels: 4 };
}
// By hand: means c0 = 4/4 = 1, c1 = 4/4 = 1, c2 = 6/4 = 1.5, c3 = 0;
// zeros c0 = 3/4, c1 = 2/4, c2 = 0, c3 = 4/4.

Deno.test("mean: lowest mean first, ties by channel; same order and scores as the lab's rankByMean", () => {
  const out = handOutputs();
  const r = rankByMeanStats(channelStats(out, 0));
  assert.deepEqual(r.order, [3, 0, 1, 2]);
  assert.deepEqual([...r.scores], [1, 1, 1.5, 0]);
  const lab = rankByMean(out);
  assert.deepEqual(r.order, lab.order);
  assert.deepEqual([...r.scores], [...lab.scores]);
});

Deno.test("largest: the reverse of mean", () => {
  const r = rankLargest(channelStats(handOutputs(), 0));
  assert.deepEqual(r.order, [2, 1, 0, 3]);
});

Deno.test("apoz: most zeros first", () => {
  const r = rankByApoz(channelStats(handOutputs(), 0));
  assert.deepEqual([...r.scores], [0.75, 0.5, 0, 1]);
  assert.deepEqual(r.order, [3, 0, 1, 2]);
});

Deno.test("channel statistics gathered image by image equal the one-shot ones, bit for bit", () => {
  const rand = (() => {
    let s = 1;
    return () => (s = (s * 16807) % 2147483647) / 2147483647 - 0.3;
  })();
  const count = 7, h = 3, w = 2, c = 5;
  const data = Float32Array.from({ length: count * h * w * c }, () => Math.max(0, rand()));
  const all: LayerOutputs = { data, count, height: h, width: w, channels: c };
  const once = channelStats(all, 0);
  const chunked = emptyChannelStats(c, 0);
  const per = h * w * c;
  for (const [start, n] of [[0, 3], [3, 1], [4, 3]]) {
    accumulateChannelStats(chunked, {
      data: data.subarray(start * per, (start + n) * per),
      count: n,
      height: h,
      width: w,
      channels: c,
    });
  }
  assert.deepEqual([...chunked.sums], [...once.sums]);
  assert.deepEqual([...chunked.zeros], [...once.zeros]);
  assert.equal(chunked.positions, once.positions);
  assert.deepEqual(rankByMeanStats(chunked).order, rankByMean(all).order);
});

Deno.test("dead channels: exactly the pruned value everywhere (0 after relu, 0.5 after sigmoid)", () => {
  assert.deepEqual(deadChannels(channelStats(handOutputs(), 0)).map((d) => d.channel), [3]);
  const dead = deadChannels(channelStats(handOutputs(), 0))[0];
  assert.equal(dead.mean, 0);
  assert.equal(dead.apoz, 1);
  // A sigmoid layer: a pruned channel emits 0.5; channel 1 is 0.5 everywhere, channel 0 never.
  const sig: LayerOutputs = {
    data: Float32Array.from([0.7, 0.5, 0.2, 0.5]),
    count: 2,
    height: 1,
    width: 1,
    channels: 2,
  };
  assert.deepEqual(deadChannels(channelStats(sig, 0.5)).map((d) => d.channel), [1]);
  assert.deepEqual(deadChannels(channelStats(sig, 0)), []);
});

// Kernel [kh=1, kw=1, cin=2, cout=3], output channel last: kernel[cin * 3 + cout].
// filter 0 = (3, 0): L1 3, L2 3; filter 1 = (2, -2): L1 4, L2 2.83; filter 2 = (1, 1): L1 2, L2 1.41.
const KERNEL = Float32Array.from([3, 2, 1, 0, -2, 1]);

Deno.test("l1 / l2: filter norms by hand, smallest first, and the two orders differ", () => {
  assert.deepEqual([...filterNorms(KERNEL, 3, 1)], [3, 4, 2]);
  const l2 = filterNorms(KERNEL, 3, 2);
  assert.deepEqual([...l2].map((x) => x.toFixed(4)), [
    "3.0000",
    (Math.SQRT2 * 2).toFixed(4),
    Math.SQRT2.toFixed(4),
  ]);
  assert.deepEqual(rankByL1(KERNEL, 3).order, [2, 0, 1]);
  assert.deepEqual(rankByL2(KERNEL, 3).order, [2, 1, 0]);
  assert.throws(() => filterNorms(KERNEL, 4, 1));
});

Deno.test("bn-gamma: smallest |gamma| first", () => {
  const r = rankByBnGamma(Float32Array.from([0.5, -0.1, 2, -0.3]));
  assert.deepEqual(r.order, [1, 3, 0, 2]);
  assert.equal(r.scores[1], Math.fround(0.1));
});

Deno.test("random: a seeded permutation; same seed same order, other seeds other orders", () => {
  const a = rankRandom(32, 1);
  assert.deepEqual([...a.order].sort((x, y) => x - y), Array.from({ length: 32 }, (_, i) => i));
  assert.deepEqual(rankRandom(32, 1).order, a.order);
  assert.notDeepEqual(rankRandom(32, 2).order, a.order);
  // ascending keys
  for (let i = 1; i < 32; i++) assert.ok(a.scores[a.order[i - 1]] <= a.scores[a.order[i]]);
});

Deno.test("taylor (pure): |mean over positions of a*g|, averaged over images, by hand", () => {
  // 2 images, 2 positions, 2 channels.
  const act: LayerOutputs = {
    data: Float32Array.from([1, 2, 3, 4, /* image 1 */ 1, 0, 1, 2]),
    count: 2,
    height: 1,
    width: 2,
    channels: 2,
  };
  const grad: LayerOutputs = { ...act, data: Float32Array.from([1, -1, -1, 1, 2, 5, 2, -1]) };
  // image 0: c0 (1*1 + 3*-1)/2 = -1 -> 1; c1 (2*-1 + 4*1)/2 = 1 -> 1
  // image 1: c0 (1*2 + 1*2)/2 = 2 -> 2;  c1 (0*5 + 2*-1)/2 = -1 -> 1
  const s = taylorScoresFrom(act, grad);
  assert.deepEqual([...s], [1.5, 1]);
  assert.deepEqual(rankByTaylor(s).order, [1, 0]);
});

Deno.test("taylor (device): matches the gradient derived by hand for conv -> GAP -> dense softmax", async () => {
  const input = tf.input({ shape: [32, 32, 3] });
  const conv = tf.layers.conv2d({
    name: "c",
    filters: 6,
    kernelSize: 3,
    strides: 4,
    activation: "relu",
    kernelInitializer: tf.initializers.glorotUniform({ seed: 3 }),
    biasInitializer: tf.initializers.constant({ value: 0.05 }),
  });
  const gap = tf.layers.globalAveragePooling2d({});
  const dense = tf.layers.dense({
    units: 10,
    activation: "softmax",
    kernelInitializer: tf.initializers.glorotUniform({ seed: 4 }),
  });
  const output = dense.apply(gap.apply(conv.apply(input))) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: output });
  const ds = decodeRecords(syntheticCifar(24, 5), "synthetic");
  const split = splitModel(model, pickLayer(model, "c"));
  assert.equal(outputKind(model), "probabilities");

  const before = tf.memory().numTensors;
  const device = await taylorScores(split, ds, DEFAULT_PREPROCESSING, "probabilities", { batch: 10 });
  assert.equal(tf.memory().numTensors, before);

  // By hand: L = -log p_y, p = softmax(W^T m + b), m_c = mean_hw a_c
  // => dL/da[n,h,w,c] = (1/HW) sum_j W[c, j] (p_j - [j = y]).
  const x = imagesToTensor(ds, 0, ds.count, DEFAULT_PREPROCESSING);
  const a = split.prefix(x);
  const p = model.predict(x) as tf.Tensor;
  const [n, h, w, c] = a.shape;
  const aData = (await a.data()) as Float32Array;
  const pData = await p.data();
  const W = await dense.getWeights()[0].data();
  tf.dispose([x, a, p]);
  const g = new Float32Array(aData.length);
  for (let i = 0; i < n; i++) {
    for (let ch = 0; ch < c; ch++) {
      let s = 0;
      for (let j = 0; j < 10; j++) s += W[ch * 10 + j] * (pData[i * 10 + j] - (j === ds.labels[i] ? 1 : 0));
      for (let q = 0; q < h * w; q++) g[(i * h * w + q) * c + ch] = s / (h * w);
    }
  }
  const act: LayerOutputs = { data: aData, count: n, height: h, width: w, channels: c };
  const expected = taylorScoresFrom(act, { ...act, data: g });
  for (let ch = 0; ch < c; ch++) {
    assert.ok(
      Math.abs(device[ch] - expected[ch]) <= 1e-5 * Math.max(1e-3, Math.abs(expected[ch])),
      `channel ${ch}: device ${device[ch]} vs hand ${expected[ch]}`,
    );
  }
  assert.deepEqual(rankByTaylor(device).order, rankByTaylor(expected).order);
  model.dispose();
});

function convBnModel(withBn: boolean, scale = true): tf.LayersModel {
  const m = tf.sequential();
  m.add(tf.layers.conv2d({
    name: "conv",
    inputShape: [32, 32, 3],
    filters: 3,
    kernelSize: 1,
    useBias: false,
    kernelInitializer: "zeros",
  }));
  if (withBn) m.add(tf.layers.batchNormalization({ name: "bn", scale }));
  m.add(tf.layers.globalAveragePooling2d({}));
  m.add(tf.layers.dense({ units: 10, activation: "softmax" }));
  return m;
}

Deno.test("model readers: the conv kernel and the gamma of the BatchNormalization after it", async () => {
  const m = convBnModel(true);
  const layer = pickLayer(m, "conv");
  const kernel = Float32Array.from([3, 2, 1, 0, -2, 1, 5, 5, 5]); // cin 3 x cout 3
  m.getLayer("conv").setWeights([tf.tensor4d(kernel, [1, 1, 3, 3])]);
  const bn = m.getLayer("bn");
  const gamma = Float32Array.from([0.5, -0.1, 2]);
  bn.setWeights([tf.tensor1d(gamma), ...bn.getWeights().slice(1)]);
  assert.deepEqual([...(await convKernel(m, layer)).values], [...kernel]);
  // filters (cin 0..2): 0 = (3, 0, 5) L1 8; 1 = (2, -2, 5) L1 9; 2 = (1, 1, 5) L1 7.
  assert.deepEqual(rankByL1((await convKernel(m, layer)).values, 3).order, [2, 0, 1]);
  const found = await batchNormGammaAfter(m, layer);
  assert.equal(found.bn, "bn");
  assert.deepEqual(rankByBnGamma(found.gamma).order, [1, 0, 2]);
  m.dispose();
});

Deno.test("bn-gamma: a clear UserError without a BatchNormalization right after, or without gamma", async () => {
  const plain = convBnModel(false);
  const noBn = (e: unknown) =>
    e instanceof UserError && /BatchNormalization directly after layer conv/.test(e.message);
  // The up-front check (graph only) and the reader give the same error.
  assert.throws(() => batchNormAfter(plain, pickLayer(plain, "conv")), noBn);
  await assert.rejects(() => batchNormGammaAfter(plain, pickLayer(plain, "conv")), noBn);
  const noScale = convBnModel(true, false);
  const noGamma = (e: unknown) => e instanceof UserError && /no gamma/.test(e.message);
  assert.throws(() => batchNormAfter(noScale, pickLayer(noScale, "conv")), noGamma);
  await assert.rejects(() => batchNormGammaAfter(noScale, pickLayer(noScale, "conv")), noGamma);
  plain.dispose();
  noScale.dispose();
});
