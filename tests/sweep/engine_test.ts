/**
 * One interface for every engine (src/sweep/engine.ts): each engine opened by name gives the
 * naive method's counts on the fixture (the algebra within its documented near-ties), in one
 * process and on two workers, with one progress style that ends at its total.
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
import { DEFAULT_PREPROCESSING } from "../../src/types.ts";
import { fixture } from "../_helpers.ts";

Deno.test("openEngine: every engine by name, one process and two workers, the naive counts", async () => {
  await setupBackend("wasm");
  const { model, preprocessing: prep } = await loadModel(fixture("models/tiny-bn/model.json"));
  const data = await loadTestSet(fixture("cifar10-tiny"), 64);
  const layer = pickLayer(model);
  const split = await splitModelAsync(model, layer);
  const task = { model, layer, split, data, prep };
  const counts = new Map<string, number[]>();
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
    }
  }
  const naive = counts.get("naive/1")!;
  assert.equal(naive.length, layer.channels + 1);
  assert.deepEqual(counts.get("exact/1"), naive);
  assert.deepEqual(counts.get("exact/2"), naive);
});

Deno.test("openEngine: dense-kernel and algebra on a Dense head, the same counts as exact; refused where no Dense head follows", async () => {
  await setupBackend("wasm");
  const model = buildVgg({ width: 0.0625, seed: 2 });
  const data = await loadTestSet(fixture("cifar10-tiny"), 48);
  const prep = DEFAULT_PREPROCESSING;
  const layer = pickLayer(model);
  const split = await splitModelAsync(model, layer);
  const task = { model, layer, split, data, prep };
  const run = async (name: EngineName, workers = 1) => {
    using engine = await openEngine(name, task, { workers, backend: "wasm" });
    const outputs = await engine.layerOutputs();
    return (await engine.sweep(outputs, rankByMean(outputs), { kValues: [0, 3, 8, 16] })).map((p) =>
      p.correct
    );
  };
  const exact = await run("exact");
  assert.deepEqual(await run("dense-kernel"), exact);
  assert.deepEqual(await run("dense-kernel", 2), exact);
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
