/**
 * BatchNorm recalibration: after channels are removed, the layers downstream see inputs whose
 * statistics differ from the ones their BatchNormalization layers learned, and accuracy can fall
 * to chance although the weights are still good. Re-estimating every BN layer's moving mean and
 * variance on training images (no gradient step) recovers much of it in seconds.
 *
 * The layers are taken in the model's order and each one's statistics are measured with the
 * layers before it already recalibrated, so the estimates are those of the final model.
 */
import * as tf from "@tensorflow/tfjs";
import type { Dataset, Preprocessing } from "../types.ts";
import { imagesToTensor } from "../data/tensors.ts";

/** What `recalibrateBatchNorm` did. */
export interface Recalibration {
  /** The BatchNormalization layers whose moving statistics were replaced. */
  layers: string[];
  /** Images the statistics were measured on. */
  images: number;
  seconds: number;
}

/**
 * Replace the moving mean and variance of every BatchNormalization layer of `model` (in place)
 * by the population mean and variance of its input over the first `images` images of `data`
 * (inference mode: dropout off, earlier BN layers already recalibrated).
 *
 * @example
 * ```ts
 * const { layers } = await recalibrateBatchNorm(slim, trainSet, prep, { images: 1000 });
 * ```
 */
export async function recalibrateBatchNorm(
  model: tf.LayersModel,
  data: Dataset,
  prep: Preprocessing,
  opts: { images?: number; batch?: number; onLayer?(done: number, total: number): void } = {},
): Promise<Recalibration> {
  const t0 = performance.now();
  const n = Math.min(data.count, Math.max(1, Math.floor(opts.images ?? 1000)));
  const batch = Math.max(1, Math.floor(opts.batch ?? 256));
  const bns = model.layers.filter((l) => l.getClassName() === "BatchNormalization");
  for (const [i, bn] of bns.entries()) {
    const axis = [bn.getConfig().axis ?? -1].flat() as number[];
    if (axis.length !== 1 || !(axis[0] === -1 || axis[0] === 3)) {
      throw new Error(
        `BatchNormalization '${bn.name}' normalises axis ${axis}: only the channel axis is recalibrated`,
      );
    }
    const probe = tf.model({ inputs: model.inputs, outputs: bn.input as tf.SymbolicTensor });
    let sum: Float64Array | null = null, sumSq: Float64Array | null = null, count = 0;
    for (let start = 0; start < n; start += batch) {
      const size = Math.min(batch, n - start);
      const [s, q, rows] = tf.tidy(() => {
        const x = probe.predict(imagesToTensor(data, start, size, prep)) as tf.Tensor;
        const c = x.shape[x.shape.length - 1]!;
        const flat = x.reshape([-1, c]);
        return [flat.sum(0), flat.square().sum(0), flat.shape[0]] as const;
      });
      const [sv, qv] = [await s.data(), await q.data()];
      s.dispose();
      q.dispose();
      sum ??= new Float64Array(sv.length);
      sumSq ??= new Float64Array(qv.length);
      for (let c = 0; c < sv.length; c++) {
        sum[c] += sv[c];
        sumSq[c] += qv[c];
      }
      count += rows;
    }
    const mean = Float32Array.from(sum!, (v) => v / count);
    const variance = Float32Array.from(sumSq!, (v, c) => Math.max(0, v / count - mean[c] * mean[c]));
    const weights = bn.getWeights();
    const names = bn.weights.map((w) => w.originalName ?? w.name);
    const at = (suffix: string) => names.findIndex((nm) => nm.endsWith(suffix));
    const [mi, vi] = [at("moving_mean"), at("moving_variance")];
    if (mi < 0 || vi < 0) throw new Error(`BatchNormalization '${bn.name}' has no moving statistics`);
    weights[mi] = tf.tensor1d(mean);
    weights[vi] = tf.tensor1d(variance);
    bn.setWeights(weights);
    tf.dispose([weights[mi], weights[vi]]);
    opts.onLayer?.(i + 1, bns.length);
  }
  return { layers: bns.map((l) => l.name), images: n, seconds: (performance.now() - t0) / 1000 };
}
