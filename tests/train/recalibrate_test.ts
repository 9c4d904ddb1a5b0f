/**
 * BatchNorm recalibration: every BN's moving mean and variance become the population statistics
 * of its input in the final model (earlier BNs already recalibrated), whatever the batch size;
 * a model without BN is left as it is.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { setupBackend } from "../../src/backend.ts";
import { loadTestSet } from "../../src/data/cifar10.ts";
import { imagesToTensor } from "../../src/data/tensors.ts";
import { recalibrateBatchNorm } from "../../src/train/recalibrate.ts";
import type { Preprocessing } from "../../src/types.ts";
import { fixture, randomize } from "../_helpers.ts";

const PREP: Preprocessing = { scale: 1 / 255, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] };

function twoBnNet(withBn: boolean): tf.LayersModel {
  const layers: tf.layers.Layer[] = [
    tf.layers.conv2d({ inputShape: [32, 32, 3], filters: 6, kernelSize: 3, activation: "relu", name: "c1" }),
    ...(withBn ? [tf.layers.batchNormalization({ name: "bn1" })] : []),
    tf.layers.conv2d({ filters: 5, kernelSize: 3, strides: 2, activation: "relu", name: "c2" }),
    ...(withBn ? [tf.layers.batchNormalization({ name: "bn2" })] : []),
    tf.layers.globalAveragePooling2d({}),
    tf.layers.dense({ units: 10, name: "head" }),
  ];
  const model = tf.sequential({ layers });
  randomize(model, 5);
  return model;
}

Deno.test("recalibrateBatchNorm: each BN holds its input's statistics in the final model", async () => {
  await setupBackend("cpu");
  const data = await loadTestSet(fixture("cifar10-tiny"), 30);
  const model = twoBnNet(true);
  const before = (model.getLayer("bn2").getWeights()[2].dataSync() as Float32Array).slice();
  const r = await recalibrateBatchNorm(model, data, PREP, { images: 23, batch: 7 });
  assert.deepEqual(r.layers, ["bn1", "bn2"]);
  assert.equal(r.images, 23);
  // Independently: the whole 23 images at once, tf.moments over batch and space.
  const x = imagesToTensor(data, 0, 23, PREP);
  for (const name of ["bn1", "bn2"]) {
    const bn = model.getLayer(name);
    const input = tf.model({ inputs: model.inputs, outputs: bn.input as tf.SymbolicTensor }).predict(
      x,
    ) as tf.Tensor;
    const { mean, variance } = tf.moments(input, [0, 1, 2]);
    const [, , mm, mv] = bn.getWeights();
    const dm = tf.max(tf.abs(tf.sub(mean, mm))).dataSync()[0];
    const dv = tf.max(tf.abs(tf.sub(variance, mv))).dataSync()[0];
    const scale = tf.max(variance).dataSync()[0];
    assert.ok(dm <= 1e-4 * Math.max(1, scale) && dv <= 1e-4 * Math.max(1, scale), `${name}: ${dm} ${dv}`);
    tf.dispose([input, mean, variance]);
  }
  // bn2's statistics were stale (random) before: they changed.
  const after = model.getLayer("bn2").getWeights()[2].dataSync();
  assert.ok(before.some((v, i) => Math.abs(v - after[i]) > 1e-3));
  x.dispose();
});

Deno.test("recalibrateBatchNorm: a model without BatchNormalization is unchanged", async () => {
  await setupBackend("cpu");
  const data = await loadTestSet(fixture("cifar10-tiny"), 8);
  const model = twoBnNet(false);
  const x = imagesToTensor(data, 0, 8, PREP);
  const y0 = (model.predict(x) as tf.Tensor).dataSync().slice();
  const r = await recalibrateBatchNorm(model, data, PREP);
  assert.deepEqual(r.layers, []);
  assert.deepEqual(Array.from((model.predict(x) as tf.Tensor).dataSync()), Array.from(y0));
  x.dispose();
});
