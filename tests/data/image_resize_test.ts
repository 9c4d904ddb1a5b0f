/**
 * Image folders read with `resize`: each image is resized as it is decoded and held as uint8 at
 * the model's size (the float32 resize rounded to the nearest byte), never as a float set; the
 * tensors made per batch equal the rounded float resize's, within half a level of the unrounded
 * one; and the CLI shows a progress bar while it decodes.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { encode as encodePng } from "fast-png";
import * as tf from "@tensorflow/tfjs";
import { loadImageFolder, resizeBilinear, resizeToBytes } from "../../src/data/image_folder.ts";
import { imagesToTensor } from "../../src/data/tensors.ts";
import type { ImageShape, Preprocessing } from "../../src/types.ts";
import { fixture, runMain, withTempDir } from "../_helpers.ts";

/** Seeded pixels (an LCG), all of 0..255. */
function pixels(n: number, seed: number): Uint8Array {
  let s = seed >>> 0;
  return Uint8Array.from({ length: n }, () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) >>> 24);
}

Deno.test("resizeBilinear and resizeToBytes on a 2x2 image: the values worked by hand, halves rounded up", () => {
  const grey = { data: new Uint8Array([0, 100, 200, 255]), shape: { height: 2, width: 2, channels: 1 } };
  // Half-pixel centres, scale 1/2: source rows/columns 0, 0.25, 0.75, 1 (clamped at both ends).
  const float = [
    [0, 25, 75, 100],
    [50, 72.1875, 116.5625, 138.75],
    [150, 166.5625, 199.6875, 216.25],
    [200, 213.75, 241.25, 255],
  ].flat();
  const up = resizeBilinear(grey, 4, 4);
  assert.ok(up.data instanceof Float32Array);
  assert.deepEqual([...up.data], float);
  const bytes = resizeToBytes(grey, 4, 4);
  assert.ok(bytes.data instanceof Uint8Array);
  assert.deepEqual(bytes.shape, { height: 4, width: 4, channels: 1 });
  assert.deepEqual([...bytes.data], [
    0,
    25,
    75,
    100,
    50,
    72,
    117,
    139,
    150,
    167,
    200,
    216,
    200,
    214,
    241,
    255,
  ]);
  // 0.5 -> 1 and 1.5 -> 2: halves go up.
  const ramp = { data: new Uint8Array([0, 2]), shape: { height: 1, width: 2, channels: 1 } };
  assert.deepEqual([...resizeBilinear(ramp, 1, 4).data], [0, 0.5, 1.5, 2]);
  assert.deepEqual([...resizeToBytes(ramp, 1, 4).data], [0, 1, 2, 2]);
  // The target size already: the same bytes, no copy.
  assert.equal(resizeToBytes(grey, 2, 2).data, grey.data);
});

Deno.test("image folder with resize: uint8 at the model's size, per-batch tensors = the rounded float resize", async () => {
  await tf.setBackend("cpu");
  await withTempDir(async (root) => {
    // Mixed sizes: 40x40 (the common case), 45x37 (an odd ratio, up and down), 32x32 (kept as is).
    const sizes: [string, number, number][] = [
      ["a", 40, 40],
      ["a", 45, 37],
      ["a", 40, 40],
      ["b", 32, 32],
      ["b", 40, 40],
      ["b", 24, 40],
      ["b", 40, 40],
    ];
    const written: { data: Uint8Array; h: number; w: number }[] = [];
    const counts: Record<string, number> = {};
    for (const [i, [cls, h, w]] of sizes.entries()) {
      await Deno.mkdir(join(root, cls), { recursive: true });
      const data = pixels(h * w * 3, 7 + i);
      const n = counts[cls] = (counts[cls] ?? 0) + 1;
      await Deno.writeFile(
        join(root, cls, `${n}.png`),
        encodePng({ width: w, height: h, data, channels: 3 }),
      );
      written.push({ data, h, w });
    }
    const target: ImageShape = { height: 32, width: 32, channels: 3 };
    const set = await loadImageFolder(root, { target, resize: true });
    assert.ok(set.images instanceof Uint8Array, `held as ${set.images.constructor.name}`);
    assert.equal(set.images.byteLength, sizes.length * 32 * 32 * 3);
    assert.deepEqual([...set.labels], [0, 0, 0, 1, 1, 1, 1]);
    const size = 32 * 32 * 3;
    assert.deepEqual([...set.images.subarray(3 * size, 4 * size)], [...written[3].data]); // 32x32: untouched

    // Against TF.js' own bilinear resize (float32, half-pixel centres): within half a level, and
    // the rounding is real (some values move by more than a tenth).
    let moved = 0;
    for (const [i, { data, h, w }] of written.entries()) {
      const ref = tf.tidy(() =>
        tf.image.resizeBilinear(tf.tensor3d(data, [h, w, 3], "float32"), [32, 32], false, true).dataSync()
      );
      const ours = set.images.subarray(i * size, (i + 1) * size);
      for (let k = 0; k < size; k++) {
        const d = Math.abs(ours[k] - ref[k]);
        assert.ok(d <= 0.5 + 1e-3, `image ${i} value ${k}: ${ours[k]} vs ${ref[k]}`);
        if (d > 0.1) moved++;
      }
    }
    assert.ok(moved > 1000, `only ${moved} values were rounded`);

    // Per batch (3 at a time, across the class boundary): the model's input is the float32 resize
    // rounded to bytes, then preprocessed; within 0.5 * scale / std of the unrounded input.
    const prep: Preprocessing = { scale: 1 / 255, mean: [0.49, 0.48, 0.45], std: [0.25, 0.24, 0.26] };
    const pre = (v: number, c: number) =>
      Math.fround(
        Math.fround(Math.fround(v * Math.fround(prep.scale)) - Math.fround(prep.mean[c])) /
          Math.fround(prep.std[c]),
      );
    for (let start = 0; start < set.count; start += 3) {
      const got = tf.tidy(() => imagesToTensor(set, start, 3, prep).dataSync());
      const n = Math.min(3, set.count - start);
      assert.equal(got.length, n * size);
      for (let j = 0; j < n; j++) {
        const { data, h, w } = written[start + j];
        const float = resizeBilinear({ data, shape: { height: h, width: w, channels: 3 } }, 32, 32).data;
        for (let k = 0; k < size; k++) {
          const c = k % 3;
          const want = pre(Math.min(255, Math.max(0, Math.round(float[k]))), c);
          assert.equal(got[j * size + k], want, `image ${start + j} value ${k}`);
          const bound = 0.5 * prep.scale / prep.std[c] + 1e-5;
          assert.ok(Math.abs(got[j * size + k] - pre(float[k], c)) <= bound);
        }
      }
    }
  });
});

Deno.test("sweep on an image folder with --resize: a 'decode images' progress bar, then the resize said", async () => {
  await withTempDir(async (dir) => {
    for (let i = 0; i < 20; i++) {
      const cls = `c${i % 10}`; // the model's 10 classes, 2 images each
      await Deno.mkdir(join(dir, "data", cls), { recursive: true });
      const png = encodePng({ width: 40, height: 40, data: pixels(40 * 40 * 3, 100 + i), channels: 3 });
      await Deno.writeFile(join(dir, "data", cls, `${i}.png`), png);
    }
    const out = await runMain([
      "sweep",
      "--model",
      fixture("models/tiny-bn/model.json"),
      "--layer",
      "conv2",
      "--data",
      join(dir, "data"),
      "--resize",
      "--backend",
      "wasm",
      "--out",
      join(dir, "out"),
    ], { write: dir, stdout: "null", progress: true });
    const err = out.stderr;
    assert.equal(out.code, 0, err);
    assert.match(err, /^decode images \[#{24}\] {2}20\/20 img {2}100% /m);
    assert.match(
      err,
      /^data: .* 20 images of 32x32x3 in 10 classes, resized bilinearly to 32x32x3, rounded to bytes\)/m,
    );
  });
});
