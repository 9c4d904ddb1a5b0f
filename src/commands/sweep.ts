/**
 * `deno task sweep`: the lab experiment as one command. Load a model and its test data, take the
 * chosen conv layer's outputs over the test set once, draw the average feature maps, rank the
 * channels, evaluate accuracy for every K = 0..C pruned channels and chart it. Everything is
 * validated before the first write.
 */
import { join } from "node:path";
import {
  checkKValues,
  engineFlag,
  parseFlags,
  parseKList,
  parsePreprocessing,
  positiveInt,
  workersFlag,
} from "../cli/args.ts";
import { planSweepRun } from "../cli/resources.ts";
import {
  calibCurve,
  confusionFiles,
  layerOutputsWithProgress,
  rankChannels,
  sweepEveryRanking,
  sweepHeadline,
} from "../cli/sweep_runs.ts";
import { CALIB_FLAGS, CALIB_HELP, DATA_FLAGS, DATA_HELP, openSession, Stopwatch } from "../cli/session.ts";
import { openOutDir } from "../cli/out_dir.ts";
import { pickLayer } from "../model/layers.ts";
import { splitModelAsync } from "../model/split.ts";
import { assertFiniteScores, averageMaps } from "../activations/layer_outputs.ts";
import { chanceLevelWarning } from "../sweep/summary.ts";
import { assertGroupCriterion, criterionNames, parseCriteria } from "../rank/registry.ts";
import { sweepTarget } from "../model/coupling.ts";
import { summarizeRuns, verdictsAt } from "../report/compare.ts";
import { comparisonSeries, rankingTable, sweepTable } from "../report/criteria_tables.ts";
import { openEngine } from "../sweep/engine.ts";
import { criteriaSummary, sweepSummary } from "../report/sweep_summary.ts";
import type { SweepResult } from "../types.ts";
import { writeChart, writeCsv } from "../report/outputs.ts";
import { accuracyChart } from "../viz/charts.ts";
import { formatSeconds } from "../ui/progress.ts";
import { classAccuracyData, writeClassFiles } from "../report/class_tables.ts";
import { writeReport } from "../report/page/html.ts";
import { runRecord } from "../report/page/run_record.ts";
import { bandKs, sweepReport } from "../report/page/sweep_page.ts";
import { featureMapTiles } from "../viz/featuremap_tiles.ts";
import { writeFeatureMapFiles, writeRankingFiles, writeSweepJson } from "../report/sweep_files.ts";

const HELP = `deno task sweep [options]

The lab experiment: rank the channels of a conv layer by their mean activation over the test set,
prune the K weakest (kernel and bias zeroed) for every K = 0..C, and chart test accuracy against K.

Options:
  --model PATH       TF.js model.json, Keras .h5 or .keras      (default: the shipped VGG-16 model)
  --config PATH      Keras model.to_json() file, for a weights-only .h5
${DATA_HELP}
${CALIB_HELP}
                     (default: the test set ranks, as in the lab; with held-out data the test
                     curve is charted and reported, the 1/2/5-point K read off the held-out one)
  --layer NAME       conv layer to prune                         (default: the last Conv2D)
  --out DIR          output folder                               (default out/sweep)
  --backend B        auto | webgpu | wasm | cpu                  (default auto: webgpu on a real GPU, else wasm)
  --batch N          images per forward pass      (default auto: what the memory budget holds, 16-1024)
  --limit N          use only the first N test images            (default all 10,000)
  --workers N|auto   worker threads sharing the prefix pass and the sweep (same results)
                     (default auto: the cores, capped by memory, 1024 images a worker at least)
  --engine E         how each K is evaluated (default auto: dense-kernel after a Dense head of 2 M
                     weights or more, where it pays, else exact):
                     exact         re-run the suffix only for images whose layer output changed
                     dense-kernel  the same rows, the Dense layers after the layer on prunescope's
                                   wasm kernel that skips zeros: exact, faster on dense heads
                     algebra       update the first Dense layer per pruned channel instead of
                                   recomputing it; the last bits of a score can differ, so an image
                                   at a near-tie can flip (bench --verify counts them)
                     naive         the lab's literal method: zero the weights, re-run the whole model
                     (--naive, --algebra, --dense-kernel: the same, as aliases)
  --k LIST           only these K values, e.g. 0,8,16 or 0:64:8  (default 0..C)
  --criterion LIST   ranking criteria to compare, e.g. mean,apoz,l1,random,largest  (default mean)
                     one of: ${criterionNames()}
  --seeds N          runs of the random criterion (seeds 1..N), drawn as mean and min-max band (default 5)
  --taylor-images N  training images the taylor criterion takes gradients on         (default 512)
  --scale X, --mean R,G,B, --std R,G,B   preprocessing when the model's metadata has none
                     ((x * scale - mean) / std; default 1/255, 0,0,0, 1,1,1)
  --shared-scale     draw all feature maps on one value range (default: each its own, like imshow)
  -h, --help         this text

Writes to --out: featuremaps.png, featuremap_0.png, featuremaps.json, ranking.csv, sweep.csv,
sweep.json, accuracy.svg, accuracy.png, sweep_classes.csv (per-class correct and accuracy for every K)
and sweep_classes.svg/.png (its heatmap), confusion_k0.* and confusion_k<K>.* (K: the largest K within
1 point; .csv, .json, .svg, .png), report.html (all of it on one page); and per criterion
sweep_<criterion>.csv. With several criteria sweep.csv holds k and one accuracy column per criterion
(several seeds: _mean, _min, _max columns), ranking.csv the first criterion's ranking and
ranking_<criterion>.csv the others'.`;

/** Run the sweep command. */
export async function run(args: string[]): Promise<void> {
  const values = parseFlags(args, {
    model: { type: "string" },
    config: { type: "string" },
    ...DATA_FLAGS,
    ...CALIB_FLAGS,
    layer: { type: "string" },
    out: { type: "string", default: "out/sweep" },
    backend: { type: "string", default: "auto" },
    batch: { type: "string" },
    limit: { type: "string" },
    engine: { type: "string" },
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
  const clock = new Stopwatch();
  const batchFlag = values.batch === undefined ? undefined : positiveInt("batch", values.batch, 256);
  const workersChoice = workersFlag(values.workers);
  const limit = positiveInt("limit", values.limit, Infinity);
  const flags = parsePreprocessing(values);
  const kValues = values.k === undefined ? undefined : parseKList(values.k);
  const criteria = parseCriteria(values.criterion!);
  const seeds = positiveInt("seeds", values.seeds, 5);
  const taylorImages = positiveInt("taylor-images", values["taylor-images"], 512);
  const engineChoice = engineFlag(values);

  // The output folder is checked and locked before any model or data is read.
  await using _claim = await openOutDir(values.out!, "--out", "sweep");
  const session = await openSession(values, flags);
  const { backend, modelPath, loaded, prep } = session;
  // A coupled conv is swept with its whole channel group, cut at the member that runs first.
  const target = sweepTarget(loaded.model, pickLayer(loaded.model, values.layer));
  const { layer, members, name: layerName, group } = target;
  if (group) { for (const c of criteria) assertGroupCriterion(c, layerName); }
  for (const c of criteria) c.check?.(loaded.model, layer);
  checkKValues(kValues, layer);
  const test = await session.testSet(limit);
  const calib = await session.calibSet();
  clock.lap("load");
  clock.restart();
  const split = await splitModelAsync(loaded.model, layer, members.map((m) => m.name));
  const task = { model: loaded.model, layer, split, data: test, prep };
  const { plan, engine, why } = await planSweepRun(
    "sweep",
    { workers: workersChoice, batch: batchFlag, engine: engineChoice },
    task,
    backend,
  );
  const { workers, batch } = plan;
  console.error(sweepHeadline({ modelPath, loaded, target, tests: test.count, calib, backend }));

  // Refuses what does not apply before the prefix pass; its workers close when run() returns.
  const engineOptions = { workers, backend, batch, memoryBudgetBytes: plan.memoryBudgetBytes };
  using sweeper = await openEngine(engine, task, engineOptions);
  // Held-out data gets an engine of its own: its outputs rank, its curve chooses K.
  using calibSweeper = calib ? await openEngine(engine, { ...task, data: calib.data }, engineOptions) : null;
  const outputs = await layerOutputsWithProgress(sweeper, test.count, batch);
  // NaN or Infinity in the layer outputs or in the K = 0 scores stops the run here, in one line.
  await assertFiniteScores(split, outputs, batch);
  clock.lap("prefix");

  const maps = averageMaps(outputs);
  const rankOn = calibSweeper
    ? {
      outputs: await layerOutputsWithProgress(calibSweeper, calib!.data.count, batch, "held-out"),
      data: calib!.data,
    }
    : { outputs, data: test };
  const { rankings, dead } = await rankChannels(rankOn.outputs, rankOn.data, criteria, seeds, {
    ...task,
    members,
    group,
    batch,
    gradientImages: () => session.trainSet(taylorImages),
  });
  clock.lap("rank");

  const ks = kValues ?? Array.from({ length: layer.channels + 1 }, (_, k) => k);
  const runs = await sweepEveryRanking(sweeper, outputs, rankings, kValues, ks.length);
  const results = runs[0].results;
  const calibResult = calibSweeper
    ? await calibCurve(calibSweeper, rankOn.outputs, rankings[0], kValues, ks.length, calib!)
    : undefined;
  const summaries = summarizeRuns(runs);
  const verdicts = verdictsAt(summaries, [0.25, 0.5, 0.75], layer.channels);
  clock.lap("sweep");

  const baseline = results.find((r) => r.k === 0)?.accuracy ?? NaN;
  const chance = chanceLevelWarning(baseline, test.count, loaded.io.classes);
  if (chance) console.error(chance);
  const result: SweepResult = {
    model: modelPath,
    layer: layerName,
    ...(group ? { members: group.members.map((m) => m.name) } : {}),
    channels: layer.channels,
    criterion: criteria[0].name,
    backend,
    engine,
    samples: test.count,
    baselineAccuracy: baseline,
    results,
    timings: clock.timings,
    ...(calibResult ? { calib: calibResult } : {}),
  };

  clock.restart();
  const out = values.out!;
  const [h, w, c] = layer.outputShape;
  await writeFeatureMapFiles(out, maps, [h, w, c], {
    model: modelPath,
    layer: layer.name,
    images: test.count,
    sharedScale: values["shared-scale"],
  });
  await writeRankingFiles(out, criteria, runs);
  const table = sweepTable(runs, summaries, result.calib);
  await writeCsv(join(out, "sweep.csv"), table.header, table.rows);
  const classAccuracy = classAccuracyData(results, loaded.classNames, test.labels, test.count);
  if (classAccuracy) await writeClassFiles(out, classAccuracy, layer.name);
  clock.lap("outputs");
  clock.total();
  await writeSweepJson(out, result, {
    naive: engine === "naive",
    resources: { ...plan, chosen: { engine: why, ...plan.why } },
    prep,
    criteria,
    seeds,
    dead,
    runs,
    summaries,
    verdicts,
    classAccuracy,
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
  const summary = sweepSummary(result, out, criteriaSummary(summaries, verdicts, dead, layer.channels)).split(
    "\n",
  );
  console.log(summary.join("\n"));

  // The confusion matrices at K = 0 and the 1-point K (cli/sweep_runs.ts), then report.html.
  clock.restart();
  const confusionKs = [...new Set([0, bandKs(result)[0].k])];
  const confusion = await confusionFiles(out, engine === "naive", confusionKs, {
    ...task,
    members: members.map((m) => m.name),
    outputs,
    ranking: runs[0].ranking,
    classes: loaded.classNames,
    batch,
  }, { layer: layer.name, criterion: criteria[0].name });
  clock.lap("confusion");
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
      classAccuracy,
      run: await runRecord(["sweep", ...args], {
        started,
        model: { path: modelPath, format: loaded.format },
        data: { path: await session.dataDir(), images: test.count },
        ...(calib ? { calib: { source: calib.source, images: calib.data.count } } : {}),
        layer: layer.name,
        backend,
        engine,
        workers,
        timings: clock.timings,
      }),
    }),
  );
  console.log(
    `report: ${join(out, "report.html")} (confusion matrices ${formatSeconds(clock.timings.confusion)})`,
  );
}
