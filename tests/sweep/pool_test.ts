/**
 * The worker pool: two workers give bit-identical layer outputs and the very counts of one
 * process, whichever way the sweep is shared, for a model.json model and a Keras one; the work
 * splitting is checked by hand.
 */
import assert from "node:assert/strict";
import { setupBackend } from "../../src/backend.ts";
import { loadTestSet } from "../../src/data/cifar10.ts";
import { loadModel } from "../../src/model/load.ts";
import { pickLayer } from "../../src/model/layers.ts";
import { splitModel } from "../../src/model/split.ts";
import { computeLayerOutputs } from "../../src/activations/layer_outputs.ts";
import { rankByMean } from "../../src/rank/criteria.ts";
import { sweepFast } from "../../src/sweep/engines/masked.ts";
import { balancedRanges, evenRanges } from "../../src/parallel/pool.ts";
import { SweepPool } from "../../src/sweep/engines/pool.ts";
import { fixture } from "../_helpers.ts";

Deno.test("evenRanges and balancedRanges", () => {
  assert.deepEqual(evenRanges(10, 3), [[0, 3], [3, 6], [6, 10]]);
  assert.deepEqual(evenRanges(1, 2), [[0, 0], [0, 1]]);
  // Step 0 costs the first-step price (100); steps 1..3 are cheap, 4 and 5 dear: 0..3 vs 4..5.
  assert.deepEqual(balancedRanges([100, 1, 1, 1, 100, 100], 2, 100), [[0, 4], [4, 6]]);
  // Equal costs: halves. More parts than steps: the extra parts are empty.
  assert.deepEqual(balancedRanges([10, 10, 10, 10], 2, 10), [[0, 2], [2, 4]]);
  assert.deepEqual(balancedRanges([5, 5], 3, 5), [[0, 1], [1, 2], [2, 2]]);
  // Cheap steps (channels silent on every image) cost nothing: the best split's largest range costs 100.
  const costs = [50, 50, 0, 0, 0, 0, 0, 50];
  const ranges = balancedRanges(costs, 2, 50);
  const rangeCost = ([s, e]: [number, number]) => 50 + costs.slice(s + 1, e).reduce((a, b) => a + b, 0);
  assert.equal(ranges[0][0], 0);
  assert.equal(ranges[1][1], 8);
  assert.equal(ranges[0][1], ranges[1][0]);
  assert.equal(Math.max(...ranges.map(rangeCost)), 100);
  assert.deepEqual(balancedRanges([7], 1, 7), [[0, 1]]);
});

for (
  const [name, path] of [["tiny-bn", "models/tiny-bn/model.json"], [
    "Keras tiny_keras2.h5",
    "keras/tiny_keras2.h5",
  ]]
) {
  Deno.test(`SweepPool on ${name}: 2 workers give one process's outputs and counts`, async () => {
    const backend = await setupBackend("wasm");
    const { model, preprocessing } = await loadModel(fixture(path));
    const ds = await loadTestSet(fixture("cifar10-tiny"), 150);
    const layer = pickLayer(model);
    const split = splitModel(model, layer);
    const out = await computeLayerOutputs(split, ds, preprocessing);
    const ranking = rankByMean(out);
    const want = await sweepFast(split, out, ds.labels, ranking);
    const pool = await SweepPool.start(model, layer, { workers: 2, backend });
    try {
      assert.equal(pool.size, 2);
      assert.equal(pool.backend, "wasm");
      const progress: number[] = [];
      const pooled = await pool.layerOutputs(ds, preprocessing, {
        batch: 32,
        onProgress: (n) => progress.push(n),
      });
      assert.equal(progress[progress.length - 1], 150);
      assert.deepEqual(
        [pooled.count, pooled.height, pooled.width, pooled.channels],
        [out.count, out.height, out.width, out.channels],
      );
      assert.ok(pooled.data.every((v, i) => Object.is(v, out.data[i])), "layer outputs differ");
      const got = await pool.sweep(pooled, ds.labels, ranking);
      assert.deepEqual(got, want);
      const byK = await pool.sweep(pooled, ds.labels, ranking, { split: "k" });
      assert.deepEqual(byK, want);
      // Outputs computed elsewhere are sent to the workers; a K subset; the algebra path.
      const subset = await pool.sweep(out, ds.labels, ranking, { kValues: [3, 0, layer.channels] });
      assert.deepEqual(subset, [want[0], want[3], want[layer.channels]]);
      const algebra = await pool.sweep(out, ds.labels, ranking, { engine: "algebra", split: "k" });
      assert.deepEqual(algebra.map((p) => p.correct), want.map((p) => p.correct));
    } finally {
      pool.close();
    }
  });
}

Deno.test("SweepPool: a layer the algebra cannot go through is one clear error", async () => {
  const backend = await setupBackend("wasm");
  const { model, preprocessing } = await loadModel(fixture("models/tiny-func/model.json"));
  const ds = await loadTestSet(fixture("cifar10-tiny"), 20);
  const layer = pickLayer(model, "conv2");
  const pool = await SweepPool.start(model, layer, { workers: 2, backend });
  try {
    const out = await pool.layerOutputs(ds, preprocessing);
    await assert.rejects(
      pool.sweep(out, ds.labels, rankByMean(out), { engine: "algebra" }),
      (e: Error) => e.name === "UserError" && /--algebra does not apply after conv2/.test(e.message),
    );
  } finally {
    pool.close();
  }
});

Deno.test("sweep command --workers 2: the very files of --workers 1, and no worker left running", async () => {
  const { run } = await import("../../src/commands/sweep.ts");
  const dir = await Deno.makeTempDir({ prefix: "prunescope_workers_" });
  try {
    const args = (workers: string) => [
      "--model",
      fixture("models/tiny-nobn/model.json"),
      "--data",
      fixture("cifar10-tiny"),
      "--limit",
      "80",
      "--backend",
      "wasm",
      "--workers",
      workers,
      "--out",
      `${dir}/w${workers}`,
    ];
    const log = console.log;
    console.log = () => {};
    try {
      await run(args("1"));
      await run(args("2"));
    } finally {
      console.log = log;
    }
    for (const file of ["sweep.csv", "ranking.csv"]) {
      assert.equal(
        await Deno.readTextFile(`${dir}/w2/${file}`),
        await Deno.readTextFile(`${dir}/w1/${file}`),
        file,
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
