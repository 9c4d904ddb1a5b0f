/**
 * The fast engine and its inputs: the lab's ranking and average maps against values worked out
 * by hand, the sweep's bookkeeping (K = 0 is the model's own accuracy, K = C is a constant map,
 * channel pruned at K, subsets), batching that cannot change a count, and no tensor leaks.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { setupBackend } from "../../src/backend.ts";
import { loadTestSet } from "../../src/data/cifar10.ts";
import { loadModel } from "../../src/model/load.ts";
import { pickLayer } from "../../src/model/layers.ts";
import { splitModel } from "../../src/model/split.ts";
import { averageMaps, computeLayerOutputs, type LayerOutputs } from "../../src/activations/layer_outputs.ts";
import { MEAN_ACTIVATION, rankByMean } from "../../src/rank/criteria.ts";
import { planBatching, sweepFast } from "../../src/sweep/engines/masked.ts";
import { resolveKValues } from "../../src/sweep/kvalues.ts";
import { evaluate } from "../../src/model/evaluate.ts";
import { UserError } from "../../src/core/errors.ts";
import { fixture } from "../_helpers.ts";

/**
 * 2 images, 1 x 2 positions, 4 channels. Per channel, the four values and their mean:
 * c0: 2, 2, 2, 2 -> 2;  c1: 0, 0, 4, 0 -> 1;  c2: 3, 1, -5, -3 -> -1;  c3: 1, 1, 1, 1 -> 1.
 * Ascending, ties by channel index: c2, c1, c3, c0.
 */
const handMade: LayerOutputs = {
  // image 0: position 0, position 1; image 1: position 0, position 1 (each c0..c3)
  data: Float32Array.from([2, 0, 3, 1, 2, 0, 1, 1, 2, 4, -5, 1, 2, 0, -3, 1]),
  count: 2,
  height: 1,
  width: 2,
  channels: 4,
};

Deno.test("rankByMean: a ranking worked out by hand, ties by channel index", () => {
  const r = rankByMean(handMade);
  assert.equal(r.criterion, MEAN_ACTIVATION);
  assert.deepEqual(Array.from(r.scores), [2, 1, -1, 1]);
  assert.deepEqual(r.order, [2, 1, 3, 0]);
});

Deno.test("rankByMean: accumulates in float64 (a float32 running sum would lose the small channel)", () => {
  // Channel 0: 1e8 once then 1s; channel 1: 1e8 once then 0s. A float32 sum cannot tell 1e8+1 from 1e8.
  const count = 1000;
  const data = new Float32Array(count * 2);
  for (let n = 0; n < count; n++) {
    data[n * 2] = n === 0 ? 1e8 : 1;
    data[n * 2 + 1] = n === 0 ? 1e8 : 0;
  }
  const r = rankByMean({ data, count, height: 1, width: 1, channels: 2 });
  assert.deepEqual(r.order, [1, 0]);
  assert.ok(r.scores[0] - r.scores[1] > 0.99 - 1e-9);
});

Deno.test("averageMaps: the mean over images at every position and channel", () => {
  assert.deepEqual(Array.from(averageMaps(handMade)), [2, 2, -1, 1, 2, 0, -1, 1]);
});

Deno.test("resolveKValues and planBatching", () => {
  assert.deepEqual(resolveKValues(undefined, 3), [0, 1, 2, 3]);
  assert.deepEqual(resolveKValues([3, 0, 3, 1], 3), [0, 1, 3]);
  assert.throws(() => resolveKValues([4], 3), RangeError);
  assert.throws(() => resolveKValues([1.5], 3), RangeError);
  // A 1 MiB budget with 1,000 values per image: m x B x (16 x 1,000 + 8 x 500) bytes must fit.
  const p = planBatching(1000, 500, 10_000, 513, { memoryBudgetBytes: 2 ** 20 });
  assert.ok(p.kBatch * p.imageBatch * 20_000 <= 2 ** 20, JSON.stringify(p));
  assert.ok(p.kBatch >= 1 && p.imageBatch >= 1);
  assert.deepEqual(planBatching(10, 10, 50, 3, {}), { kBatch: 3, imageBatch: 50 });
  assert.deepEqual(planBatching(10, 10, 50, 3, { kBatch: 2, imageBatch: 7 }), { kBatch: 2, imageBatch: 7 });
});

Deno.test("computeLayerOutputs: refuses (UserError) outputs larger than allowed", async () => {
  await setupBackend("wasm");
  const { model, preprocessing } = await loadModel(fixture("models/tiny-bn/model.json"));
  const split = splitModel(model, pickLayer(model));
  const ds = await loadTestSet(fixture("cifar10-tiny"), 10);
  await assert.rejects(
    computeLayerOutputs(split, ds, preprocessing, { maxBytes: 1000 }),
    (e: unknown) => e instanceof UserError && /--limit/.test(e.message),
  );
});

for (const name of ["tiny-bn", "tiny-nobn"]) {
  Deno.test(`sweepFast on ${name}: bookkeeping, K = 0 and K = C, batching cannot change a count`, async () => {
    await setupBackend("wasm");
    const { model, preprocessing } = await loadModel(fixture(`models/${name}/model.json`));
    const ds = await loadTestSet(fixture("cifar10-tiny"));
    const layer = pickLayer(model);
    const split = splitModel(model, layer);
    const out = await computeLayerOutputs(split, ds, preprocessing, { batch: 64 });
    assert.deepEqual([out.count, out.height, out.width, out.channels], [200, 16, 16, 16]);
    const ranking = rankByMean(out);
    const progress: number[] = [];
    const points = await sweepFast(split, out, ds.labels, ranking, { onProgress: (k) => progress.push(k) });
    assert.deepEqual(points.map((p) => p.k), Array.from({ length: 17 }, (_, k) => k));
    assert.equal(progress[progress.length - 1], 17);
    for (const p of points) {
      assert.equal(p.channelPrunedAtK, p.k === 0 ? null : ranking.order[p.k - 1]);
      assert.equal(p.total, 200);
      assert.equal(p.accuracy, p.correct / 200);
    }
    // K = 0 is the unpruned model's accuracy, evaluated the ordinary way.
    assert.equal(points[0].correct, (await evaluate(model, ds, preprocessing)).correct);
    // K = C: every channel is the constant activation(0), so every image gets the same class.
    const constantClass = tf.tidy(() =>
      split.suffix(tf.fill([1, 16, 16, 16], split.activationOfZero) as tf.Tensor4D).argMax(1).dataSync()[0]
    );
    assert.equal(points[16].correct, ds.labels.filter((l) => l === constantClass).length);
    // Accuracies vary with K (the fixtures are trained), so the identity tests below mean something.
    assert.ok(new Set(points.map((p) => p.correct)).size >= 3);
    // Other batchings and masking sites give the very same counts (on the first 24 images, to stay quick;
    // a budget of 1 byte means one K and one image per suffix call).
    const few: LayerOutputs = { ...out, count: 24, data: out.data.subarray(0, 24 * 16 * 16 * 16) };
    const want = (await sweepFast(split, few, ds.labels, ranking)).map((p) => p.correct);
    for (
      const opts of [
        { kBatch: 1, imageBatch: 7 },
        { kBatch: 5, imageBatch: 23 },
        { kBatch: 17, imageBatch: 24, masking: "device" as const },
        { memoryBudgetBytes: 1 },
        { pushdown: false },
        { pushdown: false, masking: "device" as const },
      ]
    ) {
      const again = await sweepFast(split, few, ds.labels, ranking, opts);
      assert.deepEqual(again.map((p) => p.correct), want, JSON.stringify(opts));
    }
    // A subset of K values gives the same points as the full sweep.
    const subset = await sweepFast(split, out, ds.labels, ranking, { kValues: [16, 3, 0] });
    assert.deepEqual(subset, [points[0], points[3], points[16]]);
  });
}

Deno.test("sweepFast: a whole sweep leaves no tensor behind", async () => {
  await setupBackend("wasm");
  const { model, preprocessing } = await loadModel(fixture("models/tiny-bn/model.json"));
  const ds = await loadTestSet(fixture("cifar10-tiny"), 30);
  const split = splitModel(model, pickLayer(model));
  for (const masking of ["host", "device"] as const) {
    for (const pushdown of [true, false]) {
      const before = tf.memory().numTensors;
      const out = await computeLayerOutputs(split, ds, preprocessing, { batch: 16 });
      await sweepFast(split, out, ds.labels, rankByMean(out), {
        kBatch: 4,
        imageBatch: 16,
        masking,
        pushdown,
      });
      assert.equal(
        tf.memory().numTensors,
        before,
        `${masking} masking, pushdown ${pushdown}: leaked tensors`,
      );
    }
  }
});
