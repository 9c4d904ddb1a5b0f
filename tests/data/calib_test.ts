/**
 * Held-out data that ranks and chooses (--calib DATA, --calib-split N) on the tiny CIFAR-10
 * fixture (200 test images, 1,000 training images) and the tiny VGG-like model: the held-out
 * ranking and curve are exactly those of a sweep whose --data IS the held-out set (written here
 * as an .npz: the test images inverted, which rank differently, or the split `splitTrainVal`,
 * the split's one home, gives), fast == naive on both curves, and prune --calib-split picks the
 * K that the split's own curve gives.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { zipSync } from "fflate";
import { main } from "../../main.ts";
import { fixture, withTempDir } from "../_helpers.ts";
import { encodeNpy } from "../../src/data/numpy.ts";
import { loadTestSet, loadTrainSet } from "../../src/data/cifar10.ts";
import { splitTrainVal } from "../../src/train/trainer.ts";
import { largestKWithin } from "../../src/sweep/summary.ts";
import type { SweepPoint } from "../../src/types.ts";

const MODEL = fixture("models/tiny-bn/model.json");
const DATA = fixture("cifar10-tiny");
const N = 300;

interface SweepJson {
  results: SweepPoint[];
  series: { order: number[] }[];
  bands: { points: number; k: number; chosenOn: string; testAccuracy: number }[];
  calib?: { source: string; images: number; results: SweepPoint[] };
}

async function sweep(out: string, args: string[]): Promise<SweepJson> {
  const code = await main(["sweep", "--model", MODEL, "--backend", "wasm", "--out", out, ...args]);
  assert.equal(code, 0, args.join(" "));
  return JSON.parse(await Deno.readTextFile(join(out, "sweep.json")));
}

/** The held-out split as an .npz, made independently of the CLI's path to it. */
async function splitNpz(path: string, seed = 1): Promise<void> {
  const { val } = splitTrainVal(await loadTrainSet(DATA), N, seed);
  await Deno.writeFile(
    path,
    zipSync({
      "x_test.npy": encodeNpy(val.images as Uint8Array, "u1", [val.count, 32, 32, 3]),
      "y_test.npy": encodeNpy(val.labels, "u1", [val.count]),
    }),
  );
}

const correct = (ps: SweepPoint[]) => ps.map((p) => p.correct);

/** The test images with their colours inverted (255 - x), as an .npz: a set that ranks differently. */
async function invertedNpz(path: string): Promise<void> {
  const test = await loadTestSet(DATA);
  const x = (test.images as Uint8Array).map((v) => 255 - v);
  await Deno.writeFile(
    path,
    zipSync({
      "x_test.npy": encodeNpy(x, "u1", [test.count, 32, 32, 3]),
      "y_test.npy": encodeNpy(test.labels, "u1", [test.count]),
    }),
  );
}

Deno.test("calib: --calib DATA ranks and chooses on DATA (its own sweep's ranking and curve), the test set reported; fast == naive", async () => {
  await withTempDir(async (dir) => {
    const npz = join(dir, "inverted.npz");
    await invertedNpz(npz);
    const held = await sweep(join(dir, "held"), ["--data", DATA, "--calib", npz]);
    const onCalib = await sweep(join(dir, "on-calib"), ["--data", npz]);
    const lab = await sweep(join(dir, "lab"), ["--data", DATA]);

    // The ranking and the held-out curve are the calib data's own, and not the test set's ranking.
    assert.deepEqual(held.series[0].order, onCalib.series[0].order);
    assert.notDeepEqual(held.series[0].order, lab.series[0].order);
    assert.equal(held.calib!.source, npz);
    assert.deepEqual(correct(held.calib!.results), correct(onCalib.results));
    assert.equal(held.results[0].total, 200);
    assert.deepEqual(held.results[0], lab.results[0]); // K = 0: the same test images
    // The bands are read off the held-out curve and say so; the lab's off the test curve.
    for (const b of held.bands) {
      assert.equal(b.chosenOn, "calib");
      assert.equal(b.k, largestKWithin(onCalib.results, b.points));
      assert.equal(b.testAccuracy, held.results.find((p) => p.k === b.k)!.accuracy);
    }
    for (const b of lab.bands) {
      assert.equal(b.chosenOn, "test");
      assert.equal(b.k, largestKWithin(lab.results, b.points));
    }
    const naive = await sweep(join(dir, "naive"), ["--data", DATA, "--calib", npz, "--naive"]);
    assert.deepEqual(correct(naive.results), correct(held.results));
    assert.deepEqual(correct(naive.calib!.results), correct(held.calib!.results));
  });
});

Deno.test("calib: --calib-split N holds N training images out with splitTrainVal: == --data of those images", async () => {
  await withTempDir(async (dir) => {
    const npz = join(dir, "split.npz");
    await splitNpz(npz);
    const held = await sweep(join(dir, "held"), ["--data", DATA, "--calib-split", String(N)]);
    const onSplit = await sweep(join(dir, "on-split"), ["--data", npz]);
    assert.deepEqual(held.series[0].order, onSplit.series[0].order);
    assert.equal(held.calib!.images, N);
    assert.equal(held.calib!.source, `split ${N} of the training files of ${DATA}, seed 1`);
    assert.deepEqual(correct(held.calib!.results), correct(onSplit.results));
    // sweep.csv carries the held-out curve beside the test one.
    const csv = (await Deno.readTextFile(join(dir, "held", "sweep.csv"))).trim().split("\n");
    assert.deepEqual(csv[0].split(","), [
      "k",
      "channel_pruned_at_k",
      "accuracy",
      "correct",
      "total",
      "calib_accuracy",
      "calib_correct",
      "calib_total",
    ]);
    assert.equal(Number(csv[1].split(",")[6]), held.calib!.results[0].correct);
  });
});

Deno.test("calib: prune --calib-split --max-drop takes the K of the split's curve and scores the test set", async () => {
  await withTempDir(async (dir) => {
    const npz = join(dir, "split.npz");
    await splitNpz(npz, 3);
    const onSplit = await sweep(join(dir, "on-split"), ["--data", npz]);
    const held = await sweep(join(dir, "held"), ["--data", DATA, "--calib", npz]);
    const out = join(dir, "prune");
    const code = await main([
      "prune",
      "--model",
      MODEL,
      "--data",
      DATA,
      "--calib-split",
      String(N),
      "--calib-seed",
      "3",
      "--max-drop",
      "1",
      "--backend",
      "wasm",
      "--latency-runs",
      "0",
      "--out",
      out,
    ]);
    assert.equal(code, 0);
    const report = JSON.parse(await Deno.readTextFile(join(out, "compression.json")));
    const channels = onSplit.series[0].order.length;
    const k = Math.min(largestKWithin(onSplit.results, 1), channels - 1);
    assert.equal(report.selection.chosenOn, "held-out");
    assert.deepEqual(report.calib, {
      source: `split ${N} of the training files of ${DATA}, seed 3`,
      images: N,
    });
    assert.equal(report.selection.k.conv2, k);
    // Scored on the test set: the masked count is the test curve's at that K under the held-out ranking.
    assert.equal(report.masked.correct, held.results.find((p) => p.k === k)!.correct);
    assert.equal(report.before.accuracy, held.results[0].accuracy);
  });
});
