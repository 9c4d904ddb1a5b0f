/**
 * Open a Keras model file as a TF.js LayersModel, in pure TypeScript (no Python, no converter):
 *
 * - Keras 2 full-model HDF5 (`model_config` attribute + `model_weights` group; optimizer ignored);
 * - weights-only HDF5 plus the `model.to_json()` file given as `config`;
 * - legacy HDF5 written by Keras 3 (`batch_shape`, DTypePolicy objects, Keras 3 weight paths);
 * - `.keras` archives from Keras 3 and from tf.keras 2.13+.
 *
 * The format is told by the bytes (HDF5 signature or zip header), not by the file extension.
 */
import * as tf from "@tensorflow/tfjs";
import { UserError } from "../../core/errors.ts";
import { Hdf5File, isHdf5 } from "./hdf5.ts";
import { isZip, readKerasArchive } from "./zip.ts";
import { type TranslatedModel, translateModelConfig } from "./config.ts";
import { assignWeights, readKerasV3Weights, readLegacyWeights, type WeightSource } from "./weights.ts";

/** What a model reader returns (this one, and load.ts's TF.js reader) before checks and preprocessing. */
export interface RawModel {
  model: tf.LayersModel;
  metadata: Record<string, unknown>;
}

/** Options for `loadKeras`. */
export interface KerasLoadOptions {
  /** A `model.to_json()` file: the architecture for a weights-only HDF5 file. */
  config?: string;
}

/**
 * Load a Keras `.h5` / `.hdf5` / `.keras` file. The metadata holds the input preprocessing only
 * when the file settles it (a Rescaling layer right after the input means raw 0..255 pixels);
 * otherwise it is empty and the caller decides.
 *
 * @example
 * ```ts
 * const { model } = await loadKeras("cifar10_model.keras", {});
 * const { model: m2 } = await loadKeras("weights.h5", { config: "model.json" });
 * ```
 */
export async function loadKeras(path: string, opts: KerasLoadOptions = {}): Promise<RawModel> {
  const bytes = await readBytes(path, "model file");
  let model: tf.LayersModel | undefined;
  try {
    let source: WeightSource;
    if (isZip(bytes)) {
      if (opts.config) {
        throw new UserError(`${path} is a .keras archive with its own config.json; drop --config.`);
      }
      const archive = readKerasArchive(bytes, path);
      const version = archive.metadata.keras_version;
      const translated = translateModelConfig(archive.config, {
        label: `${path} (config.json)`,
        kerasVersion: typeof version === "string" ? version : undefined,
      });
      // The model is built first, so the weights are inflated and read only up to what it can hold.
      model = await buildModel(translated, path);
      const params = model.countParams();
      const file = await Hdf5File.open(archive.weights(weightsByteCap(params)), `${path} (model.weights.h5)`);
      try {
        file.limitValues(weightsValueCap(params), `the ${params} weights of the model's config`);
        source = readKerasV3Weights(file, translated);
      } finally {
        file.close();
      }
    } else if (isHdf5(bytes)) {
      const file = await Hdf5File.open(bytes, path);
      try {
        const version = file.attr("/", "keras_version");
        const kerasVersion = typeof version === "string" ? version : undefined;
        const embedded = file.attr("/", "model_config");
        let config: unknown;
        let label: string;
        if (opts.config) {
          if (embedded !== undefined) {
            throw new UserError(`${path} is a full Keras model with its own model_config; drop --config.`);
          }
          config = parseJson(await readText(opts.config, "--config file"), opts.config);
          label = opts.config;
        } else if (embedded !== undefined) {
          config = parseJson(attrText(embedded, path), `${path} (model_config attribute)`);
          label = path;
        } else {
          throw new UserError(noConfigMessage(file, path));
        }
        const translated = translateModelConfig(config, { label, kerasVersion });
        model = await buildModel(translated, path);
        const params = model.countParams();
        file.limitValues(weightsValueCap(params), `the ${params} weights of the model's config`);
        source = weightSourceOf(file, translated);
      } finally {
        file.close();
      }
    } else {
      throw new UserError(
        `${path} is neither HDF5 nor a zip archive: expected a Keras .h5 or .keras model` +
          `${bytes.length === 0 ? " (the file is empty)" : ""}.`,
      );
    }
    assignWeights(model, source, path);
    return { model, metadata: preprocessingMetadata(model) };
  } catch (e) {
    model?.dispose();
    throw e;
  }
}

/**
 * The most float values a Keras file's weight datasets may hold for a model of `params` weights:
 * the weights themselves, twice over (a legacy file may keep a layer the config drops), plus 64 Ki.
 */
export function weightsValueCap(params: number): number {
  return 2 * params + 2 ** 16;
}

/**
 * The most bytes `model.weights.h5` may inflate to for a model of `params` weights: float64 values
 * with an optimizer's two slots (Adam) each, plus 64 MiB of HDF5 structure.
 */
export function weightsByteCap(params: number): number {
  return 24 * params + 64 * 2 ** 20;
}

/** Where the weights of an opened HDF5 file live. */
function weightSourceOf(file: Hdf5File, translated: TranslatedModel): WeightSource {
  if (file.kind("/model_weights") === "group") return readLegacyWeights(file, "/model_weights");
  if (file.attrNames("/").some((n) => /^layer_names\d*$/.test(n))) return readLegacyWeights(file, "/");
  if (file.kind("/layers") === "group" || file.kind("/_layer_checkpoint_dependencies") === "group") {
    return readKerasV3Weights(file, translated);
  }
  throw new UserError(
    `${file.label} holds no Keras weights (no model_weights group, no layer_names attribute; top level: ${
      file.keys("/").join(", ") || "nothing"
    }).`,
  );
}

function noConfigMessage(file: Hdf5File, path: string): string {
  const weightsOnly = file.attrNames("/").some((n) => /^layer_names\d*$/.test(n)) ||
    file.kind("/layers") === "group" || file.kind("/_layer_checkpoint_dependencies") === "group";
  if (weightsOnly) {
    return `${path} holds only weights (no model_config): pass the architecture with --config model.json ` +
      `(the output of model.to_json()).`;
  }
  const top = file.keys("/").slice(0, 8).join(", ") || "nothing";
  return `${path} is an HDF5 file but not a Keras model: no model_config attribute and no layer_names ` +
    `(top level: ${top}).`;
}

/** Build the TF.js model from the translated config (weights still initial). */
async function buildModel(translated: TranslatedModel, path: string): Promise<tf.LayersModel> {
  try {
    return await tf.models.modelFromJSON({ modelTopology: translated.topology } as tf.io.ModelJSON);
  } catch (e) {
    const msg = ((e as Error).message ?? String(e)).split("\n")[0];
    throw new UserError(`${path}: TF.js cannot build the model from its config: ${msg}.`);
  }
}

/**
 * `{prunescope: {preprocessing}}` when the model's input feeds only a Rescaling layer: the model
 * then takes raw 0..255 pixels and does its own scaling. Empty otherwise.
 */
export function preprocessingMetadata(model: tf.LayersModel): Record<string, unknown> {
  if (model.inputs.length !== 1) return {};
  const input = model.inputs[0];
  const consumers = model.layers.filter((l) =>
    l.getClassName() !== "InputLayer" &&
    l.inboundNodes.some((n) => n.inputTensors.some((t) => t.id === input.id))
  );
  if (consumers.length === 1 && consumers[0].getClassName() === "Rescaling") {
    return { prunescope: { preprocessing: { scale: 1, mean: [0, 0, 0], std: [1, 1, 1] } } };
  }
  return {};
}

/** An HDF5 string attribute as text (h5py may store it as str or as bytes). */
function attrText(v: unknown, path: string): string {
  if (typeof v === "string") return v;
  if (v instanceof Uint8Array) return new TextDecoder().decode(v);
  if (Array.isArray(v) && v.length === 1 && typeof v[0] === "string") return v[0];
  throw new UserError(`${path}: the model_config attribute is not text.`);
}

function parseJson(text: string, label: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new UserError(`${label} is not valid JSON (${(e as Error).message}).`);
  }
}

async function readBytes(path: string, what: string): Promise<Uint8Array> {
  try {
    return await Deno.readFile(path);
  } catch (e) {
    throw fileError(e, path, what);
  }
}

async function readText(path: string, what: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (e) {
    throw fileError(e, path, what);
  }
}

function fileError(e: unknown, path: string, what: string): Error {
  if (e instanceof Deno.errors.NotFound) return new UserError(`${what} not found: ${path}.`);
  if (e instanceof Deno.errors.IsADirectory) return new UserError(`${what} ${path} is a folder, not a file.`);
  if (e instanceof Deno.errors.PermissionDenied) return e;
  return new UserError(`cannot read ${what} ${path}: ${(e as Error).message}.`);
}
