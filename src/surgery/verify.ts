/**
 * The checks that the slim model is the masked model: the largest output difference on real
 * images, every image's top class against the masked reference, and, once written, that the
 * saved model reloads to the same outputs.
 */
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs";
import type { Dataset, Preprocessing } from "../types.ts";
import { fileLoader, fileSaver } from "../model/tfjs_io.ts";
import { writeKerasH5 } from "../model/keras/h5_writer.ts";
import { loadModel } from "../model/load.ts";
import { writeFileAtomic } from "../core/atomic.ts";
import { UserError } from "../core/errors.ts";
import { Progress } from "../ui/progress.ts";
import { type ChannelRemoval, maskedReference } from "./remove.ts";
import { countMatches, maxOutputDifference, predictClasses } from "./measure.ts";

/** Largest |masked - slim| output difference accepted as float rounding. */
export const OUTPUT_TOLERANCE = 1e-4;

/** Images the output difference is measured on (at most). */
export const PROBE_IMAGES = 256;

/** How the slim model compares with the masked one. */
export interface SlimCheck {
  /** The slim model's correct count on the test set. */
  slimCorrect: number;
  /** Images whose top class differs from the masked model's. */
  disagreements: number;
  /** Largest |masked - slim| output on the first `PROBE_IMAGES` images. */
  maxDiff: number;
  /** Both agree: the same correct count, and outputs within `OUTPUT_TOLERANCE`. */
  equal: boolean;
}

/**
 * Compare `slim` with `model` masked by `removals`, whose top classes on `test` are
 * `maskedClasses` and correct count `maskedCorrect`.
 *
 * @example
 * ```ts
 * const check = await checkSlim(model, slim, removals, test, prep, sel.masked, 256);
 * if (!check.equal) throw new Error("surgery changed the model");
 * ```
 */
export async function checkSlim(
  model: tf.LayersModel,
  slim: tf.LayersModel,
  removals: ChannelRemoval[],
  test: Dataset,
  prep: Preprocessing,
  masked: { correct: number; classes: Int32Array },
  batch: number,
): Promise<SlimCheck> {
  const zeroed = await maskedReference(model, removals);
  const maxDiff = await maxOutputDifference(zeroed, slim, test, prep, PROBE_IMAGES);
  zeroed.dispose();
  const bar = new Progress({ label: "slim accuracy", total: test.count, unit: "img" });
  const slimClasses = await predictClasses(slim, test, prep, { batch, onProgress: (n) => bar.set(n) });
  bar.done();
  const slimCorrect = countMatches(slimClasses, test.labels);
  let disagreements = 0;
  for (let i = 0; i < test.count; i++) if (slimClasses[i] !== masked.classes[i]) disagreements++;
  return {
    slimCorrect,
    disagreements,
    maxDiff,
    equal: slimCorrect === masked.correct && maxDiff <= OUTPUT_TOLERANCE,
  };
}

/**
 * The one-line error for a slim model that does not match the masked one (`check.equal` false);
 * `outputs` names the folder already written, when there is one.
 */
export function slimMismatch(check: SlimCheck, maskedCorrect: number, outputs?: string): UserError {
  return new UserError(
    `the slim model does not match the masked one: ${check.slimCorrect} vs ${maskedCorrect} correct, ` +
      `${check.disagreements} images with another top class, max output difference ` +
      `${check.maxDiff.toExponential(2)} (tolerance ${OUTPUT_TOLERANCE})` +
      `${outputs ? `; outputs are in ${outputs}/` : ""}; please report this.`,
  );
}

/** The largest |a - b| output of two models on 4 seeded random images. */
async function probeDifference(a: tf.LayersModel, b: tf.LayersModel): Promise<number> {
  const largest = tf.tidy(() => {
    const probe = tf.randomUniform([4, ...a.inputs[0].shape.slice(1) as number[]], -1, 1, "float32", 7);
    return tf.max(tf.abs(tf.sub(a.predict(probe) as tf.Tensor, b.predict(probe) as tf.Tensor)));
  });
  try {
    return (await largest.data())[0];
  } finally {
    largest.dispose();
  }
}

/**
 * Save `model` as a Keras 2 `.h5` (our writer) at `path`, reload it through `loadModel` and
 * check that it computes what the one in memory does; returns the largest output difference.
 *
 * @example
 * ```ts
 * await saveKerasVerified(slim, "out/compress/model.h5");
 * ```
 */
export async function saveKerasVerified(model: tf.LayersModel, path: string): Promise<number> {
  await writeFileAtomic(path, await writeKerasH5(model));
  const reloaded = await loadModel(path);
  try {
    const diff = await probeDifference(model, reloaded.model);
    if (!(diff <= 1e-6)) {
      throw new Error(`the saved .h5 differs from the model in memory (max |diff| ${diff})`);
    }
    return diff;
  } finally {
    reloaded.model.dispose();
  }
}

/**
 * Save `model` as TF.js into `dir` with `metadata`, reload it and check that it computes what
 * the one in memory does (an Error, not a UserError, when not: that is a bug of ours); returns
 * the largest output difference.
 *
 * @example
 * ```ts
 * await saveVerified(slim, "out/prune/model", metadata);
 * ```
 */
export async function saveVerified(
  model: tf.LayersModel,
  dir: string,
  metadata: Record<string, unknown>,
): Promise<number> {
  await model.save(fileSaver(dir, metadata));
  const reloaded = await tf.loadLayersModel(fileLoader(join(dir, "model.json")));
  const reloadDiff = await probeDifference(model, reloaded);
  reloaded.dispose();
  if (!(reloadDiff <= 1e-6)) {
    throw new Error(`the saved slim model differs from the one in memory (max |diff| ${reloadDiff})`);
  }
  return reloadDiff;
}
