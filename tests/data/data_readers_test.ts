/**
 * The readers of src/data/ on files this test writes: IDX (plain and gzipped), CIFAR-100 binary,
 * NumPy .npy/.npz, and PNG/JPEG image folders; every pixel and label checked, and each bad
 * input refused with a UserError that names the file.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { gzipSync, zipSync } from "fflate";
import { encode as encodePng } from "fast-png";
import jpeg from "jpeg-js";
import { UserError } from "../../src/core/errors.ts";
import { decodeIdx, FASHION_MNIST_CLASSES, loadIdxSet } from "../../src/data/idx.ts";
import { loadCifar100Set } from "../../src/data/cifar100.ts";
import { decodeNpy, encodeNpy, loadNpzSet } from "../../src/data/numpy.ts";
import { convertChannels, loadImageFolder, resizeBilinear } from "../../src/data/image_folder.ts";
import { gunzipBounded } from "../../src/data/gzip.ts";
import { openImageSet } from "../../src/data/open.ts";

async function withTemp(f: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "prunescope-readers-" });
  try {
    await f(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function rejects(p: Promise<unknown> | (() => unknown), pattern: RegExp): Promise<void> {
  await assert.rejects(async () => await (typeof p === "function" ? p() : p), (e: unknown) => {
    assert.ok(e instanceof UserError, `not a UserError: ${e}`);
    assert.match((e as Error).message, pattern);
    return true;
  });
}

function idx(dims: number[], data: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + 4 * dims.length + data.length);
  out.set([0, 0, 8, dims.length]);
  const v = new DataView(out.buffer);
  dims.forEach((d, i) => v.setUint32(4 + 4 * i, d, false));
  out.set(data, 4 + 4 * dims.length);
  return out;
}

const pixels = (n: number, seed: number) =>
  Uint8Array.from({ length: n }, (_, i) => (i * 37 + seed * 11) % 256);

Deno.test("IDX: a Fashion-MNIST-style folder, plain and gzipped, pixel for pixel", async () => {
  await withTemp(async (root) => {
    const dir = join(root, "fashion-mnist");
    await Deno.mkdir(dir);
    const imgs = pixels(5 * 28 * 28, 1), labels = new Uint8Array([9, 0, 3, 3, 7]);
    await Deno.writeFile(join(dir, "t10k-images-idx3-ubyte.gz"), gzipSync(idx([5, 28, 28], imgs)));
    await Deno.writeFile(join(dir, "t10k-labels-idx1-ubyte"), idx([5], labels));
    const set = await loadIdxSet(dir, "t10k");
    assert.deepEqual(set.shape, { height: 28, width: 28, channels: 1 });
    assert.equal(set.count, 5);
    assert.deepEqual([...set.images], [...imgs]);
    assert.deepEqual([...set.labels], [...labels]);
    assert.deepEqual(set.classNames, FASHION_MNIST_CLASSES);
    assert.equal((await loadIdxSet(dir, "t10k", 2)).count, 2);
    // a label file for a different count, a truncated image file, a missing split
    await Deno.writeFile(join(dir, "t10k-labels-idx1-ubyte"), idx([4], labels.subarray(0, 4)));
    await rejects(loadIdxSet(dir, "t10k"), /t10k-labels-idx1-ubyte holds 4 labels for 5 images/);
    await rejects(loadIdxSet(dir, "train"), /no train-images-idx3-ubyte/);
  });
  assert.throws(() => decodeIdx(idx([2, 3, 3], new Uint8Array(17)), "x"), /header says 2 x 3 x 3 = 18 bytes/);
  assert.throws(() => decodeIdx(new Uint8Array([1, 2, 8, 1]), "x"), /bad magic/);
});

Deno.test("gzip: a small bomb is refused once its output passes the cap", () => {
  const bomb = gzipSync(new Uint8Array(8 * 2 ** 20)); // 8 MiB of zeros in ~8 KB
  assert.ok(bomb.length < 20_000);
  assert.throws(() => gunzipBounded(bomb, 2 ** 20, "bomb.gz"), /bomb.gz inflates to more than 1048576 bytes/);
  assert.equal(gunzipBounded(bomb, 8 * 2 ** 20, "ok.gz").length, 8 * 2 ** 20);
});

Deno.test("CIFAR-100: fine and coarse labels, planes to HWC, names from the meta files", async () => {
  await withTemp(async (dir) => {
    const n = 3, rec = new Uint8Array(n * 3074);
    for (let i = 0; i < n; i++) {
      rec[i * 3074] = 19 - i; // coarse
      rec[i * 3074 + 1] = 99 - i * 10; // fine
      rec.set(pixels(3072, i), i * 3074 + 2);
    }
    await Deno.writeFile(join(dir, "test.bin"), rec);
    const fine = Array.from({ length: 100 }, (_, i) => `fine${i}`);
    await Deno.writeTextFile(join(dir, "fine_label_names.txt"), fine.join("\n") + "\n");
    const set = await loadCifar100Set(dir, "test");
    assert.deepEqual([...set.labels], [99, 89, 79]);
    assert.equal(set.classNames[99], "fine99");
    // pixel (row 1, col 2) of image 2: red plane byte 34, green 1024 + 34, blue 2048 + 34
    const p = pixels(3072, 2), at = 2 * 3072 + (1 * 32 + 2) * 3;
    assert.deepEqual([...set.images.subarray(at, at + 3)], [p[34], p[1024 + 34], p[2048 + 34]]);
    const coarse = await loadCifar100Set(dir, "test", "coarse");
    assert.deepEqual([...coarse.labels], [19, 18, 17]);
    assert.equal(coarse.classNames.length, 20);
    assert.equal(coarse.classNames[0], "class_0"); // no coarse_label_names.txt
    await Deno.writeFile(join(dir, "test.bin"), rec.subarray(0, 3074 * 2 + 5));
    await rejects(loadCifar100Set(dir, "test"), /not a whole number of 3,074-byte CIFAR-100 records/);
  });
});

Deno.test("npy/npz: uint8 and float32 images, integer and one-hot labels, the default keys", () => {
  const x = pixels(4 * 6 * 5 * 3, 3);
  const xs = [4, 6, 5, 3];
  const npz = zipSync({
    "x_test.npy": encodeNpy(x, "u1", xs),
    "y_test.npy": encodeNpy(new Int32Array([2, 0, 1, 2]), "i4", [4]),
  });
  const set = loadNpzSet(npz, "test.npz", {});
  assert.deepEqual(set.shape, { height: 6, width: 5, channels: 3 });
  assert.deepEqual([...set.images], [...x]);
  assert.deepEqual([...set.labels], [2, 0, 1, 2]);
  assert.equal(set.classNames.length, 3);
  assert.equal(loadNpzSet(npz, "test.npz", {}, 10).classNames.length, 10);

  const f = Float32Array.from(x, (v) => v / 255);
  const oneHot = new Float32Array(4 * 10);
  [7, 1, 1, 0].forEach((y, i) => (oneHot[i * 10 + y] = 1));
  const npz2 = zipSync({
    "imgs.npy": encodeNpy(f, "f4", [4, 6, 5, 3]),
    "lab.npy": encodeNpy(oneHot, "f4", [4, 10]),
  });
  const set2 = loadNpzSet(npz2, "t.npz", { x: "imgs", y: "lab" });
  assert.ok(set2.images instanceof Float32Array);
  assert.deepEqual([...set2.images], [...f]);
  assert.deepEqual([...set2.labels], [7, 1, 1, 0]);
  assert.equal(set2.classNames.length, 10);

  assert.throws(
    () => loadNpzSet(npz2, "t.npz", {}),
    /none of the array pairs x_test\/y_test.*arrays: imgs, lab/,
  );
  assert.throws(() => loadNpzSet(npz, "test.npz", { x: "x_test", y: "labels" }), /has no array 'labels'/);
  const bad = oneHot.slice();
  bad[3] = 0.5;
  assert.throws(
    () =>
      loadNpzSet(
        zipSync({ "x.npy": encodeNpy(f, "f4", xs), "y.npy": encodeNpy(bad, "f4", [4, 10]) }),
        "b",
        {},
      ),
    /row 0 is not one-hot/,
  );
  assert.throws(
    () => loadNpzSet(npz, "test.npz", {}, 2),
    /label 2 at index 0 is outside 0..1/,
  );
  // an object array (a pickle) is never read
  const obj = encodeNpy(new Uint8Array(8), "u1", [8]);
  obj.set(new TextEncoder().encode("{'descr': '|O', "), 10);
  assert.throws(() => decodeNpy(obj, "obj.npy"), /object array .* never unpickles/);
  // a header that claims more than the file holds
  const full = encodeNpy(new Uint8Array(8), "u1", [8]);
  const short = full.subarray(0, full.length - 3);
  assert.throws(
    () => decodeNpy(short, "short.npy"),
    /header says shape \(8\) of \|u1 = 8 bytes, the file holds 5/,
  );
});

async function writeFolder(
  root: string,
  images: Record<string, { w: number; h: number; c: 1 | 3; jpg?: boolean }[]>,
) {
  const written: Record<string, Uint8Array[]> = {};
  for (const [cls, list] of Object.entries(images)) {
    await Deno.mkdir(join(root, cls), { recursive: true });
    written[cls] = [];
    for (const [i, { w, h, c, jpg }] of list.entries()) {
      const data = pixels(w * h * c, i + cls.length);
      written[cls].push(data);
      if (jpg) {
        const rgba = new Uint8Array(w * h * 4).fill(255);
        for (let p = 0; p < w * h; p++) rgba.set(data.subarray(p * 3, p * 3 + 3), p * 4);
        await Deno.writeFile(
          join(root, cls, `${i}.jpg`),
          jpeg.encode({ data: rgba, width: w, height: h }, 95).data,
        );
      } else {
        await Deno.writeFile(
          join(root, cls, `${i}.png`),
          encodePng({ width: w, height: h, data, channels: c, depth: 8 }),
        );
      }
    }
  }
  return written;
}

Deno.test("image folders: Keras' class order, PNG pixel for pixel, JPEG decoded, resize and colour only on request", async () => {
  await withTemp(async (root) => {
    const written = await writeFolder(root, {
      "b_dog": [{ w: 4, h: 3, c: 3 }, { w: 4, h: 3, c: 3 }],
      "a_cat": [{ w: 4, h: 3, c: 3 }],
      "C_bird": [{ w: 4, h: 3, c: 3, jpg: true }],
    });
    const progress: number[] = [];
    const set = await loadImageFolder(root, { onProgress: (d) => progress.push(d) });
    assert.deepEqual(set.classNames, ["C_bird", "a_cat", "b_dog"]); // code-point order, as Python's sorted()
    assert.deepEqual([...set.labels], [0, 1, 2, 2]);
    assert.deepEqual(progress, [1, 2, 3, 4]);
    assert.deepEqual(set.shape, { height: 3, width: 4, channels: 3 });
    assert.deepEqual([...set.images.subarray(36, 72)], [...written["a_cat"][0]]);
    assert.deepEqual([...set.images.subarray(72 * 1, 72 + 36)], [...written["b_dog"][0]]);
    // JPEG at quality 95: close, not exact
    const jpgErr = written["C_bird"][0].reduce((m, v, i) => Math.max(m, Math.abs(v - set.images[i])), 0);
    assert.ok(jpgErr < 40, `jpeg error ${jpgErr}`);

    await rejects(
      loadImageFolder(root, { target: { height: 6, width: 8, channels: 3 } }),
      /is 3x4, not 6x8 like the model's input: pass --resize/,
    );
    const big = await loadImageFolder(root, { target: { height: 6, width: 8, channels: 3 }, resize: true });
    assert.deepEqual(big.shape, { height: 6, width: 8, channels: 3 });
    await rejects(
      loadImageFolder(root, { target: { height: 3, width: 4, channels: 1 } }),
      /RGB pixels where grey \(1 channel\) are expected: pass --color grayscale/,
    );
    const grey = await loadImageFolder(root, {
      target: { height: 3, width: 4, channels: 1 },
      color: "grayscale",
    });
    const [r, g, b] = written["a_cat"][0];
    assert.equal(grey.images[12], Math.floor((r * 299 + g * 587 + b * 114) / 1000));

    await Deno.writeTextFile(join(root, "a_cat", "broken.png"), "not a png at all");
    await rejects(loadImageFolder(root), /a_cat\/broken.png is neither a PNG nor a JPEG/);
    await Deno.remove(join(root, "a_cat", "broken.png"));
    await writeFolder(root, { "b_dog": [{ w: 5, h: 3, c: 3 }] });
    await rejects(loadImageFolder(root), /b_dog\/0.png is 3x5, not 3x4 like .*C_bird\/0.jpg: pass --resize/);
    await Deno.mkdir(join(root, "d_empty"));
    await rejects(loadImageFolder(root), /class folder .*d_empty holds no .png/);
  });
});

Deno.test("resizeBilinear matches tf.image.resizeBilinear (half-pixel centres), in float32 as Keras keeps it", async () => {
  const tf = await import("@tensorflow/tfjs");
  await tf.setBackend("cpu");
  const src = { data: pixels(7 * 5 * 3, 9), shape: { height: 7, width: 5, channels: 3 } };
  for (const [h, w] of [[3, 4], [14, 10], [7, 2]]) {
    const ours = resizeBilinear(src, h, w).data;
    const ref = tf.tidy(() =>
      tf.image.resizeBilinear(tf.tensor3d(src.data, [7, 5, 3], "float32"), [h, w], false, true).dataSync()
    );
    assert.equal(ours.length, ref.length);
    const worst = Array.from(ours).reduce((m, v, i) => Math.max(m, Math.abs(v - ref[i])), 0);
    assert.ok(worst < 1e-4, `${h}x${w}: ${worst}`);
  }
  assert.deepEqual([
    ...convertChannels({ data: new Uint8Array([9, 200]), shape: { height: 1, width: 2, channels: 1 } }, 3)
      .data,
  ], [
    9,
    9,
    9,
    200,
    200,
    200,
  ]);
});

Deno.test("openImageSet: the format is recognised from what --data holds", async () => {
  const { detectFormat } = await import("../../src/data/open.ts");
  const tiny = new URL("../../fixtures/cifar10-tiny", import.meta.url).pathname;
  assert.equal(await detectFormat(tiny), "cifar10");
  const set = await openImageSet(tiny, { limit: 7 });
  assert.equal(set.count, 7);
  assert.deepEqual(set.shape, { height: 32, width: 32, channels: 3 });
  assert.equal(set.classNames[9], "truck");
  await withTemp(async (dir) => {
    await Deno.mkdir(join(dir, "idx"));
    await Deno.writeFile(join(dir, "idx", "t10k-images-idx3-ubyte"), idx([1, 2, 2], new Uint8Array(4)));
    assert.equal(await detectFormat(join(dir, "idx")), "idx");
    await Deno.mkdir(join(dir, "c100"));
    await Deno.writeFile(join(dir, "c100", "test.bin"), new Uint8Array(3074));
    assert.equal(await detectFormat(join(dir, "c100")), "cifar100");
    const npz = join(dir, "t.npz");
    await Deno.writeFile(
      npz,
      zipSync({
        "x.npy": encodeNpy(new Uint8Array(12), "u1", [1, 2, 2, 3]),
        "y.npy": encodeNpy(new Uint8Array(1), "u1", [1]),
      }),
    );
    assert.equal(await detectFormat(npz), "npz");
    assert.equal((await openImageSet(npz, { classes: 10 })).classNames.length, 10);
    await Deno.writeFile(join(dir, "x.npy"), encodeNpy(new Uint8Array(1), "u1", [1]));
    assert.equal(await detectFormat(join(dir, "x.npy")), "npy");
    await rejects(detectFormat(join(dir, "nope")), /no data at .*nope: it does not exist/);
    assert.equal(await detectFormat(dir), "images");
    const empty = await Deno.makeTempDir({ dir });
    assert.equal(await detectFormat(empty), "cifar10"); // CIFAR-10's reader then says what is missing
  });
});

Deno.test(".npy alone: images and a labels .npy (--labels-file or the x -> y sibling), the .npz's numbers", async () => {
  await withTemp(async (dir) => {
    const xs = [4, 6, 5, 3];
    const x = new Uint8Array(4 * 6 * 5 * 3).map((_, i) => (i * 37) % 256);
    const labels = new Int32Array([2, 0, 1, 2]);
    await Deno.writeFile(join(dir, "x_test.npy"), encodeNpy(x, "u1", xs));
    await Deno.writeFile(join(dir, "y_test.npy"), encodeNpy(labels, "i4", [4]));
    await Deno.writeFile(join(dir, "other.npy"), encodeNpy(new Int32Array([1, 1, 0, 0]), "i4", [4]));
    const fromNpz = loadNpzSet(
      zipSync({ "x_test.npy": encodeNpy(x, "u1", xs), "y_test.npy": encodeNpy(labels, "i4", [4]) }),
      "t.npz",
      {},
      10,
    );
    const sibling = await openImageSet(join(dir, "x_test.npy"), { classes: 10 });
    assert.deepEqual(sibling.images, fromNpz.images);
    assert.deepEqual(sibling.labels, fromNpz.labels);
    assert.deepEqual(sibling.shape, { height: 6, width: 5, channels: 3 });
    assert.match(sibling.source, /x_test\.npy \+ y_test\.npy$/);
    const given = await openImageSet(join(dir, "x_test.npy"), {
      classes: 10,
      labelsFile: join(dir, "other.npy"),
    });
    assert.deepEqual([...given.labels], [1, 1, 0, 0]);
    // The labels cannot be found: one line each, saying to pass --labels-file.
    await Deno.copyFile(join(dir, "x_test.npy"), join(dir, "images.npy"));
    await rejects(openImageSet(join(dir, "images.npy"), {}), /does not start with 'x'.*pass --labels-file/);
    await Deno.copyFile(join(dir, "x_test.npy"), join(dir, "x_val.npy"));
    await rejects(
      openImageSet(join(dir, "x_val.npy"), {}),
      /its labels .*y_val\.npy .* do not exist: pass --labels-file/,
    );
    await rejects(
      openImageSet(join(dir, "x_test.npy"), { labelsFile: join(dir, "nope.npy") }),
      /nope\.npy \(the labels of .*x_test\.npy\) does not exist/,
    );
  });
});
