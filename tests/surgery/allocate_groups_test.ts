/**
 * The allocator on a residual model: each coupled channel group of ResNet-20 is one prunable
 * unit (its members pruned alike), the budget's plan removed for real costs what the cost model
 * says and computes what the masked reference does.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { setupBackend } from "../../src/backend.ts";
import { loadTestSet } from "../../src/data/cifar10.ts";
import { buildResnet20 } from "../../src/model/resnet.ts";
import { channelGroups, groupName } from "../../src/model/coupling.ts";
import { criterionByName } from "../../src/rank/registry.ts";
import { modelCost } from "../../src/surgery/cost.ts";
import { maskedReference, removeChannels } from "../../src/surgery/remove.ts";
import { greedyPath, planWithin } from "../../src/surgery/allocate.ts";
import { measureCurves, prunableUnits, removalsOf } from "../../src/surgery/plan.ts";
import { DEFAULT_PREPROCESSING } from "../../src/types.ts";
import { fixture, maxAbsDiff, randomize } from "../_helpers.ts";

Deno.test("allocate on ResNet-20: a group is one unit; a MAC budget's plan, removed, costs what the cost model says", async () => {
  await setupBackend("wasm");
  const model = buildResnet20({ seed: 3 });
  randomize(model, 11, 2);
  const units = await prunableUnits(model);
  const groups = channelGroups(model).map(groupName);
  // The 3 stage groups and the 9 blocks' first convs.
  assert.equal(units.units.length, 12);
  assert.deepEqual(units.units.filter((u) => u.layers.length > 1).map((u) => u.name), groups);
  const c0 = modelCost(model);
  assert.deepEqual(units.cost.cost({}), { macs: c0.multiplyAdds, params: c0.parameters });
  const val = await loadTestSet(fixture("cifar10-tiny"), 12);
  const curves = await measureCurves(model, units, val, DEFAULT_PREPROCESSING, {
    criterion: criterionByName("l1"),
    seed: 1,
    steps: 4,
    batch: 12,
    workers: 1,
    backend: "wasm",
    dataDir: fixture("cifar10-tiny"),
    taylorImages: 8,
    gradientImages: () => loadTestSet(fixture("cifar10-tiny"), 8),
  });
  assert.deepEqual(Object.keys(curves.rankings).sort(), units.units.map((u) => u.name).sort());
  const path = greedyPath(units.cost, curves.curves, "macs");
  const plan = planWithin(units.cost, path, "macs", 0.7 * c0.multiplyAdds)!;
  assert.ok(groups.some((g) => (plan[g] ?? 0) > 0), `the plan prunes a group: ${JSON.stringify(plan)}`);
  const removals = removalsOf(units.units, plan, curves.rankings);
  // Every member of a pruned group loses the same channels.
  for (const u of units.units.filter((x) => x.layers.length > 1 && (plan[x.name] ?? 0) > 0)) {
    const sets = removals.filter((r) => u.layers.includes(r.layer)).map((r) => r.channels.join());
    assert.equal(sets.length, u.layers.length);
    assert.equal(new Set(sets).size, 1);
  }
  const result = await removeChannels(model, removals);
  const slim = modelCost(result.model);
  const predicted = units.cost.cost(plan);
  assert.ok(slim.multiplyAdds <= 0.7 * c0.multiplyAdds, `${slim.multiplyAdds} of ${c0.multiplyAdds}`);
  // Exact where each pruned unit that the cost model gives a carrier keeps one (else one channel high).
  const carriersAsPredicted = units.units.every((u) =>
    !u.carrier || !(plan[u.name] > 0) ||
    result.layers.some((l) => u.layers.includes(l.layer) && l.carrier !== null)
  );
  if (carriersAsPredicted) assert.deepEqual(predicted, { macs: slim.multiplyAdds, params: slim.parameters });
  else assert.ok(predicted.macs >= slim.multiplyAdds && predicted.params >= slim.parameters);
  const masked = await maskedReference(model, removals);
  const x = tf.randomUniform([4, 32, 32, 3], -2, 2, "float32", 3);
  assert.ok(maxAbsDiff(masked.predict(x) as tf.Tensor, result.model.predict(x) as tf.Tensor) <= 1e-4);
  x.dispose();
  masked.dispose();
  result.model.dispose();
  model.dispose();
});
