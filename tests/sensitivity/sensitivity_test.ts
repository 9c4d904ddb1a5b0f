/**
 * Per-layer sensitivity: every point equals the literal lab method (weights zeroed, whole model
 * re-run) on the fixture models, streaming in chunks changes nothing, dead channels cost
 * nothing, a coupled group is analysed once (its counts the naive group sweep's), and the command writes Distiller's and NNI's layouts.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs";
import { setupBackend } from "../../src/backend.ts";
import { UserError } from "../../src/core/errors.ts";
import { loadTestSet } from "../../src/data/cifar10.ts";
import { imagesToTensor } from "../../src/data/tensors.ts";
import { loadModel } from "../../src/model/load.ts";
import { type LayerRef, pickLayer } from "../../src/model/layers.ts";
import { splitModel } from "../../src/model/split.ts";
import { fileSaver } from "../../src/model/tfjs_io.ts";
import { computeLayerOutputs } from "../../src/activations/layer_outputs.ts";
import { sweepNaive } from "../../src/sweep/engines/naive.ts";
import { sweepFast } from "../../src/sweep/engines/masked.ts";
import { criterionByName } from "../../src/rank/registry.ts";
import { outputKind, PROBABILITY_EPSILON } from "../../src/model/class_scores.ts";
import { tallyMasks } from "../../src/sensitivity/evaluate_masks.ts";
import {
  kValuesFromFractions,
  kValuesFromStep,
  layerSensitivity,
  type LayerSensitivityResult,
  STOP_CHUNK,
} from "../../src/sensitivity/scan.ts";
import { couplingOf } from "../../src/model/coupling.ts";
import { parseFractions } from "../../src/commands/sensitivity.ts";
import { main } from "../../main.ts";
import type { Dataset, Preprocessing } from "../../src/types.ts";
import { exists, mainInProcess } from "../_helpers.ts";

await setupBackend("cpu");
Deno.env.set("PRUNESCOPE_NO_PROGRESS", "1");

const DATA = "fixtures/cifar10-tiny";
const FIXTURES = ["tiny-bn", "tiny-nobn"].map((n) => `fixtures/models/${n}/model.json`);
const FRACTIONS = [0, 0.5, 0.75];

/** `sensitivity` on the first fixture, 120 images, wasm, `extra` flags, on `workers` workers into `out`. */
async function workersRun(out: string, workers: string, extra: string[]): Promise<string> {
  const args = ["--model", FIXTURES[0], "--data", DATA, "--limit", "120", "--backend", "wasm"];
  const { code, stderr } = await mainInProcess([
    "sensitivity",
    ...args,
    ...extra,
    "--workers",
    workers,
    "--out",
    out,
  ]);
  assert.equal(code, 0, stderr.join("\n"));
  return out;
}

/**
 * Assert that sensitivity runs `a` and `b` wrote the same CSVs and, per layer of sensitivity.json,
 * the same `fields`; returns run a's [layer, ...fields] rows.
 */
async function assertSameRuns(a: string, b: string, fields: string[]): Promise<unknown[][]> {
  for (const file of ["sensitivity.csv", "sensitivity_nni.csv"]) {
    assert.equal(await Deno.readTextFile(join(b, file)), await Deno.readTextFile(join(a, file)), file);
  }
  const layers = async (p: string) =>
    (JSON.parse(await Deno.readTextFile(join(p, "sensitivity.json"))).layers as Record<string, unknown>[])
      .map((l) => [l.layer, ...fields.map((f) => l[f])]);
  const expected = await layers(a);
  assert.deepEqual(await layers(b), expected);
  return expected;
}

Deno.test("K values from fractions and steps; --fractions parsing", () => {
  assert.deepEqual(kValuesFromFractions([0, 0.25, 0.5, 1], 64), [0, 16, 32, 64]);
  assert.deepEqual(kValuesFromFractions([0, 0.05, 0.1], 8), [0, 1]); // 0.4 -> 0, 0.8 -> 1
  assert.deepEqual(kValuesFromStep(16, 40), [0, 16, 32, 40]);
  assert.deepEqual(kValuesFromStep(1, 3), [0, 1, 2, 3]);
  assert.deepEqual(parseFractions("0:0.3:0.1"), [0, 0.1, 0.2, 0.3]);
  assert.deepEqual(parseFractions("0.5,0,0.5"), [0, 0.5]);
  assert.equal(parseFractions("0:1:0.05").length, 21);
  for (const bad of ["1.5", "a", "0:1", "0:1:0", "-0.1"]) {
    assert.throws(() => parseFractions(bad), UserError, bad);
  }
});

/** The whole model with `pruned` channels of `layer` zeroed (kernel and bias), for a reference. */
function withZeroedChannels<T>(model: tf.LayersModel, layer: LayerRef, pruned: number[], fn: () => T): T {
  const conv = model.getLayer(layer.name);
  const originals = conv.getWeights().map((t) => t.clone());
  const zeroed = originals.map((t) => {
    const v = (t.dataSync() as Float32Array).slice();
    const c = layer.channels;
    for (const ch of pruned) for (let i = ch; i < v.length; i += c) v[i] = 0;
    return tf.tensor(v, t.shape);
  });
  conv.setWeights(zeroed);
  try {
    return fn();
  } finally {
    conv.setWeights(originals);
    tf.dispose([...originals, ...zeroed]);
  }
}

/** Top-5 hits and mean loss of the whole model, computed in plain JS from its class scores. */
function referenceTop5AndLoss(
  model: tf.LayersModel,
  ds: Dataset,
  prep: Preprocessing,
): { top5: number; loss: number } {
  const scores = tf.tidy(() =>
    (model.predict(imagesToTensor(ds, 0, ds.count, prep)) as tf.Tensor).dataSync()
  );
  let top5 = 0, loss = 0;
  for (let n = 0; n < ds.count; n++) {
    const row = scores.subarray(n * 10, n * 10 + 10);
    const y = ds.labels[n];
    if (row.filter((s) => s > row[y]).length < 5) top5++;
    loss -= Math.log(Math.min(1 - PROBABILITY_EPSILON, Math.max(PROBABILITY_EPSILON, row[y])));
  }
  return { top5, loss: loss / ds.count };
}

for (const path of FIXTURES) {
  Deno.test({
    name: `sensitivity points equal the naive method (weights zeroed, whole model): ${path}`,
    ignore: !(await exists(path)),
    fn: async () => {
      const { model, preprocessing: prep } = await loadModel(path);
      const ds = await loadTestSet(DATA, 64);
      assert.equal(outputKind(model), "probabilities");
      for (const [name, criterion] of [["conv1", "l1"], ["conv2", "mean"]]) {
        const layer = pickLayer(model, name);
        {
          const kValues = kValuesFromFractions(FRACTIONS, layer.channels);
          const before = tf.memory().numTensors;
          const r = await layerSensitivity(model, layer, ds, prep, {
            criterion: criterionByName(criterion),
            kValues,
            outputKind: "probabilities",
          });
          assert.equal(tf.memory().numTensors, before, "no tensor left behind");
          const naive = await sweepNaive(model, layer, ds, prep, r.ranking, { kValues });
          assert.deepEqual(r.points.map((p) => p.k), kValues);
          r.points.forEach((p, i) => {
            assert.equal(p.correct, naive[i].correct, `${name} ${criterion} K = ${p.k}: top-1`);
            assert.equal(p.sparsity, p.k / layer.channels);
            const ref = withZeroedChannels(
              model,
              layer,
              r.ranking.order.slice(0, p.k),
              () => referenceTop5AndLoss(model, ds, prep),
            );
            assert.equal(p.correctTop5, ref.top5, `${name} ${criterion} K = ${p.k}: top-5`);
            assert.ok(
              Math.abs(p.loss - ref.loss) <= 1e-5 * Math.max(1, ref.loss),
              `K = ${p.k}: ${p.loss} vs ${ref.loss}`,
            );
          });
        }
      }
      model.dispose();
    },
  });
}

Deno.test({
  name:
    "streaming the images in chunks gives exactly the one-pass results (2 passes for activation criteria)",
  ignore: !(await exists(FIXTURES[0])),
  fn: async () => {
    const { model, preprocessing: prep } = await loadModel(FIXTURES[0]);
    const ds = await loadTestSet(DATA, 60);
    const layer = pickLayer(model, "conv1"); // 32 x 32 x 8 floats = 32 KiB per image
    const perImageBytes = layer.outputShape.reduce((p, d) => p * d, 4);
    const run = (criterion: string, maxCacheBytes?: number): Promise<LayerSensitivityResult> =>
      layerSensitivity(model, layer, ds, prep, {
        criterion: criterionByName(criterion),
        kValues: kValuesFromStep(3, layer.channels),
        outputKind: "probabilities",
        maxCacheBytes,
      });
    for (const criterion of ["mean", "l1"]) {
      const whole = await run(criterion);
      const chunked = await run(criterion, 23 * perImageBytes);
      assert.equal(whole.chunkImages, 60);
      assert.equal(chunked.chunkImages, 23);
      assert.equal(whole.prefixPasses, 1);
      assert.equal(chunked.prefixPasses, criterion === "mean" ? 2 : 1);
      assert.deepEqual(chunked.ranking.order, whole.ranking.order);
      assert.deepEqual(chunked.points, whole.points);
      assert.deepEqual(chunked.dead, whole.dead);
    }
    model.dispose();
  },
});

Deno.test({
  name: "dead channels are found and pruning them costs exactly nothing",
  ignore: !(await exists(FIXTURES[0])),
  fn: async () => {
    const { model, preprocessing: prep } = await loadModel(FIXTURES[0]);
    const ds = await loadTestSet(DATA, 60);
    const layer = pickLayer(model, "conv2"); // relu
    // Kill channel 3 for sure: zero kernel, bias -1, relu -> 0 on every image.
    const conv = model.getLayer("conv2");
    const [kernel, bias] = conv.getWeights();
    const k = (kernel.dataSync() as Float32Array).slice();
    for (let i = 3; i < k.length; i += layer.channels) k[i] = 0;
    const b = (bias.dataSync() as Float32Array).slice();
    b[3] = -1;
    const newWeights = [tf.tensor(k, kernel.shape), tf.tensor(b, bias.shape)];
    conv.setWeights(newWeights);
    tf.dispose(newWeights);

    const r = await layerSensitivity(model, layer, ds, prep, {
      criterion: criterionByName("mean"),
      kValues: kValuesFromStep(1, layer.channels),
      outputKind: "probabilities",
    });
    const dead = r.dead.map((d) => d.channel);
    assert.ok(dead.includes(3), `dead: ${dead}`);
    for (const d of r.dead) {
      assert.equal(d.mean, 0);
      assert.equal(d.apoz, 1);
    }
    // mean ranks the dead channels first (mean 0 is the lowest a relu gives): K <= #dead costs nothing.
    assert.deepEqual(new Set(r.ranking.order.slice(0, dead.length)), new Set(dead));
    for (let kk = 1; kk <= dead.length; kk++) {
      const p = r.points[kk], base = r.points[0];
      assert.deepEqual(
        [p.correct, p.correctTop5, p.loss],
        [base.correct, base.correctTop5, base.loss],
        `K = ${kk}`,
      );
    }
    // And masking exactly the dead set, whatever the ranking, changes nothing either.
    const split = splitModel(model, layer);
    const out = await computeLayerOutputs(split, ds, prep);
    // (The evaluator's top-1 counts are the fast sweep's.)
    const fast = await sweepFast(split, out, ds.labels, r.ranking, { kValues: r.points.map((p) => p.k) });
    assert.deepEqual(fast.map((p) => p.correct), r.points.map((p) => p.correct));
    const masks = new Uint8Array(2 * layer.channels);
    for (const c of dead) masks[layer.channels + c] = 1;
    const [none, deadPruned] = await tallyMasks(split, out, ds.labels, masks, 2, "probabilities");
    assert.deepEqual(deadPruned, none);
    // A live channel does cost something (the check above can fail).
    const live = r.ranking.order[r.ranking.order.length - 1];
    masks.fill(0);
    masks[layer.channels + live] = 1;
    const [, livePruned] = await tallyMasks(split, out, ds.labels, masks, 2, "probabilities");
    assert.notEqual(livePruned.lossSum, none.lossSum);
    model.dispose();
  },
});

/** conv1 -> pool -> conv2 (linear) -> relu2 -> [conv3 -> add(relu2, conv3)] -> GAP -> dense. */
function residualModel(): tf.LayersModel {
  const init = (seed: number) => tf.initializers.glorotUniform({ seed });
  const input = tf.input({ shape: [32, 32, 3] });
  let x = tf.layers.conv2d({
    name: "conv1",
    filters: 4,
    kernelSize: 3,
    padding: "same",
    activation: "relu",
    kernelInitializer: init(1),
  })
    .apply(input) as tf.SymbolicTensor;
  x = tf.layers.maxPooling2d({ poolSize: 4, name: "pool" }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.conv2d({
    name: "conv2",
    filters: 6,
    kernelSize: 3,
    padding: "same",
    kernelInitializer: init(2),
  })
    .apply(x) as tf.SymbolicTensor;
  const r = tf.layers.reLU({ name: "relu2" }).apply(x) as tf.SymbolicTensor;
  const branch = tf.layers.conv2d({
    name: "conv3",
    filters: 6,
    kernelSize: 3,
    padding: "same",
    kernelInitializer: init(3),
  })
    .apply(r) as tf.SymbolicTensor;
  x = tf.layers.add({ name: "residual" }).apply([r, branch]) as tf.SymbolicTensor;
  x = tf.layers.globalAveragePooling2d({ name: "gap" }).apply(x) as tf.SymbolicTensor;
  const out = tf.layers.dense({
    name: "scores",
    units: 10,
    activation: "softmax",
    kernelInitializer: init(4),
  })
    .apply(x) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: out });
}

async function captureErrors(fn: () => Promise<number>): Promise<{ code: number; errors: string }> {
  const original = console.error;
  const lines: string[] = [];
  console.error = (...args: unknown[]) => lines.push(args.join(" "));
  try {
    return { code: await fn(), errors: lines.join("\n") };
  } finally {
    console.error = original;
  }
}

Deno.test("a coupled group (convs meeting in an Add) is analysed once, named by its members, its counts the naive group sweep's", async () => {
  await setupBackend("cpu");
  const model = residualModel();
  assert.equal(couplingOf(model, pickLayer(model, "conv1")), null);
  assert.equal(couplingOf(model, pickLayer(model, "conv3"))?.merge, "residual");
  const ds = await loadTestSet(DATA, 40);
  const prep: Preprocessing = { scale: 1 / 255, mean: [0, 0, 0], std: [1, 1, 1] };
  for (const criterion of ["l1", "mean"]) {
    const kValues = [0, 1, 3, 5, 6];
    const r = await layerSensitivity(model, pickLayer(model, "conv3"), ds, prep, {
      criterion: criterionByName(criterion),
      kValues,
      outputKind: "probabilities",
    });
    assert.equal(r.layer, "conv2+conv3");
    assert.deepEqual(r.members, ["conv2", "conv3"]);
    const naive = await sweepNaive(model, pickLayer(model, "conv2"), ds, prep, r.ranking, {
      kValues,
      members: ["conv3"],
    });
    assert.deepEqual(r.points.map((p) => p.correct), naive.map((p) => p.correct), criterion);
  }
  await assert.rejects(
    () =>
      layerSensitivity(model, pickLayer(model, "conv2"), ds, prep, {
        criterion: criterionByName("taylor"),
        kValues: [0, 1],
        outputKind: "probabilities",
      }),
    (e: unknown) => e instanceof UserError && /taylor has no group score yet .*conv2\+conv3/.test(e.message),
  );

  const dir = await Deno.makeTempDir({ prefix: "prunescope-sens-" });
  try {
    await model.save(fileSaver(join(dir, "model")));
    const modelPath = join(dir, "model", "model.json");
    const base = ["--model", modelPath, "--data", DATA, "--backend", "cpu", "--limit", "30"];
    const all = await captureErrors(() =>
      main(["sensitivity", ...base, "--fractions", "0,0.5,1", "--out", join(dir, "all")])
    );
    assert.equal(all.code, 0, all.errors);
    const json = JSON.parse(await Deno.readTextFile(join(dir, "all", "sensitivity.json")));
    assert.deepEqual(json.layers.map((l: { layer: string }) => l.layer), ["conv1", "conv2+conv3"]);
    assert.deepEqual(json.skipped, []);

    const twice = await captureErrors(() =>
      main(["sensitivity", ...base, "--layers", "conv2,conv3", "--out", join(dir, "x")])
    );
    assert.equal(twice.code, 1);
    assert.match(twice.errors, /two members of the channel group that starts at conv2/);
    const sweep = await captureErrors(() =>
      main(["sweep", ...base, "--layer", "conv3", "--criterion", "taylor", "--out", join(dir, "y")])
    );
    // sweep takes conv3 with its group (conv2 + conv3), where taylor has no group score yet.
    assert.equal(sweep.code, 1);
    assert.match(
      sweep.errors,
      /criterion taylor has no group score yet for the coupled channel group conv2\+conv3/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
    model.dispose();
  }
});

Deno.test({
  name: "sensitivity command: Distiller and NNI CSVs, JSON and chart",
  ignore: !(await exists(FIXTURES[0])),
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "prunescope-sens-" });
    try {
      const run = await captureErrors(() =>
        main([
          "sensitivity",
          ...["--model", FIXTURES[0], "--data", DATA, "--backend", "cpu", "--limit", "60"],
          ...["--fractions", "0,0.5,1", "--criterion", "l1", "--out", dir],
        ])
      );
      assert.equal(run.code, 0, run.errors);
      const json = JSON.parse(await Deno.readTextFile(join(dir, "sensitivity.json")));
      assert.equal(json.criterion, "l1");
      assert.deepEqual(json.layers.map((l: { layer: string }) => l.layer), ["conv1", "conv2"]);
      const csv = (await Deno.readTextFile(join(dir, "sensitivity.csv"))).trimEnd().split("\n").map((l) =>
        l.split(",")
      );
      assert.deepEqual(csv[0], ["parameter", "sparsity", "top1", "top5", "loss"]);
      assert.equal(csv.length - 1, 2 * 3);
      assert.deepEqual(csv.slice(1).map((r) => [r[0], r[1]]), [
        ["conv1/kernel", "0"],
        ["conv1/kernel", "0.5"],
        ["conv1/kernel", "1"],
        ["conv2/kernel", "0"],
        ["conv2/kernel", "0.5"],
        ["conv2/kernel", "1"],
      ]);
      const points = json.layers.flatMap((l: { points: { top1: number; top5: number; loss: number }[] }) =>
        l.points
      );
      csv.slice(1).forEach((r, i) => {
        assert.ok(Math.abs(Number(r[2]) - 100 * points[i].top1) < 1e-9); // Distiller: percent
        assert.ok(Math.abs(Number(r[3]) - 100 * points[i].top5) < 1e-9);
        assert.equal(Number(r[4]), points[i].loss);
      });
      // Unpruned rows agree between layers; nothing left gives a worse loss than nothing pruned.
      assert.equal(csv[1][2], csv[4][2]);
      assert.ok(Number(csv[3][4]) > Number(csv[1][4]));
      const nni = (await Deno.readTextFile(join(dir, "sensitivity_nni.csv"))).trimEnd().split("\n").map((l) =>
        l.split(",")
      );
      assert.deepEqual(nni[0], ["layername", "0", "0.5", "1"]);
      assert.deepEqual(nni.slice(1).map((r) => r[0]), ["conv1", "conv2"]);
      assert.equal(Number(nni[2][2]), points[4].top1);
      const svg = await Deno.readTextFile(join(dir, "sensitivity.svg"));
      assert.ok(svg.includes("conv1") && svg.includes("conv2"));
      assert.ok((await Deno.stat(join(dir, "sensitivity.png"))).size > 1000);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("sensitivity --workers 2: the very CSVs and points of --workers 1 (mean and taylor)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "prunescope_sens_workers_" });
  try {
    for (const criterion of ["mean", "taylor"]) {
      const run = (workers: string) =>
        workersRun(join(dir, `${criterion}-w${workers}`), workers, [
          "--criterion",
          criterion,
          "--taylor-images",
          "64",
          "--fractions",
          "0:1:0.25",
        ]);
      const expected = await assertSameRuns(await run("1"), await run("2"), ["points", "dead"]);
      assert.equal(expected.length, 2);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("stopBelow: the curve ends after the first chunk under the floor, every kept point the full curve's", async () => {
  const { model, preprocessing: prep } = await loadModel(FIXTURES[0]);
  const ds = await loadTestSet(DATA, 64);
  const layer = pickLayer(model, "conv2");
  const kValues = kValuesFromStep(1, layer.channels); // every K: 0..C
  const opts = { criterion: criterionByName("mean"), kValues, outputKind: "probabilities" as const };
  const full = await layerSensitivity(model, layer, ds, prep, opts);
  assert.equal(full.stopped, undefined);
  const base = full.points[0].top1;
  // A floor the full curve crosses: stop at 5 points under K = 0.
  const firstBelow = full.points.findIndex((p) => p.top1 < base - 0.05 - 1e-12);
  assert.ok(firstBelow > 0 && firstBelow < kValues.length - STOP_CHUNK, `crosses at ${firstBelow}`);
  let work = 0;
  const cut = await layerSensitivity(model, layer, ds, prep, {
    ...opts,
    stopBelow: 5,
    onWork: (n) => work += n,
  });
  const expected = Math.ceil((firstBelow + 1) / STOP_CHUNK) * STOP_CHUNK;
  assert.deepEqual(cut.stopped, { points: 5, evaluated: expected, planned: kValues.length });
  assert.deepEqual(cut.points, full.points.slice(0, expected));
  // The progress total is still the whole plan (the skipped K values reported as done).
  assert.equal(work, ds.count + kValues.length * ds.count);
  // A floor never crossed evaluates everything; K = 0 missing is refused.
  const all = await layerSensitivity(model, layer, ds, prep, { ...opts, stopBelow: 100 });
  assert.equal(all.points.length, kValues.length);
  await assert.rejects(
    () => layerSensitivity(model, layer, ds, prep, { ...opts, kValues: [1, 2], stopBelow: 1 }),
    UserError,
  );
  model.dispose();
});

Deno.test("tallyMasks: the pushed-down masks give exactly the plain path's tallies", async () => {
  const prep: Preprocessing = { scale: 1 / 255, mean: [0, 0, 0], std: [1, 1, 1] };
  const ds = await loadTestSet(DATA, 50);
  const models: [string, tf.LayersModel, Preprocessing | undefined][] = [["residual", residualModel(), prep]];
  for (const path of [...FIXTURES, "fixtures/models/tiny-func/model.json"]) {
    if (await exists(path)) {
      const { model, preprocessing } = await loadModel(path);
      models.push([path, model, preprocessing]);
    }
  }
  let pushed = 0;
  try {
    for (const backend of ["cpu", "wasm"] as const) {
      await setupBackend(backend);
      for (const [name, model, p] of models) {
        for (const layer of model.layers.filter((l) => l.getClassName() === "Conv2D")) {
          const ref = pickLayer(model, layer.name);
          const group = name === "residual" && ref.name === "conv2" ? ["conv3"] : [];
          if (name === "residual" && ref.name === "conv3") continue; // analysed with conv2
          const split = splitModel(model, ref, group);
          const out = await computeLayerOutputs(split, ds, p ?? prep);
          const c = ref.channels;
          // K = 0, 1, C/2, C (the last channels first), every channel, and a scattered mask.
          const ks = [0, 1, Math.floor(c / 2), c];
          const masks = new Uint8Array((ks.length + 2) * c);
          ks.forEach((k, j) => {
            for (let i = 0; i < k; i++) masks[j * c + (c - 1 - i)] = 1;
          });
          masks.fill(1, ks.length * c, (ks.length + 1) * c);
          for (let i = 0; i < c; i += 2) masks[(ks.length + 1) * c + i] = 1;
          const m = ks.length + 2;
          const kind = outputKind(model);
          const plain = await tallyMasks(split, out, ds.labels, masks, m, kind, {
            pushdown: false,
          });
          const what = `${backend} ${name} ${ref.name}`;
          const before = tf.memory().numTensors;
          for (
            const opts of [{}, { pushdown: false }, { masking: "device" as const }, {
              imageBatch: 7,
              kBatch: 2,
            }]
          ) {
            assert.deepEqual(
              await tallyMasks(split, out, ds.labels, masks, m, kind, opts),
              plain,
              `${what} ${JSON.stringify(opts)}`,
            );
          }
          assert.equal(tf.memory().numTensors, before, `${what}: no tensor left behind`);
          // Chunk by chunk into the same tallies: the same sums, in the same order.
          const slice = (start: number, n: number) => ({
            ...out,
            data: out.data.subarray(
              start * out.height * out.width * c,
              (start + n) * out.height * out.width * c,
            ),
            count: n,
            carried: out.carried?.map((t) =>
              t.subarray(start * (t.length / out.count), (start + n) * (t.length / out.count))
            ),
          });
          const into = await tallyMasks(split, slice(0, 20), ds.labels.subarray(0, 20), masks, m, kind);
          await tallyMasks(split, slice(20, 30), ds.labels.subarray(20), masks, m, kind, { into });
          assert.deepEqual(into, plain, `${what} in two chunks`);
          if (split.pushdown) pushed++;
        }
      }
    }
  } finally {
    for (const [, model] of models) model.dispose();
    await setupBackend("cpu");
  }
  // The fixtures reach the pushed-down path.
  assert.ok(pushed > 0, `${pushed} pushed down`);
});

Deno.test("sensitivity --stop-below on 2 workers: the very CSVs, points and stops of the in-process run", async () => {
  const dir = await Deno.makeTempDir({ prefix: "prunescope_sens_stop_" });
  try {
    const run = (workers: string) =>
      workersRun(join(dir, `w${workers}`), workers, ["--fractions", "0:1:0.05", "--stop-below", "2"]);
    const expected = await assertSameRuns(await run("1"), await run("2"), ["points", "stopped"]);
    assert.equal(expected.length, 2);
    // The floor is crossed: some curve did stop early, so the stop itself went through the workers.
    assert.ok(expected.some(([, , stopped]) => stopped !== null), JSON.stringify(expected));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
