/**
 * Where the channels of the conv layers being pruned go: one pass over the model's graph
 * (`graphSteps`, the one walker) that labels every channel of every tensor with the pruned conv
 * channel it carries, or none. Surgery (remove.ts) slices every weight by these labels and the
 * allocator's cost model (allocate.ts) counts with them.
 *
 * What the labels follow, by the layer kinds of `model/graph.ts`:
 * - a pruned Conv2D labels its output channels (channel c: its own channel c);
 * - element-wise and channel-wise layers keep each channel's label; BatchNormalization and
 *   PReLU are cut with them (`perChannel`); a DepthwiseConv2D gives output channel c * m + j
 *   (m its depth multiplier) the label of input channel c;
 * - Flatten gives feature f the label of channel f mod C, global pooling feature c channel c's;
 * - an element-wise merge (Add, ...) joins the labels of its inputs channel by channel: they
 *   are one channel of a coupled group and must be pruned together (`merged`);
 * - a Concatenate on the channel axis puts its inputs' labels side by side (each branch at its
 *   offset);
 * - Conv2D, Dense and SeparableConv2D consume labelled channels (their input channels go);
 * - anything else that meets a label (a Reshape, the model's output, a merge with a branch that
 *   is not pruned with it) is refused with a UserError that names it.
 */
import type * as tf from "@tensorflow/tfjs";
import { UserError } from "../core/errors.ts";
import { CONV_CLASS, layerOutputShape } from "../model/layers.ts";
import { graphSteps, layerClass, notOnChannels, type Step, type Sym } from "../model/graph.ts";

/** Channels to prune from one Conv2D layer, as indices of the original layer. */
export interface ChannelRemoval {
  layer: string;
  channels: number[];
}

/** Labels of one tensor's channels (last axis): a label id, or -1 for a channel no removal reaches. */
export type Labels = Int32Array;

/** The classes whose input channels surgery removes (with a fold of what the pruned ones sent). */
export const CONSUMER_CLASSES = [CONV_CLASS, "Dense", "SeparableConv2D"];

/** A layer that reads labelled channels and loses them from its weights. */
export interface LabelledUse {
  layer: tf.layers.Layer;
  /** The tensor it reads. */
  input: Sym;
  inLabels: Labels;
  /** Its output's labels (null when its output channels are its own: a consumer). */
  outLabels: Labels | null;
}

/** Where the channels of a set of removals go. */
export interface ChannelTrace {
  removals: ChannelRemoval[];
  steps: Step[];
  /** The first label of each removal: removal r's channel c is label `base[r] + c`. */
  base: number[];
  /** Channels of each removal's conv. */
  channels: number[];
  /** Labels of every tensor that carries some (by tensor name). */
  labels: Map<string, Labels>;
  /** The label each label is merged into (one id per channel of a coupled group). */
  root: (label: number) => number;
  /** The removal each label belongs to. */
  removalOf: (label: number) => number;
  /** The pruned convs with the labels of their output (and input, when another removal feeds them). */
  convs: { layer: tf.layers.Layer; r: number; out: Labels; input: Sym; inLabels: Labels | null }[];
  /** BatchNormalization, PReLU, DepthwiseConv2D on labelled channels, in execution order. */
  perChannel: LabelledUse[];
  /** Conv2D, Dense, SeparableConv2D reading labelled channels, in execution order. */
  consumers: LabelledUse[];
  /** The layers each removal's labels pass through (not the conv, not its consumers), in order. */
  between: string[][];
}

function fail(names: string, why: string): never {
  throw new UserError(`cannot remove channels of ${names}: ${why}`);
}

/** Throw a UserError unless `r` names a Conv2D of `model` and distinct channels of it; its channel count. */
function checkChannels(model: tf.LayersModel, r: ChannelRemoval): number {
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
  return channels;
}

/**
 * Check `removals` against `model` (each a Conv2D, its channels distinct, no layer twice) and
 * throw a UserError for the first that is not. Returns each removal's channel count.
 */
export function checkRemovals(model: tf.LayersModel, removals: ChannelRemoval[]): number[] {
  const seen = new Set<string>();
  return removals.map((r) => {
    if (seen.has(r.layer)) throw new UserError(`layer ${r.layer} is listed twice in the plan.`);
    seen.add(r.layer);
    return checkChannels(model, r);
  });
}

/**
 * Label where the channels of `removals` go (see the module doc); a UserError naming the layer
 * that blocks them, or the merge whose inputs are not pruned alike.
 *
 * @example
 * ```ts
 * const trace = traceChannels(model, [{ layer: "block5_conv3", channels: [3] }]);
 * trace.consumers.map((u) => u.layer.name); // ["fc1"]
 * ```
 */
export function traceChannels(model: tf.LayersModel, removals: ChannelRemoval[]): ChannelTrace {
  const channels = checkRemovals(model, removals);
  const base: number[] = [];
  let total = 0;
  for (const c of channels) {
    base.push(total);
    total += c;
  }
  const parent = Int32Array.from({ length: total }, (_, i) => i);
  const root = (a: number): number => {
    while (parent[a] !== a) a = parent[a] = parent[parent[a]];
    return a;
  };
  const removalOf = (label: number) => {
    let r = 0;
    while (r + 1 < base.length && base[r + 1] <= label) r++;
    return r;
  };
  const byName = new Map(removals.map((r, i) => [r.layer, i]));
  const names = removals.map((r) => r.layer).join(", ");
  const steps = graphSteps(model);
  const labels = new Map<string, Labels>();
  const trace: ChannelTrace = {
    removals,
    steps,
    base,
    channels,
    labels,
    root,
    removalOf,
    convs: [],
    perChannel: [],
    consumers: [],
    between: removals.map(() => []),
  };
  const passes = (layer: tf.layers.Layer, ids: Labels) => {
    const reached = new Set<number>();
    for (const id of ids) if (id >= 0) reached.add(removalOf(id));
    for (const r of reached) if (!trace.between[r].includes(layer.name)) trace.between[r].push(layer.name);
  };
  const applied = new Map<string, number>();
  for (const s of steps) applied.set(s.layer.name, (applied.get(s.layer.name) ?? 0) + 1);

  for (const step of steps) {
    const layer = step.layer;
    const cls = layer.getClassName();
    const ins = step.inputs.map((t) => labels.get(t.name) ?? null);
    const out = step.outputs[0];
    const r = byName.get(layer.name);
    const labelled = ins.some((l) => l !== null);
    if (labelled && (applied.get(layer.name) ?? 0) > 1) {
      fail(names, `their channels reach ${layer.name} (${cls}), which is applied more than once (shared).`);
    }
    if (r !== undefined) {
      if ((applied.get(layer.name) ?? 0) > 1) {
        fail(layer.name, `the layer is shared (applied several times).`);
      }
      const why = notOnChannels(layer);
      if (why) fail(layer.name, `${why}; only channel-wise layers can be passed.`);
      const own = Int32Array.from({ length: channels[r] }, (_, c) => base[r] + c);
      labels.set(out.name, own);
      trace.convs.push({ layer, r, out: own, input: step.inputs[0], inLabels: ins[0] });
      if (ins[0]) trace.consumers.push({ layer, input: step.inputs[0], inLabels: ins[0], outLabels: null });
      continue;
    }
    if (!labelled) continue;
    const first = ins[0];
    const flat = step.inputs[0].shape.length === 2;
    const why = notOnChannels(layer, flat);
    if (why) fail(names, `${why}; only channel-wise layers can be passed.`);
    const kind = layerClass(cls);
    if (cls === "SeparableConv2D" && (layer.weights[0]?.shape[3] ?? 1) > 1) {
      // TF.js 4.22 saves a SeparableConv2D without its depth multiplier: the rebuilt model would not load.
      fail(
        names,
        `their channels reach ${layer.name} (SeparableConv2D) with depth multiplier ${
          layer.weights[0].shape[3]
        }, which TF.js 4.22 cannot save and reload; only depth multiplier 1 is supported.`,
      );
    }
    if (CONSUMER_CLASSES.includes(cls) && step.inputs.length === 1) {
      trace.consumers.push({ layer, input: step.inputs[0], inLabels: first!, outLabels: null });
      continue;
    }
    if (cls === "DepthwiseConv2D") {
      const m = Number((layer.getConfig() as Record<string, unknown>).depthMultiplier ?? 1);
      const o = Int32Array.from({ length: first!.length * m }, (_, i) => first![Math.floor(i / m)]);
      labels.set(out.name, o);
      trace.perChannel.push({ layer, input: step.inputs[0], inLabels: first!, outLabels: o });
      passes(layer, first!);
      continue;
    }
    if ((kind.kind === "element-wise" || kind.kind === "channel-wise") && step.inputs.length === 1) {
      if (kind.weights === "kernel") {
        fail(
          names,
          `their channels reach ${layer.name} (${cls}), whose weights surgery does not know how to cut.`,
        );
      }
      labels.set(out.name, first!);
      if (kind.weights === "per-channel") {
        trace.perChannel.push({ layer, input: step.inputs[0], inLabels: first!, outLabels: first! });
      }
      passes(layer, first!);
      continue;
    }
    if (kind.kind === "flattening" && step.inputs.length === 1) {
      const shape = step.inputs[0].shape;
      const per = cls === "Flatten" ? shape.slice(1, -1).reduce((p: number, d) => p * (d ?? 1), 1) : 1;
      const C = first!.length;
      labels.set(out.name, Int32Array.from({ length: per * C }, (_, f) => first![f % C]));
      passes(layer, first!);
      continue;
    }
    if (kind.kind === "merge") {
      const widths = step.inputs.map((t) => t.shape[t.shape.length - 1]);
      if (widths.some((w) => w !== widths[0])) {
        fail(
          names,
          `${layer.name} (${cls}) merges inputs of ${widths.join(", ")} channels channel by channel.`,
        );
      }
      const joined = Int32Array.from(first ?? ins.find((l) => l)!);
      for (const l of ins) {
        for (let c = 0; c < joined.length; c++) {
          const a = l ? l[c] : -1, b = joined[c];
          if ((a < 0) !== (b < 0)) {
            fail(
              names,
              `${layer.name} (${cls}) joins channel ${c} of theirs with that of a branch that is not pruned ` +
                `with them; prune the whole coupled channel group ('deno task inspect' lists it).`,
            );
          }
          if (a >= 0) parent[root(a)] = root(b);
        }
      }
      labels.set(out.name, joined);
      passes(layer, joined);
      continue;
    }
    if (cls === "Concatenate") {
      const axis = Number((layer.getConfig() as Record<string, unknown>).axis ?? -1);
      const rank = step.inputs[0].shape.length;
      if (axis !== -1 && axis !== rank - 1) {
        fail(names, `${layer.name} (Concatenate) joins its inputs on axis ${axis}, not the channel axis.`);
      }
      const parts = step.inputs.map((t, i) => ins[i] ?? new Int32Array(t.shape[rank - 1] ?? 0).fill(-1));
      const joined = new Int32Array(parts.reduce((s, p) => s + p.length, 0));
      let at = 0;
      for (const p of parts) {
        joined.set(p, at);
        at += p.length;
      }
      labels.set(out.name, joined);
      for (const p of ins) if (p) passes(layer, p);
      continue;
    }
    fail(
      names,
      `their channels reach ${layer.name} (${cls}), which surgery does not know how to pass; pick another layer.`,
    );
  }
  for (const t of model.outputs as unknown as Sym[]) {
    if (labels.has(t.name)) fail(names, `their channels reach the model's output (${t.sourceLayer.name}).`);
  }
  return trace;
}

/** A channel count as a function of the units' kept channels: `free + sum of per[u] * kept[u]`. */
export interface LinearCount {
  free: number;
  per: Map<number, number>;
}

/**
 * How many of `labels`' channels remain, as a function of each unit's kept channels, where
 * `unitOf` maps a removal to its unit (the removals of one coupled group share a unit).
 *
 * @example
 * ```ts
 * const n = linearCount(trace, trace.labels.get(t.name)!, (r) => r); // e.g. { free: 0, per: Map { 0 => 64 } }
 * ```
 */
export function linearCount(
  trace: ChannelTrace,
  labels: Labels,
  unitOf: (removal: number) => number,
): LinearCount {
  const count: LinearCount = { free: 0, per: new Map() };
  const units = new Map<number, Map<number, number>>();
  for (const id of labels) {
    if (id < 0) {
      count.free++;
      continue;
    }
    const r = trace.removalOf(id);
    const u = unitOf(r);
    const seen = units.get(u) ?? new Map<number, number>();
    seen.set(id - trace.base[r], (seen.get(id - trace.base[r]) ?? 0) + 1);
    units.set(u, seen);
  }
  for (const [u, seen] of units) {
    // Each channel of the unit appears as often as the others (Flatten: once per position).
    const times = [...seen.values()];
    const removal = trace.removals.findIndex((_, r) => unitOf(r) === u);
    if (seen.size !== trace.channels[removal] || times.some((t) => t !== times[0])) {
      throw new Error(`linearCount: the channels of unit ${u} do not appear evenly`);
    }
    count.per.set(u, (count.per.get(u) ?? 0) + times[0]);
  }
  return count;
}
