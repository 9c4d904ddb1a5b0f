/**
 * One interface for every engine (src/sweep/engine.ts): each engine opened by name gives the
 * naive method's counts on the fixture (the algebra within its documented near-ties), in all and
 * per true class, in one process and on two workers, with one progress style that ends at its
 * total; the naive per-class counts are the diagonals of the confusion matrices (zeroed weights,
 * predicted class by class).
 */
import assert from "node:assert/strict";
import { setupBackend } from "../../src/backend.ts";
import { UserError } from "../../src/core/errors.ts";
import { loadTestSet } from "../../src/data/cifar10.ts";
import { loadModel } from "../../src/model/load.ts";
import { pickLayer } from "../../src/model/layers.ts";
import { splitModelAsync } from "../../src/model/split.ts";
import { rankByMean } from "../../src/rank/criteria.ts";
import { buildVgg } from "../../src/model/vgg.ts";
import { ENGINE_NAMES, type EngineName, openEngine } from "../../src/sweep/engine.ts";
import { sweepFast } from "../../src/sweep/engines/masked.ts";
import { confusionAtK } from "../../src/surgery/confusion.ts";
import { DEFAULT_PREPROCESSING, type SweepPoint } from "../../src/types.ts";
import { fixture } from "../_helpers.ts";

/** Each point's per-class counts (asserted present and summing to its count). */
function classCounts(points: SweepPoint[], classes: number): number[][] {
  return points.map((p) => {
    assert.ok(p.classCorrect, `K = ${p.k}: per-class counts`);
    assert.equal(p.classCorrect.length, classes, `K = ${p.k}: one count per class`);
    assert.equal(p.classCorrect.reduce((a, b) => a + b, 0), p.correct, `K = ${p.k}: they sum to correct`);
    return p.classCorrect;
  });
}

Deno.test("openEngine: every engine by name, one process and two workers, the naive counts in all and per class", async () => {
  await setupBackend("wasm");
  const { model, preprocessing: prep } = await loadModel(fixture("models/tiny-bn/model.json"));
  const data = await loadTestSet(fixture("cifar10-tiny"), 64);
  const layer = pickLayer(model);
  const split = await splitModelAsync(model, layer);
  const task = { model, layer, split, data, prep };
  const counts = new Map<string, number[]>();
  const byClass = new Map<string, number[][]>();
  const classes = model.outputs[0].shape[1] as number;
  let ranking0 = undefined as ReturnType<typeof rankByMean> | undefined;
  // tiny-bn has no Dense head for dense-kernel and algebra: those are tested on the VGG below.
  for (const name of ENGINE_NAMES.filter((n) => n === "exact" || n === "naive")) {
    for (const workers of name === "naive" ? [1] : [1, 2]) {
      using engine = await openEngine(name, task, { workers, backend: "wasm" });
      assert.equal(engine.name, name);
      assert.equal(engine.workers, workers);
      const outputs = await engine.layerOutputs();
      const ranking = rankByMean(outputs);
      let last = [0, -1];
      const points = await engine.sweep(outputs, ranking, { onProgress: (d, t) => (last = [d, t]) });
      assert.equal(last[0], last[1], `${name}: progress ends at its total`);
      counts.set(`${name}/${workers}`, points.map((p) => p.correct));
      byClass.set(`${name}/${workers}`, classCounts(points, classes));
      if (name === "exact" && workers === 1) {
        // The masked engine (exact on WebGPU) on the same outputs.
        const masked = await sweepFast(split, outputs, data.labels, ranking, { kBatch: 7 });
        byClass.set("masked", classCounts(masked, classes));
      }
      ranking0 ??= ranking;
    }
  }
  const naive = counts.get("naive/1")!;
  assert.equal(naive.length, layer.channels + 1);
  assert.deepEqual(counts.get("exact/1"), naive);
  assert.deepEqual(counts.get("exact/2"), naive);
  const naiveClasses = byClass.get("naive/1")!;
  for (const key of ["exact/1", "exact/2", "masked"]) {
    assert.deepEqual(byClass.get(key), naiveClasses, `${key}: the naive per-class counts for every K`);
  }
  // Independent of the engines: the diagonal of the zeroed model's confusion matrix.
  const ks = [0, 3, layer.channels >> 1, layer.channels];
  const names = Array.from({ length: classes }, (_, c) => `c${c}`);
  const matrices = await confusionAtK(model, layer, data, prep, ranking0!, ks, names);
  for (const m of matrices) {
    assert.deepEqual(naiveClasses[m.k], m.counts.map((row, c) => row[c]), `K = ${m.k}: the diagonal`);
  }
  assert.ok(naiveClasses[0].some((x) => x > 0), "some class is right at K = 0");
});

Deno.test("openEngine: dense-kernel and algebra on a Dense head, the same counts as exact; refused where no Dense head follows", async () => {
  await setupBackend("wasm");
  const model = buildVgg({ width: 0.0625, seed: 2 });
  const data = await loadTestSet(fixture("cifar10-tiny"), 48);
  const prep = DEFAULT_PREPROCESSING;
  const layer = pickLayer(model);
  const split = await splitModelAsync(model, layer);
  const task = { model, layer, split, data, prep };
  const perClass = new Map<string, number[][]>();
  const run = async (name: EngineName, workers = 1) => {
    using engine = await openEngine(name, task, { workers, backend: "wasm" });
    const outputs = await engine.layerOutputs();
    const points = await engine.sweep(outputs, rankByMean(outputs), { kValues: [0, 3, 8, 16] });
    perClass.set(`${name}/${workers}`, classCounts(points, 10));
    return points.map((p) => p.correct);
  };
  const exact = await run("exact");
  assert.deepEqual(await run("dense-kernel"), exact);
  assert.deepEqual(await run("dense-kernel", 2), exact);
  assert.deepEqual(await run("naive"), exact);
  for (const key of ["dense-kernel/1", "dense-kernel/2", "exact/1"]) {
    assert.deepEqual(perClass.get(key), perClass.get("naive/1"), `${key}: the naive per-class counts`);
  }
  const algebra = await run("algebra");
  algebra.forEach((c, i) => assert.ok(Math.abs(c - exact[i]) <= 1, `algebra ${algebra} vs exact ${exact}`));
  const early = pickLayer(model, "block1_conv1");
  const earlyTask = { ...task, layer: early, split: await splitModelAsync(model, early) };
  await assert.rejects(
    () => openEngine("algebra", earlyTask),
    (e) => e instanceof UserError && /--algebra/.test(e.message),
  );
  await assert.rejects(
    () => openEngine("nope" as EngineName, task),
    (e) => e instanceof UserError && /unknown sweep engine 'nope'/.test(e.message),
  );
  await assert.rejects(
    () => openEngine("exact", task, { workers: 2, backend: "webgpu" }),
    (e) => e instanceof UserError && /--workers runs on cpu or wasm only/.test(e.message),
  );
  model.dispose();
});
