/**
 * What `compress` reports: compress.json as one typed object (`CompressRecord`), the Pareto
 * table (pareto.csv / pareto.json) and chart (pareto.svg / .png), the best point within a drop,
 * and the summary printed at the end.
 */
import { join } from "node:path";
import type { LoadedModel } from "../model/load.ts";
import type * as tf from "@tensorflow/tfjs";
import { type Budget, type Plan, removedChannels } from "../surgery/allocate.ts";
import type { ChosenPlan, ParetoRow, Units } from "../surgery/plan.ts";
import { modelCost } from "../surgery/cost.ts";
import type { SlimCheck } from "../surgery/verify.ts";
import type { Ranking } from "../types.ts";
import type { FinetuneEpoch } from "../train/finetune.ts";
import { paretoChart, recoveryChart } from "../viz/charts.ts";
import { writeChart, writeCsv, writeJson } from "./outputs.ts";

/** Latency (median ms) at batch 1 and batch 256. */
export interface LatencyFigures {
  batch1: number | null;
  batch256: number | null;
}

/** compress.json. */
export interface CompressRecord {
  command: string;
  model: string;
  backend: string;
  /** The budget asked for. */
  budget: { targetMacs: number | null; targetParams: number | null; maxDrop: number | null };
  /** How the plan was chosen. */
  method: string;
  /** Unit (conv layer, later a coupled group) -> K. */
  plan: Plan;
  /** Every unit with its K, the channels pruned (indices of the original layer) and those removed. */
  units: {
    name: string;
    layers: string[];
    channels: number;
    k: number;
    pruned: number[];
    removed: number;
    carrier: boolean;
  }[];
  skipped: { layer: string; reason: string }[];
  /** Uniform ratios at the sensitivity plan's cost: the comparison. */
  uniform: { ratio: number; plan: Plan; validationAccuracy: number; testAccuracyPruned: number };
  validation: { images: number; source: string; before: number; plan: number };
  before: { macs: number; params: number };
  after: { macs: number; params: number };
  /** The cost model's figures for the plan (the same as `after` unless a carrier was not needed). */
  predicted: { macs: number; params: number };
  macsRemovedFraction: number;
  paramsRemovedFraction: number;
  /** `recalibrated`: removed and BatchNorm recalibrated, before fine-tuning (null when skipped). */
  testAccuracy: {
    images: number;
    before: number;
    pruned: number;
    recalibrated: number | null;
    after: number;
  };
  /** The BatchNorm recalibration after the surgery (null when skipped or the model has no BN). */
  recalibration: { images: number; layers: number; seconds: number } | null;
  latencyMs: { before: LatencyFigures; after: LatencyFigures; runs: number; note: string };
  finetuneEpochs: number;
  finetune: { trainImages: number; peakLr: number; seconds: number; history: FinetuneEpoch[] } | null;
  check: {
    slimEqualsMasked: boolean;
    maxOutputDifference: number;
    imagesWithAnotherTopClass: number;
    tfjsReloaded: boolean;
    kerasH5Reloaded: boolean;
    reloadMaxDifference: number;
  };
  outputs: Record<string, string>;
  timings: Record<string, number>;
}

/** What one compress run gives, for `compressRecord`. */
export interface CompressRun
  extends Pick<CompressRecord, "command" | "model" | "backend" | "finetune" | "recalibration" | "timings"> {
  budget: Budget;
  chosen: ChosenPlan;
  units: Units;
  rankings: Record<string, Ranking>;
  val: { count: number; source: string };
  source: tf.LayersModel;
  slim: tf.LayersModel;
  test: CompressRecord["testAccuracy"] & { uniformPruned: number };
  latency: { before: LatencyFigures; after: LatencyFigures; runs: number };
  check: SlimCheck;
  reloadMaxDifference: number;
  outputs: Record<string, string>;
}

/**
 * compress.json from one run: costs before (the cost model at K = 0, which is `modelCost`) and
 * after (`modelCost` of the slim model itself), the fractions removed, and the rest as given.
 */
export function compressRecord(r: CompressRun): CompressRecord {
  const cm = r.units.cost;
  const before = { macs: modelCost(r.source).multiplyAdds, params: r.source.countParams() };
  const after = { macs: modelCost(r.slim).multiplyAdds, params: r.slim.countParams() };
  const plan = r.chosen.plan;
  return {
    command: r.command,
    model: r.model,
    backend: r.backend,
    budget: {
      targetMacs: "metric" in r.budget && r.budget.metric === "macs" ? r.budget.keep : null,
      targetParams: "metric" in r.budget && r.budget.metric === "params" ? r.budget.keep : null,
      maxDrop: "maxDrop" in r.budget ? r.budget.maxDrop : null,
    },
    method: r.chosen.method,
    plan,
    units: cm.units.map((u) => ({
      ...u,
      k: plan[u.name] ?? 0,
      pruned: r.rankings[u.name].order.slice(0, plan[u.name] ?? 0),
      removed: removedChannels(u, plan[u.name] ?? 0),
    })),
    skipped: r.units.skipped,
    uniform: {
      ...r.chosen.uniform,
      validationAccuracy: r.chosen.validation.uniform,
      testAccuracyPruned: r.test.uniformPruned,
    },
    validation: {
      images: r.val.count,
      source: r.val.source,
      before: r.chosen.validation.before,
      plan: r.chosen.validation.plan,
    },
    before,
    after,
    predicted: cm.cost(plan),
    macsRemovedFraction: 1 - after.macs / before.macs,
    paramsRemovedFraction: 1 - after.params / before.params,
    testAccuracy: {
      images: r.test.images,
      before: r.test.before,
      pruned: r.test.pruned,
      recalibrated: r.test.recalibrated,
      after: r.test.after,
    },
    recalibration: r.recalibration,
    latencyMs: {
      ...r.latency,
      note: `median of ${r.latency.runs} timed runs after 2 warm-ups, random inputs, on ${r.backend}; ` +
        `the models run in turns`,
    },
    finetuneEpochs: r.finetune?.history.length ?? 0,
    finetune: r.finetune,
    check: {
      slimEqualsMasked: r.check.equal,
      maxOutputDifference: r.check.maxDiff,
      imagesWithAnotherTopClass: r.check.disagreements,
      tfjsReloaded: true,
      kerasH5Reloaded: true,
      reloadMaxDifference: r.reloadMaxDifference,
    },
    outputs: r.outputs,
    timings: r.timings,
  };
}

/**
 * Write pareto.csv, pareto.json and pareto.svg / .png into `out`; returns the chart's spec.
 *
 * @example
 * ```ts
 * const spec = await writeParetoFiles("out/compress", rows, { before: 0.81, title: "VGG" });
 * ```
 */
export async function writeParetoFiles(
  out: string,
  rows: ParetoRow[],
  opts: { before: number; title: string },
): Promise<object> {
  await writeCsv(
    join(out, "pareto.csv"),
    [
      "budget",
      "method",
      "macs",
      "params",
      "macs_kept",
      "params_kept",
      "test_pruned",
      "test_recalibrated",
      "test_after",
      "finetune_epochs",
      "finetune_seconds",
      "plan",
    ],
    rows.map((r) => [
      r.budget,
      r.method,
      r.macs,
      r.params,
      r.macsKept,
      r.paramsKept,
      r.testPruned,
      r.testRecalibrated,
      r.testAfter,
      r.finetuneEpochs,
      r.finetuneSeconds,
      Object.entries(r.plan).filter(([, k]) => k > 0).map(([u, k]) => `${u}:${k}`).join(" "),
    ]),
  );
  await writeJson(join(out, "pareto.json"), { before: opts.before, rows });
  const points = rows.flatMap((r) => [
    { method: r.method, stage: "pruned", macsKept: r.macsKept, accuracy: r.testPruned },
    ...(r.testRecalibrated === null ? [] : [{
      method: r.method,
      stage: "BN recalibrated",
      macsKept: r.macsKept,
      accuracy: r.testRecalibrated,
    }]),
    ...(r.testAfter === null ? [] : [{
      method: r.method,
      stage: `fine-tuned ${r.finetuneEpochs} ep`,
      macsKept: r.macsKept,
      accuracy: r.testAfter,
    }]),
  ]);
  const spec = paretoChart(points, opts);
  await writeChart(join(out, "pareto"), spec);
  return spec;
}

/**
 * The row with the fewest multiply-adds whose final test accuracy (after fine-tuning when it
 * ran, else after recalibration when it ran) is within `points` of `before`; null when none is.
 *
 * @example
 * ```ts
 * bestWithin(rows, 0.8128, 1)?.macsKept; // e.g. 0.62
 * ```
 */
export function bestWithin(rows: ParetoRow[], before: number, points: number): ParetoRow | null {
  const ok = rows.filter((r) => (finalAccuracy(r) - before) * 100 >= -points - 1e-9);
  return ok.reduce<ParetoRow | null>((best, r) => (best === null || r.macs < best.macs ? r : best), null);
}

/** A Pareto row's last measured test accuracy: fine-tuned, else recalibrated, else pruned. */
export function finalAccuracy(r: ParetoRow): number {
  return r.testAfter ?? r.testRecalibrated ?? r.testPruned;
}

/** The lines `compress` prints at the end. */
export function compressSummary(r: CompressRecord, best: ParetoRow | null, out: string): string {
  const pct = (x: number) => `${(x * 100).toFixed(2)}%`;
  const ms = (x: number | null) => (x === null ? "-" : `${x.toFixed(1)} ms`);
  const t = r.testAccuracy;
  const lines = [
    `plan (${r.method.split(":")[0]}): ${
      Object.entries(r.plan).filter(([, k]) => k > 0).map(([u, k]) => `${u}:${k}`).join(", ") ||
      "nothing pruned"
    }`,
    `multiply-adds ${r.before.macs.toLocaleString("en-US")} -> ${r.after.macs.toLocaleString("en-US")} ` +
    `(${pct(r.macsRemovedFraction)} removed); parameters ${r.before.params.toLocaleString("en-US")} -> ` +
    `${r.after.params.toLocaleString("en-US")} (${pct(r.paramsRemovedFraction)} removed)`,
    `validation accuracy: ${pct(r.validation.before)} -> ${pct(r.validation.plan)} ` +
    `(uniform ratio ${r.uniform.ratio} at the same cost: ${pct(r.uniform.validationAccuracy)})`,
    `test accuracy (${t.images} images, reported only): before ${pct(t.before)}, pruned ${pct(t.pruned)}, ` +
    (t.recalibrated === null ? "" : `BatchNorm recalibrated ${pct(t.recalibrated)}, `) +
    `after ${r.finetuneEpochs} fine-tuning epoch(s) ${pct(t.after)}; uniform pruned ${
      pct(r.uniform.testAccuracyPruned)
    }`,
    `latency batch 1: ${ms(r.latencyMs.before.batch1)} -> ${ms(r.latencyMs.after.batch1)}; batch 256: ` +
    `${ms(r.latencyMs.before.batch256)} -> ${ms(r.latencyMs.after.batch256)}`,
    `slim == masked: ${r.check.slimEqualsMasked ? "yes" : "NO"} (max |diff| ${
      r.check.maxOutputDifference.toExponential(2)
    }); TF.js and Keras .h5 reloaded and checked`,
  ];
  if (best) {
    lines.push(
      `best Pareto point within 1 point of ${pct(t.before)}: ${best.method} at budget ${best.budget}, ` +
        `${pct(1 - best.macsKept)} of multiply-adds and ${pct(1 - best.paramsKept)} of parameters removed, ` +
        `test ${pct(finalAccuracy(best))}`,
    );
  }
  lines.push(`wrote ${out}/compress.json, model/, model.h5, pareto.{csv,json,svg,png}, report.html`);
  return lines.join("\n");
}

/** The compressed model's metadata: the source's, with its own test figures and the plan. */
export function compressedMetadata(
  loaded: LoadedModel,
  r: { command: string; plan: Plan; testAccuracy: number; testImages: number },
): Record<string, unknown> {
  const prior = (loaded.metadata.prunescope ?? {}) as Record<string, unknown>;
  return {
    ...loaded.metadata,
    prunescope: {
      ...prior,
      preprocessing: loaded.preprocessing,
      classNames: loaded.classNames,
      testAccuracy: r.testAccuracy,
      testImages: r.testImages,
      compress: {
        source: loaded.path,
        sourceTestAccuracy: prior.testAccuracy ?? null,
        plan: r.plan,
        command: r.command,
      },
    },
  };
}

/**
 * Write recovery.svg / .png: test accuracy per fine-tuning epoch from the pruned figure (epoch
 * 0), against the unpruned and pruned accuracies; returns the chart's spec.
 */
export async function writeRecovery(
  out: string,
  history: FinetuneEpoch[],
  acc: { before: number; masked: number; recalibrated: number | null },
): Promise<object> {
  // The curve starts where fine-tuning starts: after recalibration when there was one.
  const start = acc.recalibrated ?? acc.masked;
  const spec = recoveryChart([
    { epoch: 0, accuracy: start },
    ...history.map((h) => ({ epoch: h.epoch, accuracy: h.evalAccuracy ?? NaN })),
  ], {
    title: `fine-tuning the compressed model`,
    before: acc.before,
    masked: start,
    start: acc.recalibrated === null ? undefined : "pruned, BatchNorm recalibrated",
  });
  await writeChart(join(out, "recovery"), spec);
  return spec;
}
