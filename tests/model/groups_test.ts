/**
 * Residual models: coupled channel groups are found (a whole stage with identity shortcuts, the
 * projection conv with it), and the fast sweep equals the naive one for every K on a group and
 * on a plain conv whose block shortcut crosses the cut (ResNet-20 layout, seeded random weights).
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { setupBackend } from "../../src/backend.ts";
import { loadTestSet } from "../../src/data/cifar10.ts";
import { imagesToTensor } from "../../src/data/tensors.ts";
import { buildResnet20 } from "../../src/model/resnet.ts";
import { pickLayer } from "../../src/model/layers.ts";
import { channelGroup, channelGroups, convKernel, groupName } from "../../src/model/coupling.ts";
import { mergedOutputStats } from "../../src/rank/group_stats.ts";
import { channelMeans } from "../../src/rank/activation.ts";
import { criterionByName } from "../../src/rank/registry.ts";
import { filterNorms } from "../../src/rank/weights.ts";
import { splitModelAsync } from "../../src/model/split.ts";
import { openEngine } from "../../src/sweep/engine.ts";
import { rankRandom } from "../../src/rank/random.ts";
import type { Dataset, Preprocessing } from "../../src/types.ts";
import { fixture, randomize } from "../_helpers.ts";

const PREP: Preprocessing = { scale: 1 / 255, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] };

let cached: { model: tf.LayersModel; data: Dataset } | undefined;
async function resnet(): Promise<{ model: tf.LayersModel; data: Dataset }> {
  await setupBackend("wasm");
  if (!cached) {
    const model = buildResnet20({ seed: 3 });
    randomize(model, 11, 2);
    // Labelled with the unpruned model's own classes: 100% at K = 0, so any change shows.
    const data = await loadTestSet(fixture("cifar10-tiny"), 12);
    const classes = tf.tidy(() =>
      (model.predict(imagesToTensor(data, 0, data.count, PREP)) as tf.Tensor2D).argMax(1).dataSync()
    );
    cached = { model, data: { ...data, labels: Uint8Array.from(classes) } };
  }
  return cached;
}

Deno.test("groups: ResNet-20 has one group per stage, named by its members", async () => {
  const { model } = await resnet();
  const groups = channelGroups(model);
  assert.deepEqual(groups.map((g) => g.members.length), [4, 4, 4]);
  assert.equal(
    groupName(groups[0]),
    "conv1+stage1_block1_conv2+stage1_block2_conv2+stage1_block3_conv2",
  );
  const last = channelGroup(model, pickLayer(model, "stage3_block3_conv2"))!;
  assert.deepEqual(last.members.map((m) => m.name).sort(), [
    "stage3_block1_conv2",
    "stage3_block1_proj",
    "stage3_block2_conv2",
    "stage3_block3_conv2",
  ]);
  assert.deepEqual(last.merges, ["stage3_block1_add", "stage3_block2_add", "stage3_block3_add"]);
  // A block's first conv feeds a conv: not coupled.
  assert.equal(channelGroup(model, pickLayer(model, "stage2_block2_conv1")), null);
});

async function fastEqualsNaive(layerName: string, group: boolean, kValues?: number[]) {
  const { model, data } = await resnet();
  const g = group ? channelGroup(model, pickLayer(model, layerName))! : null;
  const layer = g ? g.members[0] : pickLayer(model, layerName);
  const members = g ? g.members.slice(1).map((m) => m.name) : [];
  const split = await splitModelAsync(model, layer, members);
  const task = { model, layer, split, data, prep: PREP };
  using fast = await openEngine("exact", task);
  using naive = await openEngine("naive", task);
  const outputs = await fast.layerOutputs({ batch: 10 });
  if (!group) assert.ok((outputs.carried?.length ?? 0) > 0, "a shortcut should cross the cut");
  const ranking = rankRandom(layer.channels, 5);
  const a = await fast.sweep(outputs, ranking, { kValues });
  const b = await naive.sweep(outputs, ranking, { kValues });
  assert.deepEqual(a.map((p) => [p.k, p.correct]), b.map((p) => [p.k, p.correct]));
  // Not a constant curve: pruning changes the predictions.
  assert.ok(new Set(a.map((p) => p.correct)).size > 1, `flat curve ${a.map((p) => p.correct)}`);
}

Deno.test("groups: fast == naive for every K on ResNet-20's first stage group", async () => {
  await fastEqualsNaive("stage1_block2_conv2", true);
});

Deno.test("groups: fast == naive for every K on a block's first conv (its shortcut crosses the cut)", async () => {
  await fastEqualsNaive("stage3_block3_conv1", false);
});

Deno.test("groups: fast == naive on the last stage's group, projection conv included", async () => {
  await fastEqualsNaive("stage3_block3_conv2", true, [0, 1, 7, 16, 31, 32, 48, 63, 64]);
});

Deno.test("groups: mean reads the merged output, l1 sums the members' filter norms", async () => {
  const { model, data } = await resnet();
  const group = channelGroup(model, pickLayer(model, "stage2_block3_conv2"))!;
  const stats = await mergedOutputStats(model, group, data, PREP, { fill: 0 });
  // The mean over images and positions of the last merge's output, computed directly.
  const merged = tf.model({ inputs: model.inputs, outputs: model.getLayer("stage2_block3_add").output });
  const want = tf.tidy(() =>
    (merged.predict(imagesToTensor(data, 0, data.count, PREP)) as tf.Tensor4D).mean([0, 1, 2]).dataSync()
  );
  channelMeans(stats).forEach((m, c) =>
    assert.ok(Math.abs(m - want[c]) < 1e-4, `channel ${c}: ${m} vs ${want[c]}`)
  );

  const [layer, ...members] = group.members;
  const split = await splitModelAsync(model, layer, members.map((m) => m.name));
  const l1 = await criterionByName("l1").rank({
    model,
    layer,
    members,
    split,
    seed: 0,
    prep: PREP,
    outputKind: "probabilities",
  });
  const sum = new Float64Array(layer.channels);
  for (const m of group.members) {
    filterNorms((await convKernel(model, m)).values, layer.channels, 1).forEach((v, c) => (sum[c] += v));
  }
  assert.deepEqual(Array.from(l1.scores), Array.from(sum));
});
