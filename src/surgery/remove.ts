/**
 * Physical channel removal: the smaller model that computes what the masked model computes.
 *
 * Pruning channel c of a conv layer (the lab's zeroing: kernel[..., c] = 0, bias[c] = 0) makes
 * it emit activation(0) everywhere. Removing it instead takes channel c out of every tensor it
 * reaches (trace.ts follows it: BatchNorm, activations, pooling, the `Add`s of a coupled group,
 * a Concatenate at its branch's offset, depthwise convs, Flatten), so out of
 *   - the conv's kernel column and bias entry (every member of a coupled group),
 *   - the per-channel weights on the way (BatchNorm's gamma, beta, moving mean and variance;
 *     PReLU's alpha; a depthwise conv's filter and bias, m of them for depth multiplier m),
 *   - the inputs of every layer that consumes it: a Conv2D's kernel input channel, a Dense
 *     layer's rows (after Flatten: feature f belongs to channel f mod C), a SeparableConv2D's
 *     depthwise filter and pointwise input channels.
 * The masked reference (`maskedReference`): the lab's zeroing, and where a pruned channel passes
 * a depthwise kernel (DepthwiseConv2D, SeparableConv2D's depthwise part), that channel's filter
 * is zeroed too, the constant it made at the map's interior added to the bias instead (zero
 * padding would make it position-dependent, which no smaller model can reproduce); with no
 * depthwise kernel on the way it is exactly the lab's zeroing.
 *
 * The constant each pruned channel still sends a consumer is read from the masked model (one
 * forward pass), never derived by hand, and folded into the consumer:
 *   - Dense, a 'valid' conv or a 1x1 conv, with a bias: bias += sum over pruned inputs of
 *     value * (sum of their kernel taps). Exact.
 *   - a 'same'-padded conv (or no bias): at the borders the window covers zero padding, so a
 *     constant input contributes a position-dependent amount. One pruned channel c0 (the one
 *     with the largest |value|, or one already carrying for another consumer) is kept as a
 *     "carrier": its weights stay zero, so it emits exactly its constant, zero-padded like
 *     every channel, and the consumer's kernel slice for c0 becomes
 *     sum_c (value_c / value_c0) * kernel[.., c, :]. Exact (up to float rounding). Where a carrier
 *     reaches a consumer that folds otherwise, its slice there is zeroed.
 * Several layers can be pruned in one call; every tensor is sliced by the channel indices of
 * the original model, so the order of the removals does not matter.
 */
import * as tf from "@tensorflow/tfjs";
import { UserError } from "../core/errors.ts";
import type { Sym } from "../model/graph.ts";
import {
  type ChannelRemoval,
  type ChannelTrace,
  checkRemovals,
  type LabelledUse,
  traceChannels,
} from "./trace.ts";
import {
  buildModel,
  decodeWeights,
  encodeWeights,
  kernelAndBias,
  layerConfig,
  saveToMemory,
  setDeclaredInputWidth,
  takeAlongAxis,
  type WeightValue,
} from "./weights.ts";

export type { ChannelRemoval } from "./trace.ts";

/** How a layer's pruned constants reach its consumers in the slim model. */
export type FoldKind = "none" | "bias" | "carrier";

/** What the surgery did to one conv layer. */
export interface LayerSurgery {
  layer: string;
  channelsBefore: number;
  channelsAfter: number;
  /** The pruned channels (original indices), sorted. */
  pruned: number[];
  /** The pruned channels physically removed (`pruned` minus the carriers), sorted. */
  removed: number[];
  /** The first pruned channel kept to carry constants into a 'same'-padded conv; null if none. */
  carrier: number | null;
  /** Layers its channels pass between the conv and its consumers, in order. */
  between: string[];
  /** BatchNormalization layers whose entries were removed. */
  batchNorms: string[];
  /** The layers whose inputs were removed, joined by ", ". */
  consumer: string;
  /** The first consumer's kind. */
  consumerKind: "conv" | "dense" | "separable";
  fold: FoldKind;
  /** The constants the pruned channels send to the consumers: the largest absolute value. */
  largestConstant: number;
}

/** A slim model and what was done to get it. */
export interface SurgeryResult {
  model: tf.LayersModel;
  /** The slim model's topology and weights (what `model.save` would write). */
  artifacts: tf.io.ModelArtifacts;
  layers: LayerSurgery[];
}

/** `t`'s values, read asynchronously (WebGPU has no synchronous read); `t` is disposed. */
async function readAndDispose(t: tf.Tensor): Promise<Float32Array> {
  try {
    return await t.data() as Float32Array;
  } finally {
    t.dispose();
  }
}

/** Whether a saved weight name is `suffix` ("conv1/kernel", "kernel_1", "dw/depthwise_kernel:0"). */
function weightNamed(name: string, suffix: string): boolean {
  return new RegExp(`(^|/)${suffix}(_\\d+)?(:\\d+)?$`).test(name);
}

/** The weight of `layer` in `store` named `suffix` (see `weightNamed`), or null. */
function weightOf(
  layer: tf.layers.Layer,
  store: Map<string, WeightValue>,
  suffix: string,
): WeightValue | null {
  const w = layer.weights.find((v) => weightNamed(v.originalName, suffix));
  return w ? store.get(w.originalName) ?? null : null;
}

/** The model with `store`'s weights, run on one all-zero image: the values of `syms` (one image each). */
async function valuesAt(
  artifacts: tf.io.ModelArtifacts,
  store: Map<string, WeightValue>,
  syms: Sym[],
): Promise<Float32Array[]> {
  const { specs, data } = encodeWeights(artifacts.weightSpecs ?? [], store);
  const m = await buildModel({ ...artifacts, weightSpecs: specs, weightData: data });
  try {
    // Each tensor once (several consumers may read one).
    const names = [...new Set(syms.map((s) => s.name))];
    const outputs = names.map((name) => {
      const s = syms.find((t) => t.name === name)!;
      return m.getLayer(s.sourceLayer.name).getOutputAt(s.nodeIndex) as tf.SymbolicTensor;
    });
    const probe = tf.model({ inputs: m.inputs, outputs });
    const zeros = m.inputs.map((t) => tf.zeros([1, ...t.shape.slice(1) as number[]]));
    const got = tf.tidy(() => ([] as tf.Tensor[]).concat(probe.predict(zeros) as tf.Tensor | tf.Tensor[]));
    zeros.forEach((z) => z.dispose());
    const values = await Promise.all(got.map(readAndDispose));
    return syms.map((s) => values[names.indexOf(s.name)]);
  } finally {
    m.dispose();
  }
}

/**
 * Channel i's value of a one-image tensor with `channels` channels last, checked to be one value
 * over every position (a UserError naming `where` when it varies).
 */
function constantOf(values: Float32Array, channels: number, i: number, where: string): number {
  const v = values[i];
  for (let p = i + channels; p < values.length; p += channels) {
    if (Math.abs(values[p] - v) > 1e-6 * Math.max(1, Math.abs(v))) {
      throw new UserError(
        `cannot remove channels: the constant a pruned channel sends to ${where} varies over the map ` +
          `(a padding or pooling in between), so it cannot be folded exactly; pick another layer.`,
      );
    }
  }
  return v;
}

/** Which labels are pruned, checked alike across every merge (a UserError when not). */
function prunedLabels(trace: ChannelTrace): Uint8Array {
  const total = trace.base.at(-1)! + trace.channels.at(-1)!;
  const pruned = new Uint8Array(total);
  trace.removals.forEach((r, i) => r.channels.forEach((c) => pruned[trace.base[i] + c] = 1));
  const byRoot = new Map<number, number>();
  for (let id = 0; id < total; id++) {
    const root = trace.root(id);
    const seen = byRoot.get(root);
    if (seen === undefined) byRoot.set(root, id);
    else if (pruned[seen] !== pruned[id]) {
      const name = (x: number) =>
        `channel ${x - trace.base[trace.removalOf(x)]} of ${trace.removals[trace.removalOf(x)].layer}`;
      throw new UserError(
        `${name(pruned[seen] ? seen : id)} is pruned but ${
          name(pruned[seen] ? id : seen)
        }, which a merge adds ` +
          `to it, is not: the members of a coupled channel group must lose the same channels.`,
      );
    }
  }
  return pruned;
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

/**
 * Zero the depthwise filters of the pruned channels entering `use` (a DepthwiseConv2D or a
 * SeparableConv2D) and add what they made at the map's interior to the bias.
 */
function foldDepthwise(
  use: LabelledUse,
  values: Float32Array,
  isPruned: (label: number) => boolean,
  store: Map<string, WeightValue>,
): void {
  const dw = weightOf(use.layer, store, "depthwise_kernel")!;
  const bias = weightOf(use.layer, store, "bias");
  const pw = weightOf(use.layer, store, "pointwise_kernel");
  const [kh, kw, cin, m] = dw.shape;
  const cout = pw ? pw.shape[3] : 0;
  for (let i = 0; i < cin; i++) {
    if (!isPruned(use.inLabels[i])) continue;
    const r = constantOf(values, cin, i, use.layer.name);
    for (let j = 0; j < m; j++) {
      let taps = 0;
      for (let t = 0; t < kh * kw; t++) {
        taps += dw.values[(t * cin + i) * m + j];
        dw.values[(t * cin + i) * m + j] = 0;
      }
      if (r === 0 || taps === 0) continue;
      if (!bias) {
        throw new UserError(
          `cannot fold the constant a pruned channel sends through ${use.layer.name}: it has no bias.`,
        );
      }
      if (pw) {
        for (let o = 0; o < cout; o++) bias.values[o] += r * taps * pw.values[(i * m + j) * cout + o];
      } else bias.values[i * m + j] += r * taps;
    }
  }
}

const DEPTHWISE = ["DepthwiseConv2D", "SeparableConv2D"];

/** The masked weights: the lab's zeroing, then each depthwise kernel on the way folded in turn. */
async function maskStore(
  model: tf.LayersModel,
  trace: ChannelTrace,
  artifacts: tf.io.ModelArtifacts,
  pruned: Uint8Array,
): Promise<Map<string, WeightValue>> {
  const store = decodeWeights(artifacts);
  zeroPruned(model, trace.removals, store);
  const isPruned = (label: number) => label >= 0 && pruned[label] === 1;
  const uses = [...trace.perChannel, ...trace.consumers].filter((u) =>
    DEPTHWISE.includes(u.layer.getClassName()) && u.inLabels.some(isPruned)
  );
  const order = new Map(trace.steps.map((s, i) => [s.layer.name, i]));
  uses.sort((a, b) => order.get(a.layer.name)! - order.get(b.layer.name)!);
  for (const use of uses) {
    const [values] = await valuesAt(artifacts, store, [use.input]);
    foldDepthwise(use, values, isPruned, store);
  }
  return store;
}

/**
 * The reference the slim model must reproduce: `model` with every channel of every removal
 * zeroed (kernel and bias), and where a pruned channel passes a depthwise kernel, that filter
 * zeroed with its interior constant in the bias (see the module doc). Same architecture and size.
 *
 * @example
 * ```ts
 * const masked = await maskedReference(model, [{ layer: "conv2", channels: [3, 7] }]);
 * ```
 */
export async function maskedReference(
  model: tf.LayersModel,
  removals: ChannelRemoval[],
): Promise<tf.LayersModel> {
  const trace = traceChannels(model, removals);
  const artifacts = await saveToMemory(model);
  const store = await maskStore(model, trace, artifacts, prunedLabels(trace));
  const { specs, data } = encodeWeights(artifacts.weightSpecs ?? [], store);
  return buildModel({ ...artifacts, weightSpecs: specs, weightData: data });
}

/**
 * Whether a pruned channel of `removals` passes a depthwise kernel, where the masked reference
 * is not the lab's zeroing (see the module doc); a UserError when surgery cannot remove them.
 *
 * @example
 * ```ts
 * passesDepthwise(mobilenet, [{ layer: "expand", channels: [0] }]); // true
 * ```
 */
export function passesDepthwise(model: tf.LayersModel, removals: ChannelRemoval[]): boolean {
  const trace = traceChannels(model, removals);
  const pruned = prunedLabels(trace);
  return [...trace.perChannel, ...trace.consumers].some((u) =>
    DEPTHWISE.includes(u.layer.getClassName()) && u.inLabels.some((l) => l >= 0 && pruned[l] === 1)
  );
}

/**
 * A copy of `model` with the lab's masking applied: kernel[..., c] and bias[c] zeroed for every
 * channel c of every removal, nothing else (any conv layer; the sweep's naive method).
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
  checkRemovals(model, removals);
  const artifacts = await saveToMemory(model);
  const store = decodeWeights(artifacts);
  zeroPruned(model, removals, store);
  const { specs, data } = encodeWeights(artifacts.weightSpecs ?? [], store);
  return buildModel({ ...artifacts, weightSpecs: specs, weightData: data });
}

/** One consumer's fold: its pruned input positions, their constants, and the carrier it uses. */
interface ConsumerFold {
  use: LabelledUse;
  positions: number[];
  values: number[];
  carrierAt: number | null;
  /** What the carrier sends this consumer in the slim model (its masked constant, unless boosted). */
  carrierValue: number;
  bias: boolean;
}

/** The pruned inputs of every Conv2D / Dense consumer and their constants; carriers chosen. */
async function planFolds(
  trace: ChannelTrace,
  artifacts: tf.io.ModelArtifacts,
  store: Map<string, WeightValue>,
  isPruned: (label: number) => boolean,
): Promise<{ folds: ConsumerFold[]; carriers: Set<number> }> {
  const uses = trace.consumers.filter((u) =>
    !DEPTHWISE.includes(u.layer.getClassName()) && u.inLabels.some(isPruned)
  );
  const read = uses.length > 0 ? await valuesAt(artifacts, store, uses.map((u) => u.input)) : [];
  const carriers = new Set<number>();
  const folds = uses.map((use, n) => {
    const positions: number[] = [], values: number[] = [];
    use.inLabels.forEach((label, i) => {
      if (!isPruned(label)) return;
      positions.push(i);
      values.push(constantOf(read[n], use.inLabels.length, i, use.layer.name));
    });
    const kernel = weightOf(use.layer, store, "kernel")!;
    const cfg = use.layer.getConfig() as Record<string, unknown>;
    const full = kernel.shape.length === 2 || cfg.padding === "valid" ||
      (kernel.shape[0] === 1 && kernel.shape[1] === 1);
    const hasBias = weightOf(use.layer, store, "bias") !== null;
    const nonzero = positions.map((_, k) => k).filter((k) => values[k] !== 0);
    let carrierAt: number | null = null;
    if (nonzero.length > 0 && !(full && hasBias)) {
      // A channel that already carries for another consumer (one carrier per group), else the largest |value|.
      const carrying = positions.map((_, k) => k).filter((k) =>
        carriers.has(trace.root(use.inLabels[positions[k]]))
      );
      const from = carrying.length > 0 ? carrying : nonzero;
      carrierAt = from.reduce((best, k) => Math.abs(values[k]) > Math.abs(values[best]) ? k : best, from[0]);
      carriers.add(trace.root(use.inLabels[positions[carrierAt]]));
    }
    const carrierValue = carrierAt === null ? 0 : values[carrierAt];
    return {
      use,
      positions,
      values,
      carrierAt,
      carrierValue,
      bias: nonzero.length > 0 && carrierAt === null,
    };
  });
  return { folds, carriers };
}

/**
 * Where a carrier sends 0 to a consumer it carries for (a relu that cuts its constant there),
 * make it send a non-zero constant instead: its sources (every member's pruned channel) emit 1,
 * by the BatchNormalization right after them (beta 1, moving mean 0) or else their bias, and
 * each such consumer reads what the carrier now sends. Only the carrier's own channel changes.
 */
async function boostCarriers(
  trace: ChannelTrace,
  folds: ConsumerFold[],
  artifacts: tf.io.ModelArtifacts,
  store: Map<string, WeightValue>,
): Promise<void> {
  const weak = folds.filter((f) => f.carrierAt !== null && f.carrierValue === 0);
  if (weak.length === 0) return;
  const roots = new Set(weak.map((f) => trace.root(f.use.inLabels[f.positions[f.carrierAt!]])));
  for (const conv of trace.convs) {
    conv.out.forEach((label, c) => {
      if (!roots.has(trace.root(label))) return;
      const bn = trace.perChannel.find((u) =>
        u.input.sourceLayer === conv.layer && u.layer.getClassName() === "BatchNormalization"
      );
      const beta = bn && weightOf(bn.layer, store, "beta");
      const bias = weightOf(conv.layer, store, "bias");
      if (bn && beta) {
        beta.values[c] = 1;
        weightOf(bn.layer, store, "moving_mean")!.values[c] = 0;
      } else if (bias) bias.values[c] = 1;
      else {
        throw new UserError(
          `cannot remove channels of ${conv.layer.name}: no pruned channel reaches ${
            weak[0].use.layer.name
          } with a ` +
            `non-zero constant to carry the others', and it has no bias or BatchNormalization to make one; prune fewer.`,
        );
      }
    });
  }
  // Every consumer the boosted carriers carry for reads their new constant.
  const carried = folds.filter((f) =>
    f.carrierAt !== null && roots.has(trace.root(f.use.inLabels[f.positions[f.carrierAt]]))
  );
  const read = await valuesAt(artifacts, store, carried.map((f) => f.use.input));
  carried.forEach((f, n) => {
    const i = f.positions[f.carrierAt!];
    f.carrierValue = constantOf(read[n], f.use.inLabels.length, i, f.use.layer.name);
    if (f.carrierValue === 0) {
      throw new UserError(
        `cannot remove channels: the carrier channel still sends 0 to ${f.use.layer.name}, so it cannot carry the ` +
          `other pruned channels' constants there; prune fewer.`,
      );
    }
  });
}

/** Fold one consumer's pruned constants into its bias or its carrier's slice; zero other carriers' slices. */
function applyFold(
  f: ConsumerFold,
  store: Map<string, WeightValue>,
  isCarrier: (label: number) => boolean,
): void {
  const { kernel, bias } = kernelAndBias(f.use.layer, store);
  const cin = kernel.shape[kernel.shape.length - 2];
  const cout = kernel.shape[kernel.shape.length - 1];
  const taps = kernel.values.length / (cin * cout);
  const k = kernel.values;
  if (f.carrierAt !== null) {
    const i0 = f.positions[f.carrierAt], v0 = f.carrierValue;
    const slice = new Float64Array(taps * cout);
    f.positions.forEach((i, n) => {
      if (f.values[n] === 0) return;
      for (let t = 0; t < taps; t++) {
        for (let o = 0; o < cout; o++) {
          slice[t * cout + o] += (f.values[n] / v0) * k[(t * cin + i) * cout + o];
        }
      }
    });
    for (let t = 0; t < taps; t++) {
      for (let o = 0; o < cout; o++) k[(t * cin + i0) * cout + o] = slice[t * cout + o];
    }
  } else if (f.bias) {
    const add = new Float64Array(cout);
    f.positions.forEach((i, n) => {
      if (f.values[n] === 0) return;
      for (let t = 0; t < taps; t++) {
        for (let o = 0; o < cout; o++) add[o] += f.values[n] * k[(t * cin + i) * cout + o];
      }
    });
    for (let o = 0; o < cout; o++) bias!.values[o] += add[o];
  }
  // A carrier's constant is in this fold already: its own slice here carries nothing more.
  const i0 = f.carrierAt === null ? -1 : f.positions[f.carrierAt];
  for (const i of f.positions) {
    if (i === i0 || !isCarrier(f.use.inLabels[i])) continue;
    for (let t = 0; t < taps; t++) for (let o = 0; o < cout; o++) k[(t * cin + i) * cout + o] = 0;
  }
}

/** Indices of `labels` that stay. */
function keptOf(labels: Int32Array, stays: (label: number) => boolean): number[] {
  const keep: number[] = [];
  labels.forEach((label, i) => {
    if (stays(label)) keep.push(i);
  });
  return keep;
}

/** Slice every weight the trace names by the channels that stay; update the conv configs. */
function slice(
  trace: ChannelTrace,
  store: Map<string, WeightValue>,
  topology: unknown,
  stays: (label: number) => boolean,
): void {
  const cut = (layer: tf.layers.Layer, suffix: string | null, axis: number, keep: number[]) => {
    for (const w of layer.weights) {
      const name = w.originalName;
      if (suffix !== null && !weightNamed(name, suffix)) continue;
      const value = store.get(name);
      if (value) store.set(name, takeAlongAxis(value, axis < 0 ? value.shape.length + axis : axis, keep));
    }
  };
  for (const c of trace.convs) {
    const keep = keptOf(c.out, stays);
    cut(c.layer, "kernel", -1, keep);
    cut(c.layer, "bias", 0, keep);
    const cfg = layerConfig(topology, c.layer.name);
    if (!cfg || typeof cfg.filters !== "number") {
      throw new Error(`no Conv2D config named ${c.layer.name} in the model topology`);
    }
    cfg.filters = keep.length;
  }
  for (const u of trace.perChannel) {
    const keepIn = keptOf(u.inLabels, stays);
    if (u.layer.getClassName() === "DepthwiseConv2D") {
      cut(u.layer, "depthwise_kernel", 2, keepIn);
      cut(u.layer, "bias", 0, keptOf(u.outLabels!, stays));
    } else cut(u.layer, null, -1, keepIn);
  }
  for (const u of trace.consumers) {
    const keepIn = keptOf(u.inLabels, stays);
    const cls = u.layer.getClassName();
    if (cls === "SeparableConv2D") {
      const m = weightOf(u.layer, store, "depthwise_kernel")!.shape[3];
      const expanded = Int32Array.from(
        { length: u.inLabels.length * m },
        (_, i) => u.inLabels[Math.floor(i / m)],
      );
      cut(u.layer, "depthwise_kernel", 2, keepIn);
      cut(u.layer, "pointwise_kernel", 2, keptOf(expanded, stays));
    } else cut(u.layer, "kernel", cls === "Dense" ? 0 : 2, keepIn);
    // A consumer that declares its input shape (some exports do) must declare the new one.
    const cfg = layerConfig(topology, u.layer.name);
    if (cfg) setDeclaredInputWidth(cfg, keepIn.length);
  }
}

/** The per-conv reports of a surgery. */
function reports(
  model: tf.LayersModel,
  trace: ChannelTrace,
  folds: ConsumerFold[],
  carriers: Set<number>,
): LayerSurgery[] {
  return trace.removals.map((r, ri) => {
    const roots = new Set(
      Array.from({ length: trace.channels[ri] }, (_, c) => trace.root(trace.base[ri] + c)),
    );
    const mine = folds.filter((f) => f.positions.some((i) => roots.has(trace.root(f.use.inLabels[i]))));
    const consumers = trace.consumers.filter((u) =>
      u.inLabels.some((l) => l >= 0 && roots.has(trace.root(l)))
    );
    const pruned = [...r.channels].sort((a, b) => a - b);
    const kept = pruned.filter((c) => carriers.has(trace.root(trace.base[ri] + c)));
    const removed = pruned.filter((c) => !kept.includes(c));
    const channelsAfter = trace.channels[ri] - removed.length;
    if (channelsAfter === 0) {
      throw new UserError(
        `cannot remove all ${
          trace.channels[ri]
        } channels of ${r.layer}: the slim layer needs at least one; prune fewer.`,
      );
    }
    let largest = 0;
    for (const f of mine) {
      f.positions.forEach((i, n) => {
        if (roots.has(trace.root(f.use.inLabels[i]))) largest = Math.max(largest, Math.abs(f.values[n]));
      });
    }
    const first = consumers[0]?.layer.getClassName();
    return {
      layer: r.layer,
      channelsBefore: trace.channels[ri],
      channelsAfter,
      pruned,
      removed,
      carrier: kept[0] ?? null,
      between: trace.between[ri],
      batchNorms: trace.between[ri].filter((n) => model.getLayer(n).getClassName() === "BatchNormalization"),
      consumer: consumers.map((u) => u.layer.name).join(", "),
      consumerKind: first === "Dense" ? "dense" : first === "SeparableConv2D" ? "separable" : "conv",
      fold: kept.length > 0 ? "carrier" : largest > 0 ? "bias" : "none",
      largestConstant: largest,
    };
  });
}

/**
 * The slim model: every channel of every removal physically removed (see the module doc for
 * what is removed and how the pruned channels' constants are folded). `model` is not changed.
 * The members of a coupled channel group are listed as removals of the same channels.
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
  const trace = traceChannels(model, removals);
  const pruned = prunedLabels(trace);
  const isPruned = (label: number) => label >= 0 && pruned[label] === 1;
  const artifacts = await saveToMemory(model);
  const store = await maskStore(model, trace, artifacts, pruned);
  const { folds, carriers } = await planFolds(trace, artifacts, store, isPruned);
  await boostCarriers(trace, folds, artifacts, store);
  const isCarrier = (label: number) => label >= 0 && carriers.has(trace.root(label));
  for (const f of folds) applyFold(f, store, isCarrier);
  const layers = reports(model, trace, folds, carriers);
  const topology = structuredClone(artifacts.modelTopology);
  slice(trace, store, topology, (label) => !isPruned(label) || isCarrier(label));
  const { specs, data } = encodeWeights(artifacts.weightSpecs ?? [], store);
  const slimArtifacts: tf.io.ModelArtifacts = {
    ...artifacts,
    modelTopology: topology,
    weightSpecs: specs,
    weightData: data,
  };
  const slim = await buildModel(slimArtifacts);
  return { model: slim, artifacts: slimArtifacts, layers };
}
