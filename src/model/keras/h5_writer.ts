/**
 * Our own writer of the Keras 2 HDF5 layouts, as `model.save("m.h5")` and `model.save_weights()`
 * write them with h5py:
 *
 * ```
 * /                     attrs: keras_version, backend, model_config (JSON)     [full model only]
 * /model_weights        attrs: layer_names, keras_version, backend             [root for weights-only]
 * /model_weights/<layer>            attr: weight_names ("<layer>/kernel:0", ...; empty list if none)
 * /model_weights/<layer>/<layer>/kernel:0   float32 dataset
 * ```
 *
 * Used to round-trip TF.js-built models through the Keras reader, and by `convert` to export a
 * model to Keras 2 HDF5.
 */
import type * as tf from "@tensorflow/tfjs";
import { type Hdf5Builder, writeHdf5 } from "./hdf5.ts";

/** The Keras version string written into the files. */
export const WRITER_KERAS_VERSION = "2.15.0";

/** Options for `writeKerasH5`. */
export interface KerasH5Options {
  /** Write only the weights (the `save_weights` layout); pair the file with `kerasModelJson(model)`. */
  weightsOnly?: boolean;
  /**
   * Store this `{class_name, config}` as `model_config` instead of the model's own (used to make
   * deliberately inconsistent test fixtures).
   */
  modelConfig?: unknown;
}

/**
 * The Keras `model.to_json()` object for a TF.js model: `{class_name, config, keras_version, backend}`.
 *
 * @example
 * ```ts
 * await Deno.writeTextFile("model.json", JSON.stringify(kerasModelJson(model)));
 * ```
 */
export function kerasModelJson(model: tf.LayersModel): Record<string, unknown> {
  const json = model.toJSON(null, false) as Record<string, unknown>;
  return {
    class_name: json.class_name,
    config: json.config,
    keras_version: WRITER_KERAS_VERSION,
    backend: "tensorflow",
  };
}

/**
 * Keras 2 HDF5 bytes for `model`: the full-model layout, or with `weightsOnly` the `save_weights`
 * layout (pair it with `kerasModelJson(model)`).
 *
 * @example
 * ```ts
 * await Deno.writeFile("out/model.h5", await writeKerasH5(model));
 * ```
 */
export function writeKerasH5(model: tf.LayersModel, opts: KerasH5Options = {}): Promise<Uint8Array> {
  const layers = savedLayers(model);
  return writeHdf5((b) => {
    let root = "/";
    if (!opts.weightsOnly) {
      const json = kerasModelJson(model);
      b.attr("/", "backend", { kind: "utf8", value: "tensorflow" });
      b.attr("/", "keras_version", { kind: "utf8", value: WRITER_KERAS_VERSION });
      b.attr("/", "model_config", {
        kind: "utf8",
        value: JSON.stringify(opts.modelConfig ?? { class_name: json.class_name, config: json.config }),
      });
      root = "/model_weights";
      b.group(root);
    }
    writeWeightsGroup(b, root, layers);
  });
}

/** Keras 2 saves `model.layers`: for a Sequential model, without its implicit InputLayer. */
function savedLayers(model: tf.LayersModel): tf.layers.Layer[] {
  const isSequential = model.getClassName() === "Sequential";
  return model.layers.filter((l) => !(isSequential && l.getClassName() === "InputLayer"));
}

function writeWeightsGroup(b: Hdf5Builder, root: string, layers: tf.layers.Layer[]): void {
  const at = (name: string) => (root === "/" ? `/${name}` : `${root}/${name}`);
  b.attr(root, "backend", { kind: "utf8", value: "tensorflow" });
  b.attr(root, "keras_version", { kind: "utf8", value: WRITER_KERAS_VERSION });
  b.attr(root, "layer_names", { kind: "ascii-list", value: layers.map((l) => l.name) });
  for (const layer of layers) {
    const group = at(layer.name);
    b.group(group);
    // Keras 2 saves layer.weights: trainable weights first, then non-trainable (as TF.js orders them).
    const weights = layer.weights;
    const names = weights.map((w) => `${layer.name}/${shortName(w.originalName ?? w.name)}:0`);
    if (names.length === 0) {
      b.attr(group, "weight_names", { kind: "empty-list" });
      continue;
    }
    b.attr(group, "weight_names", { kind: "ascii-list", value: names });
    const made = new Set<string>();
    weights.forEach((w, i) => {
      const parts = names[i].split("/");
      for (let k = 1; k < parts.length; k++) {
        const sub = `${group}/${parts.slice(0, k).join("/")}`;
        if (!made.has(sub)) {
          b.group(sub);
          made.add(sub);
        }
      }
      // read() is the variable itself (not a copy): read its data, never dispose it.
      b.float32(`${group}/${names[i]}`, w.shape as number[], w.read().dataSync() as Float32Array);
    });
  }
}

/** "conv2d/kernel" -> "kernel" (TF.js may also add a uniquifying "_1" to the variable's name). */
function shortName(name: string): string {
  return name.slice(name.lastIndexOf("/") + 1);
}
