/**
 * The files of `sweep` beside its sweep.csv: the averaged feature maps (a grid PNG, channel 0
 * enlarged, the maps as JSON), the ranking and per-criterion sweep tables, and sweep.json.
 */
import { bandChoices } from "../sweep/summary.ts";
import { join } from "node:path";
import { writeFileAtomic } from "../core/atomic.ts";
import type { Criterion } from "../rank/registry.ts";
import { featureMapGridPng, featureMapPng } from "../viz/featuremaps.ts";
import type { Preprocessing, SweepResult } from "../types.ts";
import type { DeadChannel } from "../rank/activation.ts";
import type { CriterionRun, summarizeRuns, verdictsAt } from "./compare.ts";
import { detailTable, rankingTable } from "./criteria_tables.ts";
import { writeCsv, writeJson } from "./outputs.ts";

/**
 * featuremaps.png (all maps in a grid), featuremap_0.png (channel 0, viridis, colour bar) and
 * featuremaps.json (the H x W x C averages) in `out`.
 *
 * @example
 * ```ts
 * await writeFeatureMapFiles("out/sweep", maps, [2, 2, 128], { model, layer: "block5_conv3", images: 10000 });
 * ```
 */
export async function writeFeatureMapFiles(
  out: string,
  maps: Float32Array,
  [h, w, c]: number[],
  info: { model: string; layer: string; images: number; sharedScale?: boolean },
): Promise<void> {
  const opts = { sharedScale: info.sharedScale };
  await writeFileAtomic(join(out, "featuremaps.png"), featureMapGridPng(maps, h, w, c, opts));
  await writeFileAtomic(join(out, "featuremap_0.png"), featureMapPng(maps, h, w, c, 0, opts));
  await writeJson(join(out, "featuremaps.json"), {
    model: info.model,
    layer: info.layer,
    images: info.images,
    height: h,
    width: w,
    channels: c,
    layout: "HWC: value of channel c at (y, x) is data[(y * width + x) * channels + c]",
    data: Array.from(maps),
  });
}

/**
 * ranking.csv (the first criterion; ranking_<criterion>.csv for the others) and one
 * sweep_<criterion>.csv per criterion, every seed of a seeded criterion included.
 *
 * @example
 * ```ts
 * await writeRankingFiles("out/sweep", criteria, runs);
 * ```
 */
export async function writeRankingFiles(
  out: string,
  criteria: Criterion[],
  runs: CriterionRun[],
): Promise<void> {
  for (const [i, c] of criteria.entries()) {
    const mine = runs.filter((r) => r.criterion === c.name);
    const ranked = rankingTable(i === 0 && !c.seeded ? [mine[0]] : mine, c.scoreName);
    await writeCsv(join(out, i === 0 ? "ranking.csv" : `ranking_${c.name}.csv`), ranked.header, ranked.rows);
    const detail = detailTable(mine);
    await writeCsv(join(out, `sweep_${c.name}.csv`), detail.header, detail.rows);
  }
}

/** What sweep.json holds besides the `SweepResult`. */
export interface SweepRecord {
  naive: boolean;
  /** The workers, batch and memory budget of the run, and why each was chosen. */
  resources: { workers: number; batch: number; memoryBudgetBytes: number; chosen: Record<string, string> };
  prep: Preprocessing;
  criteria: Criterion[];
  seeds: number;
  dead: DeadChannel[];
  runs: CriterionRun[];
  summaries: ReturnType<typeof summarizeRuns>;
  verdicts: ReturnType<typeof verdictsAt>;
  /** Per-class counts, when the engine gave them. */
  classAccuracy?: { classes: string[]; images: number[] };
}

/**
 * sweep.json: the result, the preprocessing, the criteria (and seeds), the dead channels, every
 * series with its ranking order, and the criteria comparison.
 *
 * @example
 * ```ts
 * await writeSweepJson("out/sweep", result, { naive: false, resources, prep, criteria, seeds: 5, dead, runs, summaries, verdicts });
 * ```
 */
export async function writeSweepJson(out: string, result: SweepResult, r: SweepRecord): Promise<void> {
  await writeJson(join(out, "sweep.json"), {
    ...result,
    naive: r.naive,
    ...r.resources,
    preprocessing: r.prep,
    criteria: r.criteria.map((c) => c.name),
    seeds: r.criteria.some((c) => c.seeded) ? r.seeds : undefined,
    deadChannels: r.dead,
    classes: r.classAccuracy?.classes,
    classImages: r.classAccuracy?.images,
    series: r.runs.map((run) => ({
      criterion: run.criterion,
      seed: run.seed,
      order: run.ranking.order,
      results: run.results,
    })),
    // The 1/2/5-point K and the data that chose each (the held-out curve, or the test curve).
    bands: bandChoices(result.results, result.calib),
    comparison: r.summaries,
    verdicts: r.verdicts,
  });
}
