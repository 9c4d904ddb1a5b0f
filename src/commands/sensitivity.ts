/**
 * `deno task sensitivity`: which layers can be pruned at all? Each conv layer is pruned alone
 * (its weakest channels by one criterion replaced by the pruned value) at a list of fractions,
 * and scored top-1 / top-5 / loss on the test set; one pass over each layer's prefix, the
 * fractions evaluated on cached outputs (streamed in chunks for wide early layers).
 *
 * Flow: args -> data -> model -> layers (a coupled group once) -> per layer: split, prefix pass,
 * ranking, masked suffix evaluations -> writers (Distiller CSV, NNI CSV, JSON, Li et al. chart).
 */
import { join } from "node:path";
import { UserError } from "../core/errors.ts";
import { parseFlags, parsePreprocessing, positiveInt, stopBelowFlag, workersFlag } from "../cli/args.ts";
import { planResources } from "../cli/resources.ts";
import { DATA_FLAGS, DATA_HELP, openSession, Stopwatch } from "../cli/session.ts";
import { openOutDir } from "../cli/out_dir.ts";
import { chanceLevelWarning } from "../sweep/summary.ts";
import { chooseLayers, scanLayers } from "../sensitivity/run.ts";
import type { LayerRef } from "../model/layers.ts";
import { criterionByName, criterionNames } from "../rank/registry.ts";
import { outputKind } from "../model/class_scores.ts";
import {
  DEFAULT_MAX_CACHE_BYTES,
  kValuesFromFractions,
  kValuesFromStep,
  plannedWork,
} from "../sensitivity/scan.ts";
import { writeChart, writeCsv, writeJson } from "../report/outputs.ts";
import { distillerTable, nniTable, sensitivitySummary } from "../report/sensitivity_tables.ts";
import { writeReport } from "../report/page/html.ts";
import { runRecord } from "../report/page/run_record.ts";
import { sensitivityReport } from "../report/page/sensitivity_page.ts";
import { sensitivityChart } from "../viz/charts.ts";
import { Progress } from "../ui/progress.ts";

/** Distiller's default sparsity levels (0 to 0.95 by 0.05), plus 1: every channel pruned. */
export const DEFAULT_FRACTIONS = Array.from({ length: 21 }, (_, i) => i / 20);

const HELP = `deno task sensitivity [options]

Which layers can be pruned? Each conv layer is pruned alone: its weakest channels (by --criterion)
are zeroed at each fraction of its channels (K = round(fraction x C)) and the model is scored on the
test set (top-1, top-5, loss). Each layer pays one pass over its prefix; the fractions are evaluated
on the cached outputs of that layer (streamed in chunks when they exceed --max-cache).

Options:
  --model PATH         TF.js model.json, Keras .h5 or .keras     (default: the shipped VGG-16 model)
  --config PATH        Keras model.to_json() file, for a weights-only .h5
${DATA_HELP}
  --layers L           all, or conv layer names a,b,...          (default all; a conv coupled to
                       others through a residual Add is analysed with its channel group, once)
  --fractions LIST     fractions of each layer's channels, e.g. 0,0.1,0.5 or 0:1:0.05 (stop included)
                       (default 0:1:0.05, Distiller's levels plus 1)
  --step K             instead: K = 0, K, 2K, ..., C for every layer (--step 1: every K)
  --stop-below P       end a layer's curve once top-1 is P points under K = 0's (opt-in, like NNI's
                       early stop; P >= 1, needs fraction 0; the points kept are the full curve's)
  --criterion NAME     ranking criterion: ${criterionNames()}  (default mean)
  --seed N             seed of the random criterion            (default 1)
  --taylor-images N    training images for --criterion taylor  (default 512)
  --out DIR            output folder                           (default out/sensitivity)
  --backend B          auto | webgpu | wasm | cpu              (default auto)
  --workers N|auto     worker threads, each taking whole layers (same results)
                       (default auto: the cores, capped by memory, the layers and 1024 images a worker)
  --batch N            images per prefix pass call  (default auto: what the memory budget holds, 16-1024)
  --limit N            use only the first N test images        (default all 10,000)
  --max-cache MB       layer outputs held at once before streaming in chunks (default 1024)
  --scale X, --mean R,G,B, --std R,G,B   preprocessing when the model's metadata has none
  -h, --help           this text

Writes to --out: sensitivity.csv (Distiller: parameter, sparsity, top1 %, top5 %, loss),
sensitivity_nni.csv (NNI: a row per layer, a column per sparsity, top-1 as a fraction),
sensitivity.json (every point, ranking, dead channels, skipped layers, timings),
sensitivity.svg and sensitivity.png (one line per layer, Li et al. 2017 Fig. 2 style), report.html (the
chart, the tables and the run record on one page).`;

/**
 * Parse `--fractions`: "0,0.1,0.5", "0:1:0.05" (start:stop:step, stop included) or a mix; every
 * value in 0..1. Returned sorted and distinct.
 *
 * @example
 * ```ts
 * parseFractions("0:0.2:0.1"); // [0, 0.1, 0.2]
 * ```
 */
export function parseFractions(v: string): number[] {
  const out: number[] = [];
  for (const part of v.split(",")) {
    const nums = part.split(":").map((s) => s.trim() === "" ? NaN : Number(s));
    const bad = nums.length > 3 || nums.some((x) => !Number.isFinite(x) || x < 0 || x > 1) ||
      (nums.length === 3 && !(nums[2] > 0)) || (nums.length === 2);
    if (bad) {
      throw new UserError(
        `--fractions: '${part}' is not a fraction in 0..1 or a start:stop:step range (e.g. 0:1:0.05).`,
      );
    }
    if (nums.length === 1) out.push(nums[0]);
    else {
      const [start, stop, step] = nums;
      for (let i = 0;; i++) {
        const f = Math.round((start + i * step) * 1e9) / 1e9;
        if (f > stop + 1e-12) break;
        out.push(f);
      }
    }
  }
  return [...new Set(out)].sort((a, b) => a - b);
}

/** Run the sensitivity command. */
export async function run(args: string[]): Promise<void> {
  const values = parseFlags(args, {
    model: { type: "string" },
    config: { type: "string" },
    ...DATA_FLAGS,
    layers: { type: "string", default: "all" },
    fractions: { type: "string" },
    step: { type: "string" },
    "stop-below": { type: "string" },
    criterion: { type: "string", default: "mean" },
    seed: { type: "string" },
    "taylor-images": { type: "string" },
    out: { type: "string", default: "out/sensitivity" },
    backend: { type: "string", default: "auto" },
    workers: { type: "string" },
    batch: { type: "string" },
    limit: { type: "string" },
    "max-cache": { type: "string" },
    scale: { type: "string" },
    mean: { type: "string" },
    std: { type: "string" },
    help: { type: "boolean", short: "h", default: false },
  }, "sensitivity");
  if (values.help) {
    console.log(HELP);
    return;
  }
  const started = new Date().toISOString();
  const clock = new Stopwatch();
  const batchFlag = values.batch === undefined ? undefined : positiveInt("batch", values.batch, 256);
  const limit = positiveInt("limit", values.limit, Infinity);
  const seed = positiveInt("seed", values.seed, 1);
  const workersChoice = workersFlag(values.workers);
  const taylorImages = positiveInt("taylor-images", values["taylor-images"], 512);
  const maxCacheBytes = values["max-cache"] === undefined
    ? DEFAULT_MAX_CACHE_BYTES
    : positiveInt("max-cache", values["max-cache"], 1024) * 2 ** 20;
  if (values.fractions !== undefined && values.step !== undefined) {
    throw new UserError(`give --fractions or --step, not both.`);
  }
  const fractions = values.step !== undefined
    ? undefined
    : values.fractions !== undefined
    ? parseFractions(values.fractions)
    : DEFAULT_FRACTIONS;
  const step = values.step === undefined ? undefined : positiveInt("step", values.step, 1);
  const stopBelow = stopBelowFlag(values["stop-below"], fractions);
  const criterion = criterionByName(values.criterion!);
  const flags = parsePreprocessing(values);
  // The output folder is checked and locked before any model or data is read.
  await using _claim = await openOutDir(values.out!, "--out", "sensitivity");

  const session = await openSession(values, flags);
  const { backend, modelPath, loaded, prep } = session;
  if (workersChoice !== "auto" && workersChoice > 1 && backend === "webgpu") {
    throw new UserError("--workers runs on cpu or wasm only; with --backend webgpu use --workers 1.");
  }
  const model = loaded.model;
  const { layers, skipped } = chooseLayers(model, values.layers!);
  for (const l of layers) criterion.check?.(model, l);
  const test = await session.testSet(limit);
  const kind = outputKind(model);
  clock.lap("load");
  const plan = planResources({
    workers: workersChoice,
    batch: batchFlag,
    images: test.count,
    model,
    backend,
    units: layers.length,
    workerBytes: maxCacheBytes,
  });
  const { workers, batch } = plan;
  console.error(`sensitivity: workers ${workers} (${plan.why.workers}), batch ${batch} (${plan.why.batch})`);
  const ksOf = (l: LayerRef) =>
    fractions ? kValuesFromFractions(fractions, l.channels) : kValuesFromStep(step!, l.channels);
  console.error(
    `sensitivity: ${modelPath} (${loaded.format}), ${layers.length} conv layer${
      layers.length > 1 ? "s" : ""
    }, ` +
      `criterion ${criterion.name}, ${
        fractions ? `${fractions.length} fractions` : `every ${step} K`
      }, ${test.count} test images, backend ${backend}`,
  );
  for (const s of skipped) console.error(`sensitivity: skipping ${s.layer}: ${s.reason}.`);

  clock.restart();
  const total = layers.reduce(
    (sum, l) => sum + plannedWork(l, test.count, ksOf(l).length, criterion, maxCacheBytes, taylorImages),
    0,
  );
  const bar = new Progress({ label: "sensitivity", total, unit: "img" });
  const results = await scanLayers(model, layers, test, prep, {
    workers,
    backend,
    criterion,
    seed,
    kValues: ksOf,
    outputKind: kind,
    maxCacheBytes,
    batch,
    stopBelow,
    dataDir: await session.dataDir(),
    taylorImages,
    gradientImages: () => session.trainSet(taylorImages),
    onProgress: (done, info) => bar.set(done, info),
  });
  bar.done();
  clock.lap("analysis");

  const out = values.out!;
  const baseline = results[0].points.find((p) => p.k === 0)?.top1 ?? NaN;
  const chance = chanceLevelWarning(baseline, test.count, loaded.io.classes);
  if (chance) console.error(chance);
  const distiller = distillerTable(results);
  await writeCsv(join(out, "sensitivity.csv"), distiller.header, distiller.rows);
  const nni = nniTable(results, fractions);
  await writeCsv(join(out, "sensitivity_nni.csv"), nni.header, nni.rows);
  const chartSpec = sensitivityChart(
    results.map((r) => ({
      layer: r.layer,
      points: r.points.map((p) => ({ fraction: p.sparsity, accuracy: p.top1 })),
    })),
    {
      title:
        `Sensitivity to pruning, each conv layer alone (${criterion.label} ranking, ${test.count} images)`,
      baseline,
    },
  );
  await writeChart(join(out, "sensitivity"), chartSpec);
  clock.lap("outputs");
  clock.total();
  await writeJson(join(out, "sensitivity.json"), {
    model: modelPath,
    criterion: criterion.name,
    seed: criterion.seeded ? seed : undefined,
    backend,
    workers,
    batch,
    chosen: plan.why,
    samples: test.count,
    outputKind: kind,
    baselineTop1: baseline,
    fractions: fractions ?? null,
    step: step ?? null,
    stopBelow: stopBelow ?? null,
    preprocessing: prep,
    layers: results.map((r) => ({
      layer: r.layer,
      parameter: r.parameter,
      channels: r.channels,
      outputShape: r.outputShape,
      deadChannels: r.dead,
      chunkImages: r.chunkImages,
      prefixPasses: r.prefixPasses,
      stopped: r.stopped ?? null,
      seconds: r.seconds,
      order: r.ranking.order,
      scores: r.ranking.scores,
      points: r.points,
    })),
    skipped,
    timings: clock.timings,
  });
  const summary = sensitivitySummary(results, skipped, baseline, clock.timings, out).split("\n");
  console.log(summary.join("\n"));
  await writeReport(
    join(out, "report.html"),
    sensitivityReport({
      results,
      fractions,
      chartSpec,
      summary,
      run: await runRecord(["sensitivity", ...args], {
        started,
        model: { path: modelPath, format: loaded.format },
        data: { path: await session.dataDir(), images: test.count },
        backend,
        workers,
        timings: clock.timings,
      }),
    }),
  );
}
