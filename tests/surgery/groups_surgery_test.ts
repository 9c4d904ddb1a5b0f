/**
 * Surgery on residual and branched models: a coupled channel group removed from every member
 * (ResNet-20: each stage's group at K = 0, 1, C/2, C - 1), a conv feeding a Concatenate (its
 * consumer's inputs cut at the branch's offset), a conv before a depthwise conv and a separable
 * conv (MobileNet-style). Each time the slim model computes what the masked reference does, and
 * costs what the cost model says.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs";
import { setupBackend } from "../../src/backend.ts";
import { buildResnet20 } from "../../src/model/resnet.ts";
import { channelGroups, groupName } from "../../src/model/coupling.ts";
import { loadModel } from "../../src/model/load.ts";
import { mulberry32 } from "../../src/core/random.ts";
import {
  type ChannelRemoval,
  maskedReference,
  removeChannels,
  zeroChannels,
} from "../../src/surgery/remove.ts";
import { modelCost } from "../../src/surgery/cost.ts";
import { prunableUnits } from "../../src/surgery/plan.ts";
import { saveKerasVerified, saveVerified } from "../../src/surgery/verify.ts";
import { maxAbsDiff, randomize, rejectsUserError, withTempDir } from "../_helpers.ts";
import { inceptionStyle, mobilenetStyle } from "../_nets.ts";

type Sym = tf.SymbolicTensor;

/** `k` distinct channels of `channels`, seeded. */
function someChannels(channels: number, k: number, seed: number): number[] {
  const rand = mulberry32(seed);
  const all = Array.from({ length: channels }, (_, c) => c);
  for (let i = channels - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [all[i], all[j]] = [all[j], all[i]];
  }
  return all.slice(0, k);
}

/** The class scores of `model` before its softmax would hide a difference: its output on seeded images. */
function scores(model: tf.LayersModel, x: tf.Tensor): tf.Tensor {
  return model.predict(x) as tf.Tensor;
}

/** Slim == masked on 6 seeded random images (outputs within 1e-4, the same top class); the surgery. */
async function slimEqualsMasked(model: tf.LayersModel, removals: ChannelRemoval[], what: string) {
  const result = await removeChannels(model, removals);
  const masked = await maskedReference(model, removals);
  const x = tf.randomUniform([6, ...model.inputs[0].shape.slice(1) as number[]], -2, 2, "float32", 5);
  const a = scores(masked, x), b = scores(result.model, x);
  const diff = maxAbsDiff(a, b);
  assert.ok(diff <= 1e-4, `${what}: max |masked - slim| ${diff}`);
  assert.deepEqual(Array.from(a.argMax(-1).dataSync()), Array.from(b.argMax(-1).dataSync()), what);
  // Something was pruned: the masked model differs from the original.
  const o = scores(model, x);
  if (removals.some((r) => r.channels.length > 0)) {
    assert.ok(maxAbsDiff(o, a) > 1e-6, `${what}: nothing changed`);
  }
  tf.dispose([a, b, o, x]);
  masked.dispose();
  return result;
}

/** The removals of a group: every member loses the same channels. */
const groupRemovals = (members: string[], channels: number[]): ChannelRemoval[] =>
  members.map((layer) => ({ layer, channels }));

Deno.test("group surgery: ResNet-20, every stage's group at K = 0, 1, C/2, C - 1: slim == masked, cost as the cost model", async () => {
  await setupBackend("wasm");
  const model = buildResnet20({ seed: 3 });
  randomize(model, 11, 2);
  const { units, cost } = await prunableUnits(model);
  const groups = channelGroups(model);
  assert.deepEqual(units.filter((u) => u.layers.length > 1).map((u) => u.name), groups.map(groupName));
  const before = modelCost(model);
  let carriers = 0;
  for (const [g, group] of groups.entries()) {
    const members = group.members.map((m) => m.name);
    const C = group.members[0].channels;
    for (const k of [0, 1, C / 2, C - 1]) {
      const channels = someChannels(C, k, 10 * g + k);
      const what = `${groupName(group)} K = ${k}`;
      const result = await slimEqualsMasked(model, groupRemovals(members, channels), what);
      // Every member, its BatchNorm and the consumers lose the same channels.
      const kept = C - result.layers[0].removed.length;
      for (const rep of result.layers) {
        assert.equal(rep.channelsAfter, kept, what);
        assert.equal(result.model.getLayer(rep.layer).getWeights()[0].shape[3], kept, what);
      }
      const carrier = result.layers.some((l) => l.carrier !== null);
      carriers += carrier ? 1 : 0;
      assert.equal(kept, C - (carrier ? k - 1 : k), `${what}: one carrier at most`);
      // The cost model counts a carrier for a unit whose channels send a constant to a 'same' conv: exact
      // when this K's channels do, one channel too many (never too few) when none of them does.
      const slim = modelCost(result.model);
      const unit = units.find((u) => u.name === groupName(group))!;
      const predicted = cost.cost({ [unit.name]: k });
      if (carrier || k === 0 || !unit.carrier) {
        assert.deepEqual(predicted, { macs: slim.multiplyAdds, params: slim.parameters }, what);
      } else assert.ok(predicted.macs >= slim.multiplyAdds && predicted.params >= slim.parameters, what);
      if (kept < C) assert.ok(slim.multiplyAdds < before.multiplyAdds && slim.parameters < before.parameters);
      result.model.dispose();
    }
  }
  // The stages feed 'same' 3x3 convs after BN + relu: constants reach them, carriers keep them.
  assert.ok(carriers > 0);
  // The three groups and two block convs in one plan.
  const plan: ChannelRemoval[] = [
    ...groups.flatMap((g, i) =>
      groupRemovals(g.members.map((m) => m.name), someChannels(g.members[0].channels, 5 + i, i))
    ),
    { layer: "stage1_block2_conv1", channels: [1, 2, 3] },
    { layer: "stage3_block3_conv1", channels: someChannels(64, 40, 9) },
  ];
  (await slimEqualsMasked(model, plan, "three groups and two block convs")).model.dispose();
  // With no depthwise kernel on the way the masked reference is the lab's zeroing.
  const x = tf.randomUniform([4, 32, 32, 3], -2, 2, "float32", 8);
  const ref = await maskedReference(model, plan), lab = await zeroChannels(model, plan);
  assert.equal(maxAbsDiff(ref.predict(x) as tf.Tensor, lab.predict(x) as tf.Tensor), 0);
  tf.dispose([x]);
  ref.dispose();
  lab.dispose();
  model.dispose();
});

Deno.test("group surgery: a member alone, or members with different channels, is one line", async () => {
  await setupBackend("wasm");
  const model = buildResnet20({ seed: 4 });
  await rejectsUserError(
    () => removeChannels(model, [{ layer: "stage2_block2_conv2", channels: [0] }]),
    /stage2_block2_add \(Add\)/,
    /coupled channel group/,
  );
  const members = channelGroups(model)[1].members.map((m) => m.name);
  await rejectsUserError(
    () => removeChannels(model, members.map((layer, i) => ({ layer, channels: i === 0 ? [1] : [2] }))),
    /is pruned but channel/,
    /must lose the same channels/,
  );
  model.dispose();
});

Deno.test("group surgery: the slim ResNet-20 exports as TF.js and Keras .h5 and reloads with the same counts", async () => {
  await setupBackend("wasm");
  const model = buildResnet20({ seed: 5 });
  randomize(model, 12, 2);
  const g = channelGroups(model)[2];
  const removals = groupRemovals(g.members.map((m) => m.name), someChannels(64, 24, 3));
  const slim = (await removeChannels(model, removals)).model;
  await withTempDir(async (dir) => {
    assert.ok(await saveVerified(slim, join(dir, "model"), {}) <= 1e-6);
    assert.ok(await saveKerasVerified(slim, join(dir, "model.h5")) <= 1e-6);
    for (const path of [join(dir, "model", "model.json"), join(dir, "model.h5")]) {
      const back = (await loadModel(path)).model;
      assert.equal(back.countParams(), slim.countParams(), path);
      assert.deepEqual(back.getLayer("stage3_block1_proj").getWeights()[0].shape, [1, 1, 32, 64 - 24 + 1]);
      back.dispose();
    }
  });
  slim.dispose();
  model.dispose();
});

Deno.test("branched surgery: a conv feeding a Concatenate cuts the consumer's inputs at its branch's offset", async () => {
  await setupBackend("wasm");
  const model = inceptionStyle();
  randomize(model, 22, 2);
  // branch_1x1 (6 channels) is at offset 0 of the concat, branch_3x3 (10) at offset 6.
  const cases: [string, ChannelRemoval[]][] = [
    ["branch_1x1", [{ layer: "branch_1x1", channels: [0, 4] }]],
    ["branch_3x3", [{ layer: "branch_3x3", channels: [1, 7, 9] }]],
    ["both branches", [{ layer: "branch_1x1", channels: [5] }, { layer: "branch_3x3", channels: [0, 2] }]],
    ["stem (two consumers) and the reduce conv", [
      { layer: "stem", channels: [3, 6] },
      { layer: "branch_reduce", channels: [1] },
    ]],
  ];
  for (const [what, removals] of cases) {
    const result = await slimEqualsMasked(model, removals, what);
    if (what === "branch_3x3") {
      const after = result.model.getLayer("after").getWeights()[0];
      assert.deepEqual(after.shape, [3, 3, 13, 12]);
      // The consumer's input channels 6 + 1, 6 + 7, 6 + 9 are the ones gone: the others are the original's.
      const orig = model.getLayer("after").getWeights()[0];
      const keep = Array.from({ length: 16 }, (_, c) => c).filter((c) => ![7, 13, 15].includes(c));
      assert.equal(maxAbsDiff(tf.gather(orig, keep, 2), after), 0);
    }
    if (what === "stem (two consumers) and the reduce conv") {
      assert.equal(result.layers[0].consumer, "branch_1x1, branch_reduce");
    }
    result.model.dispose();
  }
  model.dispose();
});

/** conv, BN, relu, a separable conv (depth multiplier m), a 1x1 conv, a depthwise conv (multiplier 2), GAP, Dense. */
function separableStyle(m = 1): tf.LayersModel {
  const input = tf.input({ shape: [16, 16, 3] });
  let x = tf.layers.conv2d({ name: "c1", filters: 6, kernelSize: 3, padding: "same" }).apply(input) as Sym;
  x = tf.layers.reLU({ name: "r1" }).apply(tf.layers.batchNormalization({ name: "bn1" }).apply(x)) as Sym;
  x = tf.layers.separableConv2d({
    name: "sep",
    filters: 8,
    kernelSize: 3,
    padding: "same",
    depthMultiplier: m,
  })
    .apply(x) as Sym;
  x = tf.layers.reLU({ name: "r2" }).apply(tf.layers.batchNormalization({ name: "bn2" }).apply(x)) as Sym;
  x = tf.layers.conv2d({ name: "c2", filters: 5, kernelSize: 1 }).apply(x) as Sym;
  x = tf.layers.depthwiseConv2d({ name: "dw2", kernelSize: 3, padding: "same", depthMultiplier: 2 }).apply(
    tf.layers.batchNormalization({ name: "bn3" }).apply(x),
  ) as Sym;
  x = tf.layers.globalAveragePooling2d({ name: "gap" }).apply(x) as Sym;
  const out = tf.layers.dense({ name: "scores", units: 4 }).apply(x) as Sym;
  return tf.model({ inputs: input, outputs: out });
}

Deno.test("depthwise surgery: MobileNet-style and separable convs: slim == masked, the depthwise layer cut alike", async () => {
  await setupBackend("wasm");
  const mobile = mobilenetStyle();
  randomize(mobile, 21, 2);
  for (
    const [what, removals] of [
      ["expand (before the depthwise conv)", [{ layer: "expand", channels: [0, 3, 5, 6, 11] }]],
      ["the Add's group (stem + project)", groupRemovals(["stem", "project"], [2, 5])],
      ["all of them", [{ layer: "expand", channels: [15] }, ...groupRemovals(["stem", "project"], [0])]],
    ] as [string, ChannelRemoval[]][]
  ) {
    const result = await slimEqualsMasked(mobile, removals, what);
    if (what.startsWith("expand")) {
      const dw = result.model.getLayer("dw").getWeights();
      assert.deepEqual(dw.map((w) => w.shape), [[3, 3, 11, 1], [11]]);
      assert.deepEqual(result.model.getLayer("project").getWeights()[0].shape, [1, 1, 11, 8]);
      assert.equal(result.layers[0].fold, "bias"); // project is 1x1: the constant goes into its bias
    }
    result.model.dispose();
  }
  mobile.dispose();

  const sep = separableStyle();
  randomize(sep, 23, 2);
  const r1 = await slimEqualsMasked(sep, [{ layer: "c1", channels: [1, 4] }], "c1 into the separable conv");
  assert.deepEqual(r1.model.getLayer("sep").getWeights().map((w) => w.shape), [[3, 3, 4, 1], [1, 1, 4, 8], [
    8,
  ]]);
  r1.model.dispose();
  const r2 = await slimEqualsMasked(
    sep,
    [{ layer: "c2", channels: [0, 3] }],
    "c2 into a depthwise conv, multiplier 2",
  );
  // Depth multiplier 2: input channels 0 and 3 take output channels 0, 1, 6, 7 with them, and the Dense rows.
  assert.deepEqual(r2.model.getLayer("dw2").getWeights().map((w) => w.shape), [[3, 3, 3, 2], [6]]);
  assert.deepEqual(r2.model.getLayer("scores").getWeights()[0].shape, [6, 4]);
  r2.model.dispose();
  await withTempDir(async (dir) => {
    const slim =
      (await removeChannels(sep, [{ layer: "c1", channels: [2] }, { layer: "c2", channels: [4] }])).model;
    assert.ok(await saveVerified(slim, join(dir, "sep"), {}) <= 1e-6);
    slim.dispose();
  });
  sep.dispose();
  // TF.js 4.22 saves a SeparableConv2D without its depth multiplier: refused, in one line.
  const sep2 = separableStyle(2);
  await rejectsUserError(
    () => removeChannels(sep2, [{ layer: "c1", channels: [0] }]),
    /sep \(SeparableConv2D\) with depth multiplier 2/,
  );
  sep2.dispose();
});
