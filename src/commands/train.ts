/**
 * `deno task train`: train the lab's VGG-16-style network on CIFAR-10, checkpointing every epoch,
 * and save a TF.js LayersModel whose metadata records preprocessing, class names, the recipe and
 * the measured test accuracy, plus the per-epoch log and the training-curve chart.
 */
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs";
import { type BackendName, setupBackend } from "../backend.ts";
import { UserError } from "../core/errors.ts";
import { parseFlags, positiveInt, positiveNumber } from "../cli/args.ts";
import { openOutDir } from "../cli/out_dir.ts";
import { CLASS_NAMES, loadTestSet, loadTrainSet } from "../data/cifar10.ts";
import { resolveDataDir } from "../data/fetch.ts";
import { fileSaver } from "../model/tfjs_io.ts";
import { modelCost } from "../surgery/cost.ts";
import { writeChart, writeCsv, writeJson } from "../report/outputs.ts";
import { trainingCurveChart } from "../viz/charts.ts";
import {
  buildNetwork,
  DEFAULT_RECIPE,
  type EpochLog,
  evaluateLoss,
  readCheckpoint,
  train,
  TRAIN_ARCHS,
  type TrainArch,
  type TrainRecipe,
} from "../train/trainer.ts";
import { formatSeconds, Progress } from "../ui/progress.ts";

const HELP = `deno task train [options]

Train a CIFAR-10 network: the lab's VGG-16-style network (13 conv 3x3 + BatchNorm, 5 max-pools,
dense 4096-1024-512-10, every size scaled by --width) or ResNet-20 (--arch resnet20), with SGD +
Nesterov momentum, a one-cycle learning rate, weight decay, label smoothing, random crop + flip,
and a held-out validation split.
A checkpoint is written after every epoch; --resume continues an interrupted run exactly.

Options:
  --data DIR        CIFAR-10 binary folder (else CIFAR10_DIR, else the cache; fetched if missing)
  --arch A         vgg16 | resnet20                                    (default vgg16)
  --width W         channel/unit multiplier, 1.0 = the lab's full size   (default ${DEFAULT_RECIPE.width})
  --epochs N        epochs                                              (default ${DEFAULT_RECIPE.epochs})
  --batch N         batch size                                          (default ${DEFAULT_RECIPE.batch})
  --lr X            peak learning rate of the one-cycle schedule        (default ${DEFAULT_RECIPE.peakLr})
  --seed N          seed for weights, split, shuffles and augmentation  (default ${DEFAULT_RECIPE.seed})
  --val-size N      training images held out for validation            (default ${DEFAULT_RECIPE.valSize})
  --dropout B,D     dropout rate after each conv block, and in the dense head
                                                                        (default ${DEFAULT_RECIPE.blockDropout},${DEFAULT_RECIPE.denseDropout})
  --limit N         use only the first N training images (quick trials)
  --out DIR         output folder                                       (default out/train)
  --resume          continue from DIR/checkpoint (the recipe is taken from the checkpoint)
  --extend N        with --resume on a finished run: N more epochs in a second, short one-cycle
                    schedule peaking at a tenth of the main peak rate
  --backend B       auto | webgpu | wasm | cpu                          (default auto)
  -h, --help        this text

Writes DIR/model/ (model.json + weights.bin, with metadata), DIR/training-log.csv,
DIR/training.json, DIR/training.svg and DIR/training.png.`;

/** `--dropout B,D`: two rates in [0, 1), or undefined when the flag is absent. */
export function parseDropout(v: string | undefined): [number, number] | undefined {
  if (v === undefined) return undefined;
  const parts = v.split(",").map((x) => Number(x.trim()));
  if (parts.length !== 2 || parts.some((x) => !Number.isFinite(x) || x < 0 || x >= 1)) {
    throw new UserError(`--dropout wants two rates in [0, 1) as BLOCK,DENSE (e.g. 0.1,0.3), got '${v}'.`);
  }
  return [parts[0], parts[1]];
}

/** Run the train command. */
export async function run(args: string[]): Promise<void> {
  const values = parseFlags(args, {
    data: { type: "string" },
    arch: { type: "string", default: "vgg16" },
    width: { type: "string" },
    epochs: { type: "string" },
    batch: { type: "string" },
    lr: { type: "string" },
    seed: { type: "string" },
    "val-size": { type: "string" },
    limit: { type: "string" },
    dropout: { type: "string" },
    out: { type: "string", default: "out/train" },
    resume: { type: "boolean", default: false },
    extend: { type: "string" },
    backend: { type: "string", default: "auto" },
    help: { type: "boolean", short: "h", default: false },
  }, "train");
  if (values.help) {
    console.log(HELP);
    return;
  }
  const dropout = parseDropout(values.dropout);
  const arch = values.arch as TrainArch;
  if (!TRAIN_ARCHS.includes(arch)) {
    throw new UserError(`--arch wants one of ${TRAIN_ARCHS.join(", ")}, got '${values.arch}'.`);
  }
  const recipe: TrainRecipe = {
    ...DEFAULT_RECIPE,
    arch,
    blockDropout: dropout?.[0] ?? DEFAULT_RECIPE.blockDropout,
    denseDropout: dropout?.[1] ?? DEFAULT_RECIPE.denseDropout,
    width: positiveNumber("width", values.width, DEFAULT_RECIPE.width),
    epochs: positiveInt("epochs", values.epochs, DEFAULT_RECIPE.epochs),
    batch: positiveInt("batch", values.batch, DEFAULT_RECIPE.batch),
    peakLr: positiveNumber("lr", values.lr, DEFAULT_RECIPE.peakLr),
    seed: positiveInt("seed", values.seed, DEFAULT_RECIPE.seed),
    valSize: positiveInt("val-size", values["val-size"], DEFAULT_RECIPE.valSize),
  };
  if (values.extend !== undefined && !values.resume) {
    throw new UserError("--extend continues a finished run: use it with --resume (and the run's --out).");
  }
  const limit = positiveInt("limit", values.limit, Infinity);
  const out = values.out!;
  // The output folder is checked and locked before any data is read.
  await using _claim = await openOutDir(out, "--out", "train");
  const backend = await setupBackend(values.backend as BackendName);
  const dataDir = await resolveDataDir({ data: values.data, fetch: true });
  const data = await loadTrainSet(dataDir, limit);
  if (recipe.valSize >= data.count) {
    throw new UserError(`--val-size ${recipe.valSize} leaves no training images out of ${data.count}.`);
  }
  const test = await loadTestSet(dataDir);
  // On --resume the checkpoint's recipe is the one that runs (the flags' values are ignored).
  const saved = values.resume ? await readCheckpoint(out) : null;
  const shown = saved?.recipe ?? recipe;
  console.error(
    `train: ${describeNetwork(shown)}, ${shown.epochs} epochs, batch ${shown.batch}, ${
      data.count - shown.valSize
    } training + ${shown.valSize} validation images, backend ${backend}, ` +
      `${(modelCost(buildNetwork(shown)).multiplyAdds / 1e6).toFixed(1)}M multiply-adds per image` +
      (saved ? `; resuming after epoch ${saved.epochsDone} (the checkpoint's recipe)` : ""),
  );
  const started = performance.now();
  let bar: Progress | undefined;
  const result = await train({
    recipe,
    data,
    outDir: out,
    resume: values.resume!,
    extend: values.extend === undefined ? undefined : { epochs: positiveInt("extend", values.extend, 1) },
    hooks: {
      onStep(epoch, step, steps, loss, acc) {
        if (step === 1) bar = new Progress({ label: `epoch ${epoch + 1}`, total: steps, unit: "steps" });
        bar?.set(step, `loss ${loss.toFixed(3)} acc ${(acc * 100).toFixed(1)}%`);
      },
      onEpoch(log) {
        bar?.done(
          `loss ${log.trainLoss.toFixed(3)} acc ${(log.trainAccuracy * 100).toFixed(1)}% | val acc ${
            (log.valAccuracy * 100).toFixed(1)
          }% | ${log.imagesPerSecond.toFixed(0)} img/s`,
        );
      },
    },
  });
  const testEval = await evaluateLoss(result.model, test, result.preprocessing);
  const wallSeconds = result.history.reduce((s, h) => s + h.seconds, 0);
  const command = `deno task train ${args.join(" ")}`.trim();
  const metadata = {
    prunescope: {
      preprocessing: result.preprocessing,
      classNames: CLASS_NAMES,
      recipe: result.recipe,
      testAccuracy: testEval.accuracy,
      testImages: test.count,
      validationAccuracy: result.history.at(-1)?.valAccuracy,
      trainingCommand: command,
      trainingSeconds: wallSeconds,
      backend,
      tfjsVersion: tf.version.tfjs,
    },
  };
  await result.model.save(fileSaver(join(out, "model"), metadata));
  await writeLog(out, result.history, {
    command,
    wallSeconds,
    testAccuracy: testEval.accuracy,
    recipe: result.recipe,
  });
  console.log(
    `test accuracy ${(testEval.accuracy * 100).toFixed(2)}% on ${test.count} images; ` +
      `training took ${formatSeconds(wallSeconds)} (this run ${
        formatSeconds((performance.now() - started) / 1000)
      }); ` +
      `model saved to ${join(out, "model")}/`,
  );
}

async function writeLog(
  out: string,
  history: EpochLog[],
  info: { command: string; wallSeconds: number; testAccuracy: number; recipe: TrainRecipe },
): Promise<void> {
  await writeCsv(
    join(out, "training-log.csv"),
    [
      "epoch",
      "lr",
      "train_loss",
      "train_accuracy",
      "val_loss",
      "val_accuracy",
      "seconds",
      "images_per_second",
    ],
    history.map((
      h,
    ) => [
      h.epoch,
      h.lr,
      h.trainLoss,
      h.trainAccuracy,
      h.valLoss,
      h.valAccuracy,
      h.seconds,
      h.imagesPerSecond,
    ]),
  );
  await writeJson(join(out, "training.json"), { ...info, history });
  await writeChart(
    join(out, "training"),
    trainingCurveChart(history, {
      title: `${describeNetwork(info.recipe)}: test accuracy ${(info.testAccuracy * 100).toFixed(1)}%`,
    }),
  );
}

/** "VGG-16 width 0.25" or "ResNet-20", for the first line and the chart's title. */
function describeNetwork(recipe: TrainRecipe): string {
  return recipe.arch === "resnet20" ? "ResNet-20" : `VGG-16 width ${recipe.width}`;
}
