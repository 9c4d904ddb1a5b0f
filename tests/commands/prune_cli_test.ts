import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import * as tf from "@tensorflow/tfjs";
import { main } from "../../main.ts";
import { setupBackend } from "../../src/backend.ts";
import { loadTestSet, loadTrainSet } from "../../src/data/cifar10.ts";
import { fileSaver } from "../../src/model/tfjs_io.ts";
import { largestKWithin } from "../../src/sweep/summary.ts";
import { parsePlan, sweepWithin } from "../../src/surgery/select.ts";
import { finetune } from "../../src/train/finetune.ts";
import { evaluate } from "../../src/model/evaluate.ts";
import { DEFAULT_PREPROCESSING } from "../../src/types.ts";
import { randomize } from "../_helpers.ts";

await setupBackend("wasm");

const TINY_DATA = fileURLToPath(new URL("../../fixtures/cifar10-tiny", import.meta.url));
const TEST_IMAGES = 200;

/**
 * A small VGG-like model: conv1(8)-BN-pool, conv2(8)-BN, conv3(12)-BN-pool, flatten, dense
 * softmax; relu convs, 'same' padding (so pruning conv1 or conv2 needs a carrier channel).
 * Seeded random weights, then one quick epoch on the fixture's training images (wasm), so the
 * accuracy and BatchNorm's statistics are real.
 */
async function makeModel(dir: string): Promise<string> {
  const m = tf.sequential({ name: "mini_vgg" });
  m.add(tf.layers.inputLayer({ inputShape: [32, 32, 3], name: "image" }));
  const conv = (name: string, filters: number) =>
    tf.layers.conv2d({ name, filters, kernelSize: 3, padding: "same", activation: "relu" });
  m.add(conv("conv1", 8));
  m.add(tf.layers.batchNormalization({ name: "bn1", momentum: 0.5 }));
  m.add(tf.layers.maxPooling2d({ name: "pool1", poolSize: 2 }));
  m.add(conv("conv2", 8));
  m.add(tf.layers.batchNormalization({ name: "bn2", momentum: 0.5 }));
  m.add(conv("conv3", 12));
  m.add(tf.layers.batchNormalization({ name: "bn3", momentum: 0.5 }));
  m.add(tf.layers.maxPooling2d({ name: "pool2", poolSize: 2 }));
  m.add(tf.layers.flatten({ name: "flatten" }));
  m.add(tf.layers.dense({ name: "predictions", units: 10, activation: "softmax" }));
  randomize(m, 42, 6);
  const t0 = performance.now();
  await finetune(m, await loadTrainSet(TINY_DATA, 1000), {
    epochs: 1,
    preprocessing: DEFAULT_PREPROCESSING,
    batch: 50,
    peakLr: 0.05,
  });
  console.log(`trained the test model in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  await m.save(
    fileSaver(dir, { prunescope: { preprocessing: DEFAULT_PREPROCESSING, madeBy: "prune_cli_test" } }),
  );
  m.dispose();
  return join(dir, "model.json");
}

const tmp = await Deno.makeTempDir({ prefix: "prune_cli_test_" });
const modelPath = await makeModel(join(tmp, "source"));

/** Run the CLI in-process; returns the exit code. */
function prune(args: string[]): Promise<number> {
  return main(["prune", "--model", modelPath, "--data", TINY_DATA, "--backend", "wasm", ...args]);
}

/** Serve `dir` over HTTP on 127.0.0.1 for the duration of `fn`. */
async function served<T>(dir: string, fn: (base: string) => Promise<T>): Promise<T> {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    try {
      return new Response(await Deno.readFile(join(dir, new URL(req.url).pathname)));
    } catch {
      return new Response("not found", { status: 404 });
    }
  });
  try {
    return await fn(`http://127.0.0.1:${(server.addr as Deno.NetAddr).port}`);
  } finally {
    await server.shutdown();
  }
}

// deno-lint-ignore no-explicit-any
type Json = any;

Deno.test("prune --max-drop: a loadable slim model whose accuracy is the sweep's at the chosen K", async () => {
  const out = join(tmp, "maxdrop");
  const code = await prune([
    "--layer",
    "conv3",
    "--max-drop",
    "2",
    "--limit",
    String(TEST_IMAGES),
    "--latency-runs",
    "1",
    "--finetune-epochs",
    "1",
    "--train-limit",
    "128",
    "--out",
    out,
  ]);
  assert.equal(code, 0);
  const report: Json = JSON.parse(await Deno.readTextFile(join(out, "compression.json")));
  const sweep = (await Deno.readTextFile(join(out, "sweep.csv"))).trim().split("\n").slice(1).map((line) => {
    const [k, , accuracy, correct, total] = line.split(",").map(Number);
    return { k, channelPrunedAtK: null, accuracy, correct, total };
  });
  // K = 0, 1, 2, ... in order, up to all 13 or until past the first K outside the band.
  sweep.forEach((p, i) => assert.equal(p.k, i));
  if (sweep.length < 13) assert.ok(sweep.some((p) => p.accuracy < sweep[0].accuracy - 0.02));
  const k = Math.min(largestKWithin(sweep, 2), 11);
  assert.ok(k > 0, "the test needs a K > 0 to mean something");
  assert.equal(report.selection.k.conv3, k);
  const layer = report.layers[0];
  assert.equal(layer.consumer, "predictions");
  assert.equal(layer.fold, "bias");
  assert.equal(layer.channelsAfter, 12 - k);
  // before = the sweep at K = 0, masked = the sweep at K, slim = masked.
  assert.equal(report.before.correct, sweep[0].correct);
  assert.equal(report.masked.correct, sweep[k].correct);
  assert.equal(report.after.correct, report.masked.correct);
  assert.equal(report.check.slimEqualsMasked, true);
  assert.equal(report.check.imagesWithAnotherTopClass, 0);
  assert.ok(report.check.maxOutputDifference <= 1e-5);
  // Counts by hand: conv3 loses k filters (3*3*8 weights + bias + 4 BN entries each) and the
  // dense layer loses 8 * 8 positions x k rows of 10 weights.
  const perFilter = 3 * 3 * 8 + 1 + 4;
  assert.equal(report.before.parameters - report.after.parameters, k * (perFilter + 64 * 10));
  // Multiply-adds: conv3 runs at 16x16, 72 per output value; dense 640 per channel.
  assert.equal(report.before.multiplyAdds - report.after.multiplyAdds, k * (16 * 16 * 72 + 64 * 10));
  const bytes = (await Deno.stat(join(out, "model", "weights.bin"))).size;
  assert.equal(report.after.weightsBinBytes, bytes);
  assert.equal(bytes, 4 * report.after.parameters);
  assert.equal(report.before.weightsBinBytes, (await Deno.stat(join(tmp, "source", "weights.bin"))).size);
  assert.ok(report.before.latencyMs.batch1 > 0 && report.after.latencyMs.batch256 > 0);

  // Plain tf.loadLayersModel over HTTP, metadata kept; it scores the reported accuracy.
  const test = await loadTestSet(TINY_DATA, TEST_IMAGES);
  await served(out, async (base) => {
    const slim = await tf.loadLayersModel(`${base}/model/model.json`);
    const json: Json = await (await fetch(`${base}/model/model.json`)).json();
    assert.deepEqual(json.userDefinedMetadata.prunescope.preprocessing, DEFAULT_PREPROCESSING);
    assert.equal(json.userDefinedMetadata.prunescope.madeBy, "prune_cli_test");
    assert.equal(json.userDefinedMetadata.prunescope.testAccuracy, report.after.accuracy);
    assert.equal(json.userDefinedMetadata.prunescope.pruning.layers[0].after, 12 - k);
    const { correct } = await evaluate(slim, test, DEFAULT_PREPROCESSING);
    assert.equal(correct, report.after.correct);
    assert.equal(slim.getLayer("conv3").getWeights()[0].shape[3], 12 - k);
    slim.dispose();
    const tuned = await tf.loadLayersModel(`${base}/finetuned/model.json`);
    const tunedEval = await evaluate(tuned, test, DEFAULT_PREPROCESSING);
    assert.equal(tunedEval.correct / test.count, report.finetuned.accuracy);
    tuned.dispose();
  });
  assert.equal(report.finetuned.history.length, 1);
  assert.ok((await Deno.readTextFile(join(out, "recovery.svg"))).includes("<svg"));
  assert.ok((await Deno.stat(join(out, "recovery.png"))).size > 1000);
});

Deno.test("prune --plan over three conv + BN layers: carriers for 'same' convs, exact, counts by hand", async () => {
  const out = join(tmp, "plan");
  const code = await prune([
    "--plan",
    "conv3:5,conv1:3,conv2:2",
    "--limit",
    String(TEST_IMAGES),
    "--latency-runs",
    "0",
    "--out",
    out,
  ]);
  assert.equal(code, 0);
  const report: Json = JSON.parse(await Deno.readTextFile(join(out, "compression.json")));
  const by: Record<string, Json> = Object.fromEntries(report.layers.map((l: Json) => [l.layer, l]));
  // conv1 and conv2 feed 'same' convs through BN (non-zero constants): one carrier each.
  assert.equal(by.conv1.fold, "carrier");
  assert.equal(by.conv2.fold, "carrier");
  assert.equal(by.conv3.fold, "bias");
  const c1 = by.conv1.channelsAfter, c2 = by.conv2.channelsAfter, c3 = by.conv3.channelsAfter;
  assert.deepEqual([c1, c2, c3], [8 - 3 + 1, 8 - 2 + 1, 12 - 5]);
  // Parameters by hand: conv (3*3*cin*cout + cout), BN 4 per channel, dense (16*c3*10 + 10).
  const params = (3 * 3 * 3 * c1 + c1) + 4 * c1 + (3 * 3 * c1 * c2 + c2) + 4 * c2 + (3 * 3 * c2 * c3 + c3) +
    4 * c3 + (64 * c3 * 10 + 10);
  assert.equal(report.after.parameters, params);
  // Multiply-adds: conv1 at 32x32, conv2 and conv3 at 16x16, dense.
  const macs = 32 * 32 * c1 * 27 + 16 * 16 * c2 * 9 * c1 + 16 * 16 * c3 * 9 * c2 + 64 * c3 * 10;
  assert.equal(report.after.multiplyAdds, macs);
  assert.equal(report.after.correct, report.masked.correct);
  assert.equal(report.check.slimEqualsMasked, true);
  assert.ok(report.check.maxOutputDifference <= 1e-5);
  assert.equal(report.before.latencyMs.batch1, null);
  assert.equal(report.selection.mode, "plan");
});

Deno.test("prune --plan with a bare layer and --max-drop: that layer's K comes from its own sweep", async () => {
  const out = join(tmp, "plan-maxdrop");
  const code = await prune([
    "--plan",
    "conv2,conv3:4",
    "--max-drop",
    "2",
    "--limit",
    String(TEST_IMAGES),
    "--latency-runs",
    "0",
    "--out",
    out,
  ]);
  assert.equal(code, 0);
  const report: Json = JSON.parse(await Deno.readTextFile(join(out, "compression.json")));
  const sweep = (await Deno.readTextFile(join(out, "sweep_conv2.csv"))).trim().split("\n").slice(1).map(
    (line) => {
      const [k, , accuracy, correct, total] = line.split(",").map(Number);
      return { k, channelPrunedAtK: null, accuracy, correct, total };
    },
  );
  sweep.forEach((p, i) => assert.equal(p.k, i));
  assert.equal(report.selection.k.conv2, Math.min(largestKWithin(sweep, 2), 7));
  assert.equal(report.selection.k.conv3, 4);
  assert.equal(report.after.correct, report.masked.correct);
  assert.equal(report.check.slimEqualsMasked, true);
});

Deno.test("sweepWithin stops early and still finds largestKWithin of the full sweep", async () => {
  const { loadModel } = await import("../../src/model/load.ts");
  const { pickLayer } = await import("../../src/model/layers.ts");
  const { splitModel } = await import("../../src/model/split.ts");
  const { computeLayerOutputs } = await import("../../src/activations/layer_outputs.ts");
  const { rankByMean } = await import("../../src/rank/criteria.ts");
  const { sweepFast } = await import("../../src/sweep/engines/masked.ts");
  const { model, preprocessing } = await loadModel(modelPath);
  const test = await loadTestSet(TINY_DATA, TEST_IMAGES);
  for (const name of ["conv1", "conv3"]) {
    const split = splitModel(model, pickLayer(model, name));
    const outputs = await computeLayerOutputs(split, test, preprocessing);
    const ranking = rankByMean(outputs);
    const full = await sweepFast(split, outputs, test.labels, ranking);
    for (const drop of [0, 1, 5, 20]) {
      const { k, sweep } = await sweepWithin(split, outputs, test.labels, ranking, drop, "t", 2);
      assert.equal(k, Math.min(largestKWithin(full, drop), outputs.channels - 1), `${name} drop ${drop}`);
      assert.deepEqual(sweep, full.slice(0, sweep.length));
      assert.ok(sweep.length <= Math.min(full.length, 2 * Math.ceil((k + 2) / 2)), `${name}: stopped late`);
    }
  }
  model.dispose();
});

Deno.test("prune: --help, and bad input gives one line and exit 1", async () => {
  assert.equal(await main(["prune", "--help"]), 0);
  assert.equal(await prune(["--k", "2", "--max-drop", "1"]), 1);
  assert.equal(await prune(["--layer", "conv3", "--k", "13", "--limit", "20"]), 1);
  assert.equal(await prune(["--layer", "flatten", "--k", "1", "--limit", "20"]), 1);
  assert.equal(await prune(["--plan", "conv1:x"]), 1);
  assert.equal(await prune(["--plan", "conv1,conv2:1", "--limit", "20"]), 1); // conv1 has no K
  assert.equal(await prune(["--plan", "conv1:1", "--max-drop", "1"]), 1); // nothing to choose
  assert.equal(await prune(["--k", "1", "--criterion", "nope"]), 1);
  assert.equal(await prune(["--k", "1", "--bogus"]), 1);
  assert.deepEqual(parsePlan("a:1, b:0,c"), [{ layer: "a", k: 1 }, { layer: "b", k: 0 }, {
    layer: "c",
    k: null,
  }]);
});

Deno.test({
  name: "cleanup",
  fn: async () => await Deno.remove(tmp, { recursive: true }),
});
