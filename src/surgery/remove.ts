/**
 * Physical channel removal: the smaller model that computes what the masked model computes.
 *
 * Pruning channel c of a conv layer (the lab's zeroing: kernel[..., c] = 0, bias[c] = 0) makes
 * it emit activation(0) everywhere. Removing it instead takes out
 *   - the conv's kernel column and bias entry,
 *   - its entries in every BatchNormalization between the conv and the next weighted layer
 *     (gamma, beta, moving mean, moving variance),
 *   - the matching inputs of that next layer (the "consumer"): the next Conv2D's kernel input
 *     channel, or the rows of the first Dense after Flatten (Flatten's H x W x C order: feature
 *     f belongs to channel f mod C) or after global pooling.
 * The constant a pruned channel still sends to the consumer is computed by running the layers
 * in between (BN, pooling, activations, dropout...) on a constant map, never derived by hand,
 * and folded into the consumer:
 *   - Dense consumer: bias += sum over removed features f of value[f] * kernel[f, :]. Exact.
 *   - Conv consumer with 'valid' padding and a bias: every output position sees the full
 *     kernel window, so bias += sum_c value_c * sum over taps kernel[.., c, :]. Exact.
 *   - Conv consumer with 'same' padding (or no bias): at the borders the window covers zero
 *     padding, so a constant input channel contributes a position-dependent amount and no bias
 *     can hold it. Then one pruned channel c0 (the one with the largest |value|) is kept as a
 *     "carrier": its conv weights stay zero, so it emits exactly its constant, zero-padded like
 *     every channel, and the consumer's kernel slice for c0 becomes
 *     sum_c (value_c / value_c0) * kernel[.., c, :] over the pruned channels. Exact (up to
 *     float rounding), at the price of one channel. No carrier is needed when every pruned
 *     channel's constant is 0 (e.g. relu without BN): those are removed outright.
 * A layer whose path to its consumer branches, merges, or goes through a layer that is not
 * channel-wise is refused with a UserError that names it.
 *
 * Several layers can be pruned in one call: first every pruned channel is zeroed (the masked
 * model), then every constant is folded, then every tensor is sliced, always by the channel
 * indices of the original model, so the order of the layers does not matter.
 */
import * as tf from "@tensorflow/tfjs";
import { UserError } from "../core/errors.ts";
import { CONV_CLASS, layerOutputShape } from "../model/layers.ts";
import {
  graphSteps,
  keepsChannels,
  layerClass,
  nextInChain,
  notOnChannels,
  type Step,
} from "../model/graph.ts";

/** Channels to prune from one Conv2D layer, as indices of the original layer. */
export interface ChannelRemoval {
  layer: string;
  channels: number[];
}

/** How a layer's pruned constants reach its consumer in the slim model. */
export type FoldKind = "none" | "bias" | "carrier";

/** What the surgery did to one conv layer. */
export interface LayerSurgery {
  layer: string;
  channelsBefore: number;
  channelsAfter: number;
  /** The pruned channels (original indices), sorted. */
  pruned: number[];
  /** The pruned channels physically removed (`pruned` minus the carrier), sorted. */
  removed: number[];
  /** The pruned channel kept to carry the constant into a 'same'-padded conv; null if none. */
  carrier: number | null;
  /** Layers between the conv and its consumer, in order. */
  between: string[];
  /** BatchNormalization layers whose entries were removed. */
  batchNorms: string[];
  /** The Conv2D or Dense layer whose inputs were removed. */
  consumer: string;
  consumerKind: "conv" | "dense";
  fold: FoldKind;
  /** The constants the pruned channels send to the consumer: the largest absolute value. */
  largestConstant: number;
}

/** A slim model and what was done to get it. */
export interface SurgeryResult {
  model: tf.LayersModel;
  /** The slim model's topology and weights (what `model.save` would write). */
  artifacts: tf.io.ModelArtifacts;
  layers: LayerSurgery[];
}

/** The path from a conv layer to the layer that consumes its channels. */
export interface ChannelPath {
  conv: tf.layers.Layer;
  channels: number;
  /** Channel-wise layers on the conv's H x W x C output. */
  spatial: tf.layers.Layer[];
  /** Flatten, GlobalAveragePooling2D or GlobalMaxPooling2D, when the consumer is Dense. */
  flatten: tf.layers.Layer | null;
  /** Element-wise layers after `flatten`. */
  post: tf.layers.Layer[];
  consumer: tf.layers.Layer;
  kind: "conv" | "dense";
}

function inboundNodes(layer: tf.layers.Layer): unknown[] {
  return (layer as unknown as { inboundNodes: unknown[] }).inboundNodes;
}

function config(layer: tf.layers.Layer): Record<string, unknown> {
  return layer.getConfig() as Record<string, unknown>;
}

/** The one layer of `model` that takes `layer`'s output; a UserError when there is not exactly one. */
function nextLayer(
  model: tf.LayersModel,
  steps: Step[],
  layer: tf.layers.Layer,
  conv: string,
): tf.layers.Layer {
  const link = nextInChain(model, steps, layer);
  if ("next" in link) return link.next;
  if (link.end === "output") {
    throw new UserError(
      `cannot remove channels of ${conv}: ${layer.name}'s output is the model's output, no layer consumes it.`,
    );
  }
  if (link.end === "branch") {
    throw new UserError(
      `cannot remove channels of ${conv}: ${layer.name}'s output goes to ${link.readers.length} layers ` +
        `(${
          link.readers.map((u) => u.name).join(", ")
        }); only a straight path to the next conv or dense layer is supported.`,
    );
  }
  throw new UserError(
    `cannot remove channels of ${conv}: ${link.reader.name} (${link.reader.getClassName()}) after it takes several inputs ` +
      `or is shared; only a straight path to the next conv or dense layer is supported.`,
  );
}

function checkChannelsLast(layer: tf.layers.Layer, conv: string, flat: boolean): void {
  const why = notOnChannels(layer, flat);
  if (why) {
    throw new UserError(`cannot remove channels of ${conv}: ${why}; only channel-wise layers can be passed.`);
  }
}

/** Layers surgery passes on the conv's map: channel-kept, with no weights or BatchNorm's (which it cuts). */
function passesOnMaps(layer: tf.layers.Layer): boolean {
  const c = layerClass(layer);
  return keepsChannels(layer) && (c.weights === "none" || layer.getClassName() === "BatchNormalization");
}

/** Layers surgery passes on flat features: element-wise, with no weights. */
function passesOnFeatures(layer: tf.layers.Layer): boolean {
  const c = layerClass(layer);
  return c.kind === "element-wise" && c.weights === "none";
}

/**
 * Follow `convName`'s output to the layer that consumes its channels: the next Conv2D, or the
 * Dense after Flatten / global pooling. Throws a UserError naming the layer that blocks it.
 *
 * @example
 * ```ts
 * const path = channelPath(model, "block5_conv3");
 * path.consumer.name; // "fc1"  (via block5_bn3, block5_pool, block5_drop, flatten)
 * ```
 */
export function channelPath(model: tf.LayersModel, convName: string): ChannelPath {
  const conv = model.layers.find((l) => l.name === convName);
  if (!conv) throw new UserError(`no layer named ${convName} in the model.`);
  if (conv.getClassName() !== CONV_CLASS) {
    throw new UserError(`${convName} is a ${conv.getClassName()} layer, not a Conv2D.`);
  }
  if (inboundNodes(conv).length !== 1) {
    throw new UserError(
      `cannot remove channels of ${convName}: the layer is shared (applied several times).`,
    );
  }
  checkChannelsLast(conv, convName, false);
  const steps = graphSteps(model);
  const shape = layerOutputShape(conv);
  const channels = shape[shape.length - 1];
  const spatial: tf.layers.Layer[] = [];
  const post: tf.layers.Layer[] = [];
  let flatten: tf.layers.Layer | null = null;
  let at = conv;
  for (let guard = 0; guard < 10_000; guard++) {
    const next = nextLayer(model, steps, at, convName);
    const cls = next.getClassName();
    checkChannelsLast(next, convName, flatten !== null);
    if (cls === CONV_CLASS && flatten === null) {
      return { conv, channels, spatial, flatten, post, consumer: next, kind: "conv" };
    }
    if (cls === "Dense" && flatten !== null) {
      return { conv, channels, spatial, flatten, post, consumer: next, kind: "dense" };
    }
    if (flatten === null && passesOnMaps(next)) spatial.push(next);
    else if (flatten === null && layerClass(next).kind === "flattening") flatten = next;
    else if (flatten !== null && passesOnFeatures(next)) post.push(next);
    else {
      throw new UserError(
        `cannot remove channels of ${convName}: on the way to the next conv or dense layer it meets ${next.name} ` +
          `(${cls}), which surgery does not know how to pass; pick another layer.`,
      );
    }
    at = next;
  }
  throw new Error("channelPath: model graph too deep");
}

/** A float32 weight by name, with its shape. */
interface WeightValue {
  shape: number[];
  values: Float32Array;
}

/** The model's topology and weights, as `model.save` would write them. */
async function saveToMemory(model: tf.LayersModel): Promise<tf.io.ModelArtifacts> {
  let saved: tf.io.ModelArtifacts | undefined;
  await model.save(tf.io.withSaveHandler((artifacts) => {
    saved = artifacts;
    return Promise.resolve({ modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: "JSON" } });
  }));
  if (!saved) throw new Error("model.save gave no artifacts");
  return saved;
}

function decodeWeights(artifacts: tf.io.ModelArtifacts): Map<string, WeightValue> {
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

function encodeWeights(
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
function kernelAndBias(
  layer: tf.layers.Layer,
  store: Map<string, WeightValue>,
): { kernel: WeightValue; bias: WeightValue | null } {
  const own = layer.weights.map((w) => store.get(w.originalName)).filter((w): w is WeightValue => !!w);
  const kernel = own.find((w) => w.shape.length >= 2);
  if (!kernel) throw new Error(`layer ${layer.name} has no kernel`);
  return { kernel, bias: own.find((w) => w.shape.length === 1) ?? null };
}

/** The saved name of a layer's kernel (its first weight of rank >= 2). */
function kernelOf(layer: tf.layers.Layer): string {
  return layer.weights.find((w) => w.shape.length >= 2)!.originalName;
}

/** Keep only the entries `keep` along `axis` of a row-major array. */
function takeAlongAxis(w: WeightValue, axis: number, keep: number[]): WeightValue {
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

/** Throw a UserError unless `r` names a Conv2D of `model` and distinct channels of it. */
function checkChannels(model: tf.LayersModel, r: ChannelRemoval): void {
  const layer = model.layers.find((l) => l.name === r.layer);
  if (!layer) throw new UserError(`no layer named ${r.layer} in the model.`);
  if (layer.getClassName() !== CONV_CLASS) {
    throw new UserError(`${r.layer} is a ${layer.getClassName()} layer, not a Conv2D.`);
  }
  const shape = layerOutputShape(layer);
  const channels = shape[shape.length - 1];
  const seen = new Set<number>();
  for (const c of r.channels) {
    if (!Number.isInteger(c) || c < 0 || c >= channels) {
      throw new UserError(`${r.layer} has channels 0..${channels - 1}; cannot prune channel ${c}.`);
    }
    if (seen.has(c)) throw new UserError(`channel ${c} of ${r.layer} is listed twice.`);
    seen.add(c);
  }
}

function checkRemovals(model: tf.LayersModel, removals: ChannelRemoval[]): Map<string, ChannelPath> {
  const paths = new Map<string, ChannelPath>();
  for (const r of removals) {
    if (paths.has(r.layer)) throw new UserError(`layer ${r.layer} is listed twice in the plan.`);
    checkChannels(model, r);
    paths.set(r.layer, channelPath(model, r.layer));
  }
  return paths;
}

/** Zero kernel[..., c] and bias[c] of every pruned channel (the lab's masking) in `store`. */
function zeroPruned(
  model: tf.LayersModel,
  removals: ChannelRemoval[],
  store: Map<string, WeightValue>,
): void {
  for (const r of removals) {
    const { kernel, bias } = kernelAndBias(model.getLayer(r.layer), store);
    const cout = kernel.shape[kernel.shape.length - 1];
    for (const c of r.channels) {
      for (let i = c; i < kernel.values.length; i += cout) kernel.values[i] = 0;
      if (bias) bias.values[c] = 0;
    }
  }
}

/** `t`'s values, read asynchronously (WebGPU has no synchronous read); `t` is disposed. */
async function readAndDispose(t: tf.Tensor): Promise<Float32Array> {
  try {
    return await t.data() as Float32Array;
  } finally {
    t.dispose();
  }
}

/** The activation of the conv layer applied to 0: what a pruned channel emits. */
async function activationOfZero(conv: tf.layers.Layer): Promise<number> {
  const activation = (conv as unknown as { activation?: { apply(x: tf.Tensor): tf.Tensor } }).activation;
  const value = tf.tidy(() => {
    const zero = tf.zeros([1]);
    return activation ? activation.apply(zero) : zero;
  });
  return (await readAndDispose(value))[0];
}

/**
 * What reaches the consumer when every channel of the conv emits activation(0): the layers
 * between run on a constant map. Returns the consumer's input for one image, channels last
 * (H' x W' x C for a conv consumer, F features for a dense one).
 */
async function constantAtConsumer(path: ChannelPath): Promise<{ values: Float32Array; shape: number[] }> {
  const fill = await activationOfZero(path.conv);
  const x = tf.tidy(() => {
    let x: tf.Tensor = tf.fill([1, ...layerOutputShape(path.conv)], fill);
    for (const layer of [...path.spatial, ...(path.flatten ? [path.flatten] : []), ...path.post]) {
      x = layer.apply(x) as tf.Tensor;
    }
    return x;
  });
  const shape = x.shape.slice(1);
  return { values: await readAndDispose(x), shape };
}

/** Fold the pruned channels' constants into the consumer; returns the fold used and the carrier. */
async function fold(
  path: ChannelPath,
  pruned: number[],
  store: Map<string, WeightValue>,
): Promise<{ kind: FoldKind; carrier: number | null; largest: number }> {
  const { values, shape } = await constantAtConsumer(path);
  const C = path.channels;
  const { kernel, bias } = kernelAndBias(path.consumer, store);
  const name = path.conv.name;
  if (path.kind === "dense") {
    const [rows, units] = kernel.shape;
    if (values.length !== rows || rows % C !== 0) {
      throw new Error(`${path.consumer.name}: ${rows} inputs, but ${values.length} features reach it`);
    }
    const isPruned = new Uint8Array(C);
    for (const c of pruned) isPruned[c] = 1;
    const add = new Float64Array(units);
    let largest = 0;
    for (let f = 0; f < rows; f++) {
      if (!isPruned[f % C] || values[f] === 0) continue;
      largest = Math.max(largest, Math.abs(values[f]));
      for (let o = 0; o < units; o++) add[o] += values[f] * kernel.values[f * units + o];
    }
    if (largest === 0) return { kind: "none", carrier: null, largest };
    if (!bias) {
      throw new UserError(
        `cannot fold the constant that ${name}'s pruned channels send into ${path.consumer.name}: it has no bias.`,
      );
    }
    for (let o = 0; o < units; o++) bias.values[o] += add[o];
    return { kind: "bias", carrier: null, largest };
  }

  // Conv consumer: each pruned channel must reach it as one constant over the whole map.
  const positions = values.length / C;
  const constant = new Map<number, number>();
  for (const c of pruned) {
    const v = values[c];
    for (let p = 1; p < positions; p++) {
      const u = values[p * C + c];
      if (Math.abs(u - v) > 1e-6 * Math.max(1, Math.abs(v))) {
        throw new UserError(
          `cannot remove channels of ${name}: the constant its pruned channel ${c} sends to ${path.consumer.name} ` +
            `varies over the ${
              shape.slice(0, 2).join("x")
            } map (a padding or pooling in between), so it cannot be folded exactly.`,
        );
      }
    }
    if (v !== 0) constant.set(c, v);
  }
  if (constant.size === 0) return { kind: "none", carrier: null, largest: 0 };
  const [kh, kw, cin, cout] = kernel.shape;
  const taps = kh * kw;
  const largest = Math.max(...[...constant.values()].map(Math.abs));
  const padding = config(path.consumer).padding;
  if (padding === "valid" && bias) {
    for (let o = 0; o < cout; o++) {
      let add = 0;
      for (const [c, v] of constant) {
        for (let t = 0; t < taps; t++) add += v * kernel.values[(t * cin + c) * cout + o];
      }
      bias.values[o] += add;
    }
    return { kind: "bias", carrier: null, largest };
  }
  // 'same' padding (or no bias): one pruned channel carries them all, zero-padded like the rest.
  let carrier = -1;
  for (const [c, v] of constant) {
    if (carrier < 0 || Math.abs(v) > Math.abs(constant.get(carrier)!)) carrier = c;
  }
  const v0 = constant.get(carrier)!;
  for (let t = 0; t < taps; t++) {
    for (let o = 0; o < cout; o++) {
      let sum = 0;
      for (const [c, v] of constant) sum += (v / v0) * kernel.values[(t * cin + c) * cout + o];
      kernel.values[(t * cin + carrier) * cout + o] = sum;
    }
  }
  return { kind: "carrier", carrier, largest };
}

/** The config of the layer named `name` in a saved topology (Sequential or Functional). */
function layerConfig(topology: unknown, name: string): Record<string, unknown> | undefined {
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
function setDeclaredInputWidth(cfg: Record<string, unknown>, width: number): void {
  for (const key of ["batch_input_shape", "batchInputShape"]) {
    const shape = cfg[key];
    if (Array.isArray(shape) && shape.length > 0) shape[shape.length - 1] = width;
  }
}

async function buildModel(artifacts: tf.io.ModelArtifacts): Promise<tf.LayersModel> {
  return await tf.loadLayersModel({ load: () => Promise.resolve(artifacts) });
}

/**
 * A copy of `model` with the lab's masking applied: kernel[..., c] and bias[c] zeroed for every
 * channel c of every removal. Same architecture and size; the reference the slim model must match.
 *
 * @example
 * ```ts
 * const masked = await zeroChannels(model, [{ layer: "conv2", channels: [3, 7] }]);
 * ```
 */
export async function zeroChannels(
  model: tf.LayersModel,
  removals: ChannelRemoval[],
): Promise<tf.LayersModel> {
  for (const r of removals) checkChannels(model, r);
  const artifacts = await saveToMemory(model);
  const store = decodeWeights(artifacts);
  zeroPruned(model, removals, store);
  const { specs, data } = encodeWeights(artifacts.weightSpecs ?? [], store);
  return buildModel({ ...artifacts, weightSpecs: specs, weightData: data });
}

/**
 * The slim model: every channel of every removal physically removed (see the module doc for
 * what is removed and how the pruned channels' constants are folded). `model` is not changed.
 *
 * @example
 * ```ts
 * const { model: slim, layers } = await removeChannels(model, [{ layer: "block5_conv3", channels: ranking.order.slice(0, 40) }]);
 * slim.getLayer("block5_conv3").getWeights()[0].shape; // [3, 3, 128, 88]
 * ```
 */
export async function removeChannels(
  model: tf.LayersModel,
  removals: ChannelRemoval[],
): Promise<SurgeryResult> {
  const paths = checkRemovals(model, removals);
  const artifacts = await saveToMemory(model);
  const store = decodeWeights(artifacts);
  zeroPruned(model, removals, store);

  const reports: LayerSurgery[] = [];
  for (const r of removals) {
    const path = paths.get(r.layer)!;
    const pruned = [...r.channels].sort((a, b) => a - b);
    const { kind, carrier, largest } = await fold(path, pruned, store);
    const removed = pruned.filter((c) => c !== carrier);
    const channelsAfter = path.channels - removed.length;
    if (channelsAfter === 0) {
      throw new UserError(
        `cannot remove all ${path.channels} channels of ${r.layer}: the slim layer needs at least one; prune fewer.`,
      );
    }
    reports.push({
      layer: r.layer,
      channelsBefore: path.channels,
      channelsAfter,
      pruned,
      removed,
      carrier,
      between: [...path.spatial, ...(path.flatten ? [path.flatten] : []), ...path.post].map((l) => l.name),
      batchNorms: path.spatial.filter((l) => l.getClassName() === "BatchNormalization").map((l) => l.name),
      consumer: path.consumer.name,
      consumerKind: path.kind,
      fold: kind,
      largestConstant: largest,
    });
  }

  // Slice, by original channel indices: each tensor axis is cut by exactly one removal.
  const topology = structuredClone(artifacts.modelTopology);
  for (const rep of reports) {
    const path = paths.get(rep.layer)!;
    const C = path.channels;
    const gone = new Set(rep.removed);
    const keep = Array.from({ length: C }, (_, c) => c).filter((c) => !gone.has(c));
    const replace = (layer: tf.layers.Layer, cut: (w: WeightValue) => WeightValue | null) => {
      for (const w of layer.weights) {
        const value = store.get(w.originalName);
        const next = value && cut(value);
        if (next) store.set(w.originalName, next);
      }
    };
    replace(path.conv, (w) => takeAlongAxis(w, w.shape.length - 1, keep));
    for (const bn of path.spatial.filter((l) => l.getClassName() === "BatchNormalization")) {
      replace(bn, (w) => takeAlongAxis(w, 0, keep));
    }
    if (path.kind === "conv") {
      replace(path.consumer, (w) => w.shape.length === 4 ? takeAlongAxis(w, 2, keep) : null);
    } else {
      replace(path.consumer, (w) => {
        if (w.shape.length !== 2) return null;
        const rows = Array.from({ length: w.shape[0] }, (_, f) => f).filter((f) => !gone.has(f % C));
        return takeAlongAxis(w, 0, rows);
      });
    }
    const convCfg = layerConfig(topology, rep.layer);
    if (!convCfg || typeof convCfg.filters !== "number") {
      throw new Error(`no Conv2D config named ${rep.layer} in the model topology`);
    }
    convCfg.filters = rep.channelsAfter;
    // A consumer that declares its input shape (some exports do) must declare the new one.
    const consumerCfg = layerConfig(topology, path.consumer.name);
    const inputs = path.kind === "conv" ? keep.length : (store.get(kernelOf(path.consumer))?.shape[0] ?? 0);
    if (consumerCfg) setDeclaredInputWidth(consumerCfg, inputs);
  }
  const { specs, data } = encodeWeights(artifacts.weightSpecs ?? [], store);
  const slimArtifacts: tf.io.ModelArtifacts = {
    ...artifacts,
    modelTopology: topology,
    weightSpecs: specs,
    weightData: data,
  };
  const slim = await buildModel(slimArtifacts);
  return { model: slim, artifacts: slimArtifacts, layers: reports };
}
