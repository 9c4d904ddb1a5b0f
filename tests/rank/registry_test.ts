/**
 * The criteria registry (names, errors, one ranking per criterion and seed) and the
 * multi-criterion `sweep` command: its files and columns, and the fast path against --naive.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs";
import { setupBackend } from "../../src/backend.ts";
import { UserError } from "../../src/core/errors.ts";
import { pickLayer } from "../../src/model/layers.ts";
import { splitModel } from "../../src/model/split.ts";
import { channelStats } from "../../src/rank/activation.ts";
import type { LayerOutputs } from "../../src/activations/layer_outputs.ts";
import { computeRankings, CRITERIA, criterionByName, parseCriteria } from "../../src/rank/registry.ts";
import { summarizeRuns, verdictsAt } from "../../src/report/compare.ts";
import { main } from "../../main.ts";
import { DEFAULT_PREPROCESSING, type SweepPoint } from "../../src/types.ts";
import { exists } from "../_helpers.ts";

await setupBackend("cpu");
Deno.env.set("PRUNESCOPE_NO_PROGRESS", "1");

const TINY_BN = "fixtures/models/tiny-bn/model.json";
const DATA = "fixtures/cifar10-tiny";

Deno.test("parseCriteria: names in order; unknown, repeated or no names are UserErrors listing the criteria", () => {
  assert.deepEqual(parseCriteria("mean, apoz,l1,l2,bn-gamma,taylor,random,largest").map((c) => c.name), [
    "mean",
    "apoz",
    "l1",
    "l2",
    "bn-gamma",
    "taylor",
    "random",
    "largest",
  ]);
  assert.throws(
    () => parseCriteria("mean,l3"),
    (e: unknown) =>
      e instanceof UserError && e.message.includes("'l3'") &&
      CRITERIA.every((c) => e.message.includes(c.name)),
  );
  assert.throws(
    () => parseCriteria("mean,mean"),
    (e: unknown) => e instanceof UserError && /twice/.test(e.message),
  );
  assert.throws(() => parseCriteria(" , "), UserError);
  assert.equal(criterionByName("L1").name, "l1");
});

Deno.test("computeRankings: one ranking per criterion, one per seed for random, each as its pure function ranks", async () => {
  const m = tf.sequential();
  m.add(
    tf.layers.conv2d({
      name: "conv",
      inputShape: [32, 32, 3],
      filters: 3,
      kernelSize: 1,
      activation: "relu",
    }),
  );
  m.add(tf.layers.batchNormalization({ name: "bn" }));
  m.add(tf.layers.globalAveragePooling2d({}));
  m.add(tf.layers.dense({ units: 10, activation: "softmax" }));
  const layer = pickLayer(m, "conv");
  // filters over cin: 0 = (3, 0, 0) L1 3 L2 3; 1 = (2, -2, 0) L1 4 L2 2.83; 2 = (1, 1, 0) L1 2 L2 1.41
  const kernel = tf.tensor4d([3, 2, 1, 0, -2, 1, 0, 0, 0], [1, 1, 3, 3]);
  const bias = tf.zeros([3]);
  m.getLayer("conv").setWeights([kernel, bias]);
  const bn = m.getLayer("bn");
  const gamma = tf.tensor1d([0.2, 3, -1]);
  bn.setWeights([gamma, ...bn.getWeights().slice(1)]);
  tf.dispose([kernel, bias, gamma]);
  // Layer outputs by hand (1 image, 1 position): means (0.5, 0, 2), zeros only in channel 1.
  const out: LayerOutputs = {
    data: Float32Array.from([0.5, 0, 2]),
    count: 1,
    height: 1,
    width: 1,
    channels: 3,
  };
  const split = splitModel(m, layer);
  const rankings = await computeRankings(parseCriteria("mean,apoz,l1,l2,bn-gamma,random,largest"), {
    model: m,
    layer,
    split,
    stats: channelStats(out, 0),
    prep: DEFAULT_PREPROCESSING,
    outputKind: "probabilities",
  }, 3);
  const orders = rankings.map((r) => `${r.ranking.criterion}${r.seed ?? ""}:${r.ranking.order.join("")}`);
  assert.deepEqual(orders.filter((o) => !o.startsWith("random")), [
    "mean:102",
    "apoz:102",
    "l1:201",
    "l2:210",
    "bn-gamma:021",
    "largest:201",
  ]);
  const randoms = rankings.filter((r) => r.criterion.name === "random");
  assert.deepEqual(randoms.map((r) => r.seed), [1, 2, 3]);
  for (const r of randoms) assert.deepEqual([...r.ranking.order].sort(), [0, 1, 2]);
  m.dispose();
});

Deno.test("summarizeRuns / verdictsAt: mean, min and max over seeds; the best criterion at a fraction", () => {
  const pts = (accs: number[]): SweepPoint[] =>
    accs.map((accuracy, k) => ({ k, channelPrunedAtK: null, correct: 0, total: 1, accuracy }));
  const ranking = { criterion: "x", order: [0, 1, 2, 3], scores: new Float64Array(4) };
  const runs = [
    { criterion: "mean", label: "mean", ranking, results: pts([1, 0.9, 0.8, 0.5, 0.1]) },
    { criterion: "random", label: "random", seed: 1, ranking, results: pts([1, 0.6, 0.5, 0.2, 0.1]) },
    { criterion: "random", label: "random", seed: 2, ranking, results: pts([1, 0.8, 0.9, 0.4, 0.1]) },
  ];
  const [mean, random] = summarizeRuns(runs);
  assert.equal(mean.runs, 1);
  assert.deepEqual(random.seeds, [1, 2]);
  assert.deepEqual(random.points[2], { k: 2, accuracy: 0.7, min: 0.5, max: 0.9 });
  const verdicts = verdictsAt([mean, random], [0.25, 0.5], 4);
  assert.deepEqual(verdicts.map((v) => [v.k, v.best]), [[1, ["mean"]], [2, ["mean"]]]);
});

async function readCsv(path: string): Promise<string[][]> {
  const text = await Deno.readTextFile(path);
  return text.trimEnd().split("\n").map((l) => l.split(","));
}

async function runSweep(args: string[]): Promise<number> {
  return await main(["sweep", "--model", TINY_BN, "--data", DATA, "--backend", "cpu", ...args]);
}

Deno.test({
  name: "sweep --criterion: sweep.csv columns per criterion, details, rankings, JSON series; --naive agrees",
  ignore: !(await exists(TINY_BN)),
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "prunescope-criteria-" });
    try {
      const args = ["--limit", "50", "--k", "0:16:4", "--criterion", "mean,l1,random", "--seeds", "3"];
      assert.equal(await runSweep([...args, "--out", join(dir, "fast")]), 0);
      const fast = join(dir, "fast");
      const sweep = await readCsv(join(fast, "sweep.csv"));
      assert.deepEqual(sweep[0], [
        "k",
        "accuracy_mean",
        "accuracy_l1",
        "accuracy_random_mean",
        "accuracy_random_min",
        "accuracy_random_max",
      ]);
      assert.deepEqual(sweep.slice(1).map((r) => r[0]), ["0", "4", "8", "12", "16"]);
      // The wide table agrees with the detailed ones.
      const meanDetail = await readCsv(join(fast, "sweep_mean.csv"));
      assert.deepEqual(meanDetail[0], ["k", "channel_pruned_at_k", "accuracy", "correct", "total"]);
      assert.deepEqual(sweep.slice(1).map((r) => r[1]), meanDetail.slice(1).map((r) => r[2]));
      const randomDetail = await readCsv(join(fast, "sweep_random.csv"));
      assert.deepEqual(randomDetail[0], ["seed", "k", "channel_pruned_at_k", "accuracy", "correct", "total"]);
      assert.equal(randomDetail.length - 1, 3 * 5);
      sweep.slice(1).forEach((row, i) => {
        const accs = [1, 2, 3].map((s) =>
          Number(randomDetail.find((r) => r[0] === `${s}` && r[1] === row[0])![3])
        );
        assert.ok(Math.abs(Number(row[3]) - accs.reduce((a, b) => a + b) / 3) < 1e-12, `row ${i}`);
        assert.equal(Number(row[4]), Math.min(...accs));
        assert.equal(Number(row[5]), Math.max(...accs));
      });
      // K = 0 is the unpruned model for every criterion; K = C leaves nothing, the same for all.
      for (const row of [sweep[1], sweep[5]]) {
        const accs = row.slice(1).map(Number);
        assert.ok(Math.max(...accs) - Math.min(...accs) < 1e-12, `K = ${row[0]}: ${accs}`);
      }
      assert.deepEqual((await readCsv(join(fast, "ranking.csv")))[0], ["rank", "channel", "mean_activation"]);
      assert.deepEqual((await readCsv(join(fast, "ranking_l1.csv")))[0], ["rank", "channel", "l1_norm"]);
      assert.deepEqual((await readCsv(join(fast, "ranking_random.csv")))[0], [
        "seed",
        "rank",
        "channel",
        "random_key",
      ]);
      const json = JSON.parse(await Deno.readTextFile(join(fast, "sweep.json")));
      assert.deepEqual(json.criteria, ["mean", "l1", "random"]);
      assert.equal(json.series.length, 5);
      assert.ok(Array.isArray(json.deadChannels));
      const svg = await Deno.readTextFile(join(fast, "accuracy.svg"));
      for (const label of ["mean activation", "L1 norm", "random (3 seeds)"]) {
        assert.ok(svg.includes(label), label);
      }

      // The literal lab method gives the same table for every criterion and seed.
      assert.equal(await runSweep([...args, "--naive", "--out", join(dir, "naive")]), 0);
      assert.deepEqual(await readCsv(join(dir, "naive", "sweep.csv")), sweep);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "sweep with one criterion keeps the single-criterion sweep.csv columns; unknown criterion is a UserError",
  ignore: !(await exists(TINY_BN)),
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "prunescope-criteria-" });
    try {
      assert.equal(await runSweep(["--limit", "40", "--k", "0,8", "--criterion", "apoz", "--out", dir]), 0);
      const sweep = await readCsv(join(dir, "sweep.csv"));
      assert.deepEqual(sweep[0], ["k", "channel_pruned_at_k", "accuracy", "correct", "total"]);
      assert.deepEqual(await readCsv(join(dir, "sweep_apoz.csv")), sweep);
      assert.deepEqual((await readCsv(join(dir, "ranking.csv")))[0], ["rank", "channel", "apoz"]);
      assert.equal(await runSweep(["--criterion", "mean,nope", "--out", dir]), 1);
      // conv1 is followed by a pooling layer: bn-gamma is refused before any work.
      assert.equal(await runSweep(["--layer", "conv1", "--criterion", "bn-gamma", "--out", dir]), 1);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
