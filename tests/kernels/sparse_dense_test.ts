/**
 * The sparse dense kernel (src/kernels/sparse_dense.ts) against tf.fused.matMul on the wasm
 * backend, bit for bit, and the algebra's rows scored through it against the plain TF.js tail.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { setupBackend } from "../../src/backend.ts";
import { loadTestSet } from "../../src/data/cifar10.ts";
import { pickLayer } from "../../src/model/layers.ts";
import { splitModel } from "../../src/model/split.ts";
import { buildVgg } from "../../src/model/vgg.ts";
import { SparseDenseChain } from "../../src/kernels/sparse_dense.ts";
import { computeLayerOutputs } from "../../src/activations/layer_outputs.ts";
import { rankByMean } from "../../src/rank/criteria.ts";
import { exactHeadRows, linearRows, planLinearHead } from "../../src/sweep/linear_head.ts";
import { sweepFast } from "../../src/sweep/engines/masked.ts";
import { maskedRows, sweepIncremental } from "../../src/sweep/engines/change_only.ts";
import type { RowSource } from "../../src/sweep/rows.ts";
import { DEFAULT_PREPROCESSING } from "../../src/types.ts";
import { fixture } from "../_helpers.ts";

/** Deterministic values in [-0.5, 0.5). */
function noise(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return new Float32Array(n).map(() => (s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32 - 0.5);
}

/** A VGG's last conv layer on `images` tiny test images: its outputs, ranking and linear head. */
async function vggCase(model: tf.LayersModel, images: number) {
  const ds = await loadTestSet(fixture("cifar10-tiny"), images);
  const layer = pickLayer(model);
  const split = splitModel(model, layer);
  const out = await computeLayerOutputs(split, ds, DEFAULT_PREPROCESSING);
  const plan = await planLinearHead(model, layer);
  if ("reason" in plan) throw new Error(plan.reason);
  return { ds, split, out, head: plan.head, ranking: rankByMean(out) };
}

/** A sweep's counts and every (image, K) row's prediction, with rows from `rows` (default: exact). */
async function sweepPredictions(c: Awaited<ReturnType<typeof vggCase>>, rows?: RowSource) {
  const seen: number[] = [];
  const points = await sweepIncremental(c.split, c.out, c.ds.labels, c.ranking, {
    rows,
    onRows: (img, steps, predicted, m) => {
      for (let r = 0; r < m; r++) seen.push(img[r] * 10000 + steps[r] * 10 + predicted[r]);
    },
  });
  return { counts: points.map((p) => p.correct), rows: seen.sort((a, b) => a - b) };
}

Deno.test("SparseDenseChain: the floats of tf.fused.matMul on wasm, with odd sizes, zero rows and a row order", async () => {
  await setupBackend("wasm");
  // 600 inputs (two input blocks of the kernel), 13 and 5 units (padded columns), 7 rows (a padded block).
  const [m, n0, n1, n2] = [7, 600, 13, 5];
  const pattern = noise(n0, 1);
  const x = noise(m * n0, 2).map((v, at) => pattern[at % n0] < 0 ? 0 : Math.max(0, v + 0.3)); // shared zeros
  x.fill(0, 3 * n0, 4 * n0); // row 3: all zero
  const w1 = noise(n0 * n1, 3).map((v) => v * 0.2), b1 = noise(n1, 4);
  const w2 = noise(n1 * n2, 5), b2 = noise(n2, 6);
  const chain = new SparseDenseChain([
    { kernel: w1, bias: b1, inputs: n0, units: n1, relu: true },
    { kernel: w2, bias: b2, inputs: n1, units: n2, relu: true },
  ]);
  const want = tf.tidy(() => {
    const h = tf.fused.matMul({
      a: tf.tensor2d(x, [m, n0]),
      b: tf.tensor2d(w1, [n0, n1]),
      bias: tf.tensor1d(b1),
      activation: "relu",
    });
    return tf.fused.matMul({ a: h, b: tf.tensor2d(w2, [n1, n2]), bias: tf.tensor1d(b2), activation: "relu" })
      .dataSync();
  });
  assert.deepEqual(chain.apply(x, m), want);
  assert.deepEqual(chain.apply(x, m, Int32Array.of(6, 0, 5, 1, 4, 2, 3)), want);
  // Row 3 is relu(relu(b1) W2 + b2) on its own.
  const zeroRow = tf.tidy(() =>
    tf.fused.matMul({
      a: tf.relu(tf.tensor2d(b1, [1, n1])) as tf.Tensor2D,
      b: tf.tensor2d(w2, [n1, n2]),
      bias: tf.tensor1d(b2),
      activation: "relu",
    }).dataSync()
  );
  assert.deepEqual(chain.apply(x, m).subarray(3 * n2, 4 * n2), zeroRow);
  // The shared zeros were skipped: about half of the first layer's products.
  assert.ok(chain.macs.run < 0.75 * chain.macs.dense, `${chain.macs.run} of ${chain.macs.dense}`);
  assert.throws(() => chain.apply(x, m + 1), /values for 8 rows/);
});

Deno.test("linearRows on the VGG: the dense tail runs on the sparse kernel with the TF.js tail's scores and counts", async () => {
  await setupBackend("wasm");
  const c = await vggCase(buildVgg({ width: 0.0625, seed: 5 }), 40);
  const { split, out, head } = c;
  assert.deepEqual(head.denseTail?.layers.map((l) => l.name), ["fc2", "fc3"]);
  assert.deepEqual(head.denseTail?.rest?.suffixLayers, ["fc3_drop", "predictions"]);

  // Scores of the same rows (8 images at K = 0, 5 and 20), both ways.
  const sparse = linearRows(head, split.activationOfZero, { sparseTail: true });
  const plain = linearRows(head, split.activationOfZero, { sparseTail: false });
  assert.ok(sparse.scoreRows && !plain.scoreRows);
  await sparse.begin(out, 0, 8);
  const order = c.ranking.order;
  const units = head.units;
  const stack = new Float32Array(24 * units), images = new Int32Array(24);
  let pruned = 0;
  for (const [j, k] of [0, 5, 20].entries()) {
    while (pruned < k) sparse.prune(order[pruned++], new Uint8Array(8));
    for (let i = 0; i < 8; i++) {
      sparse.row(i, stack.subarray((j * 8 + i) * units, (j * 8 + i + 1) * units));
      images[j * 8 + i] = i;
    }
  }
  const got = sparse.scoreRows!(stack, 24, images);
  const want = plain.scores(tf.tensor2d(stack, [24, units]));
  assert.deepEqual(await got.data(), await want.data());
  tf.dispose([got, want]);

  // Whole sweeps: the same prediction for every (image, K) row.
  const before = tf.memory().numTensors;
  const a = await sweepPredictions(c, linearRows(head, split.activationOfZero, { sparseTail: true }));
  assert.equal(tf.memory().numTensors, before);
  assert.deepEqual(
    a,
    await sweepPredictions(c, linearRows(head, split.activationOfZero, { sparseTail: false })),
  );
});

for (const bn of [false, true]) {
  Deno.test(`exactHeadRows on the VGG${bn ? " with BatchNorm statistics" : ""}: every (image, K) prediction of the exact rows`, async () => {
    await setupBackend("wasm");
    const model = buildVgg({ width: 0.0625, seed: 9 });
    if (bn) {
      // BN(0) is not 0: pruned channels are a non-zero constant, nothing to skip there.
      let seed = 50;
      for (const layer of model.layers.filter((l) => l.getClassName() === "BatchNormalization")) {
        const c = layer.getWeights()[0].shape[0];
        const values = [[0.5, 1.5], [-0.5, 0.5], [0, 1], [0.5, 2]].map(([lo, hi]) =>
          tf.randomUniform([c], lo, hi, "float32", seed++)
        );
        layer.setWeights(values);
        tf.dispose(values);
      }
    }
    const c = await vggCase(model, 60);
    const { ds, split, out, head, ranking } = c;
    const rows = exactHeadRows(head, split.activationOfZero);
    assert.ok(rows && rows.scoreRows);
    // Scores of 12 images at K = 0 and K = 10, bit for bit those of the exact TF.js rows.
    const exact = maskedRows(split);
    await rows.begin(out, 0, 12);
    const stack = new Float32Array(24 * head.inputs), images = new Int32Array(24);
    for (let i = 0; i < 12; i++) rows.row(i, stack.subarray(i * head.inputs));
    for (let p = 0; p < 10; p++) rows.prune(ranking.order[p], new Uint8Array(12));
    for (let i = 0; i < 12; i++) rows.row(i, stack.subarray((12 + i) * head.inputs));
    for (let r = 0; r < 24; r++) images[r] = r % 12;
    const got0 = rows.scoreRows(stack, 24, images);
    const want0 = exact.scores(tf.tensor(stack, [24, ...split.pushdown!.shape]));
    const [a0, b0] = [await got0.data(), await want0.data()];
    assert.deepEqual(a0, b0);
    assert.ok(
      new Set(Array.from({ length: 24 }, (_, r) => a0.subarray(r * 10, r * 10 + 10).join())).size > 12,
    );
    tf.dispose([got0, want0]);
    const before = tf.memory().numTensors;
    const got = await sweepPredictions(c, rows);
    assert.equal(tf.memory().numTensors, before);
    assert.deepEqual(got, await sweepPredictions(c));
    assert.deepEqual(got.counts, (await sweepFast(split, out, ds.labels, ranking)).map((p) => p.correct));
  });
}
