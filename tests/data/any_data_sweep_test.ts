/**
 * The sweep on data other than CIFAR-10 binary: a 28x28x1 model on IDX and .npz fixtures, a
 * 100-class model on CIFAR-100 binary, each with the fast (exact) engine equal to the naive
 * method at every K; and, with ../shared, the CIFAR-10 test set written as a PNG image folder and
 * as an .npz giving the binary files' correct count at every K.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { unzipSync, zipSync } from "fflate";
import { encode as encodePng } from "fast-png";
import { main } from "../../main.ts";
import { fixture, SHARED, withTempDir } from "../_helpers.ts";
import { encodeNpy } from "../../src/data/numpy.ts";
import { CLASS_NAMES, loadTestSet } from "../../src/data/cifar10.ts";

async function sweepCounts(out: string, args: string[]): Promise<number[]> {
  const code = await main(["sweep", ...args, "--backend", "wasm", "--out", out]);
  assert.equal(code, 0, args.join(" "));
  const json = JSON.parse(await Deno.readTextFile(join(out, "sweep.json")));
  return json.results.map((r: { correct: number }) => r.correct);
}

const CASES: [string, string, string[]][] = [
  ["28x28x1 model on IDX (.gz)", "models/tiny-gray/model.json", ["--data", fixture("data/fashion-tiny")]],
  ["28x28x1 model on .npz", "models/tiny-gray/model.json", ["--data", fixture("data/gray-tiny.npz")]],
  ["100-class model on CIFAR-100 binary", "models/tiny-c100/model.json", [
    "--data",
    fixture("data/cifar100-tiny"),
  ]],
];

for (const [name, model, data] of CASES) {
  Deno.test(`sweep, any data: ${name}: fast == naive at every K`, async () => {
    await withTempDir(async (dir) => {
      const args = ["--model", fixture(model), ...data];
      const fast = await sweepCounts(join(dir, "fast"), args);
      const naive = await sweepCounts(join(dir, "naive"), [...args, "--naive"]);
      assert.equal(fast.length, 13); // conv2 has 12 channels: K = 0..12
      assert.deepEqual(fast, naive);
      assert.ok(new Set(fast).size > 1, `pruning never changed the count: ${fast}`);
    });
  });
}

Deno.test("sweep, any data: IDX and .npz of the same images give the same counts", async () => {
  await withTempDir(async (dir) => {
    const m = ["--model", fixture("models/tiny-gray/model.json")];
    assert.deepEqual(
      await sweepCounts(join(dir, "a"), [...m, "--data", fixture("data/fashion-tiny")]),
      await sweepCounts(join(dir, "b"), [...m, "--data", fixture("data/gray-tiny.npz")]),
    );
  });
});

Deno.test("sweep, any data: an .npy of images with its y_ sibling gives the .npz's counts; --labels-file too", async () => {
  await withTempDir(async (dir) => {
    const arrays = unzipSync(await Deno.readFile(fixture("data/gray-tiny.npz")));
    await Deno.writeFile(join(dir, "x_test.npy"), arrays["x_test.npy"]);
    await Deno.writeFile(join(dir, "y_test.npy"), arrays["y_test.npy"]);
    await Deno.writeFile(join(dir, "labels.npy"), arrays["y_test.npy"]);
    const m = ["--model", fixture("models/tiny-gray/model.json")];
    const npz = await sweepCounts(join(dir, "a"), [...m, "--data", fixture("data/gray-tiny.npz")]);
    assert.deepEqual(await sweepCounts(join(dir, "b"), [...m, "--data", join(dir, "x_test.npy")]), npz);
    await Deno.remove(join(dir, "y_test.npy"));
    assert.deepEqual(
      await sweepCounts(join(dir, "c"), [
        ...m,
        "--data",
        join(dir, "x_test.npy"),
        "--labels-file",
        join(dir, "labels.npy"),
      ]),
      npz,
    );
  });
});

const hasShared = await Deno.stat(join(SHARED, "cifar10", "test_batch.bin")).then(() => true, () => false);

Deno.test({
  name:
    "sweep, any data: ../shared's CIFAR-10 test set as PNG folders and as .npz: the binary's counts at every K",
  ignore: !hasShared,
  async fn() {
    await withTempDir(async (dir) => {
      const bin = join(SHARED, "cifar10");
      const test = await loadTestSet(bin);
      // Class folders named so that Keras' alphanumeric order is CIFAR-10's label order.
      const folders = CLASS_NAMES.map((n, i) => join(dir, "png", `${i}_${n}`));
      for (const f of folders) await Deno.mkdir(f, { recursive: true });
      for (let i = 0; i < test.count; i++) {
        const data = test.images.subarray(i * 3072, (i + 1) * 3072) as Uint8Array;
        const png = encodePng({ width: 32, height: 32, data, channels: 3, depth: 8 });
        await Deno.writeFile(join(folders[test.labels[i]], `${String(i).padStart(5, "0")}.png`), png);
      }
      await Deno.writeFile(
        join(dir, "test.npz"),
        zipSync({
          "x_test.npy": encodeNpy(test.images as Uint8Array, "u1", [test.count, 32, 32, 3]),
          "y_test.npy": encodeNpy(test.labels, "u1", [test.count]),
        }),
      );
      const m = ["--model", fixture("models/tiny-bn/model.json"), "--layer", "conv2"];
      const binary = await sweepCounts(join(dir, "o1"), [...m, "--data", bin]);
      assert.deepEqual(await sweepCounts(join(dir, "o2"), [...m, "--data", join(dir, "test.npz")]), binary);
      // The folder holds the images in another order (by class), which changes no count.
      assert.deepEqual(await sweepCounts(join(dir, "o3"), [...m, "--data", join(dir, "png")]), binary);
    });
  },
});
