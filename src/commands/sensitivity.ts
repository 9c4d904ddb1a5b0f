/**
 * `deno task sensitivity`: which layers can be pruned at all? Each conv layer is pruned alone
 * (its weakest channels by one criterion replaced by the pruned value) at a list of fractions,
 * and scored top-1 / top-5 / loss on the test set; one pass over each layer's prefix, the
 * fractions evaluated on cached outputs (streamed in chunks for wide early layers).
 *
 * Flow: args -> data -> model -> layers (coupled ones refused) -> per layer: split, prefix pass,
 * ranking, masked suffix evaluations -> writers (Distiller CSV, NNI CSV, JSON, Li et al. chart).
 */
import { join } from "node:path";
import { type BackendName, setupBackend } from "../backend.ts";
import { UserError } from "../errors.ts";
import { parseFlags, parsePreprocessing, positiveInt } from "../cli/args.ts";
import { loadTestSet, loadTrainSet } from "../data/cifar10.ts";
import { resolveDataDir } from "../data/fetch.ts";
import { loadModel } from "../model/load.ts";
import { convLayers, type LayerRef, pickLayer } from "../model/layers.ts";
import { criterionByName, criterionNames } from "../prune/rankings.ts";
import { sensitivityOnWorkers } from "../prune/sensitivity_pool.ts";
import { outputKind } from "../prune/class_scores.ts";
import { couplingMessage, couplingOf } from "../prune/topology.ts";
import {
  DEFAULT_MAX_CACHE_BYTES,
  kValuesFromFractions,
  kValuesFromStep,
  layerSensitivity,
  type LayerSensitivityResult,
  plannedWork,
} from "../prune/sensitivity.ts";
import { largestKWithin } from "../prune/summary.ts";
import type { Dataset } from "../types.ts";
import { writeChart, writeCsv, writeJson } from "../report/outputs.ts";
import { writeReport } from "../report/html.ts";
import { runRecord } from "../report/run_record.ts";
import { sensitivityReport } from "../report/sensitivity_report.ts";
import { distillerTable, nniTable } from "../report/sensitivity_tables.ts";
import { sensitivityChart } from "../viz/charts.ts";
import { formatSeconds, Progress } from "../ui/progress.ts";
import { DEFAULT_MODEL } from "./sweep.ts";

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
  --data DIR           CIFAR-10 binary folder (else CIFAR10_DIR, else the cache; fetched if missing)
  --layers L           all, or conv layer names a,b,...          (default all; 'all' skips layers
                       coupled through a residual Add, and says so)
  --fractions LIST     fractions of each layer's channels, e.g. 0,0.1,0.5 or 0:1:0.05 (stop included)
                       (default 0:1:0.05, Distiller's levels plus 1)
  --step K             instead: K = 0, K, 2K, ..., C for every layer (--step 1: every K)
  --criterion NAME     ranking criterion: ${criterionNames()}  (default mean)
  --seed N             seed of the random criterion            (default 1)
  --taylor-images N    training images for --criterion taylor  (default 512)
  --out DIR            output folder                           (default out/sensitivity)
  --backend B          auto | webgpu | wasm | cpu              (default auto)
  --workers N          worker threads, each taking whole layers (same results)  (default 1)
  --batch N            images per prefix pass call             (default 256)
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

/** The layers to analyse: all uncoupled conv layers, or the named ones (coupled ones refused). */
function chooseLayers(
  model: Parameters<typeof convLayers>[0],
  spec: string,
): { layers: LayerRef[]; skipped: { layer: string; reason: string }[] } {
  const skipped: { layer: string; reason: string }[] = [];
  if (spec.trim().toLowerCase() === "all") {
    const layers: LayerRef[] = [];
    for (const l of convLayers(model)) {
      const c = couplingOf(model, l);
      if (c) skipped.push({ layer: l.name, reason: couplingMessage(c) });
      else layers.push(l);
    }
    if (layers.length === 0) {
      throw new UserError(
        convLayers(model).length === 0
          ? "the model has no Conv2D layer; run 'deno task inspect' to see its layers."
          : `every conv layer is coupled to another through a merge: ${
            skipped.map((s) => s.reason).join("; ")
          }.`,
      );
    }
    return { layers, skipped };
  }
  const names = spec.split(",").map((s) => s.trim()).filter((s) => s !== "");
  if (names.length === 0) throw new UserError(`--layers needs 'all' or conv layer names a,b,...`);
  const layers = names.map((n) => pickLayer(model, n));
  for (const l of layers) {
    const c = couplingOf(model, l);
    if (c) throw new UserError(`--layers ${l.name}: ${couplingMessage(c)}; leave it out of --layers.`);
  }
  if (new Set(names).size !== names.length) throw new UserError(`--layers names a layer twice.`);
  return { layers, skipped };
}

/** Run the sensitivity command. */
export async function run(args: string[]): Promise<void> {
  const values = parseFlags(args, {
    model: { type: "string" },
    config: { type: "string" },
    data: { type: "string" },
    layers: { type: "string", default: "all" },
    fractions: { type: "string" },
    step: { type: "string" },
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
  const timings: Record<string, number> = {};
  const clock = (name: string, t0: number) => (timings[name] = (performance.now() - t0) / 1000);
  const batch = positiveInt("batch", values.batch, 256);
  const limit = positiveInt("limit", values.limit, Infinity);
  const seed = positiveInt("seed", values.seed, 1);
  const workers = positiveInt("workers", values.workers, 1);
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
  const criterion = criterionByName(values.criterion!);
  const flags = parsePreprocessing(values);

  let t0 = performance.now();
  const backend = await setupBackend(values.backend as BackendName);
  if (workers > 1 && backend === "webgpu") {
    throw new UserError("--workers runs on cpu or wasm only; with --backend webgpu use --workers 1.");
  }
  const modelPath = values.model ?? DEFAULT_MODEL;
  const loaded = await loadModel(modelPath, { preprocessing: flags, config: values.config });
  const model = loaded.model;
  const { layers, skipped } = chooseLayers(model, values.layers!);
  for (const l of layers) criterion.check?.(model, l);
  const dataDir = await resolveDataDir({ data: values.data, fetch: true });
  const test = await loadTestSet(dataDir, limit);
  const prep = loaded.preprocessing;
  const kind = outputKind(model);
  let train: Promise<Dataset> | undefined;
  const gradientImages = () => (train ??= loadTrainSet(dataDir, taylorImages));
  clock("load", t0);
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

  t0 = performance.now();
  const total = layers.reduce(
    (sum, l) => sum + plannedWork(l, test.count, ksOf(l).length, criterion, maxCacheBytes, taylorImages),
    0,
  );
  const bar = new Progress({ label: "sensitivity", total, unit: "img" });
  let done = 0;
  let results: LayerSensitivityResult[] = [];
  if (workers > 1) {
    const running = new Set<string>();
    results = await sensitivityOnWorkers(model, layers, test, prep, {
      workers,
      backend: backend as BackendName,
      criterion: criterion.name,
      seed,
      kValues: ksOf,
      outputKind: kind,
      maxCacheBytes,
      batch,
      dataDir,
      taylorImages,
      onLayerStart: (name) => running.add(name),
      onLayerDone: (name) => running.delete(name),
      onWork: (n) => bar.set(done += n, [...running].join(", ")),
    });
  } else {
    for (const [i, layer] of layers.entries()) {
      const info = `${layer.name} (${i + 1}/${layers.length})`;
      bar.set(done, info);
      results.push(
        await layerSensitivity(model, layer, test, prep, {
          criterion,
          seed,
          kValues: ksOf(layer),
          outputKind: kind,
          maxCacheBytes,
          batch,
          gradientImages,
          onWork: (n) => bar.set(done += n, info),
        }),
      );
    }
  }
  bar.done();
  clock("analysis", t0);

  t0 = performance.now();
  const out = values.out!;
  const baseline = results[0].points.find((p) => p.k === 0)?.top1 ?? NaN;
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
  clock("outputs", t0);
  timings.total = Object.values(timings).reduce((s, x) => s + x, 0);
  await writeJson(join(out, "sensitivity.json"), {
    model: modelPath,
    criterion: criterion.name,
    seed: criterion.seeded ? seed : undefined,
    backend,
    samples: test.count,
    outputKind: kind,
    baselineTop1: baseline,
    fractions: fractions ?? null,
    step: step ?? null,
    preprocessing: prep,
    layers: results.map((r) => ({
      layer: r.layer,
      parameter: r.parameter,
      channels: r.channels,
      outputShape: r.outputShape,
      deadChannels: r.dead,
      chunkImages: r.chunkImages,
      prefixPasses: r.prefixPasses,
      seconds: r.seconds,
      order: r.ranking.order,
      scores: r.ranking.scores,
      points: r.points,
    })),
    skipped,
    timings,
  });
  const summary = summaryLines(results, skipped, baseline, timings, out);
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
        data: { path: dataDir, images: test.count },
        backend,
        workers,
        timings,
      }),
    }),
  );
}

function summaryLines(
  results: LayerSensitivityResult[],
  skipped: { layer: string }[],
  baseline: number,
  timings: Record<string, number>,
  out: string,
): string[] {
  const pct = (x: number) => `${(x * 100).toFixed(2)}%`;
  const width = Math.max(5, ...results.map((r) => r.layer.length));
  const lines = [
    `baseline top-1: ${pct(baseline)}`,
    `${"layer".padEnd(width)}  channels  dead  largest pruned fraction within 1 point  top-1 at ~50%`,
    ...results.map((r) => {
      const k1 = largestKWithin(
        r.points.map((p) => ({
          k: p.k,
          channelPrunedAtK: null,
          correct: p.correct,
          total: p.total,
          accuracy: p.top1,
        })),
        1,
      );
      const half = r.points.reduce((b, p) => Math.abs(p.sparsity - 0.5) < Math.abs(b.sparsity - 0.5) ? p : b);
      return `${r.layer.padEnd(width)}  ${String(r.channels).padStart(8)}  ${
        String(r.dead.length).padStart(4)
      }  ` +
        `${`${(100 * k1 / r.channels).toFixed(0)}% (K = ${k1})`.padEnd(38)}  ${
          pct(half.top1)
        } (K = ${half.k})`;
    }),
    ...(skipped.length > 0 ? [`skipped (coupled): ${skipped.map((s) => s.layer).join(", ")}`] : []),
    `timings: ${Object.entries(timings).map(([k, v]) => `${k} ${formatSeconds(v)}`).join(", ")}`,
    `outputs in ${out}/`,
  ];
  return lines;
}
