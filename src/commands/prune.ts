/**
 * `deno task prune`: make the compression real. Rank a conv layer's channels (as `sweep` does),
 * choose K (given, or the largest within --max-drop points of the baseline), physically remove
 * the K weakest channels (src/surgery/), check that the slim model computes what the
 * masked model computes, and write the slim TF.js model with compression.json (parameters,
 * multiply-adds, weights size, latency, accuracy before / masked / after). --plan prunes
 * several layers at once; --finetune-epochs retrains the slim model and charts the recovery.
 *
 * Flow: args -> data -> model -> rankings (prefix pass per layer) -> K -> masked reference
 * -> surgery -> checks and measurements -> writers -> optional fine-tune -> writers.
 */
import { join } from "node:path";
import { parseFlags, parsePreprocessing, positiveInt, positiveNumber, pruneChoice } from "../cli/args.ts";
import { planResources } from "../cli/resources.ts";
import { CALIB_FLAGS, CALIB_HELP, DATA_FLAGS, DATA_HELP, openSession, Stopwatch } from "../cli/session.ts";
import { openOutDir } from "../cli/out_dir.ts";
import { finetuneWithProgress } from "../cli/finetune_progress.ts";
import { checkClassifier } from "../model/load.ts";
import { fileSaver } from "../model/tfjs_io.ts";
import { criterionByName, criterionNames } from "../rank/registry.ts";
import { removeChannels } from "../surgery/remove.ts";
import { latencyBeforeAfter } from "../surgery/measure.ts";
import { type RankOptions, selectPlan, selectSingle } from "../surgery/select.ts";
import { checkSlim, saveVerified, slimMismatch } from "../surgery/verify.ts";
import { FINETUNE_PEAK_LR } from "../train/finetune.ts";
import { writeJson } from "../report/outputs.ts";
import {
  compressionReport,
  fileSize,
  modelFigures,
  pruneSummary,
  slimMetadata,
  sourceWeightsBytes,
  writeCompression,
  writeFinetune,
} from "../report/prune_report.ts";
import { writeReport } from "../report/page/html.ts";
import { pruneReport } from "../report/page/prune_page.ts";
import { runRecord } from "../report/page/run_record.ts";

const HELP = `deno task prune [options]

Remove the weakest channels of a conv layer for real: rank its channels (by default by their mean
activation over the test set, as 'sweep' does), take out the K weakest (their kernel columns and biases, their
BatchNorm and depthwise entries and the next layers' matching inputs, at a Concatenate's offset, with the
constant they still sent folded into the next layers), and write the smaller TF.js model plus compression.json: parameters,
multiply-adds, weights.bin size and latency before and after, and test accuracy before, masked
(the sweep's figure at that K) and after. The slim model must score exactly what the masked one does.

Choose what to prune with one of:
  --layer NAME --k N        remove N channels of NAME (default: the last Conv2D); a conv coupled
                            to others by an Add takes its whole channel group (every member)
  --layer NAME --max-drop P the largest K whose sweep accuracy stays within P points of K = 0
                            (at most C - 1: one channel always stays); the sweep runs K = 0, 1, ...
                            and stops soon after accuracy first leaves the band
  --plan L1:K1,L2:K2,...    several layers in one run; each layer's channels are ranked on the
                            ORIGINAL (unpruned) model, the same ranking 'sweep' shows for it, and
                            all K_i are removed together (the order of the list does not matter).
                            A bare layer name (no :K) with --max-drop P takes that layer's own
                            --max-drop K (its sweep alone); the plan's combined drop can be larger
                            and is what compression.json reports as "masked".

Options:
  --model PATH             TF.js model.json, Keras .h5 or .keras   (default: the shipped VGG model)
  --config PATH            Keras model.to_json() file, for a weights-only .h5
  --criterion C            ranking criterion, one of: ${criterionNames()}   (default mean)
  --seed N                 seed of the random criterion             (default 1)
  --taylor-images N        training images the taylor criterion takes gradients on (default 512)
  --out DIR                output folder                            (default out/prune)
  --finetune-epochs N      then retrain the slim model N epochs with the train recipe (SGD +
                           Nesterov, one-cycle, crop + flip, label smoothing) on the training set
  --finetune-lr X          peak learning rate of the fine-tune      (default ${FINETUNE_PEAK_LR})
  --train-limit N          fine-tune on the first N training images only
${DATA_HELP}
${CALIB_HELP}
                           (default: the test set ranks and chooses, as 'sweep' does; with
                           held-out data the test images are only scored)
  --backend B              auto | webgpu | wasm | cpu               (default auto)
  --limit N                use only the first N test images         (default all 10,000)
  --batch N                images per forward pass  (default auto: what the memory budget holds, 16-1024)
  --latency-runs N         timed runs per latency figure, after 2 warm-ups; 0 skips timing (default 5)
  --scale X, --mean R,G,B, --std R,G,B   preprocessing when the model's metadata has none
  -h, --help               this text

When the next layer is a conv with 'same' padding and a pruned channel sends it a non-zero
constant (e.g. relu then BatchNorm, as in the VGG), that constant cannot go into a bias (the zero
padding makes it position-dependent): one pruned channel is kept as a carrier instead (weights
zero, so it emits exactly the constant) and the others' contributions are merged into its slice
of the next kernel. compression.json lists it per layer ("carrier").

Writes to --out: model/ (model.json + weights.bin, metadata kept), compression.json, sweep.csv
(the K values --max-drop evaluated; sweep_<layer>.csv per bare --plan layer), report.html (the sweeps,
the figures before and after, the run record); with --finetune-epochs also finetuned/, finetune-log.csv,
recovery.svg/png.`;

/** Run the prune command. */
export async function run(args: string[]): Promise<void> {
  const values = parseFlags(args, {
    model: { type: "string" },
    config: { type: "string" },
    layer: { type: "string" },
    k: { type: "string" },
    "max-drop": { type: "string" },
    plan: { type: "string" },
    criterion: { type: "string", default: "mean" },
    seed: { type: "string" },
    "taylor-images": { type: "string" },
    out: { type: "string", default: "out/prune" },
    "finetune-epochs": { type: "string" },
    "finetune-lr": { type: "string" },
    "train-limit": { type: "string" },
    ...DATA_FLAGS,
    ...CALIB_FLAGS,
    backend: { type: "string", default: "auto" },
    limit: { type: "string" },
    batch: { type: "string" },
    "latency-runs": { type: "string" },
    scale: { type: "string" },
    mean: { type: "string" },
    std: { type: "string" },
    help: { type: "boolean", short: "h", default: false },
  }, "prune");
  if (values.help) {
    console.log(HELP);
    return;
  }

  // Validate every option before any work.
  const criterionDef = criterionByName(values.criterion!);
  const criterion = criterionDef.name;
  const seed = positiveInt("seed", values.seed, 1);
  const taylorImages = positiveInt("taylor-images", values["taylor-images"], 512);
  const { k, maxDrop, plan } = pruneChoice(values);
  const epochs = positiveInt("finetune-epochs", values["finetune-epochs"], 0, true);
  const peakLr = positiveNumber("finetune-lr", values["finetune-lr"], FINETUNE_PEAK_LR);
  const trainLimit = positiveInt("train-limit", values["train-limit"], Infinity);
  const limit = positiveInt("limit", values.limit, Infinity);
  const batchFlag = values.batch === undefined ? undefined : positiveInt("batch", values.batch, 256);
  const latencyRuns = positiveInt("latency-runs", values["latency-runs"], 5, true);
  const flags = parsePreprocessing(values);
  const out = values.out!;
  // The output folder is checked and locked before any model or data is read.
  await using _claim = await openOutDir(out, "--out", "prune");

  const started = new Date().toISOString();
  const clock = new Stopwatch();
  const session = await openSession(values, flags);
  const { backend, modelPath, loaded, prep } = session;
  const test = await session.testSet(limit);
  const heldOut = await session.calibSet();
  const trainSet = epochs > 0 ? await session.trainSet(trainLimit) : undefined;
  clock.lap("load");
  // prune runs in this process; its sweeps are the masked engine's (surgery/select.ts).
  const { batch, why } = planResources({
    workers: 1,
    batch: batchFlag,
    images: test.count,
    model: loaded.model,
    backend,
  });
  const on = heldOut ? `${heldOut.data.count} held-out images (${heldOut.source})` : "the test images";
  console.error(
    `prune: ${modelPath} (${loaded.format}), ranked and K chosen on ${on}, accuracy reported on ${test.count} ` +
      `test images, backend ${backend}, criterion ${criterion}; ` +
      `engine masked (exact), workers 1, batch ${batch} (${why.batch})`,
  );

  // Rankings, K, and the masked reference.
  const rank: RankOptions = {
    criterion: criterionDef,
    seed,
    gradientImages: () => session.trainSet(taylorImages),
    batch,
  };
  const sel = plan
    ? await selectPlan(loaded, test, plan, rank, maxDrop, heldOut)
    : await selectSingle(loaded, test, { layer: values.layer, k, maxDrop, rank, heldOut });
  clock.lap("rank_and_sweep");

  // Surgery, and the checks that the slim model is the masked model.
  const surgery = await removeChannels(loaded.model, sel.removals);
  const slim = surgery.model;
  checkClassifier(slim, `${modelPath} (slim)`);
  const check = await checkSlim(loaded.model, slim, sel.removals, test, prep, sel.masked, batch);
  clock.lap("surgery_and_check");

  // Write the slim model (metadata kept), then reload it to be sure.
  const modelDir = join(out, "model");
  const command = `deno task prune ${args.join(" ")}`.trim();
  const seedOrNull = criterionDef.seeded ? seed : null;
  const metadata = slimMetadata(loaded, {
    command,
    criterion,
    seed: seedOrNull,
    layers: surgery.layers,
    ks: sel.ks,
  }, {
    correct: check.slimCorrect,
    count: test.count,
  });
  await saveVerified(slim, modelDir, metadata);
  clock.lap("write_model");

  // Size and speed, before and after.
  const latency = await latencyBeforeAfter(loaded.model, slim, latencyRuns);
  const before = modelFigures(
    loaded.model,
    sel.before.correct,
    test.count,
    latency?.[0] ?? null,
    await sourceWeightsBytes(loaded),
  );
  const after = modelFigures(
    slim,
    check.slimCorrect,
    test.count,
    latency?.[1] ?? null,
    await fileSize(join(modelDir, "weights.bin")),
  );
  clock.lap("measure");
  const report = compressionReport({
    command,
    model: modelPath,
    backend,
    testImages: test.count,
    criterion,
    seed: seedOrNull,
    maxDrop: maxDrop ?? null,
    selection: sel,
    layers: surgery.layers,
    before,
    after,
    check,
    latencyRuns,
    timings: clock.timings,
  });
  await writeCompression(out, report, sel);

  // Fine-tune the slim model, if asked.
  let recoverySpec: object | undefined;
  if (epochs > 0 && trainSet) {
    console.error(`fine-tuning ${epochs} epoch(s) on ${trainSet.count} training images, peak lr ${peakLr}`);
    const ft = { epochs, preprocessing: prep, peakLr, batch: 128, evalSet: test };
    const history = await finetuneWithProgress(slim, trainSet, ft);
    const last = history[history.length - 1];
    await slim.save(fileSaver(join(out, "finetuned"), {
      ...metadata,
      prunescope: {
        ...metadata.prunescope,
        testAccuracy: last.evalAccuracy,
        finetune: { epochs, peakLr, trainImages: trainSet.count, history },
      },
    }));
    recoverySpec = await writeFinetune(out, report, { epochs, peakLr, trainImages: trainSet.count, history });
    clock.lap("finetune");
    await writeJson(join(out, "compression.json"), report);
  }
  slim.dispose();

  const summary = pruneSummary(report, out);
  console.log(summary);
  const run = await runRecord(["prune", ...args], {
    started,
    model: { path: modelPath, format: loaded.format },
    data: { path: await session.dataDir(), images: test.count },
    ...(heldOut ? { calib: { source: heldOut.source, images: heldOut.data.count } } : {}),
    backend,
    timings: clock.timings,
  });
  await writeReport(
    join(out, "report.html"),
    pruneReport({ report, summary: summary.split("\n"), sweeps: sel.sweeps, recoverySpec, run }),
  );
  if (!check.equal) throw slimMismatch(check, sel.masked.correct, out);
}
