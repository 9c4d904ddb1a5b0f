/**
 * The Keras reader on small committed fixtures (scripts/make_keras_fixtures.ts) and on models
 * built here: round trips through our Keras 2 writer, each layout, config translation and its
 * refusals, bad and hostile files, and the `convert` command.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs";
import { setupBackend } from "../../src/backend.ts";
import { UserError } from "../../src/core/errors.ts";
import { loadKeras } from "../../src/model/keras/load.ts";
import { kerasMajorOf, translateModelConfig } from "../../src/model/keras/config.ts";
import { kerasV3Slots, readStringList, snakeCase } from "../../src/model/keras/weights.ts";
import { kerasModelJson, writeKerasH5 } from "../../src/model/keras/h5_writer.ts";
import { Hdf5File, writeHdf5 } from "../../src/model/keras/hdf5.ts";
import { unsafeEntryReason } from "../../src/model/keras/zip.ts";
import { fileLoader } from "../../src/model/tfjs_io.ts";
import { run as convert } from "../../src/commands/convert.ts";
import {
  kerasArchive,
  kerasArchiveConfig,
  tinyFunctional,
  tinySequential,
} from "../../scripts/make_keras_fixtures.ts";
import { runMain } from "../_helpers.ts";

const FIX = "fixtures/keras";
await setupBackend("wasm");

/** A fixed batch of 4 images with 0..255 pixel values. */
function batch(): tf.Tensor4D {
  return tf.tidy(() => tf.randomUniform([4, 32, 32, 3], 0, 255, "float32", 11).floor() as tf.Tensor4D);
}

function predict(model: tf.LayersModel, x: tf.Tensor): Float32Array {
  return tf.tidy(() => (model.predict(x) as tf.Tensor).dataSync() as Float32Array);
}

/** Bit-level equality of two float arrays (so -0 vs 0 or NaN payloads would count as different). */
function sameBits(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  return ua.every((v, i) => v === ub[i]);
}

/** Every weight of `b` equals the same-named layer's weight in `a`, bit for bit. */
function assertSameWeights(a: tf.LayersModel, b: tf.LayersModel): void {
  const wa = a.layers.filter((l) => l.weights.length > 0);
  const wb = b.layers.filter((l) => l.weights.length > 0);
  assert.deepEqual(wb.map((l) => l.name), wa.map((l) => l.name));
  for (const la of wa) {
    const lb = b.getLayer(la.name);
    assert.equal(lb.weights.length, la.weights.length, la.name);
    la.weights.forEach((w, i) => {
      const x = w.read().dataSync() as Float32Array, y = lb.weights[i].read().dataSync() as Float32Array;
      assert.ok(sameBits(x, y), `${la.name} weight ${i} differs`);
    });
  }
}

async function tempDir(): Promise<string> {
  return await Deno.makeTempDir({ prefix: "prunescope-keras-" });
}

async function userError(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof UserError, `expected a UserError, got ${(e as Error).stack}`);
    assert.ok(!e.message.includes("\n"), `message is not one line: ${e.message}`);
    return e.message;
  }
  assert.fail("expected a UserError");
}

Deno.test("Keras 2 writer round trip: weights bit-identical, predictions equal (Sequential and Functional)", async () => {
  const dir = await tempDir();
  const x = batch();
  for (const [name, make] of [["seq", tinySequential], ["fun", tinyFunctional]] as const) {
    const original = make();
    const path = join(dir, `${name}.h5`);
    await Deno.writeFile(path, await writeKerasH5(original));
    const before = tf.memory().numTensors;
    const { model } = await loadKeras(path);
    assertSameWeights(original, model);
    assert.deepEqual(model.layers.map((l) => l.getClassName()), original.layers.map((l) => l.getClassName()));
    assert.ok(sameBits(predict(model, x), predict(original, x)), `${name}: predictions differ`);
    model.dispose();
    assert.equal(tf.memory().numTensors, before, `${name}: loading leaked tensors`);
    original.dispose();
  }
  x.dispose();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("our Keras 2 HDF5 has the Keras layout: model_config, model_weights, layer_names, weight_names", async () => {
  const model = tinySequential();
  const file = await Hdf5File.open(await writeKerasH5(model), "written");
  try {
    assert.equal(file.attr("/", "backend"), "tensorflow");
    assert.match(String(file.attr("/", "keras_version")), /^2\./);
    const config = JSON.parse(String(file.attr("/", "model_config")));
    assert.equal(config.class_name, "Sequential");
    assert.deepEqual(file.attr("/model_weights", "layer_names"), model.layers.map((l) => l.name));
    assert.deepEqual(file.attr("/model_weights/conv2d", "weight_names"), [
      "conv2d/kernel:0",
      "conv2d/bias:0",
    ]);
    assert.deepEqual(file.attr("/model_weights/batch_normalization", "weight_names"), [
      "batch_normalization/gamma:0",
      "batch_normalization/beta:0",
      "batch_normalization/moving_mean:0",
      "batch_normalization/moving_variance:0",
    ]);
    // Weightless layers get an empty list, as h5py stores [] (a float64 array of shape [0]).
    assert.equal((file.attr("/model_weights/dropout", "weight_names") as Float64Array).length, 0);
    const kernel = file.readFloat("/model_weights/conv2d/conv2d/kernel:0");
    assert.deepEqual(kernel.shape, [3, 3, 3, 4]);
    assert.ok(sameBits(kernel.data, model.getLayer("conv2d").getWeights()[0].dataSync() as Float32Array));
  } finally {
    file.close();
    model.dispose();
  }
});

Deno.test("every committed valid fixture loads and predicts exactly like the model it was made from", async () => {
  const x = batch();
  const seq = tinySequential(), fun = tinyFunctional();
  const cases: [string, tf.LayersModel, string | undefined, boolean][] = [
    ["tiny_keras2.h5", seq, undefined, false],
    ["tiny_functional_keras2.h5", fun, undefined, true],
    ["tiny_weights_only.h5", seq, join(FIX, "tiny_model.json"), false],
    ["tiny_keras3.keras", seq, undefined, false],
    ["tiny_functional_keras3.keras", fun, undefined, true],
    ["tiny_tfkeras214.keras", seq, undefined, false],
  ];
  for (const [file, reference, config, rescales] of cases) {
    const { model, metadata } = await loadKeras(join(FIX, file), { config });
    assertSameWeights(reference, model);
    assert.ok(sameBits(predict(model, x), predict(reference, x)), `${file}: predictions differ`);
    // A Rescaling layer right after the input settles the preprocessing: raw pixels in.
    assert.deepEqual(
      metadata,
      rescales ? { prunescope: { preprocessing: { scale: 1, mean: [0, 0, 0], std: [1, 1, 1] } } } : {},
      file,
    );
    model.dispose();
  }
  seq.dispose();
  fun.dispose();
  x.dispose();
});

Deno.test("bad and hostile files: one clear UserError line each", async () => {
  const cut = (await Deno.stat(join(FIX, "truncated.h5"))).size;
  const whole = (await Deno.stat(join(FIX, "tiny_keras2.h5"))).size;
  const cases: [string, RegExp, string?][] = [
    ["truncated.h5", new RegExp(`the file is truncated \\(${cut} bytes of ${whole}\\)`)],
    ["not_keras.h5", /HDF5 file but not a Keras model.*measurements/],
    ["no_config.keras", /has no config\.json \(entries: metadata\.json, model\.weights\.h5\)/],
    ["shape_mismatch.h5", /layer 'conv2d' \(Conv2D\).*shape \[3,3,3,4\].*needs \[3,3,3,8\]/],
    ["zip_slip.keras", /refusing the archive.*"\.\.\/evil\.txt".*'\.\.'/],
    ["lambda.h5", /layer 'lambda' \(Lambda\) holds Python code/],
    ["custom_layer.keras", /layer 'channel_scale' \(ChannelScale\).*custom class 'MyProject>ChannelScale'/],
    ["tiny_weights_only.h5", /holds only weights.*--config/],
    ["tiny_keras3.keras", /drop --config/, join(FIX, "tiny_model.json")],
    ["tiny_keras2.h5", /own model_config; drop --config/, join(FIX, "tiny_model.json")],
    ["missing.h5", /model file not found/],
  ];
  for (const [file, expected, config] of cases) {
    const msg = await userError(loadKeras(join(FIX, file), { config }));
    assert.match(msg, expected, file);
  }
  // Nothing escaped the archive.
  for (const p of ["fixtures/evil.txt", "evil.txt", "../evil.txt"]) {
    assert.equal(await Deno.stat(p).then(() => true, () => false), false, p);
  }
});

Deno.test("files that are neither HDF5 nor zip, empty, or damaged zips are refused clearly", async () => {
  const dir = await tempDir();
  const good = await Deno.readFile(join(FIX, "tiny_keras3.keras"));
  const cases: [string, Uint8Array, RegExp][] = [
    ["empty.h5", new Uint8Array(0), /neither HDF5 nor a zip.*empty/],
    ["text.keras", new TextEncoder().encode("hello, not a model\n"), /neither HDF5 nor a zip/],
    ["cut.keras", good.slice(0, 1500), /not a readable zip archive/],
  ];
  for (const [name, bytes, expected] of cases) {
    await Deno.writeFile(join(dir, name), bytes);
    assert.match(await userError(loadKeras(join(dir, name))), expected, name);
  }
  // Weights of one model with the config of another (other layers, other shapes).
  const other = tinyFunctional();
  await Deno.writeTextFile(join(dir, "other.json"), JSON.stringify(kerasModelJson(other)));
  other.dispose();
  assert.match(
    await userError(loadKeras(join(FIX, "tiny_weights_only.h5"), { config: join(dir, "other.json") })),
    /do not match the config/,
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("zip entry names that leave the archive are recognised", () => {
  assert.equal(unsafeEntryReason("model.weights.h5"), null);
  assert.equal(unsafeEntryReason("assets/vocab.txt"), null);
  assert.match(unsafeEntryReason("../x")!, /'\.\.'/);
  assert.match(unsafeEntryReason("a/../../x")!, /'\.\.'/);
  assert.match(unsafeEntryReason("..\\x")!, /'\.\.'/);
  assert.match(unsafeEntryReason("/etc/passwd")!, /absolute/);
  assert.match(unsafeEntryReason("C:/x")!, /absolute/);
});

Deno.test("config translation: Keras 3 fields become TF.js fields, Keras 3 nodes become Keras 2 nodes", () => {
  const model = tinyFunctional();
  const keras3 = kerasArchiveConfig(model, "keras3");
  const t = translateModelConfig(keras3, { label: "k3", kerasVersion: "3.11.3" });
  assert.equal(t.kind, "Functional");
  assert.equal(t.kerasMajor, 3);
  const layers = (t.topology.config as { layers: Record<string, unknown>[] }).layers;
  const byName = new Map(layers.map((l) => [l.name as string, l]));
  const input = byName.get("input_layer")!.config as Record<string, unknown>;
  assert.deepEqual(input.batch_input_shape, [null, 32, 32, 3]); // from batch_shape
  assert.ok(!("batch_shape" in input));
  const conv = byName.get("conv2d")!.config as Record<string, unknown>;
  assert.equal(conv.dtype, "float32"); // from a DTypePolicy object
  assert.ok(!("groups" in conv)); // groups=1 is the only value TF.js can compute
  assert.deepEqual(Object.keys(conv.kernel_initializer as object), ["class_name", "config"]); // module dropped
  const bn = byName.get("batch_normalization")!.config as Record<string, unknown>;
  assert.ok(!("synchronized" in bn));
  assert.deepEqual(byName.get("add")!.inbound_nodes, [[["activation", 0, 0, {}], ["re_lu", 0, 0, {}]]]);
  assert.deepEqual(byName.get("conv2d")!.inbound_nodes, [[["rescaling", 0, 0, {}]]]);
  // The same model in tf.keras 2.14 style (batch_input_shape, BN axis as a list) translates alike.
  const t2 = translateModelConfig(kerasArchiveConfig(model, "tfkeras214"), { label: "tfk" });
  assert.equal(t2.kerasMajor, 2);
  const bn2 = (t2.topology.config as { layers: Record<string, unknown>[] }).layers
    .find((l) => l.name === "batch_normalization")!.config as Record<string, unknown>;
  assert.equal(bn2.axis, 3);
  // Keras regularizer objects become TF.js's one regularizer class, L1L2.
  const withL2 = kerasArchiveConfig(model, "keras3") as { config: { layers: Record<string, unknown>[] } };
  const l2 = { module: "keras.regularizers", class_name: "L2", config: { l2: 5e-4 }, registered_name: null };
  (withL2.config.layers.find((l) => l.class_name === "Dense")!.config as Record<string, unknown>)
    .kernel_regularizer = l2;
  const dense =
    (translateModelConfig(withL2, { label: "k3" }).topology.config as { layers: Record<string, unknown>[] })
      .layers.find((l) => l.name === "dense")!.config as Record<string, unknown>;
  assert.deepEqual(dense.kernel_regularizer, { class_name: "L1L2", config: { l1: 0, l2: 5e-4 } });
  model.dispose();
});

Deno.test("h5py's chunked string-list attributes (layer_names0, layer_names1, ...) are joined in order", async () => {
  const bytes = await writeHdf5((b) => {
    b.attr("/", "layer_names1", { kind: "ascii-list", value: ["c", "d"] });
    b.attr("/", "layer_names0", { kind: "ascii-list", value: ["a", "b"] });
    b.attr("/", "weight_names", { kind: "empty-list" });
  });
  const file = await Hdf5File.open(bytes, "chunked");
  try {
    assert.deepEqual(readStringList(file, "/", "layer_names"), ["a", "b", "c", "d"]);
    assert.deepEqual(readStringList(file, "/", "weight_names"), []);
    assert.equal(readStringList(file, "/", "other"), undefined);
  } finally {
    file.close();
  }
});

Deno.test("config translation refuses what it cannot represent, naming layer, class and field", () => {
  const seq = tinySequential();
  const base = () => JSON.parse(JSON.stringify(kerasArchiveConfig(seq, "keras3")));
  const refuse = (
    mutate: (c: { config: { layers: Record<string, unknown>[] } }) => void,
    expected: RegExp,
  ) => {
    const c = base();
    mutate(c);
    assert.throws(
      () => translateModelConfig(c, { label: "m.keras" }),
      (e: unknown) => e instanceof UserError && expected.test(e.message) && !e.message.includes("\n"),
      String(expected),
    );
  };
  const conv = (c: { config: { layers: Record<string, unknown>[] } }) =>
    c.config.layers[1].config as Record<string, unknown>;
  refuse((c) => void (conv(c).groups = 2), /layer 'conv2d' \(Conv2D\): groups=2 is not supported/);
  refuse((c) => {
    conv(c).strides = [2, 2];
    conv(c).dilation_rate = [2, 2];
  }, /layer 'conv2d' \(Conv2D\): strides \[2,2\] together with dilation_rate \[2,2\]/);
  refuse(
    (c) => void (conv(c).activation = "exponential"),
    /layer 'conv2d' \(Conv2D\): activation 'exponential'/,
  );
  refuse((c) => void (conv(c).activation = "hard_sigmoid"), /Keras 3's hard_sigmoid/);
  refuse(
    (c) =>
      void (conv(c).activation = {
        module: "my_acts",
        class_name: "function",
        config: "my_act",
        registered_name: "my_act",
      }),
    /not a built-in Keras activation/,
  );
  refuse((c) => void (conv(c).shiny_new_option = 3), /config field 'shiny_new_option' = 3 is unknown/);
  refuse((c) => void (conv(c).dtype = "float64"), /dtype 'float64' is not supported/);
  refuse(
    (c) => void (conv(c).kernel_regularizer = { class_name: "OrthogonalRegularizer", config: {} }),
    /kernel_regularizer/,
  );
  refuse((c) => {
    c.config.layers[2].class_name = "LSTM";
  }, /layer 'batch_normalization' \(LSTM\): layer class 'LSTM' is not supported/);
  refuse((c) => {
    c.config.layers[2] = {
      module: "keras.layers",
      class_name: "Sequential",
      config: { name: "inner", layers: [] },
    };
  }, /layer 'inner' \(Sequential\) is a nested model/);
  refuse((c) => {
    (c.config.layers[2].config as Record<string, unknown>).renorm = true;
  }, /renorm=true is not supported/);
  refuse((c) => {
    (c.config.layers[7].config as Record<string, unknown>).keepdims = true;
  }, /GlobalAveragePooling2D\): keepdims=true/);
  // Keras 2 hard_sigmoid is TF.js's hard_sigmoid, so it is accepted there.
  const k2 = JSON.parse(JSON.stringify(kerasModelJson(seq)));
  k2.config.layers[0].config.activation = "hard_sigmoid";
  assert.equal(translateModelConfig(k2, { label: "k2" }).kerasMajor, 2);
  // A subclassed model has no layer graph to rebuild.
  assert.throws(
    () => translateModelConfig({ class_name: "MyNet", config: {} }, { label: "m.keras" }),
    /class 'MyNet', not Sequential or Functional/,
  );
  // A Monte-Carlo-dropout call (training=True) changes inference; Keras 3 nodes carry it in kwargs.
  const fun = tinyFunctional();
  const f3 = kerasArchiveConfig(fun, "keras3") as { config: { layers: Record<string, unknown>[] } };
  const drop = f3.config.layers.find((l) => l.class_name === "Dropout")!;
  (drop.inbound_nodes as { kwargs: Record<string, unknown> }[])[0].kwargs = { training: true };
  assert.throws(() => translateModelConfig(f3, { label: "f" }), /training=true/);
  seq.dispose();
  fun.dispose();
});

Deno.test("ReLU with a negative slope becomes LeakyReLU; Keras 2 and 3 LeakyReLU fields both map to alpha", () => {
  const seq = tinySequential();
  const c = JSON.parse(JSON.stringify(kerasArchiveConfig(seq, "keras3")));
  const relu = c.config.layers.find((l: { class_name: string }) => l.class_name === "ReLU");
  relu.config.negative_slope = 0.1;
  const t = translateModelConfig(c, { label: "m" });
  const out = (t.topology.config as { layers: Record<string, unknown>[] }).layers.find((l) =>
    (l.config as { name: string }).name === "re_lu"
  )!;
  assert.equal(out.class_name, "LeakyReLU");
  assert.equal((out.config as { alpha: number }).alpha, 0.1);
  seq.dispose();
});

Deno.test("Keras version: from the version string, else from Keras-3-only traits", () => {
  assert.equal(kerasMajorOf("2.8.0", {}), 2);
  assert.equal(kerasMajorOf("3.11.3", {}), 3);
  assert.equal(kerasMajorOf(undefined, { config: { batch_shape: [null, 3] } }), 3);
  assert.equal(kerasMajorOf(undefined, { config: { batch_input_shape: [null, 3] } }), 2);
});

Deno.test("Keras 3 weight slots: snake-cased class names, numbered per class, Sequential InputLayer untracked", () => {
  assert.equal(snakeCase("Conv2D"), "conv2d");
  assert.equal(snakeCase("BatchNormalization"), "batch_normalization");
  assert.equal(snakeCase("MaxPooling2D"), "max_pooling2d");
  assert.equal(snakeCase("GlobalAveragePooling2D"), "global_average_pooling2d");
  assert.equal(snakeCase("ReLU"), "re_lu");
  assert.equal(snakeCase("ZeroPadding2D"), "zero_padding2d");
  const layers = [
    ["input_1", "InputLayer"],
    ["dense_7", "Dense"],
    ["conv_a", "Conv2D"],
    ["dense_2", "Dense"],
    ["dense_9", "Dense"],
  ].map(([name, className]) => ({ name, className, isInput: className === "InputLayer" }));
  const seqSlots = kerasV3Slots({ kind: "Sequential", layers });
  assert.deepEqual([...seqSlots], [["dense_7", "dense"], ["conv_a", "conv2d"], ["dense_2", "dense_1"], [
    "dense_9",
    "dense_2",
  ]]);
  assert.equal(kerasV3Slots({ kind: "Functional", layers }).get("input_1"), "input_layer");
});

Deno.test("a Keras 3 archive without recorded slot names is read through the slot naming", async () => {
  // The fixture generator writes no `name` attributes, so the loader must rely on kerasV3Slots;
  // swapping two same-class slots must then be caught by the shapes.
  const seq = tinySequential();
  const dir = await tempDir();
  const path = join(dir, "m.keras");
  await Deno.writeFile(path, await kerasArchive(seq, "keras3"));
  const { model } = await loadKeras(path);
  assertSameWeights(seq, model);
  model.dispose();
  const swapped = kerasArchiveConfig(seq, "keras3") as { config: { layers: Record<string, unknown>[] } };
  const ls = swapped.config.layers;
  [ls[1], ls[4]] = [ls[4], ls[1]]; // conv2d <-> conv2d_1 in the config order
  await Deno.writeFile(path, await kerasArchive(seq, "keras3", {}, swapped));
  assert.match(await userError(loadKeras(path)), /weights and the config do not match|does not match|shape/);
  seq.dispose();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("convert: Keras -> TF.js LayersModel loadable with tf.loadLayersModel, and back to Keras 2 HDF5", async () => {
  const dir = await tempDir();
  const x = batch();
  const src = join(FIX, "tiny_functional_keras3.keras");
  const { model: reference } = await loadKeras(src);
  const out = join(dir, "tfjs");
  const log = console.log;
  const lines: string[] = [];
  console.log = (...a: unknown[]) => void lines.push(a.join(" "));
  try {
    await convert(["--model", src, "--out", out]);
    await convert(["--model", join(out, "model.json"), "--out", join(dir, "back.h5")]);
    await convert(["--model", join(FIX, "tiny_keras2.h5"), "--out", join(dir, "seq"), "--scale", "1/255"]);
  } finally {
    console.log = log;
  }
  assert.match(
    lines[0],
    /model\.json \+ weights\.bin: 15 layers, 5,370 parameters; preprocessing recorded: x/,
  );
  const json = JSON.parse(await Deno.readTextFile(join(out, "model.json")));
  assert.equal(json.format, "layers-model");
  assert.deepEqual(json.userDefinedMetadata.prunescope.preprocessing, {
    scale: 1,
    mean: [0, 0, 0],
    std: [1, 1, 1],
  });
  const tfjs = await tf.loadLayersModel(fileLoader(join(out, "model.json")));
  assertSameWeights(reference, tfjs);
  assert.ok(sameBits(predict(tfjs, x), predict(reference, x)));
  const { model: back } = await loadKeras(join(dir, "back.h5"));
  assert.ok(sameBits(predict(back, x), predict(reference, x)));
  const seqMeta = JSON.parse(await Deno.readTextFile(join(dir, "seq", "model.json"))).userDefinedMetadata;
  assert.equal(seqMeta.prunescope.preprocessing.scale, 1 / 255);
  for (const m of [reference, tfjs, back]) m.dispose();
  x.dispose();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("convert: usage errors and a hostile file give one line on stderr and exit 1 (CLI)", async () => {
  await assert.rejects(convert(["--out", "out/x"]), /--model FILE is required/);
  await assert.rejects(convert(["--model", "a.h5"]), /--out DIR is required/);
  await assert.rejects(convert(["--model", "a.h5", "--out", "out/x", "--frobnicate"]), UserError);
  await assert.rejects(
    convert(["--model", join(FIX, "tiny_keras2.h5"), "--out", "out/x", "--scale", "abc"]),
    /--scale abc is not a number/,
  );
  const { code, stdout, stderr } = await runMain(
    ["convert", "--model", join(FIX, "zip_slip.keras"), "--out", "out/never"],
    { write: "out" },
  );
  const err = stderr.trimEnd();
  assert.equal(code, 1);
  assert.equal(stdout, "");
  assert.equal(err.split("\n").length, 1, err);
  assert.match(err, /^prunescope convert: .*zip_slip\.keras: refusing the archive/);
  assert.equal(await Deno.stat("out/never").then(() => true, () => false), false);
});
