/**
 * `deno task prune`: make the compression real. Rank a conv layer's channels (as `sweep` does),
 * choose K (given, or the largest within --max-drop points of the baseline), physically remove
 * the K weakest channels (src/prune/surgery.ts), check that the slim model computes what the
 * masked model computes, and write the slim TF.js model with compression.json (parameters,
 * multiply-adds, weights size, latency, accuracy before / masked / after). --plan prunes
 * several layers at once; --finetune-epochs retrains the slim model and charts the recovery.
 *
 * Flow: args -> data -> model -> rankings (prefix pass per layer) -> K -> masked reference
 * -> surgery -> checks and measurements -> writers -> optional fine-tune -> writers.
 */
import { dirname, join } from "node:path";
import * as tf from "@tensorflow/tfjs";
import { type BackendName, setupBackend } from "../backend.ts";
import { UserError } from "../errors.ts";
import { parseFlags, parsePreprocessing, positiveInt } from "../cli/args.ts";
import { type LayerRef, pickLayer } from "../model/layers.ts";
import { checkCifarModel, type LoadedModel, loadModel } from "../model/load.ts";
import { type SplitModel, splitModelAsync } from "../model/split.ts";
import { fileLoader, fileSaver } from "../model/tfjs_io.ts";
import { loadTestSet, loadTrainSet } from "../data/cifar10.ts";
import { resolveDataDir } from "../data/fetch.ts";
import { computeLayerOutputs, type LayerOutputs } from "../prune/activations.ts";
import { channelStats } from "../prune/criteria_activation.ts";
import { outputKind } from "../prune/class_scores.ts";
import { type Criterion, criterionByName, criterionNames } from "../prune/rankings.ts";
import { sweepFast } from "../prune/sweep.ts";
import { largestKWithin } from "../prune/summary.ts";
import { modelCost } from "../prune/flops.ts";
import { type ChannelRemoval, type LayerSurgery, removeChannels, zeroChannels } from "../prune/surgery.ts";
import {
  compareLatency,
  countMatches,
  type Latency,
  maskedClasses,
  maxOutputDifference,
  predictClasses,
} from "../prune/measure.ts";
import { finetune, FINETUNE_PEAK_LR, type FinetuneEpoch } from "../train/finetune.ts";
import type { Dataset, Ranking, SweepPoint } from "../types.ts";
import { writeChart, writeCsv, writeJson } from "../report/outputs.ts";
import { recoveryChart } from "../viz/charts.ts";
import { writeReport } from "../report/html.ts";
import { pruneReport } from "../report/prune_report.ts";
import { runRecord } from "../report/run_record.ts";
import { formatSeconds, Progress } from "../ui/progress.ts";
import { DEFAULT_MODEL } from "./sweep.ts";

/** Largest |masked - slim| output difference accepted as float rounding. */
export const OUTPUT_TOLERANCE = 1e-4;

const HELP = `deno task prune [options]

Remove the weakest channels of a conv layer for real: rank its channels (by default by their mean
activation over the test set, as 'sweep' does), take out the K weakest (their kernel columns and biases, their
BatchNorm entries and the next layer's matching inputs, with the constant they still sent folded
into the next layer), and write the smaller TF.js model plus compression.json: parameters,
multiply-adds, weights.bin size and latency before and after, and test accuracy before, masked
(the sweep's figure at that K) and after. The slim model must score exactly what the masked one does.

Choose what to prune with one of:
  --layer NAME --k N        remove N channels of NAME (default layer: the last Conv2D)
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
  --data DIR               CIFAR-10 binary folder (else CIFAR10_DIR, else the cache; fetched if missing)
  --backend B              auto | webgpu | wasm | cpu               (default auto)
  --limit N                use only the first N test images         (default all 10,000)
  --batch N                images per forward pass                  (default 256)
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

/** One `layer:k` entry of --plan; `k` null when --max-drop chooses it from the layer's own sweep. */
export interface PlanEntry {
  layer: string;
  k: number | null;
}

/**
 * Parse --plan "layer:k,layer:k" (a bare "layer" leaves K to --max-drop).
 *
 * @example
 * ```ts
 * parsePlan("block5_conv1:40,block5_conv3"); // [{ layer: "block5_conv1", k: 40 }, { layer: "block5_conv3", k: null }]
 * ```
 */
export function parsePlan(v: string): PlanEntry[] {
  const entries = v.split(",").filter((s) => s.trim() !== "").map((part) => {
    const at = part.lastIndexOf(":");
    if (at < 0) return { layer: part.trim(), k: null };
    const layer = part.slice(0, at).trim();
    const k = Number(part.slice(at + 1));
    if (at === 0 || !Number.isInteger(k) || k < 0) {
      throw new UserError(`--plan: '${part}' is not LAYER:K with K a non-negative integer, or a bare LAYER.`);
    }
    return { layer, k };
  });
  if (entries.length === 0) throw new UserError(`--plan is empty; give LAYER:K,LAYER:K.`);
  const names = entries.map((e) => e.layer);
  const twice = names.find((n, i) => names.indexOf(n) !== i);
  if (twice) throw new UserError(`--plan names ${twice} twice.`);
  return entries;
}

/** A model's size and speed, for compression.json. */
interface ModelFigures {
  parameters: number;
  trainableParameters: number;
  multiplyAdds: number;
  /** Bytes of weights.bin: the files on disk (the source's shards for a TF.js source, else 4 x parameters). */
  weightsBinBytes: number;
  latencyMs: { batch1: number | null; batch256: number | null };
  latencyRunsMs: { batch1: number[]; batch256: number[] };
  accuracy: number;
  correct: number;
}

function figures(
  model: tf.LayersModel,
  correct: number,
  total: number,
  latency: { batch1: Latency; batch256: Latency } | null,
  weightsBinBytes?: number,
): ModelFigures {
  const cost = modelCost(model);
  return {
    parameters: cost.parameters,
    trainableParameters: cost.trainableParameters,
    multiplyAdds: cost.multiplyAdds,
    weightsBinBytes: weightsBinBytes ?? 4 * cost.parameters,
    latencyMs: { batch1: latency?.batch1.medianMs ?? null, batch256: latency?.batch256.medianMs ?? null },
    latencyRunsMs: { batch1: latency?.batch1.runsMs ?? [], batch256: latency?.batch256.runsMs ?? [] },
    accuracy: total > 0 ? correct / total : 0,
    correct,
  };
}

/** What the chosen layers, their rankings and K give: the removals and the masked reference. */
interface Selection {
  mode: "k" | "max-drop" | "plan";
  removals: ChannelRemoval[];
  ks: Record<string, number>;
  rankings: Record<string, Ranking>;
  /** The full sweep of each layer whose K --max-drop chose. */
  sweeps: Record<string, SweepPoint[]>;
  before: { correct: number };
  masked: { correct: number; from: string; classes: Int32Array };
}

/** How to rank a layer's channels. */
interface RankOptions {
  criterion: Criterion;
  seed: number;
  /** Training images for gradient criteria (loaded on first use). */
  gradientImages: () => Promise<Dataset>;
  batch: number;
}

/** Rank `layer`'s channels on the unpruned model (one prefix pass over `test`). */
async function rankLayer(loaded: LoadedModel, layer: LayerRef, test: Dataset, opts: RankOptions) {
  const split = await splitModelAsync(loaded.model, layer);
  const bar = new Progress({ label: `${layer.name} outputs`, total: test.count, unit: "img" });
  const outputs = await computeLayerOutputs(split, test, loaded.preprocessing, {
    batch: opts.batch,
    onProgress: (n) => bar.set(n),
  });
  bar.done();
  const ranking = await opts.criterion.rank({
    model: loaded.model,
    layer,
    split,
    stats: channelStats(outputs, split.activationOfZero),
    seed: opts.seed,
    gradientImages: opts.gradientImages,
    prep: loaded.preprocessing,
    outputKind: outputKind(loaded.model),
  });
  if (ranking.order.length !== layer.channels) {
    throw new Error(
      `criterion ${opts.criterion.name} ranked ${ranking.order.length} of ${layer.channels} channels`,
    );
  }
  return { split, outputs, ranking: { ...ranking, criterion: opts.criterion.name } };
}

/** K values per step of `sweepWithin`. */
export const SWEEP_CHUNK = 16;

/**
 * The largest K (at most C - 1: a layer keeps one channel) whose accuracy, and that of every
 * smaller K, stays within `maxDrop` points of K = 0: `largestKWithin` over the sweep, but
 * evaluated K = 0, 1, 2, ... in chunks and stopped after the chunk where accuracy first leaves
 * the band (the K values after it cannot change the answer). Returns the points evaluated.
 *
 * @example
 * ```ts
 * const { k, sweep } = await sweepWithin(split, outputs, test.labels, ranking, 1.0, "sweep");
 * ```
 */
export async function sweepWithin(
  split: SplitModel,
  outputs: LayerOutputs,
  labels: Uint8Array,
  ranking: Ranking,
  maxDrop: number,
  label: string,
  chunk = SWEEP_CHUNK,
): Promise<{ k: number; sweep: SweepPoint[] }> {
  const channels = outputs.channels;
  const bar = new Progress({ label, total: channels + 1, unit: "K" });
  const sweep: SweepPoint[] = [];
  for (let start = 0; start <= channels; start += chunk) {
    const kValues = Array.from({ length: Math.min(chunk, channels + 1 - start) }, (_, i) => start + i);
    sweep.push(
      ...await sweepFast(split, outputs, labels, ranking, {
        kValues,
        onProgress: (n) => bar.set(start + n),
      }),
    );
    const floor = sweep[0].accuracy - maxDrop / 100;
    if (sweep.some((p) => p.accuracy < floor - 1e-12)) break;
  }
  bar.done(`${sweep.length} of ${channels + 1} K values evaluated`);
  return { k: Math.min(largestKWithin(sweep, maxDrop), channels - 1), sweep };
}

async function selectSingle(
  loaded: LoadedModel,
  test: Dataset,
  opts: { layer?: string; k?: number; maxDrop?: number; rank: RankOptions },
): Promise<Selection> {
  const layer = pickLayer(loaded.model, opts.layer);
  if (opts.k !== undefined && opts.k > layer.channels) {
    throw new UserError(`--k ${opts.k} is more than the ${layer.channels} channels of ${layer.name}.`);
  }
  const { split, outputs, ranking } = await rankLayer(loaded, layer, test, opts.rank);
  const full = opts.k === undefined;
  let k: number, sweep: SweepPoint[];
  if (full) {
    ({ k, sweep } = await sweepWithin(split, outputs, test.labels, ranking, opts.maxDrop!, "sweep"));
  } else {
    k = opts.k!;
    sweep = await sweepFast(split, outputs, test.labels, ranking, { kValues: [0, k] });
  }
  const pruned = ranking.order.slice(0, k);
  const at = (kk: number) => sweep.find((p) => p.k === kk)!;
  const classes = await maskedClasses(split, outputs, pruned, opts.rank.batch);
  return {
    mode: full ? "max-drop" : "k",
    removals: [{ layer: layer.name, channels: pruned }],
    ks: { [layer.name]: k },
    rankings: { [layer.name]: ranking },
    sweeps: full ? { [layer.name]: sweep } : {},
    before: { correct: at(0).correct },
    masked: { correct: at(k).correct, from: `the fast sweep at K = ${k}`, classes },
  };
}

async function selectPlan(
  loaded: LoadedModel,
  test: Dataset,
  plan: PlanEntry[],
  rank: RankOptions,
  maxDrop: number | undefined,
): Promise<Selection> {
  const batch = rank.batch;
  const layers = plan.map((e) => pickLayer(loaded.model, e.layer));
  plan.forEach((e, i) => {
    if (e.k !== null && e.k > layers[i].channels) {
      throw new UserError(`--plan ${e.layer}:${e.k}: the layer has only ${layers[i].channels} channels.`);
    }
    if (e.k === null && maxDrop === undefined) {
      throw new UserError(
        `--plan ${e.layer} has no K: write ${e.layer}:K, or give --max-drop P to choose it.`,
      );
    }
  });
  const rankings: Record<string, Ranking> = {};
  const sweeps: Record<string, SweepPoint[]> = {};
  const ks: Record<string, number> = {};
  for (const [i, layer] of layers.entries()) {
    const { split, outputs, ranking } = await rankLayer(loaded, layer, test, rank);
    rankings[layer.name] = ranking;
    if (plan[i].k === null) {
      // This layer alone, swept: the largest K within --max-drop (at most C - 1).
      const { k, sweep } = await sweepWithin(
        split,
        outputs,
        test.labels,
        ranking,
        maxDrop!,
        `${layer.name} sweep`,
      );
      sweeps[layer.name] = sweep;
      ks[layer.name] = k;
    } else {
      ks[layer.name] = plan[i].k!;
    }
  }
  const removals = plan.map((e) => ({
    layer: e.layer,
    channels: rankings[e.layer].order.slice(0, ks[e.layer]),
  }));
  const prep = loaded.preprocessing;
  let bar = new Progress({ label: "unpruned accuracy", total: test.count, unit: "img" });
  const beforeClasses = await predictClasses(loaded.model, test, prep, {
    batch,
    onProgress: (n) => bar.set(n),
  });
  bar.done();
  const masked = await zeroChannels(loaded.model, removals);
  bar = new Progress({ label: "masked accuracy", total: test.count, unit: "img" });
  const classes = await predictClasses(masked, test, prep, { batch, onProgress: (n) => bar.set(n) });
  bar.done();
  masked.dispose();
  return {
    mode: "plan",
    removals,
    ks,
    rankings,
    sweeps,
    before: { correct: countMatches(beforeClasses, test.labels) },
    masked: {
      correct: countMatches(classes, test.labels),
      from: "the model with the pruned channels zeroed",
      classes,
    },
  };
}

async function fileSize(path: string): Promise<number> {
  return (await Deno.stat(path)).size;
}

/**
 * Bytes of a TF.js model's weight shards on disk (the files its model.json lists); undefined
 * for other formats, whose size is then given as the float32 weights.bin they would make.
 */
async function sourceWeightsBytes(loaded: LoadedModel): Promise<number | undefined> {
  if (loaded.format !== "tfjs") return undefined;
  const json = JSON.parse(await Deno.readTextFile(loaded.path)) as { weightsManifest: { paths: string[] }[] };
  let total = 0;
  for (const group of json.weightsManifest) {
    for (const shard of group.paths) total += await fileSize(join(dirname(loaded.path), shard));
  }
  return total;
}

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
    data: { type: "string" },
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
  const chosen = [values.k, values["max-drop"], values.plan].filter((v) => v !== undefined).length;
  const planWithDrop = values.plan !== undefined && values["max-drop"] !== undefined &&
    values.k === undefined;
  if (chosen !== 1 && !planWithDrop) {
    throw new UserError(
      `give one of --k N, --max-drop P or --plan LAYER:K,... (--plan may add --max-drop for bare layers); ` +
        `see 'deno task prune --help'.`,
    );
  }
  if (values.plan !== undefined && values.layer !== undefined) {
    throw new UserError(`--plan names its layers itself; drop --layer.`);
  }
  const k = values.k === undefined ? undefined : positiveInt("k", values.k, 0, true);
  let maxDrop: number | undefined;
  if (values["max-drop"] !== undefined) {
    maxDrop = Number(values["max-drop"]);
    if (!Number.isFinite(maxDrop) || maxDrop < 0) {
      throw new UserError(
        `--max-drop must be a non-negative number of percentage points, got '${values["max-drop"]}'.`,
      );
    }
  }
  const plan = values.plan === undefined ? undefined : parsePlan(values.plan);
  if (plan && maxDrop !== undefined && plan.every((e) => e.k !== null)) {
    throw new UserError(`--max-drop has nothing to choose: every --plan entry already has its K.`);
  }
  const epochs = positiveInt("finetune-epochs", values["finetune-epochs"], 0, true);
  let peakLr = FINETUNE_PEAK_LR;
  if (values["finetune-lr"] !== undefined) {
    peakLr = Number(values["finetune-lr"]);
    if (!Number.isFinite(peakLr) || peakLr <= 0) {
      throw new UserError(`--finetune-lr must be a positive number, got '${values["finetune-lr"]}'.`);
    }
  }
  const trainLimit = positiveInt("train-limit", values["train-limit"], Infinity);
  const limit = positiveInt("limit", values.limit, Infinity);
  const batch = positiveInt("batch", values.batch, 256);
  const latencyRuns = positiveInt("latency-runs", values["latency-runs"], 5, true);
  const flags = parsePreprocessing(values);
  const out = values.out!;

  const started = new Date().toISOString();
  const timings: Record<string, number> = {};
  let t0 = performance.now();
  const clock = (name: string) => {
    timings[name] = (performance.now() - t0) / 1000;
    t0 = performance.now();
  };
  const backend = await setupBackend(values.backend as BackendName);
  const modelPath = values.model ?? DEFAULT_MODEL;
  const loaded = await loadModel(modelPath, { preprocessing: flags, config: values.config });
  const prep = loaded.preprocessing;
  const dataDir = await resolveDataDir({ data: values.data, fetch: true });
  const test = await loadTestSet(dataDir, limit);
  const trainSet = epochs > 0 ? await loadTrainSet(dataDir, trainLimit) : undefined;
  clock("load");
  console.error(
    `prune: ${modelPath} (${loaded.format}), ${test.count} test images, backend ${backend}, criterion ${criterion}`,
  );

  // Rankings, K, and the masked reference.
  const rank: RankOptions = {
    criterion: criterionDef,
    seed,
    gradientImages: () => loadTrainSet(dataDir, taylorImages),
    batch,
  };
  const sel = plan
    ? await selectPlan(loaded, test, plan, rank, maxDrop)
    : await selectSingle(loaded, test, { layer: values.layer, k, maxDrop, rank });
  clock("rank_and_sweep");

  // Surgery, and the checks that the slim model is the masked model.
  const surgery = await removeChannels(loaded.model, sel.removals);
  const slim = surgery.model;
  checkCifarModel(slim, `${modelPath} (slim)`);
  const masked = await zeroChannels(loaded.model, sel.removals);
  const maxDiff = await maxOutputDifference(masked, slim, test, prep, 256);
  masked.dispose();
  const bar = new Progress({ label: "slim accuracy", total: test.count, unit: "img" });
  const slimClasses = await predictClasses(slim, test, prep, { batch, onProgress: (n) => bar.set(n) });
  bar.done();
  const slimCorrect = countMatches(slimClasses, test.labels);
  let disagreements = 0;
  for (let i = 0; i < test.count; i++) if (slimClasses[i] !== sel.masked.classes[i]) disagreements++;
  clock("surgery_and_check");

  // Write the slim model (metadata kept: preprocessing, class names), then reload it to be sure.
  const modelDir = join(out, "model");
  const command = `deno task prune ${args.join(" ")}`.trim();
  const prior = (loaded.metadata.prunescope ?? {}) as Record<string, unknown>;
  const pruningRecord = {
    source: modelPath,
    criterion,
    ...(criterionDef.seeded ? { seed } : {}),
    rankedOn: "original model, test images",
    sourceTestAccuracy: prior.testAccuracy ?? null,
    layers: surgery.layers.map((l) => ({
      layer: l.layer,
      k: sel.ks[l.layer],
      before: l.channelsBefore,
      after: l.channelsAfter,
    })),
    command,
  };
  const metadata = {
    ...loaded.metadata,
    prunescope: {
      ...prior,
      preprocessing: prep,
      classNames: loaded.classNames,
      // The slim model's own figures replace the source's.
      testAccuracy: slimCorrect / test.count,
      testImages: test.count,
      pruning: pruningRecord,
    },
  };
  await slim.save(fileSaver(modelDir, metadata));
  const reloaded = await tf.loadLayersModel(fileLoader(join(modelDir, "model.json")));
  const reloadMax = tf.tidy(() => {
    const probe = tf.randomUniform([4, 32, 32, 3], -1, 1, "float32", 7);
    return tf.max(tf.abs(tf.sub(slim.predict(probe) as tf.Tensor, reloaded.predict(probe) as tf.Tensor)));
  });
  const reloadDiff = (await reloadMax.data())[0];
  reloadMax.dispose();
  reloaded.dispose();
  if (!(reloadDiff <= 1e-6)) {
    throw new Error(`the saved slim model differs from the one in memory (max |diff| ${reloadDiff})`);
  }
  clock("write_model");

  // Size and speed, before and after.
  let latency: { batch1: Latency; batch256: Latency }[] | null = null;
  if (latencyRuns > 0) {
    const [b1, a1] = await compareLatency([loaded.model, slim], 1, latencyRuns);
    const [b256, a256] = await compareLatency([loaded.model, slim], 256, latencyRuns);
    latency = [{ batch1: b1, batch256: b256 }, { batch1: a1, batch256: a256 }];
  }
  const beforeFig = figures(
    loaded.model,
    sel.before.correct,
    test.count,
    latency?.[0] ?? null,
    await sourceWeightsBytes(loaded),
  );
  const afterFig = figures(
    slim,
    slimCorrect,
    test.count,
    latency?.[1] ?? null,
    await fileSize(join(modelDir, "weights.bin")),
  );
  clock("measure");
  const ratio = (a: number | null, b: number | null) => (a !== null && b !== null && b > 0 ? a / b : null);
  const layersOut = surgery.layers.map((l: LayerSurgery) => ({ ...l, k: sel.ks[l.layer] }));
  const report: Record<string, unknown> = {
    command,
    model: modelPath,
    backend,
    testImages: test.count,
    criterion,
    seed: criterionDef.seeded ? seed : null,
    rankings: "each layer's channels ranked on the original (unpruned) model over the test images",
    selection: { mode: sel.mode, maxDrop: maxDrop ?? null, k: sel.ks },
    layers: layersOut,
    before: beforeFig,
    masked: { accuracy: sel.masked.correct / test.count, correct: sel.masked.correct, from: sel.masked.from },
    after: afterFig,
    reduction: {
      parametersRemovedFraction: 1 - afterFig.parameters / beforeFig.parameters,
      multiplyAddsRemovedFraction: 1 - afterFig.multiplyAdds / beforeFig.multiplyAdds,
      weightsBinRemovedFraction: 1 - afterFig.weightsBinBytes / beforeFig.weightsBinBytes,
      speedupBatch1: ratio(beforeFig.latencyMs.batch1, afterFig.latencyMs.batch1),
      speedupBatch256: ratio(beforeFig.latencyMs.batch256, afterFig.latencyMs.batch256),
    },
    check: {
      slimEqualsMasked: slimCorrect === sel.masked.correct && maxDiff <= OUTPUT_TOLERANCE,
      correctSlimMinusMasked: slimCorrect - sel.masked.correct,
      imagesWithAnotherTopClass: disagreements,
      maxOutputDifference: maxDiff,
      outputTolerance: OUTPUT_TOLERANCE,
      probeImages: Math.min(256, test.count),
    },
    latencyNote: `median of ${latencyRuns} timed runs after 2 warm-ups, random inputs, on ${backend}; ` +
      `the two models run in turns`,
    outputs: { model: "model/model.json" },
    timings,
  };
  // One sweep: sweep.csv; several (a plan): sweep_<layer>.csv each.
  const sweepNames = Object.keys(sel.sweeps);
  for (const name of sweepNames) {
    const file = sweepNames.length === 1 && sel.mode !== "plan" ? "sweep.csv" : `sweep_${name}.csv`;
    await writeCsv(
      join(out, file),
      ["k", "channel_pruned_at_k", "accuracy", "correct", "total"],
      sel.sweeps[name].map((r) => [r.k, r.channelPrunedAtK, r.accuracy, r.correct, r.total]),
    );
    (report.outputs as Record<string, string>)[`sweep_${name}`] = file;
  }
  await writeJson(join(out, "compression.json"), report);

  // Fine-tune the slim model, if asked.
  let history: FinetuneEpoch[] = [];
  let recoverySpec: object | undefined;
  if (epochs > 0 && trainSet) {
    console.error(`fine-tuning ${epochs} epoch(s) on ${trainSet.count} training images, peak lr ${peakLr}`);
    let stepBar: Progress | undefined;
    history = await finetune(slim, trainSet, {
      epochs,
      preprocessing: prep,
      peakLr,
      batch: 128,
      evalSet: test,
      onStep(epoch, step, steps, loss, acc) {
        if (step === 1) {
          stepBar = new Progress({ label: `fine-tune ${epoch + 1}/${epochs}`, total: steps, unit: "steps" });
        }
        stepBar?.set(step, `loss ${loss.toFixed(3)} acc ${(acc * 100).toFixed(1)}%`);
      },
      onEpoch(log) {
        stepBar?.done(`test acc ${((log.evalAccuracy ?? 0) * 100).toFixed(2)}%`);
      },
    });
    const last = history[history.length - 1];
    const ftDir = join(out, "finetuned");
    await slim.save(fileSaver(ftDir, {
      ...metadata,
      prunescope: {
        ...metadata.prunescope,
        testAccuracy: last.evalAccuracy,
        finetune: { epochs, peakLr, trainImages: trainSet.count, history },
      },
    }));
    await writeCsv(
      join(out, "finetune-log.csv"),
      ["epoch", "lr", "train_loss", "train_accuracy", "test_accuracy", "seconds"],
      history.map((h) => [h.epoch, h.lr, h.trainLoss, h.trainAccuracy, h.evalAccuracy, h.seconds]),
    );
    const label = surgery.layers.map((l) => `${l.layer} -${l.pruned.length}`).join(", ");
    recoverySpec = recoveryChart(
      [
        { epoch: 0, accuracy: afterFig.accuracy },
        ...history.map((h) => ({ epoch: h.epoch, accuracy: h.evalAccuracy! })),
      ],
      {
        title: `fine-tuning after pruning ${label}`,
        before: beforeFig.accuracy,
        masked: sel.masked.correct / test.count,
      },
    );
    await writeChart(join(out, "recovery"), recoverySpec);
    report.finetuned = {
      epochs,
      peakLr,
      trainImages: trainSet.count,
      recipe:
        "SGD + Nesterov momentum 0.9, weight decay 5e-4, one-cycle, crop + flip, label smoothing 0.1, batch 128",
      accuracy: last.evalAccuracy,
      correct: Math.round((last.evalAccuracy ?? 0) * test.count),
      history,
    };
    Object.assign(report.outputs as Record<string, string>, {
      finetunedModel: "finetuned/model.json",
      finetuneLog: "finetune-log.csv",
      recoveryChart: "recovery.svg",
    });
    clock("finetune");
    await writeJson(join(out, "compression.json"), report);
  }
  slim.dispose();

  const summary = summaryLines(report, beforeFig, afterFig, sel, test.count, out, history);
  console.log(summary.join("\n"));
  const row = (model: string, f: ModelFigures) => ({
    model,
    accuracy: f.accuracy,
    parameters: f.parameters,
    multiplyAdds: f.multiplyAdds,
    weightsBinBytes: f.weightsBinBytes,
    latencyBatch1Ms: f.latencyMs.batch1,
    latencyBatch256Ms: f.latencyMs.batch256,
  });
  const none = { parameters: null, multiplyAdds: null, weightsBinBytes: null };
  const noLatency = { latencyBatch1Ms: null, latencyBatch256Ms: null };
  await writeReport(
    join(out, "report.html"),
    pruneReport({
      summary,
      layers: layersOut,
      figures: [
        row("before", beforeFig),
        { model: "masked (zeroed)", accuracy: sel.masked.correct / test.count, ...none, ...noLatency },
        row("slim", afterFig),
        ...(history.length > 0
          ? [{
            model: "fine-tuned",
            accuracy: history[history.length - 1].evalAccuracy ?? NaN,
            ...none,
            ...noLatency,
          }]
          : []),
      ],
      sweeps: Object.entries(sel.sweeps).map(([layer, points]) => ({
        layer,
        channels: surgery.layers.find((l) => l.layer === layer)?.channelsBefore ?? points.length - 1,
        points,
      })),
      recoverySpec,
      run: await runRecord(["prune", ...args], {
        started,
        model: { path: modelPath, format: loaded.format },
        data: { path: dataDir, images: test.count },
        backend,
        timings,
      }),
    }),
  );
  const check = report.check as { slimEqualsMasked: boolean };
  if (!check.slimEqualsMasked) {
    throw new UserError(
      `the slim model does not match the masked one: ${slimCorrect} vs ${sel.masked.correct} correct, ` +
        `${disagreements} images with another top class, max output difference ${maxDiff.toExponential(2)} ` +
        `(tolerance ${OUTPUT_TOLERANCE}); outputs are in ${out}/, please report this.`,
    );
  }
}

function summaryLines(
  report: Record<string, unknown>,
  before: ModelFigures,
  after: ModelFigures,
  sel: Selection,
  total: number,
  out: string,
  history: FinetuneEpoch[],
): string[] {
  const pct = (x: number) => `${(x * 100).toFixed(2)}%`;
  const ms = (x: number | null) => (x === null ? "-" : `${x.toFixed(1)} ms`);
  const layers = (report.layers as (LayerSurgery & { k: number })[]).map((l) =>
    `  ${l.layer}: K = ${l.k}, ${l.channelsBefore} -> ${l.channelsAfter} channels` +
    `${
      l.carrier !== null ? ` (channel ${l.carrier} kept as carrier)` : ""
    }, fold into ${l.consumer}: ${l.fold}`
  );
  const lines = [
    `pruned (${sel.mode}):`,
    ...layers,
    `parameters      ${before.parameters} -> ${after.parameters} (${
      pct(after.parameters / before.parameters)
    })`,
    `multiply-adds   ${before.multiplyAdds} -> ${after.multiplyAdds} (${
      pct(after.multiplyAdds / before.multiplyAdds)
    })`,
    `weights.bin     ${before.weightsBinBytes} -> ${after.weightsBinBytes} bytes`,
    `latency batch 1   ${ms(before.latencyMs.batch1)} -> ${ms(after.latencyMs.batch1)}`,
    `latency batch 256 ${ms(before.latencyMs.batch256)} -> ${ms(after.latencyMs.batch256)}`,
    `test accuracy   before ${pct(before.accuracy)}, masked ${pct(sel.masked.correct / total)}, slim ${
      pct(after.accuracy)
    } (${total} images)`,
    ...(history.length > 0
      ? [
        `fine-tuned      ${
          pct(history[history.length - 1].evalAccuracy ?? 0)
        } after ${history.length} epoch(s)`,
      ]
      : []),
    `timings: ${
      Object.entries(report.timings as Record<string, number>).map(([k, v]) => `${k} ${formatSeconds(v)}`)
        .join(", ")
    }`,
    `outputs in ${out}/`,
  ];
  return lines;
}
