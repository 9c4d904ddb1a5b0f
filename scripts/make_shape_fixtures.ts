/**
 * Tiny fixtures of other shapes than CIFAR-10's, for the readers and the sweep (seeded, so the
 * same script gives the same files):
 *
 * - `fixtures/data/fashion-tiny/`: 60 test images of 28x28x1 in IDX form (gzipped, like the
 *   official files), and the same images as `fixtures/data/gray-tiny.npz` (x_test, y_test);
 * - `fixtures/data/cifar100-tiny/`: 60 CIFAR-100 binary records (test.bin) with the fine and
 *   coarse label names;
 * - `fixtures/models/tiny-gray/` (28x28x1 -> 10) and `fixtures/models/tiny-c100/` (32x32x3 -> 100):
 *   conv-relu, pool, conv-relu (`conv2`, the pruned layer), pool, flatten, dense softmax, seeded
 *   and trained for a few epochs on 400 more images of the same kind (so pruning moves accuracy).
 *
 * Each class has its own bright square on a noisy background, so the images differ by class.
 *
 *   deno run --allow-read --allow-write=fixtures --allow-env scripts/make_shape_fixtures.ts
 */
import * as tf from "@tensorflow/tfjs";
import { join } from "node:path";
import { gzipSync, zipSync } from "fflate";
import { setupBackend } from "../src/backend.ts";
import { writeFileAtomic } from "../src/core/atomic.ts";
import { mulberry32 } from "../src/core/random.ts";
import { encodeNpy } from "../src/data/numpy.ts";
import { fileSaver } from "../src/model/tfjs_io.ts";
import { DEFAULT_PREPROCESSING, type ImageShape } from "../src/types.ts";

/** Images in each data fixture. */
export const SHAPE_FIXTURE_IMAGES = 60;

/** `n` seeded HWC images of `shape`, labels cycling through `classes`. */
export function shapeImages(n: number, shape: ImageShape, classes: number, seed: number) {
  const rand = mulberry32(seed);
  const { height: h, width: w, channels: c } = shape;
  const images = new Uint8Array(n * h * w * c);
  const labels = Uint8Array.from({ length: n }, (_, i) => i % classes);
  for (let i = 0; i < n; i++) {
    const y0 = (labels[i] * 7) % (h - 6), x0 = (labels[i] * 11) % (w - 6);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const inside = y >= y0 && y < y0 + 6 && x >= x0 && x < x0 + 6;
        for (let k = 0; k < c; k++) {
          images[((i * h + y) * w + x) * c + k] = Math.min(
            255,
            Math.floor(rand() * 60) + (inside ? 180 : 20 * k),
          );
        }
      }
    }
  }
  return { images, labels };
}

function idx(dims: number[], data: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + 4 * dims.length + data.length);
  out.set([0, 0, 8, dims.length]);
  dims.forEach((d, i) => new DataView(out.buffer).setUint32(4 + 4 * i, d, false));
  out.set(data, 4 + 4 * dims.length);
  return out;
}

/** A tiny seeded conv net from `shape` to `classes`. */
export function tinyShapeModel(shape: ImageShape, classes: number, seed: number): tf.LayersModel {
  const init = (s: number) => tf.initializers.glorotUniform({ seed: seed + s });
  const m = tf.sequential({ name: `tiny_${shape.channels}ch_${classes}` });
  m.add(tf.layers.inputLayer({ inputShape: [shape.height, shape.width, shape.channels], name: "image" }));
  for (const [i, filters] of [[1, 6], [2, 12]]) {
    m.add(tf.layers.conv2d({
      name: `conv${i}`,
      filters,
      kernelSize: 3,
      padding: "same",
      activation: "relu",
      kernelInitializer: init(i),
      biasInitializer: tf.initializers.randomUniform({ minval: -0.05, maxval: 0.1, seed: seed + 10 + i }),
    }));
    m.add(tf.layers.maxPooling2d({ poolSize: 2, name: `pool${i}` }));
  }
  m.add(tf.layers.flatten({ name: "flatten" }));
  m.add(
    tf.layers.dense({ name: "scores", units: classes, activation: "softmax", kernelInitializer: init(3) }),
  );
  return m;
}

/** Write every shape fixture under `root` (default `fixtures`). */
export async function writeShapeFixtures(root = "fixtures"): Promise<string[]> {
  const written: string[] = [];
  const n = SHAPE_FIXTURE_IMAGES;
  const gray = shapeImages(n, { height: 28, width: 28, channels: 1 }, 10, 5);
  const fashion = join(root, "data", "fashion-tiny");
  await writeFileAtomic(
    join(fashion, "t10k-images-idx3-ubyte.gz"),
    gzipSync(idx([n, 28, 28], gray.images), { mtime: 0 }),
  );
  await writeFileAtomic(
    join(fashion, "t10k-labels-idx1-ubyte.gz"),
    gzipSync(idx([n], gray.labels), { mtime: 0 }),
  );
  await writeFileAtomic(
    join(root, "data", "gray-tiny.npz"),
    zipSync({
      "x_test.npy": encodeNpy(gray.images, "u1", [n, 28, 28, 1]),
      "y_test.npy": encodeNpy(gray.labels, "u1", [n]),
    }, { mtime: new Date(2026, 0, 1) }),
  );
  const colour = shapeImages(n, { height: 32, width: 32, channels: 3 }, 100, 6);
  const records = new Uint8Array(n * 3074);
  for (let i = 0; i < n; i++) {
    records[i * 3074] = Math.floor(colour.labels[i] / 5);
    records[i * 3074 + 1] = colour.labels[i];
    for (let p = 0; p < 1024; p++) {
      for (let k = 0; k < 3; k++) {
        records[i * 3074 + 2 + k * 1024 + p] = colour.images[(i * 1024 + p) * 3 + k];
      }
    }
  }
  const c100 = join(root, "data", "cifar100-tiny");
  await writeFileAtomic(join(c100, "test.bin"), records);
  await writeFileAtomic(
    join(c100, "fine_label_names.txt"),
    new TextEncoder().encode(Array.from({ length: 100 }, (_, i) => `fine_${i}`).join("\n") + "\n"),
  );
  await writeFileAtomic(
    join(c100, "coarse_label_names.txt"),
    new TextEncoder().encode(Array.from({ length: 20 }, (_, i) => `coarse_${i}`).join("\n") + "\n"),
  );
  written.push(fashion, join(root, "data", "gray-tiny.npz"), c100);
  for (
    const [name, shape, classes, seed] of [
      ["tiny-gray", { height: 28, width: 28, channels: 1 }, 10, 31],
      ["tiny-c100", { height: 32, width: 32, channels: 3 }, 100, 41],
    ] as const
  ) {
    const model = tinyShapeModel(shape, classes, seed);
    const train = shapeImages(400, shape, classes, seed + 1);
    const x = tf.tensor4d(Float32Array.from(train.images, (v) => v / 255), [
      400,
      shape.height,
      shape.width,
      shape.channels,
    ]);
    const y = tf.oneHot(tf.tensor1d(Int32Array.from(train.labels), "int32"), classes);
    model.compile({ optimizer: tf.train.adam(0.01), loss: "categoricalCrossentropy" });
    await model.fit(x, y, { epochs: 8, batchSize: 50, shuffle: false, verbose: 0 });
    tf.dispose([x, y]);
    const dir = join(root, "models", name);
    await model.save(fileSaver(dir, {
      prunescope: {
        preprocessing: DEFAULT_PREPROCESSING,
        fixture: name,
        madeBy: "scripts/make_shape_fixtures.ts",
      },
    }));
    model.dispose();
    written.push(dir);
  }
  return written;
}

if (import.meta.main) {
  await setupBackend("wasm");
  for (const p of await writeShapeFixtures(Deno.args[0] ?? "fixtures")) console.log(`wrote ${p}`);
}
