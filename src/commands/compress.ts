/**
 * `deno task compress`: compress a model to one budget. Measure every prunable unit's
 * sensitivity on a validation split of the TRAINING files, allocate K per unit (the greedy
 * path over the curves; src/surgery/allocate.ts, plan.ts), compare with uniform ratios at the
 * same cost, remove the channels for real in one surgery, check slim == masked, fine-tune,
 * write the model (TF.js and Keras .h5, each reloaded) and compress.json, and chart test
 * accuracy against multiply-adds for several budgets (pareto.*). Test accuracy is only reported.
 *
 * Flow: args -> data (validation split, fine-tune subset, test) -> units -> curves -> path ->
 * plan -> test figures -> surgery + check -> latency -> fine-tune -> writers -> Pareto points.
 */
import { join } from "node:path";
import { UserError } from "../core/errors.ts";
import { parseFlags, parsePreprocessing } from "../cli/args.ts";
import { compressOptions } from "../cli/compress_options.ts";
import { openSession, Stopwatch } from "../cli/session.ts";
import { openOutDir } from "../cli/out_dir.ts";
import { finetuneWithProgress } from "../cli/finetune_progress.ts";
import { criterionNames } from "../rank/registry.ts";
import {
  choosePlan,
  maskedAccuracy,
  measureCurves,
  paretoRows,
  prunableUnits,
  removalsOf,
} from "../surgery/plan.ts";
import { greedyPath } from "../surgery/allocate.ts";
import { removeChannels } from "../surgery/remove.ts";
import { latencyBeforeAfter } from "../surgery/measure.ts";
import { checkSlim, saveKerasVerified, saveVerified, slimMismatch } from "../surgery/verify.ts";
import { FINETUNE_PEAK_LR } from "../train/finetune.ts";
import { recalibrateBatchNorm } from "../train/recalibrate.ts";
import { sliceDataset } from "../data/cifar10.ts";
import { trainValSets } from "../train/trainer.ts";
import { writeJson } from "../report/outputs.ts";
import { writeReport } from "../report/page/html.ts";
import { runRecord } from "../report/page/run_record.ts";
import { compressReport } from "../report/page/compress_page.ts";
import {
  bestWithin,
  compressedMetadata,
  type CompressRecord,
  compressRecord,
  compressSummary,
  writeParetoFiles,
  writeRecovery,
} from "../report/compress_report.ts";
import type * as tf from "@tensorflow/tfjs";

const HELP = `deno task compress [options]  (one budget: --target-macs F | --target-params F | --max-drop P)

Compress a model to a budget: measure each conv layer's sensitivity alone (accuracy at K = 0, C/S,
2C/S, ... channels pruned, ranked by the criterion) on a validation split of the TRAINING files, walk
greedily from K = 0 (each step: the layer whose next K loses the least validation accuracy per
multiply-add saved), take the plan that meets the budget, compare it with uniform ratios at the same
cost, remove the channels for real (one surgery; slim == masked checked), re-estimate the BatchNorm
statistics, fine-tune, and write the model. Test images are only scored, never used to choose.

Budget (exactly one):
  --target-macs F          keep at most the fraction F of the multiply-adds (0 < F <= 1)
  --target-params F        keep at most the fraction F of the parameters
  --max-drop P             the smallest plan on the greedy path whose measured (joint) validation
                           accuracy stays within P points (found by bisection)

Options:
  --model PATH             TF.js model.json, Keras .h5 or .keras   (default: the shipped VGG model)
  --config PATH            Keras model.to_json() file, for a weights-only .h5
  --data DIR               CIFAR-10 binary folder (else CIFAR10_DIR, else the cache)
  --criterion C            channel ranking, one of: ${criterionNames()}   (default mean)
  --seed N                 seed of the random criterion             (default 1)
  --steps S                K values per layer's curve: round(i/S * C), i < S (default 8)
  --val-size N             validation images, held out of the training files (default 5000)
  --val-seed N             seed of the train/validation split (default 1: the split 'train' uses,
                           so the validation images are ones the shipped model never trained on)
  --recalibrate N          re-estimate BatchNorm statistics on N fine-tuning images (default 1000; 0 skips)
  --finetune-epochs N      fine-tune the compressed model N epochs (default 1; 0 skips)
  --finetune-lr X          peak learning rate                       (default ${FINETUNE_PEAK_LR})
  --train-limit N          fine-tune on the first N non-validation training images (default all)
  --pareto F1,F2,...       multiply-add budgets of the Pareto chart (default 0.9,0.8,0.7,0.6)
  --pareto-epochs N        fine-tuning epochs per Pareto point      (default: --finetune-epochs)
  --pareto-train-limit N   ... on the first N of those images        (default: --train-limit)
  --limit N                test images scored                       (default all 10,000)
  --batch N                images per forward pass                  (default 256)
  --workers N              sensitivity scans on N worker processes  (default 1)
  --latency-runs N         timed runs per latency figure; 0 skips   (default 5)
  --backend B              auto | webgpu | wasm | cpu               (default auto)
  --out DIR                output folder                            (default out/compress)
  --scale X, --mean R,G,B, --std R,G,B   preprocessing when the model's metadata has none
  -h, --help               this text

Writes to --out: model/ (TF.js), model.h5 (Keras 2), compress.json, pareto.csv/json/svg/png,
report.html, and with fine-tuning recovery.svg/png (the per-epoch log is in compress.json).`;

/** Run the compress command. */
export async function run(args: string[]): Promise<void> {
  const values = parseFlags(args, {
    model: { type: "string" },
    config: { type: "string" },
    data: { type: "string" },
    "target-macs": { type: "string" },
    "target-params": { type: "string" },
    "max-drop": { type: "string" },
    criterion: { type: "string", default: "mean" },
    seed: { type: "string" },
    steps: { type: "string" },
    "val-size": { type: "string" },
    "val-seed": { type: "string" },
    recalibrate: { type: "string" },
    "finetune-epochs": { type: "string" },
    "finetune-lr": { type: "string" },
    "train-limit": { type: "string" },
    pareto: { type: "string", default: "0.9,0.8,0.7,0.6" },
    "pareto-epochs": { type: "string" },
    "pareto-train-limit": { type: "string" },
    limit: { type: "string" },
    batch: { type: "string" },
    workers: { type: "string" },
    "latency-runs": { type: "string" },
    backend: { type: "string", default: "auto" },
    out: { type: "string", default: "out/compress" },
    scale: { type: "string" },
    mean: { type: "string" },
    std: { type: "string" },
    help: { type: "boolean", short: "h", default: false },
  }, "compress");
  if (values.help) {
    console.log(HELP);
    return;
  }
  const o = compressOptions(values);
  const { budget, criterion, seed, steps, valSize, valSeed, recalImages, epochs, peakLr } = o;
  const { trainLimit, pareto, paretoEpochs, paretoTrainLimit, limit, batch, workers, latencyRuns } = o;
  const flags = parsePreprocessing(values);
  const out = values.out!;
  await using _claim = await openOutDir(out, "--out", "compress");

  const started = new Date().toISOString();
  const clock = new Stopwatch();
  const session = await openSession(values, flags);
  const { backend, modelPath, loaded, prep } = session;
  const model = loaded.model;
  const full = await session.trainSet();
  if (valSize >= full.count) {
    throw new UserError(`--val-size ${valSize} leaves no training images out of ${full.count}; give fewer.`);
  }
  const { train, val } = trainValSets(full, valSize, valSeed, trainLimit);
  const test = await session.testSet(limit);
  clock.lap("load");
  console.error(
    `compress: ${modelPath}, ${val.count} validation / ${train.count} fine-tuning / ${test.count} test images, backend ${backend}`,
  );

  // Units, their curves on the validation split, the greedy path and the plan.
  const units = await prunableUnits(model), cm = units.cost;
  const curves = await measureCurves(model, units, val, prep, {
    criterion,
    seed,
    steps,
    batch,
    workers,
    backend,
    dataDir: await session.dataDir(),
    taylorImages: 512,
    gradientImages: () => session.trainSet(512),
  });
  const metric = "maxDrop" in budget ? "macs" : budget.metric;
  const path = greedyPath(cm, curves.curves, metric);
  const ctx = { model, units, curves, path, val, prep, batch };
  const chosen = await choosePlan(ctx, budget, curves.curves[0].points[0].accuracy);
  clock.lap("choose");

  // Test figures (reported only), surgery, and the checks.
  const removals = removalsOf(cm.units, chosen.plan, curves.rankings);
  const beforeTest = await maskedAccuracy(model, [], test, prep, batch, "test (unpruned)");
  const masked = await maskedAccuracy(model, removals, test, prep, batch, "test (masked)");
  const uniformTest = await maskedAccuracy(
    model,
    removalsOf(cm.units, chosen.uniform.plan, curves.rankings),
    test,
    prep,
    batch,
    "test (uniform)",
  );
  const surgery = await removeChannels(model, removals);
  const slim = surgery.model;
  const check = await checkSlim(model, slim, removals, test, prep, masked, batch);
  if (!check.equal) throw slimMismatch(check, masked.correct);
  const latency = await latencyBeforeAfter(model, slim, latencyRuns);
  const [b1, a1] = latency?.map((l) => l.batch1.medianMs) ?? [null, null];
  const [b256, a256] = latency?.map((l) => l.batch256.medianMs) ?? [null, null];
  clock.lap("surgery_and_check");

  // BatchNorm recalibration on fine-tuning images (the layers after a cut see new statistics).
  const recalibrate = recalImages > 0
    ? (m: tf.LayersModel) => recalibrateBatchNorm(m, train, prep, { images: recalImages, batch })
    : undefined;
  let recalibration: CompressRecord["recalibration"] = null, recalibrated: number | null = null;
  const r = await recalibrate?.(slim);
  if (r && r.layers.length > 0) {
    recalibration = { images: r.images, layers: r.layers.length, seconds: r.seconds };
    recalibrated = (await maskedAccuracy(slim, [], test, prep, batch, "test (recalibrated)")).accuracy;
    clock.lap("recalibrate");
  }

  // Fine-tune (test accuracy per epoch is the recovery chart, never a choice).
  let finetune: CompressRecord["finetune"] = null;
  let recoverySpec: object | undefined;
  let afterAccuracy = recalibrated ?? check.slimCorrect / test.count;
  if (epochs > 0) {
    const t0 = performance.now();
    const history = await finetuneWithProgress(slim, train, {
      epochs,
      preprocessing: prep,
      peakLr,
      evalSet: test,
    });
    finetune = { trainImages: train.count, peakLr, seconds: (performance.now() - t0) / 1000, history };
    afterAccuracy = history.at(-1)!.evalAccuracy!;
    const start = { before: beforeTest.accuracy, masked: masked.accuracy, recalibrated };
    recoverySpec = await writeRecovery(out, history, start);
    clock.lap("finetune");
  }
  const command = `deno task compress ${args.join(" ")}`.trim();
  const metadata = compressedMetadata(loaded, {
    command,
    plan: chosen.plan,
    testAccuracy: afterAccuracy,
    testImages: test.count,
  });
  const tfjsDiff = await saveVerified(slim, join(out, "model"), metadata);
  const h5Diff = await saveKerasVerified(slim, join(out, "model.h5"));
  clock.lap("write_model");

  // The Pareto points: both methods at every budget, pruned and fine-tuned.
  const ft = { epochs: paretoEpochs, preprocessing: prep, peakLr };
  const rows = await paretoRows(ctx, pareto, test, {
    epochs: paretoEpochs,
    run: (m: tf.LayersModel) => finetuneWithProgress(m, sliceDataset(train, 0, paretoTrainLimit), ft),
    recalibrate,
  });
  const paretoSpec = await writeParetoFiles(out, rows, {
    before: beforeTest.accuracy,
    title: `${loaded.path}: test accuracy against cost`,
  });
  clock.lap("pareto");
  clock.total();

  const record = compressRecord({
    command,
    model: modelPath,
    backend,
    budget,
    chosen,
    units,
    rankings: curves.rankings,
    val,
    source: model,
    slim,
    test: {
      images: test.count,
      before: beforeTest.accuracy,
      pruned: check.slimCorrect / test.count,
      recalibrated,
      after: afterAccuracy,
      uniformPruned: uniformTest.accuracy,
    },
    latency: {
      before: { batch1: b1, batch256: b256 },
      after: { batch1: a1, batch256: a256 },
      runs: latencyRuns,
    },
    finetune,
    recalibration,
    check,
    reloadMaxDifference: Math.max(tfjsDiff, h5Diff),
    outputs: {
      model: "model/model.json",
      kerasH5: "model.h5",
      pareto: "pareto.json",
      ...(epochs > 0 ? { recovery: "recovery.svg" } : {}),
    },
    timings: clock.timings,
  });
  await writeJson(join(out, "compress.json"), record);
  slim.dispose();
  const summary = compressSummary(record, bestWithin(rows, beforeTest.accuracy, 1), out);
  console.log(summary);
  const run = await runRecord(["compress", ...args], {
    started,
    model: { path: modelPath, format: loaded.format },
    data: { path: await session.dataDir(), images: test.count },
    backend,
    timings: clock.timings,
  });
  const page = { record, rows, summary: summary.split("\n"), paretoSpec, recoverySpec, run };
  await writeReport(join(out, "report.html"), compressReport(page));
}
