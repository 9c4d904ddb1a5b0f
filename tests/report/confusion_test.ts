/**
 * Confusion matrices by the naive method: the K = 0 matrix counts every test image once and
 * its diagonal is the sweep's K = 0 correct count; at other K the diagonal is the fast sweep's
 * count too; the model's own weights are untouched; the matrices from the cached layer outputs equal
 * them cell for cell; and the counting itself on a hand-made case.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import * as tf from "@tensorflow/tfjs";
import { setupBackend } from "../../src/backend.ts";
import { CLASS_NAMES, loadTestSet } from "../../src/data/cifar10.ts";
import { loadModel } from "../../src/model/load.ts";
import { pickLayer } from "../../src/model/layers.ts";
import { splitModel } from "../../src/model/split.ts";
import { computeLayerOutputs } from "../../src/activations/layer_outputs.ts";
import { rankByMean } from "../../src/rank/criteria.ts";
import { sweepFast } from "../../src/sweep/engines/masked.ts";
import { confusionAtK, confusionFromOutputs, confusionMatrix } from "../../src/surgery/confusion.ts";
import { largestKWithin } from "../../src/sweep/summary.ts";
import { confusionTable } from "../../src/report/confusion_tables.ts";

const fixture = (p: string) => fileURLToPath(new URL(`../../fixtures/${p}`, import.meta.url));

Deno.test("confusionMatrix: rows are true classes, columns predictions; a bad class throws", () => {
  const m = confusionMatrix(
    3,
    ["a", "b", "c"],
    Uint8Array.of(0, 0, 1, 2, 2, 2),
    Int32Array.of(0, 1, 1, 2, 0, 2),
  );
  assert.deepEqual(m.counts, [[1, 1, 0], [0, 1, 0], [1, 0, 2]]);
  assert.equal(m.correct, 4);
  assert.equal(m.total, 6);
  assert.equal(m.k, 3);
  const t = confusionTable(m);
  assert.deepEqual(t.header, ["true_class", "a", "b", "c", "images", "accuracy"]);
  assert.deepEqual(t.rows[2], ["c", 1, 0, 2, 3, 2 / 3]);
  assert.throws(() => confusionMatrix(0, ["a"], Uint8Array.of(0), Int32Array.of(1)), /outside 0..0/);
  assert.throws(() => confusionMatrix(0, ["a"], Uint8Array.of(0), Int32Array.of()), /1 labels but 0/);
});

for (const name of ["tiny-bn", "tiny-nobn", "tiny-func"]) {
  Deno.test(`confusionAtK on ${name}: sums to the test set, diagonal = the sweep's correct count at K`, async () => {
    await setupBackend("wasm");
    const { model, preprocessing } = await loadModel(fixture(`models/${name}/model.json`));
    const ds = await loadTestSet(fixture("cifar10-tiny"));
    const layer = pickLayer(model, "conv2");
    const split = splitModel(model, layer);
    const out = await computeLayerOutputs(split, ds, preprocessing);
    const ranking = rankByMean(out);
    const sweep = await sweepFast(split, out, ds.labels, ranking);
    const k1 = largestKWithin(sweep, 1);
    const ks = [...new Set([0, k1, Math.floor(layer.channels * 3 / 4), layer.channels])];
    const kernelBefore = Array.from(model.getLayer("conv2").getWeights()[0].dataSync());
    const before = tf.memory().numTensors;
    const matrices = await confusionAtK(model, layer, ds, preprocessing, ranking, ks, CLASS_NAMES);
    assert.equal(tf.memory().numTensors, before, "confusionAtK leaked tensors");
    assert.deepEqual(Array.from(model.getLayer("conv2").getWeights()[0].dataSync()), kernelBefore);
    assert.deepEqual(matrices.map((m) => m.k), ks);
    const correct: number[] = [];
    for (const m of matrices) {
      assert.equal(m.counts.length, 10);
      assert.equal(m.counts.flat().reduce((s, x) => s + x, 0), ds.count);
      assert.equal(m.total, ds.count);
      const diagonal = m.counts.reduce((s, row, i) => s + row[i], 0);
      assert.equal(diagonal, m.correct);
      assert.equal(diagonal, sweep[m.k].correct, `K = ${m.k}`);
      // Each row holds that class's test images.
      m.counts.forEach((row, t) =>
        assert.equal(row.reduce((s, x) => s + x, 0), ds.labels.filter((l) => l === t).length)
      );
      correct.push(m.correct);
    }
    // Pruning every channel changes the predictions, so the agreement above is not trivial.
    assert.notEqual(correct.at(-1), correct[0], correct.join(" "));
    // From the cached outputs (masked, suffix only): the same matrices, cell for cell.
    const fromOutputs = await confusionFromOutputs(split, out, ds.labels, ranking, ks, CLASS_NAMES, 64);
    assert.equal(tf.memory().numTensors, before, "confusionFromOutputs leaked tensors");
    assert.deepEqual(fromOutputs, matrices);
  });
}
