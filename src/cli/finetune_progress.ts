/**
 * Fine-tuning with a progress bar per epoch on stderr: the glue `prune` (and `compress`) share
 * around `finetune` (src/train/finetune.ts).
 */
import type * as tf from "@tensorflow/tfjs";
import { finetune, type FinetuneEpoch, type FinetuneOptions } from "../train/finetune.ts";
import type { Dataset } from "../types.ts";
import { Progress } from "../ui/progress.ts";

/**
 * Fine-tune `model` on `data` as `finetune` does, drawing each epoch's steps and its test accuracy.
 *
 * @example
 * ```ts
 * const history = await finetuneWithProgress(slim, train, { epochs: 2, preprocessing: prep, evalSet: test });
 * ```
 */
export async function finetuneWithProgress(
  model: tf.LayersModel,
  data: Dataset,
  opts: FinetuneOptions,
): Promise<FinetuneEpoch[]> {
  let bar: Progress | undefined;
  return await finetune(model, data, {
    ...opts,
    onStep(epoch, step, steps, loss, acc) {
      if (step === 1) {
        bar = new Progress({ label: `fine-tune ${epoch + 1}/${opts.epochs}`, total: steps, unit: "steps" });
      }
      bar?.set(step, `loss ${loss.toFixed(3)} acc ${(acc * 100).toFixed(1)}%`);
      opts.onStep?.(epoch, step, steps, loss, acc);
    },
    onEpoch(log) {
      bar?.done(log.evalAccuracy == null ? "" : `test acc ${(log.evalAccuracy * 100).toFixed(2)}%`);
      opts.onEpoch?.(log);
    },
  });
}
