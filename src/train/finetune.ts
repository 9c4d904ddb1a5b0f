/**
 * Fine-tuning an existing model (e.g. a slim model after channel surgery) with the training
 * recipe of `train`: SGD with Nesterov momentum and weight decay, a one-cycle learning rate,
 * label smoothing and random crop + flip. No checkpoints: a fine-tune is short.
 */
import * as tf from "@tensorflow/tfjs";
import { type Dataset, datasetShape, type Preprocessing } from "../types.ts";
import { imagesToTensor } from "../data/tensors.ts";
import { activationName } from "../model/layers.ts";
import { evaluate } from "../model/evaluate.ts";
import { gatherBatch } from "./augment.ts";
import { mulberry32, permutation } from "../core/random.ts";
import { oneCycle } from "./schedule.ts";
import { NesterovSgd } from "./sgd.ts";
import { DEFAULT_RECIPE, readScalars, smoothedCrossEntropy } from "./trainer.ts";

/** The peak learning rate of a fine-tune: a fifth of training's, the weights are already good. */
export const FINETUNE_PEAK_LR = DEFAULT_RECIPE.peakLr / 5;

/** How to fine-tune. Unset fields take `DEFAULT_RECIPE`'s values (peak LR: `FINETUNE_PEAK_LR`). */
export interface FinetuneOptions {
  epochs: number;
  preprocessing: Preprocessing;
  batch?: number;
  peakLr?: number;
  momentum?: number;
  weightDecay?: number;
  labelSmoothing?: number;
  seed?: number;
  /** Scored after every epoch (e.g. the test set), for the recovery curve. */
  evalSet?: Dataset;
  onStep?(epoch: number, step: number, steps: number, loss: number, accuracy: number): void;
  onEpoch?(log: FinetuneEpoch): void;
}

/** One epoch of a fine-tune. */
export interface FinetuneEpoch {
  /** 1-based. */
  epoch: number;
  /** The learning rate of the epoch's last step. */
  lr: number;
  trainLoss: number;
  trainAccuracy: number;
  /** Accuracy on `evalSet` after the epoch (null without one). */
  evalAccuracy: number | null;
  seconds: number;
  imagesPerSecond: number;
}

/**
 * Train `model` in place on `data` for `opts.epochs` epochs with the train recipe; returns the
 * per-epoch log. A model whose last layer is not a softmax is trained on softmax(output).
 *
 * @example
 * ```ts
 * const log = await finetune(slim, trainSet, { epochs: 3, preprocessing: prep, evalSet: test });
 * log.at(-1)!.evalAccuracy; // test accuracy after fine-tuning
 * ```
 */
export async function finetune(
  model: tf.LayersModel,
  data: Dataset,
  opts: FinetuneOptions,
): Promise<FinetuneEpoch[]> {
  const r = DEFAULT_RECIPE;
  const batch = Math.max(1, Math.min(data.count, Math.floor(opts.batch ?? r.batch)));
  const peakLr = opts.peakLr ?? FINETUNE_PEAK_LR;
  const smoothing = opts.labelSmoothing ?? r.labelSmoothing;
  const seed = opts.seed ?? r.seed;
  const stepsPerEpoch = Math.floor(data.count / batch);
  const totalSteps = stepsPerEpoch * opts.epochs;
  const outputIsSoftmax = activationName(model.layers[model.layers.length - 1]) === "softmax";
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const sgd = new NesterovSgd(vars, opts.momentum ?? r.momentum, opts.weightDecay ?? r.weightDecay);
  const history: FinetuneEpoch[] = [];
  try {
    for (let epoch = 0; epoch < opts.epochs; epoch++) {
      const rand = mulberry32(seed * 7919 + epoch);
      const order = permutation(data.count, rand);
      const t0 = performance.now();
      let lossSum = 0, correct = 0, seen = 0, lr = 0;
      for (let s = 0; s < stepsPerEpoch; s++) {
        const idx = order.subarray(s * batch, (s + 1) * batch);
        const raw = gatherBatch(data.images, idx, true, rand, 4, datasetShape(data));
        const labels = new Uint8Array(batch);
        idx.forEach((j, i) => (labels[i] = data.labels[j]));
        lr = oneCycle(epoch * stepsPerEpoch + s, totalSteps, peakLr);
        const [loss, hits] = await readScalars(tf.tidy(() => {
          const x = imagesToTensor(
            { images: raw, labels, count: batch, source: "", shape: data.shape },
            0,
            batch,
            opts.preprocessing,
          );
          const y = tf.tensor1d(labels, "int32");
          let argmax: tf.Tensor | undefined;
          const { value, grads } = tf.variableGrads(() => {
            const out = model.apply(x, { training: true }) as tf.Tensor;
            const p = outputIsSoftmax ? out : tf.softmax(out);
            argmax = tf.keep(p.argMax(-1));
            return smoothedCrossEntropy(p, y, smoothing);
          }, vars);
          sgd.step(grads, lr);
          const h = argmax!.equal(y).sum();
          argmax!.dispose();
          return [value, h];
        }));
        if (!Number.isFinite(loss)) {
          throw new Error(`fine-tuning diverged at epoch ${epoch + 1} step ${s} (loss ${loss})`);
        }
        lossSum += loss * batch;
        correct += hits;
        seen += batch;
        opts.onStep?.(epoch, s + 1, stepsPerEpoch, lossSum / seen, correct / seen);
      }
      const trainSeconds = (performance.now() - t0) / 1000;
      let evalAccuracy: number | null = null;
      if (opts.evalSet) {
        const { correct: c, total } = await evaluate(model, opts.evalSet, opts.preprocessing);
        evalAccuracy = total > 0 ? c / total : 0;
      }
      const log: FinetuneEpoch = {
        epoch: epoch + 1,
        lr,
        trainLoss: seen > 0 ? lossSum / seen : NaN,
        trainAccuracy: seen > 0 ? correct / seen : NaN,
        evalAccuracy,
        seconds: (performance.now() - t0) / 1000,
        imagesPerSecond: seen / trainSeconds,
      };
      history.push(log);
      opts.onEpoch?.(log);
    }
  } finally {
    sgd.dispose();
  }
  return history;
}
