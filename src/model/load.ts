/**
 * One entry point from a path to a ready model: `loadModel(path)` dispatches on the format
 * (TF.js model.json, Keras .h5 / .keras), checks it is a CIFAR-10 classifier (32x32x3 in,
 * 10 classes out) and resolves its input preprocessing (metadata, else flags, else x/255).
 */
import * as tf from "@tensorflow/tfjs";
import { UserError } from "../core/errors.ts";
import { DEFAULT_PREPROCESSING, type Preprocessing } from "../types.ts";
import { fileLoader } from "./tfjs_io.ts";
import type { RawModel } from "./keras/load.ts";
import { CLASS_NAMES } from "../data/cifar10.ts";

/** A model ready to evaluate, with what we know about its inputs. */
export interface LoadedModel {
  model: tf.LayersModel;
  path: string;
  format: "tfjs" | "keras";
  preprocessing: Preprocessing;
  /** Where the preprocessing came from. */
  preprocessingSource: "metadata" | "flags" | "default";
  classNames: string[];
  /** The model's own metadata (TF.js userDefinedMetadata), if any. */
  metadata: Record<string, unknown>;
}

/** Options that complete what a model file does not say. */
export interface LoadOptions {
  /** Preprocessing given on the command line; used when the model's metadata has none. */
  preprocessing?: Partial<Preprocessing>;
  /** A Keras `model.to_json()` file, for weights-only HDF5. */
  config?: string;
}

/**
 * Load a model from `path` (model.json, .h5 or .keras).
 *
 * @example
 * ```ts
 * const { model, preprocessing } = await loadModel("fixtures/models/default/model.json");
 * ```
 */
export async function loadModel(path: string, opts: LoadOptions = {}): Promise<LoadedModel> {
  const lower = path.toLowerCase();
  let raw: RawModel;
  let format: LoadedModel["format"];
  if (lower.endsWith(".h5") || lower.endsWith(".hdf5") || lower.endsWith(".keras")) {
    const { loadKeras } = await import("./keras/load.ts");
    raw = await loadKeras(path, { config: opts.config });
    format = "keras";
  } else {
    raw = await loadTfjs(path);
    format = "tfjs";
  }
  try {
    checkCifarModel(raw.model, path);
    checkFiniteWeights(raw.model, path);
  } catch (e) {
    raw.model.dispose();
    throw e;
  }
  const fromMeta = preprocessingFromMetadata(raw.metadata);
  const fromFlags = opts.preprocessing && Object.keys(opts.preprocessing).length > 0;
  const preprocessing = fromMeta ?? { ...DEFAULT_PREPROCESSING, ...(opts.preprocessing ?? {}) };
  const names = (raw.metadata.prunescope as { classNames?: string[] } | undefined)?.classNames;
  return {
    model: raw.model,
    path,
    format,
    preprocessing,
    preprocessingSource: fromMeta ? "metadata" : fromFlags ? "flags" : "default",
    classNames: Array.isArray(names) && names.length === 10 ? names : CLASS_NAMES,
    metadata: raw.metadata,
  };
}

async function loadTfjs(path: string): Promise<RawModel> {
  const handler = fileLoader(path);
  const artifacts = await handler.load!();
  let model: tf.LayersModel;
  try {
    model = await tf.loadLayersModel({ load: () => Promise.resolve(artifacts) });
  } catch (e) {
    const msg = (e as Error).message.split("\n")[0];
    throw new UserError(`cannot build the model in ${path}: ${msg}.`);
  }
  return { model, metadata: (artifacts.userDefinedMetadata ?? {}) as Record<string, unknown> };
}

/** Throw a UserError unless `model` maps 32x32x3 images to 10 classes. */
export function checkCifarModel(model: tf.LayersModel, path: string): void {
  if (model.inputs.length !== 1 || model.outputs.length !== 1) {
    throw new UserError(
      `${path}: the model has ${model.inputs.length} inputs and ${model.outputs.length} outputs; a CIFAR-10 classifier has one of each.`,
    );
  }
  const inShape = model.inputs[0].shape.slice(1);
  if (inShape.length !== 3 || inShape[0] !== 32 || inShape[1] !== 32 || inShape[2] !== 3) {
    throw new UserError(
      `${path}: the model's input is ${
        JSON.stringify(inShape)
      }, not 32x32x3 (height, width, RGB channels last): it is not a CIFAR-10 model.`,
    );
  }
  const outShape = model.outputs[0].shape.slice(1);
  if (outShape.length !== 1 || outShape[0] !== 10) {
    throw new UserError(
      `${path}: the model's output is ${
        JSON.stringify(outShape)
      }, not 10 classes: it is not a CIFAR-10 classifier.`,
    );
  }
}

/**
 * Throw a UserError naming the first layer and tensor whose weights hold NaN or Infinity: such a
 * model computes garbage (often a constant class, i.e. chance-level accuracy) without failing.
 *
 * @example
 * ```ts
 * checkFiniteWeights(model, "m.json"); // throws e.g. "m.json: layer conv2d, tensor conv2d/kernel: 3 of 864 values are NaN ..."
 * ```
 */
export function checkFiniteWeights(model: tf.LayersModel, path: string): void {
  for (const layer of model.layers) {
    for (const w of layer.weights) {
      const values = w.read().dataSync();
      let nan = 0, inf = 0;
      for (let i = 0; i < values.length; i++) {
        const v = values[i];
        if (v !== v) nan++;
        else if (v === Infinity || v === -Infinity) inf++;
      }
      if (nan + inf > 0) {
        const what = [nan ? `${nan} NaN` : "", inf ? `${inf} infinite` : ""].filter(Boolean).join(" and ");
        throw new UserError(
          `${path}: layer ${layer.name}, tensor ${w.originalName ?? w.name}: ${what} of ${values.length} ` +
            `values; the weights are broken (a diverged training run or a damaged file): retrain or re-export it.`,
        );
      }
    }
  }
}

/** Preprocessing recorded in a model's metadata (`prunescope.preprocessing` or `preprocessing`). */
export function preprocessingFromMetadata(meta: Record<string, unknown>): Preprocessing | undefined {
  const p = ((meta.prunescope as Record<string, unknown> | undefined)?.preprocessing ?? meta.preprocessing) as
    | Partial<Preprocessing>
    | undefined;
  if (!p || typeof p !== "object" || typeof p.scale !== "number") return undefined;
  return {
    scale: p.scale,
    mean: (Array.isArray(p.mean) && p.mean.length === 3 ? p.mean : [0, 0, 0]) as Preprocessing["mean"],
    std: (Array.isArray(p.std) && p.std.length === 3 ? p.std : [1, 1, 1]) as Preprocessing["std"],
  };
}
