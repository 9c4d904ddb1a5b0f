/**
 * Gradient functions that replace tfjs-core's where its version is needlessly slow. Same math:
 * tfjs-core's FusedBatchNorm gradient tiles 1/sqrt(var + eps) to the full N x H x W x C shape
 * before a multiply that broadcasts anyway; on wasm that Tile alone cost a fifth of a training step.
 */
import * as tf from "@tensorflow/tfjs";
import { FusedBatchNorm, type GradConfig, registerGradient } from "@tensorflow/tfjs-core";

const fusedBatchNormGrad: GradConfig = {
  kernelName: FusedBatchNorm,
  inputsToSave: ["x", "mean", "variance", "scale"],
  gradFunc: (dy, saved, attrs) => {
    const { varianceEpsilon } = attrs as unknown as { varianceEpsilon: number };
    const [x, mean, variance, scale] = saved;
    const dyT = dy as tf.Tensor;
    const scaleValue = scale == null ? tf.scalar(1) : scale;
    const axes = tf.backend_util.getReductionAxes(mean.shape, x.shape);
    const reduce = (t: tf.Tensor) =>
      (mean.rank === 1 && axes.length ? tf.sum(t, axes) : t).reshape(mean.shape);
    const xMinusMean = tf.sub(x, mean);
    const dyTimesScale = tf.mul(dyT, scaleValue);
    const rstd = tf.rsqrt(tf.add(variance, tf.scalar(varianceEpsilon)));
    const minusHalfRCube = tf.mul(tf.mul(tf.mul(rstd, rstd), rstd), tf.scalar(-0.5));
    return {
      x: () => tf.mul(tf.mul(dyT, rstd), scaleValue).reshape(x.shape),
      mean: () => reduce(tf.mul(tf.mul(rstd, tf.scalar(-1)), dyTimesScale)),
      variance: () => reduce(tf.mul(tf.mul(minusHalfRCube, xMinusMean), dyTimesScale)),
      scale: () => reduce(tf.mul(dyT, tf.mul(xMinusMean, rstd))),
      offset: () => reduce(dyT),
    };
  },
};

let registered = false;
/** Register the replacement gradients once (backend-independent). */
export function registerFastGradients(): void {
  if (registered) return;
  registerGradient(fusedBatchNormGrad);
  registered = true;
}
