/**
 * What a conv layer's channels are wired to: the layers that read its output, whether its
 * channels reach an element-wise merge (the `Add` of a residual block) and are therefore coupled
 * to another branch's channels, and the weights the weight-based criteria read (its kernel, the
 * gamma of the BatchNormalization right after it).
 *
 * Coupled layers are refused, not pruned as a group: pruning channel c of one branch of an `Add`
 * leaves channel c of the sum fed by the other branch, so the channel cannot be removed from the
 * network, and a ranking of that layer alone says nothing about the block.
 */
import type * as tf from "@tensorflow/tfjs";
import { UserError } from "../core/errors.ts";
import { convLayers, type LayerRef } from "./layers.ts";
import { keepsChannels, layerClass, readersOf } from "./graph.ts";

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
