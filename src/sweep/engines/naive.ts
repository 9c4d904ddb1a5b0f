/**
 * The lab's method, literally: for each K, zero the kernel slices and bias entries of the K
 * first channels of the ranking in the layer's own weights (and in every other member of its
 * coupled channel group), evaluate the whole model on the data, and finally put the original
 * weights back. Slow, and the reference the fast sweep must
 * match count for count.
 */
import * as tf from "@tensorflow/tfjs";
import type { LayerRef } from "../../model/layers.ts";
import type { Dataset, Preprocessing, Ranking, SweepPoint } from "../../types.ts";
import { evaluate } from "../../model/evaluate.ts";
import { resolveKValues, sweepPoint } from "../kvalues.ts";

/** Options of `sweepNaive`. */
export interface NaiveSweepOptions {
  /** The K values to evaluate (default 0..C); evaluated and returned in ascending order, once each. */
  kValues?: number[];
  /** Images per `model.predict` call (default 256). */
  batch?: number;
  /** Called after each K with how many are done. */
  onProgress?: (kDone: number) => void;
  /** The other conv layers of the layer's channel group, zeroed with it (default none). */
  members?: string[];
}

/** Set a layer's weights from plain arrays, disposing the temporary tensors. */
function setWeightValues(layer: tf.layers.Layer, values: Float32Array[], shapes: number[][]): void {
  const tensors = values.map((v, i) => tf.tensor(v, shapes[i], "float32"));
  try {
    layer.setWeights(tensors);
  } finally {
    tensors.forEach((t) => t.dispose());
  }
}

/** One conv layer's weights: the originals, a working copy, and how to zero channel c in it. */
async function heldWeights(conv: tf.layers.Layer, channels: number) {
  // getWeights() returns the live variables: copy their values before touching them (read
  // asynchronously: WebGPU has no synchronous read).
  const live = conv.getWeights();
  const shapes = live.map((t) => t.shape);
  const originals = (await Promise.all(live.map((t) => t.data() as Promise<Float32Array>))).map((v) =>
    v.slice()
  );
  const kernelAt = shapes.findIndex((s) => s.length === 4 && s[3] === channels);
  const biasAt = shapes.findIndex((s) => s.length === 1 && s[0] === channels);
  if (kernelAt < 0) throw new Error(`layer ${conv.name} has no 4-D kernel with ${channels} output channels`);
  const working = originals.map((v) => v.slice());
  return {
    zero(c: number) {
      const kernel = working[kernelAt];
      for (let i = c; i < kernel.length; i += channels) kernel[i] = 0;
      if (biasAt >= 0) working[biasAt][c] = 0;
    },
    set(which: "working" | "originals") {
      setWeightValues(conv, which === "working" ? working : originals, shapes);
    },
  };
}

/**
 * The literal lab sweep: for each K, `kernel[..., c] = 0` and `bias[c] = 0` for the K first
 * channels `c` of `ranking.order`, then `evaluate` the whole model. The layer's original
 * weights are restored at the end, also when something fails.
 *
 * @example
 * ```ts
 * const points = await sweepNaive(model, pickLayer(model), test, prep, ranking, { kValues: [0, 8, 16] });
 * ```
 */
export async function sweepNaive(
  model: tf.LayersModel,
  layer: LayerRef,
  ds: Dataset,
  prep: Preprocessing,
  ranking: Ranking,
  opts: NaiveSweepOptions = {},
): Promise<SweepPoint[]> {
  const channels = layer.channels;
  const ks = resolveKValues(opts.kValues, channels);
  if (ranking.order.length !== channels) {
    throw new Error(`ranking has ${ranking.order.length} channels, layer ${layer.name} ${channels}`);
  }
  const convs = [layer.name, ...(opts.members ?? [])].map((name) => model.getLayer(name));
  const held = await Promise.all(convs.map((conv) => heldWeights(conv, channels)));
  const zeroChannel = (c: number) => held.forEach((h) => h.zero(c));
  const points: SweepPoint[] = [];
  let pruned = 0;
  try {
    for (const k of ks) {
      while (pruned < k) zeroChannel(ranking.order[pruned++]);
      held.forEach((h) => h.set("working"));
      const { correct, total, classCorrect } = await evaluate(model, ds, prep, opts.batch);
      points.push(sweepPoint(k, ranking, correct, total, classCorrect));
      opts.onProgress?.(points.length);
    }
  } finally {
    held.forEach((h) => h.set("originals"));
  }
  return points;
}
