/**
 * What a conv layer's channels are wired to: the layers that read its output, whether its
 * channels reach an element-wise merge (the `Add` of a residual block) and are therefore coupled
 * to another branch's channels, and the weights the weight-based criteria read (its kernel, the
 * gamma of the BatchNormalization right after it).
 *
 * Pruning channel c of one branch of an `Add` leaves channel c of the sum fed by the other
 * branch, so coupled layers are pruned as a group (`channelGroup`: every member's channel c at
 * once); `couplingOf` / `assertUncoupled` tell whether a layer is coupled at all.
 */
import type * as tf from "@tensorflow/tfjs";
import { UserError } from "../core/errors.ts";
import { CONV_CLASS, convLayers, type LayerRef, pickLayer } from "./layers.ts";
import { graphSteps, keepsChannels, layerClass, readersOf } from "./graph.ts";

/** Where a layer's channels meet another branch: the merge layer and the layers on the way. */
export interface Coupling {
  layer: string;
  merge: string;
  mergeClass: string;
  /** Channel-preserving layers between the conv and the merge. */
  via: string[];
}

/**
 * The element-wise merge (Add, Multiply, ...) that `layer`'s channels reach through
 * channel-preserving layers (activations, BatchNormalization, pooling, dropout, ...), or null when
 * every path first meets a layer that mixes channels (a conv, Dense, Flatten, Concatenate, ...).
 *
 * @example
 * ```ts
 * couplingOf(model, pickLayer(model, "conv2")); // { merge: "residual", via: ["relu2"], ... }
 * ```
 */
export function couplingOf(model: tf.LayersModel, layer: LayerRef): Coupling | null {
  const readers = readersOf(model);
  const queue: { name: string; via: string[] }[] = [{ name: layer.name, via: [] }];
  const seen = new Set<string>([layer.name]);
  while (queue.length > 0) {
    const { name, via } = queue.shift()!;
    for (const next of readers.get(name) ?? []) {
      const cls = next.getClassName();
      if (layerClass(cls).kind === "merge") {
        return { layer: layer.name, merge: next.name, mergeClass: cls, via };
      }
      if (keepsChannels(cls) && !seen.has(next.name)) {
        seen.add(next.name);
        queue.push({ name: next.name, via: [...via, next.name] });
      }
    }
  }
  return null;
}

/** The sentence that explains why a coupled layer is refused. */
export function couplingMessage(c: Coupling): string {
  const path = c.via.length > 0 ? ` (through ${c.via.join(", ")})` : "";
  return `layer ${c.layer} feeds the ${c.mergeClass} layer '${c.merge}'${path}, which combines its channels ` +
    `one by one with another branch's: its channels are coupled to that branch's and cannot be pruned alone`;
}

/**
 * Throw a UserError naming the merge layer when `layer`'s channels are coupled (see `couplingOf`),
 * listing the conv layers that can be pruned.
 *
 * @example
 * ```ts
 * assertUncoupled(model, pickLayer(model, values.layer)); // before any pruning work
 * ```
 */
export function assertUncoupled(model: tf.LayersModel, layer: LayerRef): void {
  const c = couplingOf(model, layer);
  if (!c) return;
  const free = convLayers(model).filter((l) => couplingOf(model, l) === null).map((l) => l.name);
  throw new UserError(
    `${couplingMessage(c)}; pick another layer (${
      free.length > 0 ? `uncoupled conv layers: ${free.join(", ")}` : "this model has no uncoupled conv layer"
    }).`,
  );
}

/** A copy of each weight of `layer`, read from the device asynchronously (every backend, WebGPU included). */
async function weightValues(
  layer: tf.layers.Layer,
): Promise<{ name: string; shape: number[]; values: Float32Array }[]> {
  const tensors = layer.getWeights();
  const values = await Promise.all(tensors.map((t) => t.data() as Promise<Float32Array>));
  return layer.weights.map((w, i) => ({
    name: w.originalName ?? w.name,
    shape: tensors[i].shape,
    values: values[i].slice(),
  }));
}

/**
 * A copy of the conv layer's kernel, `[kh, kw, cin, cout]` flattened (output channel last), and
 * the kernel variable's name (e.g. "conv2/kernel").
 *
 * @example
 * ```ts
 * const { values } = await convKernel(model, layer); // values.length === kh * kw * cin * layer.channels
 * ```
 */
export async function convKernel(
  model: tf.LayersModel,
  layer: LayerRef,
): Promise<{ name: string; values: Float32Array }> {
  const found = (await weightValues(model.getLayer(layer.name))).find(
    (w) => w.shape.length === 4 && w.shape[3] === layer.channels,
  );
  if (!found) throw new Error(`layer ${layer.name} has no 4-D kernel with ${layer.channels} output channels`);
  return { name: found.name, values: found.values };
}

/** The kernel variable's name, e.g. "conv2/kernel" (Distiller's "parameter" column). */
export function kernelName(model: tf.LayersModel, layer: LayerRef): string {
  const w = model.getLayer(layer.name).weights.find((v) => v.shape.length === 4);
  return w ? (w.originalName ?? w.name) : `${layer.name}/kernel`;
}

const GAMMA = /(^|\/)gamma(_\d+)?$/;

/**
 * The BatchNormalization layer that directly reads `layer`'s output and the index of its gamma
 * among its weights, from the graph alone (no device read). A UserError when the conv is not
 * followed by exactly one BatchNormalization, or it has no gamma (`scale: false`).
 *
 * @example
 * ```ts
 * batchNormAfter(model, layer).bn.name; // "bn2": bn-gamma applies to this layer
 * ```
 */
export function batchNormAfter(
  model: tf.LayersModel,
  layer: LayerRef,
): { bn: tf.layers.Layer; gammaAt: number } {
  const readers = readersOf(model).get(layer.name) ?? [];
  const bn = readers.length === 1 && readers[0].getClassName() === "BatchNormalization" ? readers[0] : null;
  if (!bn) {
    const after = readers.length === 0
      ? "nothing"
      : readers.map((l) => `${l.name} (${l.getClassName()})`).join(", ");
    throw new UserError(
      `criterion bn-gamma needs a BatchNormalization directly after layer ${layer.name}, but it is followed by ` +
        `${after}; use another criterion (e.g. l1 or mean).`,
    );
  }
  const gammaAt = bn.weights.findIndex((w) => GAMMA.test(w.originalName ?? w.name));
  const size = gammaAt < 0 ? 0 : bn.weights[gammaAt].shape.reduce((p: number, d) => p * (d ?? 0), 1);
  if (size !== layer.channels) {
    throw new UserError(
      `criterion bn-gamma: the BatchNormalization ${bn.name} after ${layer.name} has no gamma (scale: false); ` +
        `use another criterion (e.g. l1 or mean).`,
    );
  }
  return { bn, gammaAt };
}

/**
 * The gamma of the BatchNormalization layer that directly reads `layer`'s output (the errors of
 * `batchNormAfter` otherwise), read from the device asynchronously.
 *
 * @example
 * ```ts
 * const { bn, gamma } = await batchNormGammaAfter(model, layer); // gamma.length === layer.channels
 * ```
 */
export async function batchNormGammaAfter(
  model: tf.LayersModel,
  layer: LayerRef,
): Promise<{ bn: string; gamma: Float32Array }> {
  const { bn, gammaAt } = batchNormAfter(model, layer);
  const gamma = await bn.getWeights()[gammaAt].data() as Float32Array;
  return { bn: bn.name, gamma: gamma.slice() };
}

/**
 * A coupled channel group: the conv layers whose channel c meets channel c of the others in
 * element-wise merges (following channel-preserving layers: BN, activations, pooling, dropout,
 * padding, depthwise conv). Pruning channel c of the group zeroes channel c's kernel and bias
 * in every member. With identity shortcuts, a group is a whole residual stage.
 */
export interface ChannelGroup {
  /** The members, in the model's execution order (`members[0]` runs first). */
  members: LayerRef[];
  /** The merge layers that couple them, in execution order. */
  merges: string[];
}

/**
 * The channel group of conv `layer`, or null when its channels reach no element-wise merge.
 * A merge input that does not come from a Conv2D through channel-preserving layers (the model's
 * input, a Reshape, a Dense, a Concatenate, ...) cannot be pruned with the group: a UserError
 * that names the layer path.
 *
 * @example
 * ```ts
 * channelGroup(resnet, pickLayer(resnet, "stage3_block3_conv2"))?.members.map((m) => m.name);
 * // ["stage3_block1_conv2", "stage3_block1_proj", "stage3_block2_conv2", "stage3_block3_conv2"]
 * ```
 */
export function channelGroup(model: tf.LayersModel, layer: LayerRef): ChannelGroup | null {
  const steps = graphSteps(model);
  const readers = readersOf(model);
  const order = new Map<string, number>();
  steps.forEach((s, i) => order.set(s.layer.name, order.get(s.layer.name) ?? i));
  const inputsOf = (name: string) => {
    const uses = steps.filter((s) => s.layer.name === name);
    return uses.flatMap((s) => s.inputs.map((t) => t.sourceLayer));
  };
  const convs = new Set<string>();
  const merges = new Set<string>();
  const seenForward = new Set<string>();
  const seenBack = new Set<string>();
  // Where channel c of `name` goes: through channel-preserving layers to merges.
  const forward = (name: string) => {
    if (seenForward.has(name)) return;
    seenForward.add(name);
    for (const next of readers.get(name) ?? []) {
      if (layerClass(next).kind === "merge") addMerge(next);
      else if (keepsChannels(next)) forward(next.name);
    }
  };
  // Where channel c of what reaches `merge` through `path` comes from: a conv, or another merge.
  const back = (l: tf.layers.Layer, path: string[]) => {
    if (seenBack.has(l.name)) return;
    seenBack.add(l.name);
    const cls = l.getClassName();
    const at = [...path, `${l.name} (${cls})`];
    if (cls === CONV_CLASS) return addConv(l.name);
    if (layerClass(cls).kind === "merge") return addMerge(l);
    const sources = inputsOf(l.name);
    if (!keepsChannels(cls) || sources.length !== 1) {
      throw new UserError(
        `the channels of merge ${
          at.join(" <- ")
        } do not come from a Conv2D through channel-preserving layers; ` +
          `a coupled group through ${l.name} (${cls}) is not supported: pick a conv layer outside it.`,
      );
    }
    forward(l.name);
    back(sources[0], at);
  };
  const addMerge = (m: tf.layers.Layer) => {
    if (merges.has(m.name)) return;
    merges.add(m.name);
    for (const source of inputsOf(m.name)) back(source, [`${m.name} (${m.getClassName()})`]);
    forward(m.name);
  };
  const addConv = (name: string) => {
    if (convs.has(name)) return;
    convs.add(name);
    forward(name);
  };
  addConv(layer.name);
  if (merges.size === 0) return null;
  const byOrder = (a: string, b: string) => (order.get(a) ?? 0) - (order.get(b) ?? 0);
  const members = [...convs].sort(byOrder).map((name) => pickLayer(model, name));
  const odd = members.find((m) => m.channels !== layer.channels);
  if (odd) {
    throw new UserError(
      `the channel group of ${layer.name} joins ${odd.name} with ${odd.channels} channels to ${layer.channels}: ` +
        `the merges ${[...merges].join(", ")} do not pair its channels one to one.`,
    );
  }
  return { members, merges: [...merges].sort(byOrder) };
}

/** The group's name for messages and files: its members joined by "+". */
export function groupName(group: ChannelGroup): string {
  return group.members.map((m) => m.name).join("+");
}

/**
 * Every channel group of the model, each once (in the order of its first member).
 *
 * @example
 * ```ts
 * channelGroups(resnet).length; // 3: one per stage
 * ```
 */
export function channelGroups(model: tf.LayersModel): ChannelGroup[] {
  const groups: ChannelGroup[] = [];
  const done = new Set<string>();
  for (const l of convLayers(model)) {
    if (done.has(l.name)) continue;
    const g = channelGroup(model, l);
    if (!g) continue;
    g.members.forEach((m) => done.add(m.name));
    groups.push(g);
  }
  return groups;
}

/** What a sweep of one conv cuts at: the conv itself, or, for a coupled conv, its whole group. */
export interface SweepTarget {
  /** The layer the model is cut at (a group's first member). */
  layer: LayerRef;
  /** The other members of its group (masked after the cut), or none. */
  members: LayerRef[];
  /** The layer's name, or the group's ("a+b+c"). */
  name: string;
  group: ChannelGroup | null;
}

/**
 * The target of a sweep of `layer`: a coupled conv is swept with its whole channel group, cut at
 * the member that runs first.
 *
 * @example
 * ```ts
 * sweepTarget(model, pickLayer(model, "stage3_block3_conv2")).name; // "stage3_block1_conv2+...+stage3_block1_proj"
 * ```
 */
export function sweepTarget(model: tf.LayersModel, layer: LayerRef): SweepTarget {
  const group = channelGroup(model, layer);
  if (!group) return { layer, members: [], name: layer.name, group: null };
  return { layer: group.members[0], members: group.members.slice(1), name: groupName(group), group };
}
