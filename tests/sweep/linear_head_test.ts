/**
 * The algebra (issue 7.3): which heads qualify, the per-channel updates against the Dense layer
 * recomputed from the masked outputs (BatchNorm's constant carried through max-pooling), and the
 * same counts as the plain path on the fixtures.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { setupBackend } from "../../src/backend.ts";
import { loadTestSet } from "../../src/data/cifar10.ts";
import { loadModel } from "../../src/model/load.ts";
import { pickLayer } from "../../src/model/layers.ts";
import { splitModel } from "../../src/model/split.ts";
import { buildVgg } from "../../src/model/vgg.ts";
import { computeLayerOutputs, type LayerOutputs } from "../../src/activations/layer_outputs.ts";
import { rankByMean } from "../../src/rank/criteria.ts";
import { maskChannels } from "../../src/sweep/mask.ts";
import { sweepFast } from "../../src/sweep/engines/masked.ts";
import { sweepIncremental } from "../../src/sweep/engines/change_only.ts";
import { type LinearHead, linearRows, planLinearHead } from "../../src/sweep/linear_head.ts";
import { DEFAULT_PREPROCESSING } from "../../src/types.ts";
import { fixture } from "../_helpers.ts";

/** A small VGG whose BatchNorm layers hold non-trivial statistics (so BN(0) is not 0). */
function vggWithBatchNormStats(): tf.LayersModel {
  const model = buildVgg({ width: 0.0625, seed: 3 });
  let seed = 100;
  for (const layer of model.layers) {
    if (layer.getClassName() !== "BatchNormalization") continue;
    const c = layer.getWeights()[0].shape[0];
    const values = [
      tf.randomUniform([c], 0.5, 1.5, "float32", seed++),
      tf.randomUniform([c], -0.5, 0.5, "float32", seed++),
      tf.randomUniform([c], 0, 1, "float32", seed++),
      tf.randomUniform([c], 0.5, 2, "float32", seed++),
    ];
    layer.setWeights(values);
    values.forEach((v) => v.dispose());
  }
  return model;
}

async function plan(model: tf.LayersModel, layerName?: string): Promise<LinearHead> {
  const p = await planLinearHead(model, pickLayer(model, layerName));
  if ("reason" in p) throw new Error(`no linear head: ${p.reason}`);
  return p.head;
}

Deno.test("planLinearHead: the VGG's last conv leads through BN, pool, dropout, flatten to fc1; other cuts are refused", async () => {
  await setupBackend("wasm");
  const vgg = buildVgg({ width: 0.0625 });
  const head = await plan(vgg);
  assert.deepEqual(head.channelLayers.map((l) => l.name), [
    "block5_bn3",
    "block5_pool",
    "block5_drop",
    "flatten",
  ]);
  assert.equal(head.dense.name, "fc1");
  assert.deepEqual([head.inputs, head.units], [32, 256]);
  assert.ok(head.rest);
  const mid = await planLinearHead(vgg, pickLayer(vgg, "block5_conv2"));
  assert.ok("reason" in mid && /block5_conv3 \(Conv2D\) is not a per-channel layer/.test(mid.reason));
  // A branch after the cut (relu2 feeds conv3 and the residual add).
  const { model: func } = await loadModel(fixture("models/tiny-func/model.json"));
  const branch = await planLinearHead(func, pickLayer(func, "conv2"));
  assert.ok("reason" in branch && /goes to 2 layers/.test(branch.reason), JSON.stringify(branch));
  // Keras: conv -> ReLU -> Dropout -> GlobalAveragePooling2D -> Dense (the model's output).
  const { model: keras } = await loadModel(fixture("keras/tiny_keras2.h5"));
  const kh = await plan(keras);
  assert.deepEqual(kh.channelLayers.map((l) => l.getClassName()), [
    "ReLU",
    "Dropout",
    "GlobalAveragePooling2D",
  ]);
  assert.equal(kh.rest, null);
});

/** Pre-activations of the Dense layer recomputed from the masked outputs (no algebra). */
function recomputed(
  head: LinearHead,
  out: LayerOutputs,
  image: number,
  pruned: boolean[],
  fill: number,
): Float32Array {
  const per = out.height * out.width * out.channels;
  return tf.tidy(() => {
    const y = tf.tensor4d(out.data.subarray(image * per, (image + 1) * per), [
      1,
      out.height,
      out.width,
      out.channels,
    ]);
    let x: tf.Tensor = maskChannels(y, pruned, fill);
    for (const layer of head.channelLayers) x = layer.apply(x) as tf.Tensor;
    const [kernel, bias] = head.dense.getWeights();
    const flat = x.reshape([1, head.inputs]) as tf.Tensor2D;
    return tf.fused.matMul({ a: flat, b: kernel as tf.Tensor2D, bias }).dataSync() as Float32Array;
  });
}

for (const name of ["tiny-bn", "vgg"]) {
  Deno.test(`linearRows on ${name}: the updated pre-activations are the recomputed ones, to float32 rounding`, async () => {
    await setupBackend("wasm");
    const model = name === "vgg"
      ? vggWithBatchNormStats()
      : (await loadModel(fixture("models/tiny-bn/model.json"))).model;
    const ds = await loadTestSet(fixture("cifar10-tiny"), 6);
    const layer = pickLayer(model);
    const split = splitModel(model, layer);
    const out = await computeLayerOutputs(split, ds, DEFAULT_PREPROCESSING);
    const head = await plan(model);
    const fill = split.activationOfZero;
    // BN(0) is not 0 here, so a pruned channel's value after the pooling is a real constant.
    const bnZero = tf.tidy(() =>
      head.channelLayers[0].apply(tf.zeros([1, 1, 1, layer.channels])) as tf.Tensor
    );
    assert.ok((await bnZero.data()).some((v) => Math.abs(v) > 1e-3));
    bnZero.dispose();
    const rows = linearRows(head, fill);
    await rows.begin(out, 0, 6);
    const order = rankByMean(out).order;
    const pruned = new Array<boolean>(layer.channels).fill(false);
    const row = new Float32Array(head.units);
    for (const k of [0, 1, Math.floor(layer.channels / 2), layer.channels]) {
      while (pruned.filter(Boolean).length < k) {
        const c = order[pruned.filter(Boolean).length];
        rows.prune(c, new Uint8Array(6));
        pruned[c] = true;
      }
      for (let i = 0; i < 6; i++) {
        rows.row(i, row);
        const want = recomputed(head, out, i, pruned, fill);
        const scale = Math.max(1, ...want.map(Math.abs));
        const worst = Math.max(...want.map((v, u) => Math.abs(v - row[u])));
        assert.ok(worst <= 1e-5 * scale, `K = ${k}, image ${i}: off by ${worst} (scale ${scale})`);
        // Every channel pruned: the Dense layer's own numbers, bit for bit (so no near-tie can split images).
        if (k === layer.channels) assert.deepEqual(row, want, `K = C, image ${i}`);
      }
    }
  });
}

for (const name of ["tiny-bn", "tiny-nobn"]) {
  Deno.test(`sweepIncremental with the algebra on ${name}: the plain path's counts`, async () => {
    await setupBackend("wasm");
    const { model, preprocessing } = await loadModel(fixture(`models/${name}/model.json`));
    const ds = await loadTestSet(fixture("cifar10-tiny"));
    const layer = pickLayer(model);
    const split = splitModel(model, layer);
    const out = await computeLayerOutputs(split, ds, preprocessing);
    const ranking = rankByMean(out);
    const want = (await sweepFast(split, out, ds.labels, ranking)).map((p) => p.correct);
    const before = tf.memory().numTensors;
    const got = await sweepIncremental(split, out, ds.labels, ranking, {
      rows: linearRows(await plan(model), split.activationOfZero),
      rowsPerCall: 50,
      imageBatch: 64,
    });
    assert.deepEqual(got.map((p) => p.correct), want);
    assert.equal(tf.memory().numTensors, before);
  });
}
