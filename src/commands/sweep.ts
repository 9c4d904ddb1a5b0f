/**
 * `deno task sweep`: the lab experiment as one command. Load CIFAR-10 and a model, take the
 * chosen conv layer's outputs over the test set once, draw the average feature maps, rank the
 * channels, evaluate accuracy for every K = 0..C pruned channels and chart it.
 *
 * Flow: args -> data -> model -> layer -> split -> prefix pass (LayerOutputs) -> ranking
 * -> sweep (fast engine or --naive) -> writers. Everything is validated before the first write.
 */
import { join } from "node:path";
import { UserError } from "../core/errors.ts";
import { engineFlags, parseFlags, parseKList, parsePreprocessing, positiveInt } from "../cli/args.ts";
import { openSession, Stopwatch } from "../cli/session.ts";
import { openOutDir } from "../cli/out_dir.ts";
import { pickLayer } from "../model/layers.ts";
import { splitModelAsync } from "../model/split.ts";
import { assertFiniteScores, averageMaps } from "../activations/layer_outputs.ts";
import { chanceLevelWarning } from "../sweep/summary.ts";
import { channelStats, deadChannels } from "../rank/activation.ts";
import { mergedOutputStats } from "../rank/group_stats.ts";
import { assertGroupCriterion, computeRankings, criterionNames, parseCriteria } from "../rank/registry.ts";
import { outputKind } from "../model/class_scores.ts";
import { channelGroup, groupName } from "../model/coupling.ts";
import { type CriterionRun, summarizeRuns, verdictsAt } from "../report/compare.ts";
import { comparisonSeries, comparisonTable, detailTable, rankingTable } from "../report/criteria_tables.ts";
import { openEngine } from "../sweep/engine.ts";
import { criteriaSummary, sweepSummary } from "../report/sweep_summary.ts";
import type { SweepResult } from "../types.ts";
import { writeChart, writeCsv, writeJson } from "../report/outputs.ts";
import { accuracyChart } from "../viz/charts.ts";
import { formatSeconds, Progress } from "../ui/progress.ts";
import { confusionAtK, confusionFromOutputs } from "../surgery/confusion.ts";
import { writeConfusionFiles } from "../report/confusion_tables.ts";
import { writeReport } from "../report/html.ts";
import { runRecord } from "../report/run_record.ts";
import { bandKs, sweepReport } from "../report/sweep_report.ts";
import { featureMapTiles } from "../viz/featuremap_tiles.ts";
import { writeFeatureMapFiles, writeRankingFiles } from "../report/sweep_files.ts";

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
  const clock = new Stopwatch();
  const batch = positiveInt("batch", values.batch, 256);
  const workers = positiveInt("workers", values.workers, 1);
  const limit = positiveInt("limit", values.limit, Infinity);
  const flags = parsePreprocessing(values);
  const kValues = values.k === undefined ? undefined : parseKList(values.k);
  const criteria = parseCriteria(values.criterion!);
  const seeds = positiveInt("seeds", values.seeds, 5);
  const taylorImages = positiveInt("taylor-images", values["taylor-images"], 512);
  const engine = engineFlags(values);

  // The output folder is checked and locked before any model or data is read.
  await using _claim = await openOutDir(values.out!, "--out", "sweep");
  const session = await openSession(values, flags);
  const { backend, modelPath, loaded, prep } = session;
  // A coupled conv is swept with its whole channel group, cut at the member that runs first.
  const picked = pickLayer(loaded.model, values.layer);
  const group = channelGroup(loaded.model, picked);
  const layer = group ? group.members[0] : picked;
  const members = group ? group.members.slice(1) : [];
  const layerName = group ? groupName(group) : layer.name;
  if (group) { for (const c of criteria) assertGroupCriterion(c, layerName); }
  for (const c of criteria) c.check?.(loaded.model, layer);
  if (kValues) {
    const bad = kValues.find((k) => k > layer.channels);
    if (bad !== undefined) {
      throw new UserError(`--k ${bad} is more than the ${layer.channels} channels of ${layer.name}.`);
    }
  }
  const test = await session.testSet(limit);
  clock.lap("load");
  console.error(
    `sweep: ${modelPath} (${loaded.format}), ${
      group ? "channel group" : "layer"
    } ${layerName} (${layer.channels} channels, ` +
      `${
        layer.outputShape.join("x")
      }, ${layer.activation}), ${test.count} test images, backend ${backend}, ` +
      `preprocessing ${loaded.preprocessingSource} (x*${
        prep.scale.toPrecision(4)
      } - [${prep.mean}]) / [${prep.std}]`,
  );

  clock.restart();
  const split = await splitModelAsync(loaded.model, layer, members.map((m) => m.name));
  // The engine refuses here, before the prefix pass, what does not apply; with --workers N its
  // workers share the prefix pass and the sweeps (closed when run() returns).
  using sweeper = await openEngine(engine, { model: loaded.model, layer, split, data: test, prep }, {
    workers,
    backend,
    batch,
  });
  const prefixBar = new Progress({ label: "layer outputs", total: test.count, unit: "img" });
  const outputs = await sweeper.layerOutputs({ batch, onProgress: (n) => prefixBar.set(n) });
  prefixBar.done();
  // NaN or Infinity in the layer outputs (computeLayerOutputs, in the workers too) or in the K = 0
  // scores stops the run here, in one line.
  await assertFiniteScores(split, outputs, batch);
  clock.lap("prefix");

  const maps = averageMaps(outputs);
  // A group's activation statistics are its merged output's (one more pass, to the last merge).
  const stats = group
    ? await mergedOutputStats(loaded.model, group, test, prep, { fill: split.activationOfZero, batch })
    : channelStats(outputs, split.activationOfZero);
  const dead = deadChannels(stats);
  const rankings = await computeRankings(criteria, {
    model: loaded.model,
    layer,
    members,
    split,
    stats,
    prep,
    outputKind: outputKind(loaded.model),
    gradientImages: () => session.trainSet(taylorImages),
  }, seeds);
  clock.lap("rank");

  const ks = kValues ?? Array.from({ length: layer.channels + 1 }, (_, k) => k);
  const sweepBar = new Progress({
    label: values.naive ? "naive sweep" : "sweep",
    total: ks.length * rankings.length,
    unit: "K",
  });
  // One sweep per ranking, all from the same cached layer outputs (or, --naive, the same model).
  const runs: CriterionRun[] = [];
  for (const [i, r] of rankings.entries()) {
    const points = await sweeper.sweep(outputs, r.ranking, {
      kValues,
      onProgress: (done, total) => sweepBar.set(i * ks.length + Math.floor((done / total) * ks.length)),
    });
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
  clock.lap("sweep");

  const baseline = results.find((r) => r.k === 0)?.accuracy ?? NaN;
  const chance = chanceLevelWarning(baseline, test.count);
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
  const table = runs.length === 1 ? detailTable(runs) : comparisonTable(summaries);
  await writeCsv(join(out, "sweep.csv"), table.header, table.rows);
  clock.lap("outputs");
  clock.total();
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
  const summary = sweepSummary(result, out, criteriaSummary(summaries, verdicts, dead, layer.channels)).split(
    "\n",
  );
  console.log(summary.join("\n"));

  // The confusion matrices at K = 0 and the 1-point K: from the cached outputs (masked, suffix
  // only), or with the naive engine by zeroing the weights and running the whole model (the same
  // counts, tested in confusion_test.ts); then report.html.
  clock.restart();
  const confusionKs = [...new Set([0, bandKs(result)[0].k])];
  const confusion = engine === "naive"
    ? await confusionAtK(
      loaded.model,
      layer,
      test,
      prep,
      runs[0].ranking,
      confusionKs,
      loaded.classNames,
      batch,
      members.map((m) => m.name),
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
      run: await runRecord(["sweep", ...args], {
        started,
        model: { path: modelPath, format: loaded.format },
        data: { path: await session.dataDir(), images: test.count },
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
