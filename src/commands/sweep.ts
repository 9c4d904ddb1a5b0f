/**
 * `deno task sweep`: the lab experiment as one command. Load CIFAR-10 and a model, take the
 * chosen conv layer's outputs over the test set once, draw the average feature maps, rank the
 * channels, evaluate accuracy for every K = 0..C pruned channels and chart it.
 *
 * Flow: args -> data -> model -> layer -> split -> prefix pass (LayerOutputs) -> ranking
 * -> sweep (fast engine or --naive) -> writers. Everything is validated before the first write.
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type BackendName, setupBackend } from "../backend.ts";
import { UserError } from "../errors.ts";
import { parseFlags, parsePreprocessing, positiveInt } from "../cli/args.ts";
import { loadTestSet, loadTrainSet } from "../data/cifar10.ts";
import { resolveDataDir } from "../data/fetch.ts";
import { loadModel } from "../model/load.ts";
import { pickLayer } from "../model/layers.ts";
import { splitModelAsync } from "../model/split.ts";
import { averageMaps, computeLayerOutputs } from "../prune/activations.ts";
import { channelStats, deadChannels } from "../prune/criteria_activation.ts";
import { computeRankings, criterionNames, parseCriteria } from "../prune/rankings.ts";
import { outputKind } from "../prune/class_scores.ts";
import { assertUncoupled } from "../prune/topology.ts";
import { type CriterionRun, summarizeRuns, verdictsAt } from "../prune/compare.ts";
import { comparisonSeries, comparisonTable, detailTable, rankingTable } from "../report/criteria_tables.ts";
import { sweepFast } from "../prune/sweep.ts";
import { sweepIncremental } from "../prune/sweep_incremental.ts";
import { engineRows } from "../prune/linear_head.ts";
import { SweepPool } from "../prune/parallel.ts";
import { sweepNaive } from "../prune/naive.ts";
import { largestKWithin, SUMMARY_BANDS } from "../prune/summary.ts";
import type { SweepResult } from "../types.ts";
import { writeChart, writeCsv, writeJson } from "../report/outputs.ts";
import { writeFileAtomic } from "../report/atomic.ts";
import { accuracyChart } from "../viz/charts.ts";
import { featureMapGridPng, featureMapPng } from "../viz/featuremaps.ts";
import { formatSeconds, Progress } from "../ui/progress.ts";
import { confusionAtK, confusionFromOutputs } from "../prune/confusion.ts";
import { writeConfusionFiles } from "../report/confusion_tables.ts";
import { writeReport } from "../report/html.ts";
import { runRecord } from "../report/run_record.ts";
import { bandKs, sweepReport } from "../report/sweep_report.ts";
import { featureMapTiles } from "../viz/featuremap_tiles.ts";

/** The model `sweep` uses when no --model is given: the one `deno task train` made for this repo. */
export const DEFAULT_MODEL = fileURLToPath(
  new URL("../../fixtures/models/default/model.json", import.meta.url),
);

const HELP = `deno task sweep [options]

The lab experiment: rank the channels of a conv layer by their mean activation over the test set,
prune the K weakest (kernel and bias zeroed) for every K = 0..C, and chart test accuracy against K.

Options:
  --model PATH       TF.js model.json, Keras .h5 or .keras      (default: the shipped VGG-16 model)
  --config PATH      Keras model.to_json() file, for a weights-only .h5
  --data DIR         CIFAR-10 binary folder (else CIFAR10_DIR, else the cache; fetched if missing)
  --layer NAME       conv layer to prune                         (default: the last Conv2D)
  --out DIR          output folder                               (default out/sweep)
  --backend B        auto | webgpu | wasm | cpu                  (default auto: webgpu on a real GPU, else wasm)
  --batch N          images per forward pass                     (default 256)
  --limit N          use only the first N test images            (default all 10,000)
  --naive            the lab's literal method: zero the weights and re-run the whole model for each K
  --workers N        worker threads sharing the prefix pass and the sweep (same results)  (default 1)
  --algebra          faster on big dense heads: update the first Dense layer per pruned channel
                     instead of recomputing it, and run the relu Dense layers after it on a kernel
                     that skips zeros; the last bits of a score can differ, so an image at a near-tie
                     can flip (bench --verify counts them). Off by default.
  --dense-kernel     faster on big dense heads and exact: run the Dense layers after the pruned
                     layer on prunescope's wasm kernel that skips zeros (the plain path's counts)
  --k LIST           only these K values, e.g. 0,8,16 or 0:64:8  (default 0..C)
  --criterion LIST   ranking criteria to compare, e.g. mean,apoz,l1,random,largest  (default mean)
                     one of: ${criterionNames()}
  --seeds N          runs of the random criterion (seeds 1..N), drawn as mean and min-max band (default 5)
  --taylor-images N  training images the taylor criterion takes gradients on         (default 512)
  --scale X          input scale when the model's metadata has none          (default 1/255)
  --mean R,G,B       per-channel mean subtracted after scaling               (default 0,0,0)
  --std R,G,B        per-channel std divided after the mean                  (default 1,1,1)
  --shared-scale     draw all feature maps on one value range (default: each its own, like imshow)
  -h, --help         this text

Writes to --out: featuremaps.png, featuremap_0.png, featuremaps.json, ranking.csv, sweep.csv,
sweep.json, accuracy.svg, accuracy.png, confusion_k0.* and confusion_k<K>.* (K: the largest K within
1 point; .csv, .json, .svg, .png), report.html (all of it on one page); and per criterion
sweep_<criterion>.csv. With several criteria sweep.csv holds k and one accuracy column per criterion
(several seeds: _mean, _min, _max columns), ranking.csv the first criterion's ranking and
ranking_<criterion>.csv the others'.`;

/** Parse a K list: "0,8,16", "0:64:8" (start:stop:step, stop included) or a mix. */
export function parseKList(v: string): number[] {
  const ks: number[] = [];
  for (const part of v.split(",")) {
    const range = part.split(":").map(Number);
    if (range.some((x) => !Number.isInteger(x) || x < 0) || range.length > 3) {
      throw new UserError(
        `--k: '${part}' is not a K value or a start:stop:step range of non-negative integers.`,
      );
    }
    if (range.length === 1) ks.push(range[0]);
    else for (let k = range[0]; k <= range[1]; k += range[2] ?? 1) ks.push(k);
  }
  return ks;
}

/** Run the sweep command. */
export async function run(args: string[]): Promise<void> {
  const values = parseFlags(args, {
    model: { type: "string" },
    config: { type: "string" },
    data: { type: "string" },
    layer: { type: "string" },
    out: { type: "string", default: "out/sweep" },
    backend: { type: "string", default: "auto" },
    batch: { type: "string" },
    limit: { type: "string" },
    naive: { type: "boolean", default: false },
    algebra: { type: "boolean", default: false },
    "dense-kernel": { type: "boolean", default: false },
    workers: { type: "string" },
    k: { type: "string" },
    criterion: { type: "string", default: "mean" },
    seeds: { type: "string" },
    "taylor-images": { type: "string" },
    scale: { type: "string" },
    mean: { type: "string" },
    std: { type: "string" },
    "shared-scale": { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  }, "sweep");
  if (values.help) {
    console.log(HELP);
    return;
  }
  const started = new Date().toISOString();
  const timings: Record<string, number> = {};
  const clock = (name: string, t0: number) => (timings[name] = (performance.now() - t0) / 1000);
  const batch = positiveInt("batch", values.batch, 256);
  const workers = positiveInt("workers", values.workers, 1);
  const limit = positiveInt("limit", values.limit, Infinity);
  const flags = parsePreprocessing(values);
  const kValues = values.k === undefined ? undefined : parseKList(values.k);
  const criteria = parseCriteria(values.criterion!);
  const seeds = positiveInt("seeds", values.seeds, 5);
  const taylorImages = positiveInt("taylor-images", values["taylor-images"], 512);
  const engine = values.naive
    ? "naive"
    : values.algebra
    ? "algebra"
    : values["dense-kernel"]
    ? "dense-kernel"
    : "exact";
  if ([values.naive, values.algebra, values["dense-kernel"]].filter(Boolean).length > 1) {
    throw new UserError("--naive, --algebra and --dense-kernel are three engines: pass one of them.");
  }

  let t0 = performance.now();
  const backend = await setupBackend(values.backend as BackendName);
  const modelPath = values.model ?? DEFAULT_MODEL;
  const loaded = await loadModel(modelPath, { preprocessing: flags, config: values.config });
  const layer = pickLayer(loaded.model, values.layer);
  assertUncoupled(loaded.model, layer);
  for (const c of criteria) c.check?.(loaded.model, layer);
  if (kValues) {
    const bad = kValues.find((k) => k > layer.channels);
    if (bad !== undefined) {
      throw new UserError(`--k ${bad} is more than the ${layer.channels} channels of ${layer.name}.`);
    }
  }
  const dataDir = await resolveDataDir({ data: values.data, fetch: true });
  const test = await loadTestSet(dataDir, limit);
  clock("load", t0);
  const prep = loaded.preprocessing;
  console.error(
    `sweep: ${modelPath} (${loaded.format}), layer ${layer.name} (${layer.channels} channels, ` +
      `${
        layer.outputShape.join("x")
      }, ${layer.activation}), ${test.count} test images, backend ${backend}, ` +
      `preprocessing ${loaded.preprocessingSource} (x*${
        prep.scale.toPrecision(4)
      } - [${prep.mean}]) / [${prep.std}]`,
  );

  t0 = performance.now();
  const split = await splitModelAsync(loaded.model, layer);
  // --algebra / --dense-kernel: their rows (linear_head.ts), refused here, before the prefix pass,
  // where they do not apply; one source serves every ranking's sweep.
  const rows = engine === "naive" ? undefined : await engineRows(loaded.model, split, engine);
  // --workers N: the prefix pass and the fast sweeps shared by N workers (closed when run() returns).
  // The pool cuts the model with synchronous reads (parallel.ts), which WebGPU cannot do.
  if (workers > 1 && backend === "webgpu") {
    throw new UserError("--workers runs on cpu or wasm only; with --backend webgpu use --workers 1.");
  }
  using pool = workers > 1 ? await SweepPool.start(loaded.model, layer, { workers, backend }) : null;
  const prefixBar = new Progress({ label: "layer outputs", total: test.count, unit: "img" });
  const onPrefix = (n: number) => prefixBar.set(n);
  const outputs = pool
    ? await pool.layerOutputs(test, prep, { batch, onProgress: onPrefix })
    : await computeLayerOutputs(split, test, prep, { batch, onProgress: onPrefix });
  prefixBar.done();
  clock("prefix", t0);

  t0 = performance.now();
  const maps = averageMaps(outputs);
  const stats = channelStats(outputs, split.activationOfZero);
  const dead = deadChannels(stats);
  const rankings = await computeRankings(criteria, {
    model: loaded.model,
    layer,
    split,
    stats,
    prep,
    outputKind: outputKind(loaded.model),
    gradientImages: () => loadTrainSet(dataDir, taylorImages),
  }, seeds);
  clock("rank", t0);

  t0 = performance.now();
  const ks = kValues ?? Array.from({ length: layer.channels + 1 }, (_, k) => k);
  const sweepBar = new Progress({
    label: values.naive ? "naive sweep" : "sweep",
    total: ks.length * rankings.length,
    unit: "K",
  });
  // One sweep per ranking, all from the same cached layer outputs (or, --naive, the same model).
  const runs: CriterionRun[] = [];
  for (const [i, r] of rankings.entries()) {
    const onProgress = (k: number) => sweepBar.set(i * ks.length + k);
    const points = values.naive
      ? await sweepNaive(loaded.model, layer, test, prep, r.ranking, { kValues, batch, onProgress })
      : pool
      ? await pool.sweep(outputs, test.labels, r.ranking, {
        kValues,
        onProgress,
        engine: engine === "naive" ? undefined : engine,
      })
      : rows
      ? await sweepIncremental(split, outputs, test.labels, r.ranking, {
        kValues,
        rows,
        onWork: (done, total) => onProgress(Math.floor((done / total) * ks.length)),
      })
      : await sweepFast(split, outputs, test.labels, r.ranking, { kValues, onProgress });
    runs.push({
      criterion: r.criterion.name,
      label: r.criterion.label,
      seed: r.seed,
      ranking: r.ranking,
      results: points,
    });
  }
  const results = runs[0].results;
  const summaries = summarizeRuns(runs);
  const verdicts = verdictsAt(summaries, [0.25, 0.5, 0.75], layer.channels);
  sweepBar.done();
  clock("sweep", t0);

  const baseline = results.find((r) => r.k === 0)?.accuracy ?? NaN;
  const result: SweepResult = {
    model: modelPath,
    layer: layer.name,
    channels: layer.channels,
    criterion: criteria[0].name,
    backend,
    engine,
    samples: test.count,
    baselineAccuracy: baseline,
    results,
    timings,
  };

  t0 = performance.now();
  const out = values.out!;
  const [h, w, c] = layer.outputShape;
  await writeFileAtomic(
    join(out, "featuremaps.png"),
    featureMapGridPng(maps, h, w, c, { sharedScale: values["shared-scale"] }),
  );
  await writeFileAtomic(
    join(out, "featuremap_0.png"),
    featureMapPng(maps, h, w, c, 0, { sharedScale: values["shared-scale"] }),
  );
  await writeJson(join(out, "featuremaps.json"), {
    model: modelPath,
    layer: layer.name,
    images: test.count,
    height: h,
    width: w,
    channels: c,
    layout: "HWC: value of channel c at (y, x) is data[(y * width + x) * channels + c]",
    data: Array.from(maps),
  });
  for (const [i, c] of criteria.entries()) {
    const mine = runs.filter((r) => r.criterion === c.name);
    const ranked = rankingTable(i === 0 && !c.seeded ? [mine[0]] : mine, c.scoreName);
    await writeCsv(join(out, i === 0 ? "ranking.csv" : `ranking_${c.name}.csv`), ranked.header, ranked.rows);
    const detail = detailTable(mine);
    await writeCsv(join(out, `sweep_${c.name}.csv`), detail.header, detail.rows);
  }
  const table = runs.length === 1 ? detailTable(runs) : comparisonTable(summaries);
  await writeCsv(join(out, "sweep.csv"), table.header, table.rows);
  clock("outputs", t0);
  timings.total = Object.values(timings).reduce((s, x) => s + x, 0);
  await writeJson(join(out, "sweep.json"), {
    ...result,
    naive: values.naive,
    preprocessing: prep,
    criteria: criteria.map((c) => c.name),
    seeds: criteria.some((c) => c.seeded) ? seeds : undefined,
    deadChannels: dead,
    series: runs.map((r) => ({
      criterion: r.criterion,
      seed: r.seed,
      order: r.ranking.order,
      results: r.results,
    })),
    comparison: summaries,
    verdicts,
  });
  const accuracySpec = accuracyChart(
    runs.length === 1 ? [{ criterion: criteria[0].label, points: results }] : comparisonSeries(summaries),
    {
      title: `${layer.name}: test accuracy vs channels pruned (${test.count} images)`,
      baseline,
      channels: layer.channels,
    },
  );
  await writeChart(join(out, "accuracy"), accuracySpec);
  const summary = summaryLines(result, out, criteriaSummary(summaries, verdicts, dead, layer.channels));
  console.log(summary.join("\n"));

  // The confusion matrices at K = 0 and the 1-point K: from the cached outputs (masked, suffix
  // only), or with --naive by zeroing the weights and running the whole model (the same counts,
  // tested in confusion_test.ts); then report.html.
  t0 = performance.now();
  const confusionKs = [...new Set([0, bandKs(result)[0].k])];
  const confusion = values.naive
    ? await confusionAtK(
      loaded.model,
      layer,
      test,
      prep,
      runs[0].ranking,
      confusionKs,
      loaded.classNames,
      batch,
    )
    : await confusionFromOutputs(
      split,
      outputs,
      test.labels,
      runs[0].ranking,
      confusionKs,
      loaded.classNames,
      batch,
    );
  for (const m of confusion) {
    await writeConfusionFiles(out, m, { layer: layer.name, criterion: criteria[0].name });
  }
  clock("confusion", t0);
  await writeReport(
    join(out, "report.html"),
    sweepReport({
      result,
      summary,
      accuracySpec,
      ranked: runs[0],
      scoreName: criteria[0].scoreName,
      rankingTable: rankingTable([runs[0]], criteria[0].scoreName),
      tiles: featureMapTiles(maps, h, w, c),
      confusion,
      run: await runRecord(["sweep", ...args], {
        started,
        model: { path: modelPath, format: loaded.format },
        data: { path: dataDir, images: test.count },
        layer: layer.name,
        backend,
        engine,
        workers,
        timings,
      }),
    }),
  );
  console.log(`report: ${join(out, "report.html")} (confusion matrices ${formatSeconds(timings.confusion)})`);
}

/** Summary lines about the criteria and the dead channels. */
function criteriaSummary(
  summaries: ReturnType<typeof summarizeRuns>,
  verdicts: ReturnType<typeof verdictsAt>,
  dead: ReturnType<typeof deadChannels>,
  channels: number,
): string[] {
  const lines = [
    dead.length === 0
      ? "dead channels (always the pruned value; pruning them costs nothing): none"
      : `dead channels (always the pruned value; pruning them costs nothing): ${dead.length} of ${channels}: ${
        dead.map((d) => d.channel).join(", ")
      }`,
  ];
  if (summaries.length > 1) {
    for (const v of verdicts) {
      const accs = v.accuracies.map((a) => `${a.criterion} ${(a.accuracy * 100).toFixed(2)}%`).join(", ");
      lines.push(`at ${v.fraction * 100}% pruned (K = ${v.k}): ${accs}; best: ${v.best.join(", ")}`);
    }
  }
  return lines;
}

function summaryLines(r: SweepResult, out: string, extra: string[] = []): string[] {
  const pct = (x: number) => `${(x * 100).toFixed(2)}%`;
  const lines = [
    `baseline accuracy (K = 0): ${pct(r.baselineAccuracy)} on ${r.samples} images`,
    ...SUMMARY_BANDS.map((p) => {
      const k = largestKWithin(r.results, p);
      const acc = r.results.find((x) => x.k === k)!.accuracy;
      return `within ${p} point${p > 1 ? "s" : ""}: up to K = ${k} of ${r.channels} channels (${
        (100 * k / r.channels).toFixed(0)
      }%), accuracy ${pct(acc)}`;
    }),
    ...extra,
    `timings: ${Object.entries(r.timings).map(([k, v]) => `${k} ${formatSeconds(v)}`).join(", ")}`,
    `outputs in ${out}/`,
  ];
  return lines;
}
