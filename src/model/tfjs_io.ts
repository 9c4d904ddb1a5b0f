/**
 * TF.js LayersModel files on disk (`model.json` + weight shards), read and written without
 * tfjs-node: a small IOHandler over Deno's file API.
 */
import * as tf from "@tensorflow/tfjs";
import { dirname, join } from "node:path";
import { UserError } from "../core/errors.ts";
import { writeFileAtomic } from "../core/atomic.ts";

interface ModelJson {
  modelTopology?: unknown;
  weightsManifest?: { paths: string[]; weights: tf.io.WeightsManifestEntry[] }[];
  userDefinedMetadata?: Record<string, unknown>;
  format?: string;
}

/** Read `model.json` and its shards into ModelArtifacts, with one clear error per failure. */
export async function readModelArtifacts(path: string): Promise<tf.io.ModelArtifacts> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new UserError(`model file not found: ${path}.`);
    if (e instanceof Deno.errors.IsADirectory) {
      throw new UserError(`${path} is a folder: pass the model.json inside it.`);
    }
    throw new UserError(`cannot read model file ${path}: ${(e as Error).message}.`);
  }
  let json: ModelJson;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new UserError(
      `${path} is not valid JSON (${
        (e as Error).message
      }): expected a TF.js model.json; re-export the model.`,
    );
  }
  if (!json || typeof json !== "object" || !json.modelTopology || !Array.isArray(json.weightsManifest)) {
    throw new UserError(
      `${path} is not a TF.js LayersModel: it needs 'modelTopology' and 'weightsManifest'; re-export the model with model.save().`,
    );
  }
  const specs: tf.io.WeightsManifestEntry[] = [];
  const buffers: Uint8Array[] = [];
  for (const group of json.weightsManifest) {
    for (const shard of group.paths ?? []) {
      const shardPath = join(dirname(path), shard);
      try {
        buffers.push(await Deno.readFile(shardPath));
      } catch {
        throw new UserError(
          `weight shard missing or unreadable: ${shardPath} (listed in ${path}); copy it next to model.json.`,
        );
      }
    }
    specs.push(...(group.weights ?? []));
  }
  const total = buffers.reduce((s, b) => s + b.length, 0);
  const expected = specs.reduce((s, w) => s + tf.util.sizeFromShape(w.shape) * bytesPerElement(w), 0);
  if (total !== expected) {
    throw new UserError(
      `weight shards of ${path} hold ${total} bytes but its manifest describes ${expected}: a shard is truncated or from another model.`,
    );
  }
  const weightData = new Uint8Array(total);
  let at = 0;
  for (const b of buffers) {
    weightData.set(b, at);
    at += b.length;
  }
  return {
    modelTopology: json.modelTopology as tf.io.ModelArtifacts["modelTopology"],
    weightSpecs: specs,
    weightData: weightData.buffer,
    format: json.format,
    userDefinedMetadata: json.userDefinedMetadata as tf.io.ModelArtifacts["userDefinedMetadata"],
  };
}

function bytesPerElement(w: tf.io.WeightsManifestEntry): number {
  if (w.quantization) {
    return w.quantization.dtype === "uint8" ? 1 : w.quantization.dtype === "float16" ? 2 : 2;
  }
  return w.dtype === "float32" || w.dtype === "int32" ? 4 : 1;
}

/** An IOHandler that loads from `path` (a model.json). */
export function fileLoader(path: string): tf.io.IOHandler {
  return { load: () => readModelArtifacts(path) };
}

/**
 * An IOHandler that saves `model.json` + `weights.bin` into `dir`, each written atomically.
 *
 * @example
 * ```ts
 * await model.save(fileSaver("out/my-model"));
 * ```
 */
export function fileSaver(dir: string, metadata?: Record<string, unknown>): tf.io.IOHandler {
  return {
    async save(artifacts: tf.io.ModelArtifacts): Promise<tf.io.SaveResult> {
      const weights = artifacts.weightData instanceof ArrayBuffer
        ? new Uint8Array(artifacts.weightData)
        : new Uint8Array(tf.io.concatenateArrayBuffers(artifacts.weightData as ArrayBuffer[]));
      const modelJson = {
        format: "layers-model",
        generatedBy: artifacts.generatedBy,
        convertedBy: "prunescope",
        modelTopology: artifacts.modelTopology,
        weightsManifest: [{ paths: ["weights.bin"], weights: artifacts.weightSpecs }],
        userDefinedMetadata: metadata ?? artifacts.userDefinedMetadata,
      };
      await writeFileAtomic(join(dir, "weights.bin"), weights);
      await writeFileAtomic(join(dir, "model.json"), JSON.stringify(modelJson));
      return {
        modelArtifactsInfo: {
          dateSaved: new Date(),
          modelTopologyType: "JSON",
          weightDataBytes: weights.length,
        },
      };
    },
  };
}
