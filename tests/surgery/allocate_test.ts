import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { setupBackend } from "../../src/backend.ts";
import { loadTestSet } from "../../src/data/cifar10.ts";
import { criterionByName } from "../../src/rank/registry.ts";
import { modelCost } from "../../src/surgery/cost.ts";
import { removeChannels } from "../../src/surgery/remove.ts";
import {
  greedyPath,
  parseBudget,
  type Plan,
  planWithin,
  removedChannels,
  uniformPlan,
  type UnitCurve,
} from "../../src/surgery/allocate.ts";
import { measureCurves, prunableUnits, removalsOf } from "../../src/surgery/plan.ts";
import { DEFAULT_PREPROCESSING } from "../../src/types.ts";
import { fixture, oneLineUserError, randomize } from "../_helpers.ts";

await setupBackend("cpu");

/** conv1 -> BN -> conv2 ('same': conv1 needs a carrier) -> BN -> pool -> conv3 -> flatten -> dense. */
function tinyModel(): tf.LayersModel {
  const m = tf.sequential({ name: "alloc" });
  m.add(tf.layers.inputLayer({ inputShape: [32, 32, 3], name: "image" }));
  m.add(tf.layers.conv2d({ name: "conv1", filters: 8, kernelSize: 3, padding: "same", activation: "relu" }));
  m.add(tf.layers.batchNormalization({ name: "bn1" }));
  m.add(tf.layers.conv2d({ name: "conv2", filters: 12, kernelSize: 3, padding: "same", activation: "relu" }));
  m.add(tf.layers.batchNormalization({ name: "bn2" }));
  m.add(tf.layers.maxPooling2d({ name: "pool", poolSize: 4 }));
  m.add(tf.layers.conv2d({ name: "conv3", filters: 6, kernelSize: 3, padding: "valid", activation: "relu" }));
  m.add(tf.layers.flatten({ name: "flatten" }));
  m.add(tf.layers.dense({ name: "logits", units: 10 }));
  randomize(m, 11);
  return m;
}

/** The slim model's real cost for `plan` (channels: the first K of each layer). */
async function slimCost(model: tf.LayersModel, plan: Plan) {
  const removals = Object.entries(plan).filter(([, k]) => k > 0).map(([layer, k]) => ({
    layer,
    channels: Array.from({ length: k }, (_, i) => i),
  }));
  const slim = (await removeChannels(model, removals)).model;
  const c = modelCost(slim);
  slim.dispose();
  return { macs: c.multiplyAdds, params: c.parameters };
}

Deno.test("allocate: the units, their carriers, and the cost model equal modelCost of the slim model", async () => {
  const model = tinyModel();
  const { units, cost } = await prunableUnits(model);
  assert.deepEqual(units.map((u) => [u.name, u.channels, u.carrier]), [
    ["conv1", 8, true], // its BN sends a constant into a 'same' conv: one pruned channel stays
    ["conv2", 12, false], // into a 'valid' conv with a bias: folded
    ["conv3", 6, false], // into the dense layer: folded
  ]);
  const unpruned = modelCost(model);
  assert.deepEqual(cost.cost({}), { macs: unpruned.multiplyAdds, params: unpruned.parameters });
  const plans: Plan[] = [{ conv1: 1 }, { conv1: 3 }, { conv2: 5 }, { conv1: 7, conv2: 11, conv3: 5 }, {
    conv3: 2,
    conv1: 4,
  }];
  for (const plan of plans) {
    const predicted = cost.cost(plan);
    assert.deepEqual(predicted, await slimCost(model, plan), JSON.stringify(plan));
    // conv1:1 removes nothing (the one pruned channel is the carrier); every other plan removes some.
    if ("conv1" in plan && Object.keys(plan).length === 1 && plan.conv1 === 1) {
      assert.equal(predicted.macs, unpruned.multiplyAdds);
    } else assert.ok(predicted.macs < unpruned.multiplyAdds);
  }
  assert.equal(removedChannels(units[0], 3), 2);
  assert.equal(removedChannels(units[1], 3), 3);
  model.dispose();
});

Deno.test("allocate: greedy prunes the unit whose curve is flat first, and per multiply-add", async () => {
  const model = tinyModel();
  const { cost } = await prunableUnits(model);
  const curve = (unit: string, ks: number[], acc: number[]): UnitCurve => ({
    unit,
    points: ks.map((k, i) => ({ k, accuracy: acc[i] })),
  });
  const curves = [
    curve("conv1", [0, 2, 4, 6], [0.9, 0.5, 0.3, 0.1]), // steep
    curve("conv2", [0, 3, 6, 9], [0.9, 0.9, 0.9, 0.89]), // flat
    curve("conv3", [0, 2, 4], [0.9, 0.91, 0.7]), // a rise at K = 2 counts as no drop, not a gain
  ];
  const path = greedyPath(cost, curves, "macs");
  // Flat steps cost nothing: conv2 to 6 and conv3 to 2 (free) before any lossy step.
  const free = path.filter((s) => s.predictedDrop === 0).map((s) => `${s.unit}:${s.k}`);
  assert.deepEqual(new Set(free), new Set(["conv2:3", "conv2:6", "conv3:2"]));
  assert.equal(path.at(-1)!.plan.conv1, 6);
  assert.equal(path.at(-1)!.plan.conv2, 9);
  assert.equal(path.at(-1)!.plan.conv3, 4);
  // Costs fall along the path and the predicted drop never falls.
  for (let i = 1; i < path.length; i++) {
    assert.ok(path[i].cost.macs < path[i - 1].cost.macs);
    assert.ok(path[i].predictedDrop >= path[i - 1].predictedDrop);
  }
  assert.ok(Math.abs(path.at(-1)!.predictedDrop - (80 + 1 + 20)) < 1e-9);
  model.dispose();
});

Deno.test("allocate: curves measured on a tiny validation set, a budget met exactly, uniform at the same cost", async () => {
  const model = tinyModel();
  const units = await prunableUnits(model);
  const val = await loadTestSet(fixture("cifar10-tiny"), 40);
  const curves = await measureCurves(model, units, val, DEFAULT_PREPROCESSING, {
    criterion: criterionByName("mean"),
    seed: 1,
    steps: 4,
    batch: 20,
    workers: 1,
    backend: "cpu",
    dataDir: fixture("cifar10-tiny"),
    taylorImages: 8,
    gradientImages: () => loadTestSet(fixture("cifar10-tiny"), 8),
  });
  assert.deepEqual(curves.curves.map((c) => c.points.map((p) => p.k)), [[0, 2, 4, 6], [0, 3, 6, 9], [
    0,
    2,
    3,
    5,
  ]]);
  const path = greedyPath(units.cost, curves.curves, "macs");
  const c0 = units.cost.cost({}).macs;
  for (const step of path.slice(0, 4)) {
    // A budget the path reaches exactly: the plan costs exactly it, and so does the slim model.
    const plan = planWithin(units.cost, path, "macs", step.cost.macs)!;
    assert.equal(units.cost.cost(plan).macs, step.cost.macs);
    const removals = removalsOf(units.units, plan, curves.rankings);
    const slim = (await removeChannels(model, removals)).model;
    assert.equal(modelCost(slim).multiplyAdds, step.cost.macs);
    slim.dispose();
  }
  // A budget between two steps: the last step is cut to the smallest K that fits.
  const target = (path[0].cost.macs + c0) / 2;
  const cut = planWithin(units.cost, path, "macs", target)!;
  assert.ok(units.cost.cost(cut).macs <= target);
  const unit = path[0].unit;
  if (cut[unit] > 1) assert.ok(units.cost.cost({ ...cut, [unit]: cut[unit] - 1 }).macs > target);
  assert.equal(planWithin(units.cost, path, "macs", 1), null, "no plan keeps 1 multiply-add");
  // Uniform: the smallest ratio that fits, within the same budget.
  const uni = uniformPlan(units.cost, "macs", path[2].cost.macs)!;
  assert.ok(units.cost.cost(uni.plan).macs <= path[2].cost.macs);
  const smaller = units.units.map((u) =>
    Math.min(u.channels - 1, Math.round((uni.ratio - 0.001) * u.channels))
  );
  const smallerPlan = Object.fromEntries(units.units.map((u, i) => [u.name, smaller[i]]));
  assert.ok(units.cost.cost(smallerPlan).macs > path[2].cost.macs);
  model.dispose();
});

Deno.test("allocate: one budget flag, a fraction in (0, 1] or non-negative points", () => {
  assert.deepEqual(parseBudget("0.5", undefined, undefined), { metric: "macs", keep: 0.5 });
  assert.deepEqual(parseBudget(undefined, "1", undefined), { metric: "params", keep: 1 });
  assert.deepEqual(parseBudget(undefined, undefined, "0"), { maxDrop: 0 });
  assert.throws(() => parseBudget(undefined, undefined, undefined), oneLineUserError(/exactly one budget/));
  assert.throws(() => parseBudget("0.5", undefined, "1"), oneLineUserError(/exactly one budget/));
  assert.throws(() => parseBudget("0", undefined, undefined), oneLineUserError(/--target-macs.*\(0, 1\]/));
  assert.throws(() => parseBudget(undefined, "1.5", undefined), oneLineUserError(/--target-params/));
  assert.throws(() => parseBudget(undefined, undefined, "-1"), oneLineUserError(/--max-drop/));
});
