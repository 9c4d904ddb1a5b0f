/**
 * One entry point from a path to a ready model: `loadModel(path)` dispatches on the format
 * (TF.js model.json, Keras .h5 / .keras), checks it is an image classifier (one H x W x C input
 * with 1 or 3 channels, one vector of class scores out) and resolves its input preprocessing
 * (metadata, else flags, else x/255).
 */
import * as tf from "@tensorflow/tfjs";
import { UserError } from "../core/errors.ts";
import {
  type Dataset,
  datasetShape,
  DEFAULT_PREPROCESSING,
  type ImageShape,
  type Preprocessing,
} from "../types.ts";
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
  /** The input the model takes and the classes it scores. */
  io: ModelIO;
  /** The model's own metadata (TF.js userDefinedMetadata), if any. */
  metadata: Record<string, unknown>;
}

/** What a classifier takes and gives: its input image shape and its number of classes. */
export interface ModelIO {
  shape: ImageShape;
  classes: number;
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
  let io: ModelIO;
  try {
    io = checkClassifier(raw.model, path);
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
    classNames: Array.isArray(names) && names.length === io.classes
      ? names
      : io.classes === 10
      ? CLASS_NAMES
      : Array.from({ length: io.classes }, (_, i) => String(i)),
    io,
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

/**
 * The model's input shape and class count, or a UserError unless it maps one H x W x C image
 * (1 or 3 channels, channels last) to one vector of class scores.
 *
 * @example
 * ```ts
 * checkClassifier(model, "m.json"); // { shape: { height: 32, width: 32, channels: 3 }, classes: 10 }
 * ```
 */
export function checkClassifier(model: tf.LayersModel, path: string): ModelIO {
  if (model.inputs.length !== 1 || model.outputs.length !== 1) {
    throw new UserError(
      `${path}: the model has ${model.inputs.length} inputs and ${model.outputs.length} outputs; an image classifier has one of each.`,
    );
  }
  const inShape = model.inputs[0].shape.slice(1);
  if (
    inShape.length !== 3 || inShape.some((d) => d === null || !(d > 0)) ||
    (inShape[2] !== 1 && inShape[2] !== 3)
  ) {
    throw new UserError(
      `${path}: the model's input is ${
        JSON.stringify(inShape)
      }, not a fixed H x W x C image with 1 or 3 channels last: prunescope needs an image classifier ` +
        `with a fixed input size.`,
    );
  }
  const outShape = model.outputs[0].shape.slice(1);
  if (outShape.length !== 1 || !(outShape[0]! >= 2)) {
    throw new UserError(
      `${path}: the model's output is ${
        JSON.stringify(outShape)
      }, not a vector of class scores: it is not a classifier.`,
    );
  }
  const [height, width, channels] = inShape as number[];
  return { shape: { height, width, channels }, classes: outShape[0]! };
}

/** "28x28x1 -> 10". */
export function describeIO(io: ModelIO): string {
  return `${io.shape.height}x${io.shape.width}x${io.shape.channels} -> ${io.classes}`;
}

/**
 * Throw a UserError unless `ds` fits the model: the same image shape, and labels within its
 * classes (the data's class count, where it says, equal to the model's). `flag` names the data
 * in the message (--data, --calib).
 *
 * @example
 * ```ts
 * checkDataFits(loaded.io, test, loaded.path); // "model expects 28x28x1 -> 10, data is 32x32x3 with 100 classes"
 * ```
 */
export function checkDataFits(io: ModelIO, ds: Dataset, path: string, flag = "--data"): void {
  const s = datasetShape(ds);
  const classes = ds.classNames?.length ?? 10;
  const sameShape = s.height === io.shape.height && s.width === io.shape.width &&
    s.channels === io.shape.channels;
  const top = ds.labels.reduce((m, y) => Math.max(m, y), 0);
  if (!sameShape || classes !== io.classes || top >= io.classes) {
    throw new UserError(
      `${path}: the model expects ${describeIO(io)}, the ${
        flag === "--data" ? "" : `${flag} `
      }data ${ds.source} is ${s.height}x${s.width}x${s.channels} ` +
        `with ${classes} classes${
          top >= io.classes ? ` (labels up to ${top})` : ""
        }: pick the model's data ` +
        `(${flag}, --format, --labels) or, for image folders, --resize / --color.`,
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
