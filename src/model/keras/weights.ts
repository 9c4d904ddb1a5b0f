/**
 * Keras weights out of HDF5 and into a TF.js model. Two layouts exist:
 *
 * - legacy HDF5 (Keras 2 `model.save("x.h5")` / `save_weights`, and Keras 3 legacy `.h5`): a group
 *   with a `layer_names` attribute, one group per layer with a `weight_names` attribute, and the
 *   arrays at `<layer>/<weight name>` (`conv2d/conv2d/kernel:0`, or Keras 3's
 *   `conv2d/sequential_1/conv2d/kernel`);
 * - the `.keras` weights file (`model.weights.h5`): Keras 3 keeps `layers/<slot>/vars/<i>`, where a
 *   slot is the snake-cased class name made unique (`dense`, `dense_1`, ...), not the layer name;
 *   tf.keras 2.13+ keeps `_layer_checkpoint_dependencies/<layer name>/vars/<i>`.
 *
 * Arrays are matched to layers by name (legacy files, like Keras, fall back to order) and every
 * shape is checked before anything is assigned.
 */
import * as tf from "@tensorflow/tfjs";
import { UserError } from "../../core/errors.ts";
import type { FloatArray, Hdf5File } from "./hdf5.ts";
import type { LayerSummary, TranslatedModel } from "./config.ts";

/** One stored array with the name it has in the file. */
export interface NamedArray extends FloatArray {
  name: string;
}

/** The arrays a file holds, per layer, in file order. */
export interface WeightSource {
  layers: { name: string; arrays: NamedArray[] }[];
  /** Legacy HDF5 may be matched by order when names differ (as Keras itself does). */
  orderFallback: boolean;
}

/**
 * A string-list attribute (`layer_names`, `weight_names`), including h5py's chunked form
 * (`layer_names0`, `layer_names1`, ...) used when the list outgrows 64 KiB. Undefined when absent.
 */
export function readStringList(file: Hdf5File, path: string, name: string): string[] | undefined {
  const names = file.attrNames(path);
  const parts = names.includes(name)
    ? [file.attr(path, name)]
    : names.filter((n) => new RegExp(`^${name}\\d+$`).test(n))
      .sort((a, b) => Number(a.slice(name.length)) - Number(b.slice(name.length)))
      .map((n) => file.attr(path, n));
  if (parts.length === 0) return undefined;
  const out: string[] = [];
  for (const p of parts) {
    if (typeof p === "string") out.push(p);
    else if (Array.isArray(p)) out.push(...p.map(String));
    else if (ArrayBuffer.isView(p) && (p as unknown as ArrayLike<unknown>).length === 0) continue;
    else throw new UserError(`${file.label}: attribute ${name} of ${path} is not a list of names.`);
  }
  return out;
}

/** Read legacy-HDF5 weights from the group at `root` ("/model_weights" or "/"). */
export function readLegacyWeights(file: Hdf5File, root: string): WeightSource {
  const layerNames = readStringList(file, root, "layer_names");
  if (!layerNames) {
    throw new UserError(`${file.label}: ${root} has no layer_names attribute, so it holds no Keras weights.`);
  }
  const layers = layerNames.map((layer) => {
    const group = join(root, layer);
    if (file.kind(group) !== "group") {
      throw new UserError(`${file.label}: layer_names lists '${layer}' but the file has no group ${group}.`);
    }
    const weightNames = readStringList(file, group, "weight_names") ?? [];
    const arrays = weightNames.map((w) => {
      const path = join(group, w);
      if (file.kind(path) !== "dataset") {
        throw new UserError(
          `${file.label}: weight '${w}' of layer '${layer}' is listed but missing (${path}).`,
        );
      }
      return { name: w, ...file.readFloat(path) };
    });
    return { name: layer, arrays };
  });
  return { layers, orderFallback: true };
}

/**
 * Keras's `to_snake_case`, which names the weight slots of a `.keras` file.
 *
 * @example
 * ```ts
 * snakeCase("BatchNormalization"); // "batch_normalization"
 * snakeCase("MaxPooling2D");       // "max_pooling2d"
 * ```
 */
export function snakeCase(name: string): string {
  let s = name.replace(/\W+/g, "");
  s = s.replace(/(.)([A-Z][a-z]+)/g, "$1_$2");
  return s.replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();
}

/**
 * The slot (`layers/<slot>`) Keras 3 gives each layer of a model: the snake-cased class name,
 * with `_1`, `_2`, ... for repeats, counted over the model's tracked layers (a Sequential model's
 * InputLayer is not tracked).
 */
export function kerasV3Slots(model: Pick<TranslatedModel, "kind" | "layers">): Map<string, string> {
  const tracked: LayerSummary[] = model.kind === "Sequential"
    ? model.layers.filter((l) => !l.isInput)
    : model.layers;
  const used = new Map<string, number>();
  const slots = new Map<string, string>();
  for (const layer of tracked) {
    const base = snakeCase(layer.className);
    const n = used.get(base);
    used.set(base, n === undefined ? 0 : n + 1);
    slots.set(layer.name, n === undefined ? base : `${base}_${n + 1}`);
  }
  return slots;
}

/** Read `.keras`-style weights (Keras 3 `layers/...` or tf.keras `_layer_checkpoint_dependencies/...`). */
export function readKerasV3Weights(
  file: Hdf5File,
  model: Pick<TranslatedModel, "kind" | "layers">,
): WeightSource {
  let varsPath: (layer: LayerSummary) => string;
  if (file.kind("/layers") === "group") {
    const slots = kerasV3Slots(model);
    // Keras >= 3.x also records each slot's layer name; prefer it where present.
    const byName = new Map<string, string>();
    for (const slot of file.keys("/layers")) {
      const vars = `/layers/${slot}/vars`;
      if (file.kind(vars) !== "group") continue;
      const recorded = file.attr(vars, "name");
      if (typeof recorded === "string") byName.set(recorded, vars);
    }
    varsPath = (l) => byName.get(l.name) ?? `/layers/${slots.get(l.name) ?? snakeCase(l.className)}/vars`;
  } else if (file.kind("/_layer_checkpoint_dependencies") === "group") {
    varsPath = (l) => `/_layer_checkpoint_dependencies/${l.name}/vars`;
  } else {
    const top = file.keys("/").join(", ") || "nothing";
    throw new UserError(
      `${file.label}: no 'layers' or '_layer_checkpoint_dependencies' group (top level: ${top}): not Keras weights.`,
    );
  }
  const layers = model.layers.map((l) => {
    const vars = varsPath(l);
    if (file.kind(vars) !== "group") return { name: l.name, arrays: [] };
    const arrays = file.keys(vars)
      .filter((k) => /^\d+$/.test(k))
      .sort((a, b) => Number(a) - Number(b))
      .map((k) => ({ name: `${vars}/${k}`, ...file.readFloat(`${vars}/${k}`) }));
    return { name: l.name, arrays };
  });
  return { layers, orderFallback: false };
}

/**
 * Put `source`'s arrays into `model`'s layers, after checking that every layer with weights gets
 * exactly the arrays it needs, shape by shape. `label` names the file in errors.
 */
export function assignWeights(model: tf.LayersModel, source: WeightSource, label: string): void {
  const needing = model.layers.filter((l) => l.weights.length > 0);
  const stored = source.layers.filter((l) => l.arrays.length > 0);
  const byName = new Map(stored.map((l) => [l.name, l.arrays]));
  let pairs: { layer: tf.layers.Layer; arrays: NamedArray[]; from: string }[];
  const missing = needing.filter((l) => !byName.has(l.name)).map((l) => l.name);
  if (missing.length === 0) {
    const extra = stored.filter((s) => !needing.some((l) => l.name === s.name)).map((s) => s.name);
    if (extra.length > 0) {
      throw new UserError(
        `${label}: the weights include layer(s) ${
          list(extra)
        } that the model config does not have (or that take no weights): ` +
          `the weights and the config belong to different models.`,
      );
    }
    pairs = needing.map((layer) => ({ layer, arrays: byName.get(layer.name)!, from: layer.name }));
  } else if (source.orderFallback && stored.length === needing.length) {
    pairs = needing.map((layer, i) => ({ layer, arrays: stored[i].arrays, from: stored[i].name }));
  } else {
    throw new UserError(
      `${label}: no weights for layer(s) ${
        list(missing)
      } (the file holds weights for ${stored.length} layer(s), ` +
        `the config has ${needing.length} layer(s) with weights): the weights and the config do not match.`,
    );
  }
  for (const { layer, arrays, from } of pairs) {
    const expected = layer.weights.map((w) => w.shape);
    const what = `layer '${layer.name}' (${layer.getClassName()})`;
    const source = from === layer.name ? "" : ` (stored as '${from}')`;
    if (arrays.length !== expected.length) {
      throw new UserError(
        `${label}: ${what}${source} needs ${expected.length} weight arrays but the file has ${arrays.length}: ` +
          `the weights do not match the config.`,
      );
    }
    arrays.forEach((a, i) => {
      if (!sameShape(a.shape, expected[i])) {
        throw new UserError(
          `${label}: ${what}${source}: weight '${a.name}' has shape ${
            JSON.stringify(a.shape)
          } but the config needs ` +
            `${JSON.stringify(expected[i])}: the weights do not match the config.`,
        );
      }
      if (a.data.length !== tf.util.sizeFromShape(a.shape)) {
        throw new UserError(
          `${label}: ${what}: weight '${a.name}' holds ${a.data.length} values for shape ${
            JSON.stringify(a.shape)
          }.`,
        );
      }
    });
  }
  for (const { layer, arrays } of pairs) {
    const tensors = arrays.map((a) => tf.tensor(a.data, a.shape, "float32"));
    try {
      layer.setWeights(tensors);
    } finally {
      tf.dispose(tensors);
    }
  }
}

function sameShape(a: number[], b: (number | null)[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function join(group: string, name: string): string {
  return group === "/" ? `/${name}` : `${group}/${name}`;
}

function list(names: string[]): string {
  const shown = names.slice(0, 5).map((n) => `'${n}'`).join(", ");
  return names.length > 5 ? `${shown} and ${names.length - 5} more` : shown;
}
