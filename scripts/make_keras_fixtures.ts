/**
 * Small Keras files for tests/model/keras_test.ts, written into fixtures/keras/ (run with
 * `deno run --allow-read --allow-write=fixtures --allow-env scripts/make_keras_fixtures.ts`).
 *
 * Two tiny CIFAR-shaped TF.js models (a Sequential one and a Functional one with Add, Concatenate,
 * ZeroPadding2D, Rescaling, ...) with deterministic weights are saved in each Keras layout:
 * Keras 2 full-model HDF5 and weights-only HDF5 + JSON (our writer), a Keras 3 `.keras` archive and
 * a tf.keras 2.14 `.keras` archive (configs and weight paths modelled on the real files in
 * ../shared/models). Then the bad and hostile files: truncated HDF5, HDF5 that is not Keras, a
 * zip without config.json, weights that do not fit the config, a zip entry named `../evil.txt`,
 * a Lambda layer and a custom layer.
 *
 * The builders are exported so tests can compare a loaded file with the model it came from.
 */
import * as tf from "@tensorflow/tfjs";
import { strToU8, zipSync } from "fflate";
import { join } from "node:path";
import { writeHdf5 } from "../src/model/keras/hdf5.ts";
import { kerasModelJson, writeKerasH5 } from "../src/model/keras/h5_writer.ts";
import { mulberry32 } from "../src/core/random.ts";

type Dict = Record<string, unknown>;

/**
 * Give every weight of `model` deterministic values: BN variances in [0.5, 1.5), gammas around 1,
 * everything else in [-0.5, 0.5) scaled down by fan-in so activations stay in range.
 */
export function fillWeights(model: tf.LayersModel, seed: number): void {
  const next = mulberry32(seed);
  for (const layer of model.layers) {
    const values = layer.weights.map((w) => {
      const n = tf.util.sizeFromShape(w.shape as number[]);
      const short = w.originalName.slice(w.originalName.lastIndexOf("/") + 1);
      const fanIn = w.shape.length > 1 ? n / (w.shape.at(-1) as number) : 1;
      const data = new Float32Array(n);
      for (let i = 0; i < n; i++) {
        const u = next();
        data[i] = short === "moving_variance"
          ? 0.5 + u
          : short === "gamma"
          ? 0.8 + 0.4 * u
          : (u - 0.5) * 2 / Math.sqrt(fanIn);
      }
      return tf.tensor(data, w.shape as number[]);
    });
    if (values.length > 0) layer.setWeights(values);
    tf.dispose(values);
  }
}

/** Sequential: Conv2D-BN-MaxPool-Conv2D-ReLU-Dropout-GlobalAveragePooling2D-Dense(softmax). */
export function tinySequential(): tf.Sequential {
  const m = tf.sequential({
    name: "tiny_sequential",
    layers: [
      tf.layers.conv2d({
        name: "conv2d",
        inputShape: [32, 32, 3],
        filters: 4,
        kernelSize: 3,
        padding: "same",
        activation: "relu",
      }),
      tf.layers.batchNormalization({ name: "batch_normalization" }),
      tf.layers.maxPooling2d({ name: "max_pooling2d", poolSize: 2 }),
      tf.layers.conv2d({ name: "conv2d_1", filters: 6, kernelSize: 3 }),
      tf.layers.reLU({ name: "re_lu" }),
      tf.layers.dropout({ name: "dropout", rate: 0.25 }),
      tf.layers.globalAveragePooling2d({ name: "global_average_pooling2d" }),
      tf.layers.dense({ name: "dense", units: 10, activation: "softmax" }),
    ],
  });
  fillWeights(m, 1);
  return m;
}

/**
 * Functional: Rescaling, two branches (Conv2D-BN-Activation and ZeroPadding2D-Conv2D-ReLU) joined
 * by Add and Concatenate, then AveragePooling2D, MaxPooling2D, Flatten, Dropout, Dense.
 */
export function tinyFunctional(): tf.LayersModel {
  const x = tf.input({ shape: [32, 32, 3], name: "input_layer" });
  const r = tf.layers.rescaling({ name: "rescaling", scale: 1 / 255 }).apply(x) as tf.SymbolicTensor;
  let a = tf.layers.conv2d({ name: "conv2d", filters: 4, kernelSize: 3, padding: "same" }).apply(
    r,
  ) as tf.SymbolicTensor;
  a = tf.layers.batchNormalization({ name: "batch_normalization" }).apply(a) as tf.SymbolicTensor;
  a = tf.layers.activation({ name: "activation", activation: "relu" }).apply(a) as tf.SymbolicTensor;
  let b = tf.layers.zeroPadding2d({ name: "zero_padding2d", padding: 1 }).apply(r) as tf.SymbolicTensor;
  b = tf.layers.conv2d({ name: "conv2d_1", filters: 4, kernelSize: 3 }).apply(b) as tf.SymbolicTensor;
  b = tf.layers.reLU({ name: "re_lu" }).apply(b) as tf.SymbolicTensor;
  const s = tf.layers.add({ name: "add" }).apply([a, b]) as tf.SymbolicTensor;
  const c = tf.layers.concatenate({ name: "concatenate" }).apply([s, a]) as tf.SymbolicTensor;
  const p = tf.layers.averagePooling2d({ name: "average_pooling2d", poolSize: 2 }).apply(
    c,
  ) as tf.SymbolicTensor;
  const q = tf.layers.maxPooling2d({ name: "max_pooling2d", poolSize: 2 }).apply(p) as tf.SymbolicTensor;
  const f = tf.layers.flatten({ name: "flatten" }).apply(q) as tf.SymbolicTensor;
  const d = tf.layers.dropout({ name: "dropout", rate: 0.5 }).apply(f) as tf.SymbolicTensor;
  const o = tf.layers.dense({ name: "dense", units: 10, activation: "softmax" }).apply(
    d,
  ) as tf.SymbolicTensor;
  const m = tf.model({ name: "tiny_functional", inputs: x, outputs: o });
  fillWeights(m, 2);
  return m;
}

// ---- Keras 3 and tf.keras 2.14 `.keras` archives ------------------------------------------------

const KERAS3_SLOT_NAMES: Record<string, string> = {
  InputLayer: "input_layer",
  Conv2D: "conv2d",
  BatchNormalization: "batch_normalization",
  MaxPooling2D: "max_pooling2d",
  AveragePooling2D: "average_pooling2d",
  GlobalAveragePooling2D: "global_average_pooling2d",
  ReLU: "re_lu",
  Dropout: "dropout",
  Dense: "dense",
  Rescaling: "rescaling",
  Activation: "activation",
  ZeroPadding2D: "zero_padding2d",
  Add: "add",
  Concatenate: "concatenate",
  Flatten: "flatten",
};

/** Fixed entry times (as Keras writes them), so regenerated archives are byte-identical. */
const ZIP_OPTS = { mtime: new Date(1980, 0, 1) };

const policy = (name: string) => ({
  module: "keras",
  class_name: "DTypePolicy",
  config: { name },
  registered_name: null,
});

/** Keras 3 / tf.keras 2.14 style: wrap serialized objects with module and registered_name. */
function wrap(module: string, obj: Dict): Dict {
  return { module, class_name: obj.class_name, config: obj.config, registered_name: null };
}

/** A TF.js pythonic layer config rewritten the way `style` writes it. */
function layerConfigAs(style: "keras3" | "tfkeras214", className: string, cfg: Dict): Dict {
  const out: Dict = {};
  for (const [k, v] of Object.entries(cfg)) {
    const d = v && typeof v === "object" && !Array.isArray(v) ? v as Dict : null;
    if (d && typeof d.class_name === "string" && k.endsWith("_initializer")) {
      out[k] = wrap("keras.initializers", d);
    } else if (k === "batch_input_shape") {
      if (className === "InputLayer") out[style === "keras3" ? "batch_shape" : "batch_input_shape"] = v;
      else if (style === "tfkeras214") out[k] = v;
    } else if (k === "dtype") {
      out[k] = style === "keras3" && className !== "InputLayer" ? policy(String(v)) : v;
    } else {
      out[k] = v;
    }
  }
  if (style === "keras3" && className !== "InputLayer" && !("dtype" in out)) out.dtype = policy("float32");
  if (className === "InputLayer") Object.assign(out, { sparse: false, ragged: false });
  if (className === "Conv2D") out.groups = 1;
  if (className === "BatchNormalization") {
    if (style === "keras3") out.synchronized = false;
    else out.axis = [3];
  }
  return out;
}

/** The `config.json` of a `.keras` archive for `model`, in Keras 3 or tf.keras 2.14 style. */
export function kerasArchiveConfig(model: tf.LayersModel, style: "keras3" | "tfkeras214"): Dict {
  const json = model.toJSON(null, false) as Dict;
  const cfg = json.config as Dict;
  const isSequential = json.class_name === "Sequential";
  const shapes = new Map(model.layers.map((l) => [l.name, l.outputShape]));
  const tensor = (t: unknown[]) => ({
    class_name: "__keras_tensor__",
    config: { shape: shapes.get(String(t[0])), dtype: "float32", keras_history: [t[0], t[1], t[2]] },
  });
  let layers = (cfg.layers as Dict[]).map((l) => {
    const className = String(l.class_name);
    const out: Dict = {
      module: "keras.layers",
      class_name: className,
      config: layerConfigAs(style, className, l.config as Dict),
      registered_name: null,
    };
    if (!isSequential) {
      out.name = l.name;
      const nodes = l.inbound_nodes as unknown[][][];
      out.inbound_nodes = style === "tfkeras214" ? nodes : nodes.map((node) => ({
        args: node.length === 1 ? [tensor(node[0])] : [node.map(tensor)],
        kwargs: {},
      }));
    }
    return out;
  });
  if (isSequential && layers[0].class_name !== "InputLayer") {
    const first = (cfg.layers as Dict[])[0].config as Dict;
    layers = [{
      module: "keras.layers",
      class_name: "InputLayer",
      config: layerConfigAs(style, "InputLayer", {
        batch_input_shape: first.batch_input_shape,
        dtype: "float32",
        name: `${first.name}_input`,
      }),
      registered_name: null,
    }, ...layers];
  }
  const config: Dict = { name: cfg.name, layers };
  if (style === "keras3") Object.assign(config, { trainable: true, dtype: policy("float32") });
  if (!isSequential) {
    Object.assign(config, { input_layers: cfg.input_layers, output_layers: cfg.output_layers });
  }
  return {
    module: "keras",
    class_name: isSequential ? "Sequential" : "Functional",
    config,
    registered_name: null,
    build_config: { input_shape: [null, 32, 32, 3] },
  };
}

/**
 * `model.weights.h5` of a `.keras` archive: Keras 3 keeps `layers/<slot>/vars/<i>` (slot = the
 * snake-cased class name made unique, InputLayer untracked in Sequential models); tf.keras 2.14
 * keeps `_layer_checkpoint_dependencies/<layer name>/vars/<i>`.
 */
export function kerasArchiveWeights(
  model: tf.LayersModel,
  style: "keras3" | "tfkeras214",
): Promise<Uint8Array> {
  const isSequential = model.getClassName() === "Sequential";
  const layers = model.layers.filter((l) => !(isSequential && l.getClassName() === "InputLayer"));
  const root = style === "keras3" ? "/layers" : "/_layer_checkpoint_dependencies";
  const used = new Map<string, number>();
  return writeHdf5((b) => {
    b.group(root);
    for (const layer of layers) {
      let slot = layer.name;
      if (style === "keras3") {
        const base = KERAS3_SLOT_NAMES[layer.getClassName()];
        if (!base) throw new Error(`no Keras 3 slot name for ${layer.getClassName()}`);
        const n = used.get(base);
        used.set(base, n === undefined ? 0 : n + 1);
        slot = n === undefined ? base : `${base}_${n + 1}`;
      }
      b.group(`${root}/${slot}`);
      b.group(`${root}/${slot}/vars`);
      layer.weights.forEach((w, i) => {
        b.float32(`${root}/${slot}/vars/${i}`, w.shape as number[], w.read().dataSync() as Float32Array);
      });
    }
    b.group("/optimizer");
    b.group("/optimizer/vars");
    b.group("/vars");
  });
}

/** A whole `.keras` archive (zip) for `model`; `extra` entries are added as given. */
export async function kerasArchive(
  model: tf.LayersModel,
  style: "keras3" | "tfkeras214",
  extra: Record<string, Uint8Array> = {},
  configOverride?: Dict,
): Promise<Uint8Array> {
  const version = style === "keras3" ? "3.11.3" : "2.14.0";
  return zipSync({
    "metadata.json": strToU8(JSON.stringify({ keras_version: version, date_saved: "2025-01-01@00:00:00" })),
    "config.json": strToU8(JSON.stringify(configOverride ?? kerasArchiveConfig(model, style))),
    "model.weights.h5": await kerasArchiveWeights(model, style),
    ...extra,
  }, ZIP_OPTS);
}

// ---- the fixture files ----------------------------------------------------------------------

/** Write every fixture into `dir`. */
export async function makeKerasFixtures(dir: string): Promise<string[]> {
  await Deno.mkdir(dir, { recursive: true });
  const written: string[] = [];
  const put = async (name: string, data: Uint8Array | string) => {
    const path = join(dir, name);
    if (typeof data === "string") await Deno.writeTextFile(path, data);
    else await Deno.writeFile(path, data);
    written.push(path);
  };
  const seq = tinySequential();
  const fun = tinyFunctional();

  // Valid files, one per layout.
  const seqH5 = await writeKerasH5(seq);
  await put("tiny_keras2.h5", seqH5);
  await put("tiny_functional_keras2.h5", await writeKerasH5(fun));
  await put("tiny_weights_only.h5", await writeKerasH5(seq, { weightsOnly: true }));
  await put("tiny_model.json", JSON.stringify(kerasModelJson(seq)));
  await put("tiny_keras3.keras", await kerasArchive(seq, "keras3"));
  await put("tiny_functional_keras3.keras", await kerasArchive(fun, "keras3"));
  await put("tiny_tfkeras214.keras", await kerasArchive(seq, "tfkeras214"));

  // Bad and hostile files.
  await put("truncated.h5", seqH5.slice(0, Math.floor(seqH5.length * 0.6)));
  await put(
    "not_keras.h5",
    await writeHdf5((b) => {
      b.group("/measurements");
      b.attr("/measurements", "instrument", { kind: "utf8", value: "thermometer" });
      b.float32("/measurements/temperature", [4], Float32Array.of(20.5, 21, 21.5, 22));
    }),
  );
  const weightsH5 = await kerasArchiveWeights(seq, "keras3");
  await put(
    "no_config.keras",
    zipSync({
      "metadata.json": strToU8(JSON.stringify({ keras_version: "3.11.3" })),
      "model.weights.h5": weightsH5,
    }, ZIP_OPTS),
  );
  const wider = JSON.parse(JSON.stringify(kerasModelJson(seq)));
  wider.config.layers[0].config.filters = 8; // the weights hold 4 filters
  await put("shape_mismatch.h5", await writeKerasH5(seq, { modelConfig: wider }));
  await put("zip_slip.keras", await kerasArchive(seq, "keras3", { "../evil.txt": strToU8("owned\n") }));

  const withLambda = JSON.parse(JSON.stringify(kerasModelJson(seq)));
  withLambda.config.layers.splice(6, 0, {
    class_name: "Lambda",
    config: {
      name: "lambda",
      trainable: true,
      dtype: "float32",
      // What Keras 2 stores: marshalled Python bytecode. It is never decoded, let alone run.
      function: [
        "4wEAAAAAAAAAAAAAAAEAAAACAAAAQwAAAHMIAAAAfABkARQAUwApAk7pAgAAAKkAKQHaAXhyAgAAAHICAAAA+gc8c3RkaW4+2gg8bGFtYmRhPgEAAADzAAAAAA==",
        null,
        null,
      ],
      function_type: "lambda",
      module: "__main__",
      output_shape: null,
      output_shape_type: "raw",
      output_shape_module: null,
      arguments: {},
    },
  });
  await put("lambda.h5", await writeKerasH5(seq, { modelConfig: withLambda }));

  const custom = kerasArchiveConfig(seq, "keras3");
  const layers = (custom.config as Dict).layers as Dict[];
  layers.splice(3, 0, {
    module: "my_project.layers",
    class_name: "ChannelScale",
    config: { name: "channel_scale", trainable: true, dtype: policy("float32"), factor: 2 },
    registered_name: "MyProject>ChannelScale",
    build_config: { input_shape: [null, 16, 16, 4] },
  });
  await put("custom_layer.keras", await kerasArchive(seq, "keras3", {}, custom));
  seq.dispose();
  fun.dispose();
  return written;
}

if (import.meta.main) {
  const written = await makeKerasFixtures("fixtures/keras");
  for (const p of written) console.log(`wrote ${p} (${(await Deno.stat(p)).size} bytes)`);
}
