/**
 * Build the tiny TF.js fixture models under `fixtures/models/` (32x32x3 -> 10 classes, each a
 * few tens of KB), seeded and trained for a few steps on synthetic CIFAR-10 on the wasm backend,
 * so the same script gives the same files:
 *
 * - `tiny-bn/`:   conv-relu, pool, conv-relu (the pruned layer, `conv2`), BatchNormalization,
 *                 pool, flatten, dense softmax. A pruned channel emits BN's constant downstream.
 * - `tiny-nobn/`: conv-relu, pool, conv-sigmoid (`conv2`, activation(0) = 0.5), pool, flatten,
 *                 dense softmax.
 * - `tiny-func/`: Functional: conv-relu, pool, conv-linear (`conv2`), a separate ReLU layer, then
 *                 a residual block after the cut (conv-relu + add), global average pool, dense.
 *
 *   deno run --allow-read --allow-write=fixtures --allow-env scripts/make_model_fixtures.ts [DIR]
 */
import * as tf from "@tensorflow/tfjs";
import { join } from "node:path";
import { setupBackend } from "../src/backend.ts";
import { decodeRecords } from "../src/data/cifar10.ts";
import { syntheticCifar } from "../src/data/synthetic.ts";
import { imagesToTensor } from "../src/data/tensors.ts";
import { fileSaver } from "../src/model/tfjs_io.ts";
import { DEFAULT_PREPROCESSING } from "../src/types.ts";

/** The fixture models this script makes. */
export const MODEL_FIXTURES = ["tiny-bn", "tiny-nobn", "tiny-func"] as const;
export type ModelFixture = typeof MODEL_FIXTURES[number];
/** The name of the conv layer the tests prune in every fixture (the last Conv2D in tiny-bn and tiny-nobn). */
export const PRUNED_LAYER = "conv2";

const TRAIN_IMAGES = 400;
const TRAIN_SEED = 77;
const EPOCHS = 4;
const BATCH = 50;

const init = (seed: number) => tf.initializers.glorotUniform({ seed });

function conv(name: string, filters: number, activation: string, seed: number) {
  return tf.layers.conv2d({
    name,
    filters,
    kernelSize: 3,
    padding: "same",
    activation: activation as "relu",
    kernelInitializer: init(seed),
    biasInitializer: tf.initializers.constant({ value: 0.01 }),
  });
}

function dense(seed: number) {
  return tf.layers.dense({ name: "scores", units: 10, activation: "softmax", kernelInitializer: init(seed) });
}

/** A fixture model, freshly built (seeded initial weights, untrained). */
export function buildFixtureModel(name: ModelFixture): tf.LayersModel {
  if (name === "tiny-func") {
    const input = tf.input({ shape: [32, 32, 3], name: "image" });
    let x = conv("conv1", 8, "relu", 11).apply(input) as tf.SymbolicTensor;
    x = tf.layers.maxPooling2d({ poolSize: 2, name: "pool1" }).apply(x) as tf.SymbolicTensor;
    x = conv(PRUNED_LAYER, 16, "linear", 12).apply(x) as tf.SymbolicTensor;
    const r = tf.layers.reLU({ name: "relu2" }).apply(x) as tf.SymbolicTensor;
    const branch = conv("conv3", 16, "relu", 13).apply(r) as tf.SymbolicTensor;
    x = tf.layers.add({ name: "residual" }).apply([r, branch]) as tf.SymbolicTensor;
    x = tf.layers.globalAveragePooling2d({ name: "gap" }).apply(x) as tf.SymbolicTensor;
    const out = dense(14).apply(x) as tf.SymbolicTensor;
    return tf.model({ inputs: input, outputs: out, name: "tiny_func" });
  }
  const m = tf.sequential({ name: name.replace("-", "_") });
  m.add(tf.layers.inputLayer({ inputShape: [32, 32, 3], name: "image" }));
  m.add(conv("conv1", 8, "relu", 21));
  m.add(tf.layers.maxPooling2d({ poolSize: 2, name: "pool1" }));
  if (name === "tiny-bn") {
    m.add(conv(PRUNED_LAYER, 16, "relu", 22));
    // A low momentum so a few steps move the moving statistics well away from 0 and 1.
    m.add(tf.layers.batchNormalization({ name: "bn", momentum: 0.5 }));
  } else {
    m.add(conv(PRUNED_LAYER, 16, "sigmoid", 23));
  }
  m.add(tf.layers.maxPooling2d({ poolSize: 2, name: "pool2" }));
  m.add(tf.layers.flatten({ name: "flatten" }));
  m.add(dense(24));
  return m;
}

/** Train `model` for a few steps on seeded synthetic CIFAR-10 (deterministic for a given backend). */
export async function trainBriefly(model: tf.LayersModel): Promise<void> {
  const ds = decodeRecords(syntheticCifar(TRAIN_IMAGES, TRAIN_SEED), "synthetic");
  const x = imagesToTensor(ds, 0, ds.count, DEFAULT_PREPROCESSING);
  const y = tf.oneHot(tf.tensor1d(Int32Array.from(ds.labels), "int32"), 10);
  try {
    model.compile({ optimizer: tf.train.adam(0.01), loss: "categoricalCrossentropy", metrics: ["accuracy"] });
    await model.fit(x, y, { epochs: EPOCHS, batchSize: BATCH, shuffle: false, verbose: 0 });
  } finally {
    x.dispose();
    y.dispose();
  }
}

/** Build, train and save every fixture model under `dir`; returns the folders written. */
export async function writeModelFixtures(dir: string): Promise<string[]> {
  const written: string[] = [];
  for (const name of MODEL_FIXTURES) {
    const model = buildFixtureModel(name);
    await trainBriefly(model);
    const target = join(dir, name);
    await model.save(fileSaver(target, {
      prunescope: {
        preprocessing: DEFAULT_PREPROCESSING,
        fixture: name,
        prunedLayer: PRUNED_LAYER,
        madeBy: "scripts/make_model_fixtures.ts",
      },
    }));
    model.dispose();
    written.push(target);
  }
  return written;
}

if (import.meta.main) {
  await setupBackend("wasm");
  const dir = Deno.args[0] ?? "fixtures/models";
  for (const target of await writeModelFixtures(dir)) {
    const size = (await Deno.stat(join(target, "weights.bin"))).size;
    console.log(`wrote ${target} (weights ${size} bytes)`);
  }
}
