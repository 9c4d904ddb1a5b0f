import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { setupBackend } from "../../src/backend.ts";
import { buildVgg, vggMultiplyAdds } from "../../src/model/vgg.ts";
import { modelCost } from "../../src/surgery/cost.ts";
import { removeChannels } from "../../src/surgery/remove.ts";

await setupBackend("cpu");

/**
 * 8x8x3 -> conv 3x3 'same' 3->4 -> BN -> maxpool 2 -> conv 3x3 'valid' 4->5 -> flatten -> dense 20->10.
 */
function small(): tf.Sequential {
  const m = tf.sequential();
  m.add(tf.layers.conv2d({ inputShape: [8, 8, 3], name: "c1", filters: 4, kernelSize: 3, padding: "same" }));
  m.add(tf.layers.batchNormalization({ name: "bn" }));
  m.add(tf.layers.maxPooling2d({ name: "pool", poolSize: 2 }));
  m.add(tf.layers.conv2d({ name: "c2", filters: 5, kernelSize: 3, padding: "valid", activation: "relu" }));
  m.add(tf.layers.flatten({ name: "flat" }));
  m.add(tf.layers.dense({ name: "out", units: 10 }));
  return m;
}

Deno.test("parameters and multiply-adds of a small model, by hand", () => {
  const m = small();
  const cost = modelCost(m);
  // c1: 3*3*3*4 + 4 = 112; bn: 4*4 = 16 (8 trainable); c2: 3*3*4*5 + 5 = 185; out: 20*10 + 10 = 210.
  assert.equal(cost.parameters, 112 + 16 + 185 + 210);
  assert.equal(cost.trainableParameters, 112 + 8 + 185 + 210);
  // c1: 8*8 positions * 4 out * 27 taps = 6912; c2: 2*2 * 5 * (9*4) = 720; out: 20 * 10 = 200.
  const by = Object.fromEntries(cost.layers.map((l) => [l.name, l.multiplyAdds]));
  assert.deepEqual(by, { c1: 6912, bn: 0, pool: 0, c2: 720, flat: 0, out: 200 });
  assert.equal(cost.multiplyAdds, 6912 + 720 + 200);
  m.dispose();
});

Deno.test("after removing one channel of c1 the counts drop by hand-computed amounts", async () => {
  const m = small();
  const { model: slim } = await removeChannels(m, [{ layer: "c1", channels: [2] }]);
  const cost = modelCost(slim);
  // c1: 3*3*3*3 + 3 = 84; bn: 12; c2: 3*3*3*5 + 5 = 140; out: 210.
  assert.equal(cost.parameters, 84 + 12 + 140 + 210);
  // c1: 64 * 3 * 27 = 5184; c2: 4 * 5 * 27 = 540; out 200.
  assert.equal(cost.multiplyAdds, 5184 + 540 + 200);
  m.dispose();
  slim.dispose();
});

Deno.test("the VGG's multiply-adds agree with vgg.ts's own formula", () => {
  for (const width of [0.125, 0.25]) {
    const m = buildVgg({ width });
    assert.equal(modelCost(m).multiplyAdds, vggMultiplyAdds(width));
    m.dispose();
  }
});
