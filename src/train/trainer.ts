/**
 * The training loop: SGD with Nesterov momentum, one-cycle learning rate, weight decay, label
 * smoothing, crop + flip augmentation and a held-out validation split; a checkpoint after every
 * epoch (model, optimizer buffers, history) from which `resume` continues exactly.
 */
import * as tf from "@tensorflow/tfjs";
import { join } from "node:path";
import { type Dataset, datasetShape, imageSize, type Preprocessing } from "../types.ts";
import { imagesToTensor } from "../data/tensors.ts";
import { buildVgg } from "../model/vgg.ts";
import { buildResnet20 } from "../model/resnet.ts";
import { fileLoader, fileSaver } from "../model/tfjs_io.ts";
import { writeFileAtomic } from "../core/atomic.ts";
import { gatherBatch } from "./augment.ts";
import { mulberry32, permutation } from "../core/random.ts";
import { oneCycle } from "./schedule.ts";
import { UserError } from "../core/errors.ts";
import { NesterovSgd } from "./sgd.ts";
import { pauseForSignals } from "../core/interrupt.ts";

/** Everything that determines a training run. */
export interface TrainRecipe {
  /** The network: the lab's VGG (scaled by `width`, the default) or ResNet-20 (`width` unused). */
  arch?: TrainArch;
  width: number;
  epochs: number;
  batch: number;
  peakLr: number;
  momentum: number;
  weightDecay: number;
  labelSmoothing: number;
  /** Images of the training set held out for validation. */
  valSize: number;
  seed: number;
  blockDropout: number;
  denseDropout: number;
  /** Short one-cycle schedules run after the main one (`train --resume --extend N`). */
  extraCycles?: { epochs: number; peakLr: number }[];
}

/** The networks `train` can build. */
export const TRAIN_ARCHS = ["vgg16", "resnet20"] as const;
export type TrainArch = typeof TRAIN_ARCHS[number];

/**
 * The untrained network a recipe describes.
 *
 * @example
 * ```ts
 * const model = buildNetwork({ ...DEFAULT_RECIPE, arch: "resnet20" });
 * ```
 */
export function buildNetwork(recipe: TrainRecipe): tf.LayersModel {
  if (recipe.arch === "resnet20") return buildResnet20({ seed: recipe.seed });
  return buildVgg({
    width: recipe.width,
    seed: recipe.seed,
    blockDropout: recipe.blockDropout,
    denseDropout: recipe.denseDropout,
  });
}

/** All epochs of a recipe: the main cycle's and the extra cycles'. */
export function totalEpochs(recipe: TrainRecipe): number {
  return recipe.epochs + (recipe.extraCycles ?? []).reduce((s, c) => s + c.epochs, 0);
}

/** The learning rate at `step` of `epoch`: the main one-cycle schedule, then each extra cycle's own. */
export function learningRate(
  recipe: TrainRecipe,
  epoch: number,
  step: number,
  stepsPerEpoch: number,
): number {
  if (epoch < recipe.epochs) {
    return oneCycle(epoch * stepsPerEpoch + step, stepsPerEpoch * recipe.epochs, recipe.peakLr);
  }
  let start = recipe.epochs;
  for (const c of recipe.extraCycles ?? []) {
    if (epoch < start + c.epochs) {
      return oneCycle((epoch - start) * stepsPerEpoch + step, stepsPerEpoch * c.epochs, c.peakLr);
    }
    start += c.epochs;
  }
  throw new Error(`epoch ${epoch + 1} is past the recipe's ${start} epochs`);
}

export const DEFAULT_RECIPE: TrainRecipe = {
  width: 0.25,
  epochs: 14,
  batch: 128,
  peakLr: 0.05,
  momentum: 0.9,
  weightDecay: 5e-4,
  labelSmoothing: 0.1,
  valSize: 5000,
  seed: 1,
  blockDropout: 0.1,
  denseDropout: 0.3,
};

/** One line of the per-epoch log. */
export interface EpochLog {
  epoch: number;
  lr: number;
  trainLoss: number;
  trainAccuracy: number;
  valLoss: number;
  valAccuracy: number;
  seconds: number;
  imagesPerSecond: number;
}

/** What a checkpoint holds besides the model and optimizer buffers. */
export interface CheckpointState {
  recipe: TrainRecipe;
  preprocessing: Preprocessing;
  epochsDone: number;
  history: EpochLog[];
}

/**
 * Per-channel mean and std of `ds` on the 0..1 scale: the preprocessing the model is trained with
 * (a grey set's one value repeated in the three slots).
 */
export function channelStats(ds: Dataset): Preprocessing {
  const c = datasetShape(ds).channels;
  const sum = new Array(c).fill(0), sq = new Array(c).fill(0);
  const size = ds.count * imageSize(ds);
  for (let i = 0; i < size; i++) {
    const v = ds.images[i] / 255;
    sum[i % c] += v;
    sq[i % c] += v * v;
  }
  const n = size / c;
  const mean = sum.map((s) => s / n);
  const std = sq.map((s, k) => Math.sqrt(s / n - mean[k] * mean[k]));
  const r = (x: number) => Math.round(x * 1e4) / 1e4;
  const three = (v: number[]) => [0, 1, 2].map((k) => r(v[k % c])) as Preprocessing["mean"];
  return { scale: 1 / 255, mean: three(mean), std: three(std) };
}

/**
 * The first value of each of `tensors`, read asynchronously (WebGPU has no synchronous read);
 * the tensors are disposed.
 *
 * @example
 * ```ts
 * const [loss, hits] = await readScalars(tf.tidy(() => [lossTensor, hitsTensor]));
 * ```
 */
export async function readScalars(tensors: tf.Tensor[]): Promise<number[]> {
  try {
    const values = await Promise.all(tensors.map((t) => t.data()));
    await pauseForSignals();
    return values.map((v) => v[0]);
  } finally {
    tf.dispose(tensors);
  }
}

/** Loss and accuracy of `model` on `ds` (inference mode). */
export async function evaluateLoss(
  model: tf.LayersModel,
  ds: Dataset,
  prep: Preprocessing,
  batch = 500,
): Promise<{ loss: number; accuracy: number }> {
  let loss = 0, correct = 0;
  for (let start = 0; start < ds.count; start += batch) {
    const [l, c] = await readScalars(tf.tidy(() => {
      const x = imagesToTensor(ds, start, batch, prep);
      const p = model.predict(x) as tf.Tensor2D;
      const y = tf.tensor1d(ds.labels.subarray(start, start + x.shape[0]), "int32");
      const nll = tf.neg(tf.log(tf.clipByValue(p, 1e-7, 1)).mul(tf.oneHot(y, p.shape[1])).sum());
      return [nll, p.argMax(-1).equal(y).sum()];
    }));
    loss += l;
    correct += c;
  }
  return { loss: loss / ds.count, accuracy: correct / ds.count };
}

/** Mean cross-entropy of probabilities `p` against one-hot `labels` smoothed by `smoothing`. */
export function smoothedCrossEntropy(p: tf.Tensor, labels: tf.Tensor1D, smoothing: number): tf.Scalar {
  const classes = p.shape[p.shape.length - 1];
  const target = tf.oneHot(labels, classes).toFloat().mul(1 - smoothing).add(smoothing / classes);
  return tf.neg(tf.log(tf.clipByValue(p, 1e-7, 1)).mul(target).sum(-1)).mean() as tf.Scalar;
}

/** Split the training set into train and validation parts with a seeded permutation. */
export function splitTrainVal(
  ds: Dataset,
  valSize: number,
  seed: number,
): { train: Int32Array; val: Dataset } {
  const perm = permutation(ds.count, mulberry32(seed ^ 0x5eed));
  const valIdx = perm.subarray(ds.count - valSize);
  const images = gatherBatch(ds.images, valIdx, false, () => 0, 4, datasetShape(ds));
  const labels = new Uint8Array(valIdx.length);
  valIdx.forEach((j, i) => (labels[i] = ds.labels[j]));
  return {
    train: perm.slice(0, ds.count - valSize),
    val: {
      images,
      labels,
      count: valIdx.length,
      source: `${ds.source} (validation split)`,
      shape: ds.shape,
      classNames: ds.classNames,
    },
  };
}

/**
 * `splitTrainVal`'s validation split and, as a Dataset, the first `trainLimit` images of its
 * training part (for a fine-tune that must not see the validation images).
 *
 * @example
 * ```ts
 * const { train, val } = trainValSets(full, 5000, 1, 10000); // val: the split `train` held out
 * ```
 */
export function trainValSets(
  ds: Dataset,
  valSize: number,
  seed: number,
  trainLimit = Infinity,
): { train: Dataset; val: Dataset } {
  const split = splitTrainVal(ds, valSize, seed);
  const idx = split.train.subarray(0, Math.min(trainLimit, split.train.length));
  const labels = new Uint8Array(idx.length);
  idx.forEach((j, i) => (labels[i] = ds.labels[j]));
  return {
    train: {
      images: gatherBatch(ds.images, idx, false, () => 0),
      labels,
      count: idx.length,
      source: `${ds.source} (training part)`,
    },
    val: split.val,
  };
}

/** Callbacks for progress and logging. */
export interface TrainHooks {
  onStep?(epoch: number, step: number, steps: number, loss: number, accuracy: number): void;
  onEpoch?(log: EpochLog): void;
}

/**
 * The checkpoint state in `outDir`/checkpoint (recipe, preprocessing, epochs done, history), or
 * null when there is none: what `--resume` continues, and what its first line describes.
 */
export async function readCheckpoint(outDir: string): Promise<CheckpointState | null> {
  const path = join(outDir, "checkpoint", "state.json");
  return await exists(path) ? JSON.parse(await Deno.readTextFile(path)) : null;
}

/**
 * Train (or resume training of) the recipe's network (`buildNetwork`); returns the model and the epoch history.
 * A checkpoint is written to `<outDir>/checkpoint` after every epoch.
 */
export async function train(opts: {
  recipe: TrainRecipe;
  data: Dataset;
  outDir: string;
  resume: boolean;
  /** With `resume` on a finished run: add a short one-cycle of this many epochs (peak: a tenth of the main one). */
  extend?: { epochs: number; peakLr?: number };
  hooks?: TrainHooks;
}): Promise<
  { model: tf.LayersModel; history: EpochLog[]; preprocessing: Preprocessing; recipe: TrainRecipe }
> {
  const ckptDir = join(opts.outDir, "checkpoint");
  let recipe = opts.recipe;
  let model: tf.LayersModel;
  let state: CheckpointState;
  let optState: Float32Array | undefined;
  const saved = opts.resume ? await readCheckpoint(opts.outDir) : null;
  if (saved) {
    state = saved;
    recipe = state.recipe;
    if (opts.extend) {
      if (state.epochsDone < totalEpochs(recipe)) {
        throw new UserError(
          `the checkpoint in ${ckptDir} still has ${
            totalEpochs(recipe) - state.epochsDone
          } epochs to run: resume without --extend first.`,
        );
      }
      const cycle = { epochs: opts.extend.epochs, peakLr: opts.extend.peakLr ?? recipe.peakLr / 10 };
      recipe = { ...recipe, extraCycles: [...(recipe.extraCycles ?? []), cycle] };
      state.recipe = recipe;
    }
    model = await tf.loadLayersModel(fileLoader(join(ckptDir, "model.json")));
    const bytes = await Deno.readFile(join(ckptDir, "optimizer.bin"));
    optState = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  } else {
    model = buildNetwork(recipe);
    state = { recipe, preprocessing: channelStats(opts.data), epochsDone: 0, history: [] };
  }
  const prep = state.preprocessing;
  const { train: trainIdx, val } = splitTrainVal(opts.data, recipe.valSize, recipe.seed);
  const stepsPerEpoch = Math.floor(trainIdx.length / recipe.batch);
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const sgd = new NesterovSgd(vars, recipe.momentum, recipe.weightDecay);
  if (optState) sgd.load(optState);

  for (let epoch = state.epochsDone; epoch < totalEpochs(recipe); epoch++) {
    const rand = mulberry32(recipe.seed * 1000 + epoch);
    const order = permutation(trainIdx.length, rand);
    const t0 = performance.now();
    let lossSum = 0, correct = 0, seen = 0, lr = 0;
    for (let s = 0; s < stepsPerEpoch; s++) {
      const idx = new Int32Array(recipe.batch);
      for (let i = 0; i < recipe.batch; i++) idx[i] = trainIdx[order[s * recipe.batch + i]];
      const raw = gatherBatch(opts.data.images, idx, true, rand, 4, datasetShape(opts.data));
      const labels = new Uint8Array(recipe.batch);
      idx.forEach((j, i) => (labels[i] = opts.data.labels[j]));
      lr = learningRate(recipe, epoch, s, stepsPerEpoch);
      const [loss, hits] = await readScalars(tf.tidy(() => {
        const x = imagesToTensor(
          { images: raw, labels, count: recipe.batch, source: "", shape: opts.data.shape },
          0,
          recipe.batch,
          prep,
        );
        const y = tf.tensor1d(labels, "int32");
        let argmax: tf.Tensor | undefined;
        const { value, grads } = tf.variableGrads(() => {
          const p = model.apply(x, { training: true }) as tf.Tensor;
          argmax = tf.keep(p.argMax(-1));
          return smoothedCrossEntropy(p, y, recipe.labelSmoothing);
        }, vars);
        sgd.step(grads, lr);
        const h = argmax!.equal(y).sum();
        argmax!.dispose();
        return [value, h];
      }));
      if (!Number.isFinite(loss)) {
        throw new Error(`training diverged at epoch ${epoch + 1} step ${s} (loss ${loss})`);
      }
      lossSum += loss * recipe.batch;
      correct += hits;
      seen += recipe.batch;
      opts.hooks?.onStep?.(epoch, s + 1, stepsPerEpoch, lossSum / seen, correct / seen);
    }
    const trainSeconds = (performance.now() - t0) / 1000;
    const v = await evaluateLoss(model, val, prep);
    const log: EpochLog = {
      epoch: epoch + 1,
      lr,
      trainLoss: lossSum / seen,
      trainAccuracy: correct / seen,
      valLoss: v.loss,
      valAccuracy: v.accuracy,
      seconds: (performance.now() - t0) / 1000,
      imagesPerSecond: seen / trainSeconds,
    };
    state.history.push(log);
    state.epochsDone = epoch + 1;
    opts.hooks?.onEpoch?.(log);
    await saveCheckpoint(ckptDir, model, sgd, state);
  }
  sgd.dispose();
  return { model, history: state.history, preprocessing: prep, recipe };
}

async function saveCheckpoint(dir: string, model: tf.LayersModel, sgd: NesterovSgd, state: CheckpointState) {
  const tmp = `${dir}.tmp`;
  await Deno.remove(tmp, { recursive: true }).catch(() => {});
  await model.save(fileSaver(tmp));
  const buf = await sgd.state();
  await writeFileAtomic(
    join(tmp, "optimizer.bin"),
    new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength),
  );
  await writeFileAtomic(join(tmp, "state.json"), JSON.stringify(state, null, 2));
  await Deno.remove(`${dir}.old`, { recursive: true }).catch(() => {});
  if (await exists(dir)) await Deno.rename(dir, `${dir}.old`);
  await Deno.rename(tmp, dir);
  await Deno.remove(`${dir}.old`, { recursive: true }).catch(() => {});
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}
