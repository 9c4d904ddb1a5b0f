/**
 * The change-only engine: the same counts as sweepFast and sweepNaive on every fixture model,
 * whatever the batching, for subsets of K, and with rows it skips worked out by hand.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { setupBackend } from "../../src/backend.ts";
import { loadTestSet } from "../../src/data/cifar10.ts";
import { loadModel } from "../../src/model/load.ts";
import { pickLayer } from "../../src/model/layers.ts";
import { splitModel } from "../../src/model/split.ts";
import { computeLayerOutputs, type LayerOutputs } from "../../src/activations/layer_outputs.ts";
import { rankByMean } from "../../src/rank/criteria.ts";
import { sweepFast } from "../../src/sweep/engines/masked.ts";
import { sweepNaive } from "../../src/sweep/engines/naive.ts";
import {
  changeCounts,
  float32Bits,
  maskedRows,
  sweepIncremental,
} from "../../src/sweep/engines/change_only.ts";
import { linearRows, planLinearHead } from "../../src/sweep/linear_head.ts";
import { fixture } from "../_helpers.ts";

Deno.test("changeCounts: rows per K worked out by hand", () => {
  // 3 images, 2 positions, 3 channels; fill 0. Live (not 0 somewhere) channels per image:
  // image 0: c0, c2;  image 1: c2 only (c0 is -0: not the fill's bits, so counted live too);  image 2: none.
  const out: LayerOutputs = {
    data: Float32Array.from([
      1,
      0,
      0,
      0,
      0,
      5, // image 0
      -0,
      0,
      0,
      0,
      0,
      2, // image 1
      0,
      0,
      0,
      0,
      0,
      0, // image 2
    ]),
    count: 3,
    height: 1,
    width: 2,
    channels: 3,
  };
  // Ranking c1, c0, c2. K = 1 prunes c1 (nobody changes); K = 2 prunes c0 (images 0, 1); K = 3 prunes c2 (0, 1).
  assert.deepEqual(Array.from(changeCounts(out, 0, [1, 0, 2], [0, 1, 2, 3])), [3, 0, 2, 2]);
  // K values 0 and 3 only: images 0 and 1 change between them.
  assert.deepEqual(Array.from(changeCounts(out, 0, [1, 0, 2], [0, 3])), [3, 2]);
  // A sweep that starts at K = 2 evaluates every image there.
  assert.deepEqual(Array.from(changeCounts(out, 0, [1, 0, 2], [2, 3])), [3, 2]);
  assert.equal(float32Bits(0), 0);
  assert.notEqual(float32Bits(-0), 0);
});

for (const [name, layerName] of [["tiny-bn", undefined], ["tiny-nobn", undefined], ["tiny-func", "conv2"]]) {
  Deno.test(`sweepIncremental on ${name}: sweepFast's counts, any batching, any K subset`, async () => {
    await setupBackend("wasm");
    const { model, preprocessing } = await loadModel(fixture(`models/${name}/model.json`));
    const ds = await loadTestSet(fixture("cifar10-tiny"));
    const layer = pickLayer(model, layerName);
    const split = splitModel(model, layer);
    const out = await computeLayerOutputs(split, ds, preprocessing);
    const ranking = rankByMean(out);
    const want = (await sweepFast(split, out, ds.labels, ranking)).map((p) => p.correct);
    assert.ok(new Set(want).size >= 3, `accuracies vary with K on ${name}`);
    const work: number[] = [];
    const got = await sweepIncremental(split, out, ds.labels, ranking, { onWork: (d) => work.push(d) });
    assert.deepEqual(got.map((p) => p.correct), want);
    assert.deepEqual(got.map((p) => p.channelPrunedAtK), [null, ...ranking.order]);
    // Masking the layer outputs themselves, it runs exactly the rows changeCounts predicts (fewer
    // than K x N when a channel is silent on some image); after the channel-local layers, at most those.
    const ks = got.map((p) => p.k);
    const rows = changeCounts(out, split.activationOfZero, ranking.order, ks).reduce((a, b) => a + b, 0);
    assert.ok(work[work.length - 1] <= rows);
    const plainWork: number[] = [];
    const plain = await sweepIncremental(split, out, ds.labels, ranking, {
      rows: maskedRows(split, { pushdown: false }),
      onWork: (d) => plainWork.push(d),
    });
    assert.deepEqual(plain.map((p) => p.correct), want);
    assert.equal(plainWork[plainWork.length - 1], rows);
    for (
      const opts of [{ rowsPerCall: 1, imageBatch: 7 }, { rowsPerCall: 37, imageBatch: 200 }, {
        memoryBudgetBytes: 1,
      }]
    ) {
      const again = await sweepIncremental(split, out, ds.labels, ranking, opts);
      assert.deepEqual(again.map((p) => p.correct), want, JSON.stringify(opts));
    }
    const subset = await sweepIncremental(split, out, ds.labels, ranking, {
      kValues: [layer.channels, 5, 2],
    });
    assert.deepEqual(subset.map((p) => p.correct), [want[2], want[5], want[layer.channels]]);
  });
}

Deno.test("sweepIncremental: the naive method's counts on tiny-bn, and a skipped row really is unchanged", async () => {
  await setupBackend("wasm");
  const { model, preprocessing } = await loadModel(fixture("models/tiny-bn/model.json"));
  const ds = await loadTestSet(fixture("cifar10-tiny"), 80);
  const layer = pickLayer(model);
  const split = splitModel(model, layer);
  const out = await computeLayerOutputs(split, ds, preprocessing);
  const ranking = rankByMean(out);
  const ks = [0, 1, 4, 8, 12, 16];
  const naive = await sweepNaive(model, layer, ds, preprocessing, ranking, { kValues: ks });
  const got = await sweepIncremental(split, out, ds.labels, ranking, { kValues: ks });
  assert.deepEqual(got.map((p) => p.correct), naive.map((p) => p.correct));
  // The row source: pruning a channel that is the fill everywhere for an image leaves its row as it was.
  const rows = maskedRows(split, { pushdown: false });
  await rows.begin(out, 0, 2);
  const before = new Float32Array(16 * 16 * 16);
  rows.row(0, before);
  const silent = Array.from({ length: 16 }, (_, c) => c).find((c) => {
    for (let p = 0; p < 256; p++) if (before[p * 16 + c] !== 0) return false;
    return true;
  });
  if (silent !== undefined) {
    const changed = new Uint8Array(2);
    rows.prune(silent, changed);
    const after = new Float32Array(before.length);
    rows.row(0, after);
    assert.equal(changed[0], 0);
    assert.deepEqual(after, before);
  }
  // A live channel: the row changes and that channel becomes the fill, nothing else moves.
  const live = Array.from({ length: 16 }, (_, c) => c).find((c) =>
    before.some((v, i) => i % 16 === c && v !== 0)
  )!;
  const changed = new Uint8Array(2);
  rows.prune(live, changed);
  const after = new Float32Array(before.length);
  rows.row(0, after);
  assert.equal(changed[0], 1);
  after.forEach((v, i) => assert.equal(v, i % 16 === live ? 0 : before[i]));
});

Deno.test("sweepIncremental: leaves no tensor behind", async () => {
  await setupBackend("wasm");
  const { model, preprocessing } = await loadModel(fixture("models/tiny-nobn/model.json"));
  const ds = await loadTestSet(fixture("cifar10-tiny"), 30);
  const split = splitModel(model, pickLayer(model));
  const out = await computeLayerOutputs(split, ds, preprocessing);
  const before = tf.memory().numTensors;
  await sweepIncremental(split, out, ds.labels, rankByMean(out), { rowsPerCall: 13, imageBatch: 11 });
  assert.equal(tf.memory().numTensors, before);
});

// Asking for an adapter in the test process itself can crash Deno at exit (seen about 1 run in 12),
// so this in-process WebGPU case runs only on request; tests/backends_test.ts covers WebGPU in child processes.
const hasAdapter = Deno.env.get("PRUNESCOPE_TEST_WEBGPU") === "1" && await (async () => {
  const gpu = (globalThis.navigator as unknown as { gpu?: { requestAdapter(): Promise<unknown> } }).gpu;
  try {
    return Boolean(gpu && await gpu.requestAdapter());
  } catch {
    return false;
  }
})();

Deno.test({
  name:
    "sweepIncremental on WebGPU (any adapter, software ones too): the wasm counts, exact rows and algebra rows",
  ignore: !hasAdapter,
  fn: async () => {
    // splitModel reads two constants synchronously, which tfjs-webgpu cannot do in Deno: cut the
    // model on wasm, then move to WebGPU (the weights follow); every read of this engine is async.
    await setupBackend("wasm");
    const { model, preprocessing } = await loadModel(fixture("models/tiny-bn/model.json"));
    const ds = await loadTestSet(fixture("cifar10-tiny"), 60);
    const layer = pickLayer(model);
    const split = splitModel(model, layer);
    const head = await planLinearHead(model, layer);
    assert.ok("head" in head);
    const out = await computeLayerOutputs(split, ds, preprocessing);
    const ranking = rankByMean(out);
    const want = (await sweepIncremental(split, out, ds.labels, ranking)).map((p) => p.correct);
    try {
      await setupBackend("webgpu");
      const gpuOut = await computeLayerOutputs(split, ds, preprocessing);
      const exact = await sweepIncremental(split, gpuOut, ds.labels, ranking);
      assert.deepEqual(exact.map((p) => p.correct), want);
      const algebra = await sweepIncremental(split, gpuOut, ds.labels, ranking, {
        rows: linearRows(head.head, split.activationOfZero),
      });
      assert.deepEqual(algebra.map((p) => p.correct), want);
    } finally {
      await setupBackend("wasm");
      model.dispose();
    }
  },
});
