/**
 * A model's weights as plain float arrays by name, read from and written back to the
 * artifacts `model.save` gives: what surgery (remove.ts) edits.
 */
import * as tf from "@tensorflow/tfjs";
import { UserError } from "../core/errors.ts";

/** A float32 weight by name, with its shape. */
export interface WeightValue {
  shape: number[];
  values: Float32Array;
}

/** The model's topology and weights, as `model.save` would write them. */
export async function saveToMemory(model: tf.LayersModel): Promise<tf.io.ModelArtifacts> {
  let saved: tf.io.ModelArtifacts | undefined;
  await model.save(tf.io.withSaveHandler((artifacts) => {
    saved = artifacts;
    return Promise.resolve({ modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: "JSON" } });
  }));
  if (!saved) throw new Error("model.save gave no artifacts");
  return saved;
}

/** The float32 weights of `artifacts` by name (a UserError for any other dtype). */
export function decodeWeights(artifacts: tf.io.ModelArtifacts): Map<string, WeightValue> {
  const data = artifacts.weightData instanceof ArrayBuffer
    ? artifacts.weightData
    : tf.io.concatenateArrayBuffers(artifacts.weightData as ArrayBuffer[]);
  const store = new Map<string, WeightValue>();
  let at = 0;
  for (const spec of artifacts.weightSpecs ?? []) {
    if (spec.dtype !== "float32" || spec.quantization) {
      throw new UserError(`weight ${spec.name} is ${spec.dtype}; surgery needs float32 weights.`);
    }
    const n = tf.util.sizeFromShape(spec.shape);
    store.set(spec.name, { shape: [...spec.shape], values: new Float32Array(data.slice(at, at + 4 * n)) });
    at += 4 * n;
  }
  return store;
}

/** `store`'s weights in the order of `specs`, as one buffer. */
export function encodeWeights(
  specs: tf.io.WeightsManifestEntry[],
  store: Map<string, WeightValue>,
): { specs: tf.io.WeightsManifestEntry[]; data: ArrayBuffer } {
  const out = specs.map((s) => ({
    name: s.name,
    shape: store.get(s.name)!.shape,
    dtype: "float32" as const,
  }));
  const total = out.reduce((sum, s) => sum + tf.util.sizeFromShape(s.shape), 0);
  const data = new Float32Array(total);
  let at = 0;
  for (const s of out) {
    const v = store.get(s.name)!.values;
    data.set(v, at);
    at += v.length;
  }
  return { specs: out, data: data.buffer };
}

/** The layer's kernel (rank >= 2) and bias (rank 1) in `store`, by the names `model.save` writes. */
export function kernelAndBias(
  layer: tf.layers.Layer,
  store: Map<string, WeightValue>,
): { kernel: WeightValue; bias: WeightValue | null } {
  const own = layer.weights.map((w) => store.get(w.originalName)).filter((w): w is WeightValue => !!w);
  const kernel = own.find((w) => w.shape.length >= 2);
  if (!kernel) throw new Error(`layer ${layer.name} has no kernel`);
  return { kernel, bias: own.find((w) => w.shape.length === 1) ?? null };
}

/** Keep only the entries `keep` along `axis` of a row-major array. */
export function takeAlongAxis(w: WeightValue, axis: number, keep: number[]): WeightValue {
  const shape = w.shape;
  const outer = shape.slice(0, axis).reduce((p, d) => p * d, 1);
  const inner = shape.slice(axis + 1).reduce((p, d) => p * d, 1);
  const size = shape[axis];
  const values = new Float32Array(outer * keep.length * inner);
  let at = 0;
  for (let o = 0; o < outer; o++) {
    for (const k of keep) {
      const from = (o * size + k) * inner;
      values.set(w.values.subarray(from, from + inner), at);
      at += inner;
    }
  }
  const newShape = [...shape];
  newShape[axis] = keep.length;
  return { shape: newShape, values };
}

/** The config of the layer named `name` in a saved topology (Sequential or Functional). */
export function layerConfig(topology: unknown, name: string): Record<string, unknown> | undefined {
  if (!topology || typeof topology !== "object") return undefined;
  const obj = topology as Record<string, unknown>;
  const cfg = obj.config as Record<string, unknown> | undefined;
  if (typeof obj.class_name === "string" && cfg && typeof cfg === "object" && cfg.name === name) return cfg;
  for (const v of Object.values(obj)) {
    const found = layerConfig(v, name);
    if (found) return found;
  }
  return undefined;
}

/** Set the last dimension of a layer's declared input shape, when its config declares one. */
export function setDeclaredInputWidth(cfg: Record<string, unknown>, width: number): void {
  for (const key of ["batch_input_shape", "batchInputShape"]) {
    const shape = cfg[key];
    if (Array.isArray(shape) && shape.length > 0) shape[shape.length - 1] = width;
  }
}

/** A model built from `artifacts` (topology and weights). */
export async function buildModel(artifacts: tf.io.ModelArtifacts): Promise<tf.LayersModel> {
  return await tf.loadLayersModel({ load: () => Promise.resolve(artifacts) });
}
