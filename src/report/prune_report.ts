/**
 * What `prune` reports: compression.json as one typed object (`CompressionReport`), built from
 * the selection, the surgery, the checks and the measurements; its CSV files; the fine-tune's
 * outputs; and the summary printed at the end.
 */
import { dirname, join } from "node:path";
import type * as tf from "@tensorflow/tfjs";
import type { LoadedModel } from "../model/load.ts";
import { modelCost } from "../surgery/cost.ts";
import type { Latency } from "../surgery/measure.ts";
import type { LayerSurgery } from "../surgery/remove.ts";
import type { Selection } from "../surgery/select.ts";
import { OUTPUT_TOLERANCE, PROBE_IMAGES, type SlimCheck } from "../surgery/verify.ts";
import type { FinetuneEpoch } from "../train/finetune.ts";
import { recoveryChart } from "../viz/charts.ts";
import { formatSeconds } from "../ui/progress.ts";
import { writeChart, writeCsv, writeJson } from "./outputs.ts";

/** A model's size and speed, for compression.json. */
export interface ModelFigures {
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

/** Latency at batch 1 and batch 256. */
export interface LatencyPair {
  batch1: Latency;
  batch256: Latency;
}

/** A model's figures from its layers, its correct count and its timing. */
export function modelFigures(
  model: tf.LayersModel,
  correct: number,
  total: number,
  latency: LatencyPair | null,
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

/** Bytes of a file. */
export async function fileSize(path: string): Promise<number> {
  return (await Deno.stat(path)).size;
}

/**
 * Bytes of a TF.js model's weight shards on disk (the files its model.json lists); undefined
 * for other formats, whose size is then given as the float32 weights.bin they would make.
 */
export async function sourceWeightsBytes(loaded: LoadedModel): Promise<number | undefined> {
  if (loaded.format !== "tfjs") return undefined;
  const json = JSON.parse(await Deno.readTextFile(loaded.path)) as { weightsManifest: { paths: string[] }[] };
  let total = 0;
  for (const group of json.weightsManifest) {
    for (const shard of group.paths) total += await fileSize(join(dirname(loaded.path), shard));
  }
  return total;
}

/**
 * The slim model's metadata: the source's, with the slim model's own test figures and a record
 * of the pruning (source, criterion, layers and K, the command).
 */
export function slimMetadata(
  loaded: LoadedModel,
  r: {
    command: string;
    criterion: string;
    seed: number | null;
    layers: LayerSurgery[];
    ks: Record<string, number>;
  },
  test: { correct: number; count: number },
): Record<string, unknown> & { prunescope: Record<string, unknown> } {
  const prior = (loaded.metadata.prunescope ?? {}) as Record<string, unknown>;
  return {
    ...loaded.metadata,
    prunescope: {
      ...prior,
      preprocessing: loaded.preprocessing,
      classNames: loaded.classNames,
      // The slim model's own figures replace the source's.
      testAccuracy: test.correct / test.count,
      testImages: test.count,
      pruning: {
        source: loaded.path,
        criterion: r.criterion,
        ...(r.seed !== null ? { seed: r.seed } : {}),
        rankedOn: "original model, test images",
        sourceTestAccuracy: prior.testAccuracy ?? null,
        layers: r.layers.map((l) => ({
          layer: l.layer,
          k: r.ks[l.layer],
          before: l.channelsBefore,
          after: l.channelsAfter,
        })),
        command: r.command,
      },
    },
  };
}

/** The fine-tune's part of compression.json. */
export interface FinetuneRecord {
  epochs: number;
  peakLr: number;
  trainImages: number;
  recipe: string;
  accuracy: number | null;
  correct: number;
  history: FinetuneEpoch[];
}

/** compression.json. */
export interface CompressionReport {
  command: string;
  model: string;
  backend: string;
  testImages: number;
  criterion: string;
  seed: number | null;
  rankings: string;
  /** The held-out data that ranked and chose K (--calib, --calib-split); null: the test set did. */
  calib: { source: string; images: number } | null;
  selection: {
    mode: Selection["mode"];
    maxDrop: number | null;
    k: Record<string, number>;
    /** Which data ranked and chose: "held-out" or "test" (the lab's way). */
    chosenOn: "held-out" | "test";
  };
  layers: (LayerSurgery & { k: number })[];
  before: ModelFigures;
  masked: { accuracy: number; correct: number; from: string };
  after: ModelFigures;
  reduction: {
    parametersRemovedFraction: number;
    multiplyAddsRemovedFraction: number;
    weightsBinRemovedFraction: number;
    speedupBatch1: number | null;
    speedupBatch256: number | null;
  };
  check: {
    slimEqualsMasked: boolean;
    correctSlimMinusMasked: number;
    imagesWithAnotherTopClass: number;
    maxOutputDifference: number;
    outputTolerance: number;
    probeImages: number;
  };
  latencyNote: string;
  outputs: Record<string, string>;
  timings: Record<string, number>;
  finetuned?: FinetuneRecord;
}

/** What a prune run gives, for `compressionReport`. */
export interface PruneRun extends
  Pick<
    CompressionReport,
    "command" | "model" | "backend" | "testImages" | "criterion" | "seed" | "before" | "after"
  > {
  maxDrop: number | null;
  selection: Selection;
  layers: LayerSurgery[];
  check: SlimCheck;
  latencyRuns: number;
  timings: Record<string, number>;
}

/** compression.json from one run (without the fine-tune, added by `writeFinetune`). */
export function compressionReport(r: PruneRun): CompressionReport {
  const sel = r.selection;
  const ratio = (a: number | null, b: number | null) => (a !== null && b !== null && b > 0 ? a / b : null);
  return {
    command: r.command,
    model: r.model,
    backend: r.backend,
    testImages: r.testImages,
    criterion: r.criterion,
    seed: r.seed,
    rankings: `each layer's channels ranked on the original (unpruned) model over the ${
      sel.heldOut ? `${sel.heldOut.images} held-out images (${sel.heldOut.source})` : "test images"
    }`,
    calib: sel.heldOut ?? null,
    selection: { mode: sel.mode, maxDrop: r.maxDrop, k: sel.ks, chosenOn: sel.heldOut ? "held-out" : "test" },
    layers: r.layers.map((l) => ({ ...l, k: sel.ks[l.layer] })),
    before: r.before,
    masked: {
      accuracy: sel.masked.correct / r.testImages,
      correct: sel.masked.correct,
      from: sel.masked.from,
    },
    after: r.after,
    reduction: {
      parametersRemovedFraction: 1 - r.after.parameters / r.before.parameters,
      multiplyAddsRemovedFraction: 1 - r.after.multiplyAdds / r.before.multiplyAdds,
      weightsBinRemovedFraction: 1 - r.after.weightsBinBytes / r.before.weightsBinBytes,
      speedupBatch1: ratio(r.before.latencyMs.batch1, r.after.latencyMs.batch1),
      speedupBatch256: ratio(r.before.latencyMs.batch256, r.after.latencyMs.batch256),
    },
    check: {
      slimEqualsMasked: r.check.equal,
      correctSlimMinusMasked: r.check.slimCorrect - sel.masked.correct,
      imagesWithAnotherTopClass: r.check.disagreements,
      maxOutputDifference: r.check.maxDiff,
      outputTolerance: OUTPUT_TOLERANCE,
      probeImages: Math.min(PROBE_IMAGES, r.testImages),
    },
    latencyNote: `median of ${r.latencyRuns} timed runs after 2 warm-ups, random inputs, on ${r.backend}; ` +
      `the two models run in turns`,
    outputs: { model: "model/model.json" },
    timings: r.timings,
  };
}

/**
 * Write the sweeps --max-drop ran (one: sweep.csv; a plan's: sweep_<layer>.csv each) and
 * compression.json into `out`.
 */
export async function writeCompression(
  out: string,
  report: CompressionReport,
  sel: Selection,
): Promise<void> {
  const sweepNames = Object.keys(sel.sweeps);
  for (const name of sweepNames) {
    const file = sweepNames.length === 1 && sel.mode !== "plan" ? "sweep.csv" : `sweep_${name}.csv`;
    await writeCsv(
      join(out, file),
      ["k", "channel_pruned_at_k", "accuracy", "correct", "total"],
      sel.sweeps[name].map((r) => [r.k, r.channelPrunedAtK, r.accuracy, r.correct, r.total]),
    );
    report.outputs[`sweep_${name}`] = file;
  }
  await writeJson(join(out, "compression.json"), report);
}

/**
 * Record a fine-tune in `report` and write its log (finetune-log.csv) and recovery chart; the
 * caller writes the model and compression.json again. Returns the recovery chart's spec.
 */
export async function writeFinetune(
  out: string,
  report: CompressionReport,
  run: { epochs: number; peakLr: number; trainImages: number; history: FinetuneEpoch[] },
): Promise<object> {
  const { history } = run;
  const last = history[history.length - 1];
  await writeCsv(
    join(out, "finetune-log.csv"),
    ["epoch", "lr", "train_loss", "train_accuracy", "test_accuracy", "seconds"],
    history.map((h) => [h.epoch, h.lr, h.trainLoss, h.trainAccuracy, h.evalAccuracy, h.seconds]),
  );
  const label = report.layers.map((l) => `${l.layer} -${l.pruned.length}`).join(", ");
  const recovery = recoveryChart(
    [
      { epoch: 0, accuracy: report.after.accuracy },
      ...history.map((h) => ({ epoch: h.epoch, accuracy: h.evalAccuracy! })),
    ],
    {
      title: `fine-tuning after pruning ${label}`,
      before: report.before.accuracy,
      masked: report.masked.accuracy,
    },
  );
  await writeChart(join(out, "recovery"), recovery);
  report.finetuned = {
    epochs: run.epochs,
    peakLr: run.peakLr,
    trainImages: run.trainImages,
    recipe:
      "SGD + Nesterov momentum 0.9, weight decay 5e-4, one-cycle, crop + flip, label smoothing 0.1, batch 128",
    accuracy: last.evalAccuracy ?? null,
    correct: Math.round((last.evalAccuracy ?? 0) * report.testImages),
    history,
  };
  Object.assign(report.outputs, {
    finetunedModel: "finetuned/model.json",
    finetuneLog: "finetune-log.csv",
    recoveryChart: "recovery.svg",
  });
  return recovery;
}

/** The lines `prune` prints at the end. */
export function pruneSummary(report: CompressionReport, out: string): string {
  const { before, after } = report;
  const total = report.testImages;
  const history = report.finetuned?.history ?? [];
  const pct = (x: number) => `${(x * 100).toFixed(2)}%`;
  const ms = (x: number | null) => (x === null ? "-" : `${x.toFixed(1)} ms`);
  const layers = report.layers.map((l) =>
    `  ${l.layer}: K = ${l.k}, ${l.channelsBefore} -> ${l.channelsAfter} channels` +
    `${
      l.carrier !== null ? ` (channel ${l.carrier} kept as carrier)` : ""
    }, fold into ${l.consumer}: ${l.fold}`
  );
  const lines = [
    `pruned (${report.selection.mode}; ranked${report.selection.mode === "k" ? "" : " and K chosen"} on ${
      report.calib ? `${report.calib.images} held-out images: ${report.calib.source}` : "the test images"
    }):`,
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
    `test accuracy   before ${pct(before.accuracy)}, masked ${pct(report.masked.correct / total)}, slim ${
      pct(after.accuracy)
    } (${total} images)`,
    ...(history.length > 0
      ? [
        `fine-tuned      ${
          pct(history[history.length - 1].evalAccuracy ?? 0)
        } after ${history.length} epoch(s)`,
      ]
      : []),
    `timings: ${Object.entries(report.timings).map(([k, v]) => `${k} ${formatSeconds(v)}`).join(", ")}`,
    `outputs in ${out}/`,
  ];
  return lines.join("\n");
}
