/**
 * The report.html record of a sweep: its accuracy chart, the feature maps in ranking order with
 * the channels pruned at the 1-, 2- and 5-point K marked, the confusion matrices, per-class
 * accuracy against K when the sweep has it, the ranking table and the run record. Pure: plain
 * numbers in, a `ReportRecord` out.
 */
import type { SweepResult } from "../../types.ts";
import type { ConfusionMatrix } from "../../surgery/confusion.ts";
import type { CriterionRun } from "../compare.ts";
import { bandChoices } from "../../sweep/summary.ts";
import { type ClassAccuracyData, confusionChart } from "../../viz/class_charts.ts";
import { classChart } from "../class_tables.ts";
import type { ReportChart, ReportRecord, ReportTable, RunRecord } from "./html.ts";
import type { Table } from "../criteria_tables.ts";
import { confusionTable } from "../confusion_tables.ts";

/** What {@link sweepReport} needs. */
export interface SweepReportInput {
  result: SweepResult;
  run: RunRecord;
  /** The lines the terminal summary printed. */
  summary: string[];
  /** The accuracy chart's vega-lite spec (every criterion). */
  accuracySpec: object;
  /** The first criterion's (first seed's) run: its ranking orders the feature maps. */
  ranked: CriterionRun;
  /** Name of the ranking's score, e.g. "mean_activation". */
  scoreName: string;
  /** ranking.csv's table. */
  rankingTable: Table;
  /** One PNG per channel, indexed by channel. */
  tiles?: Uint8Array[];
  confusion: ConfusionMatrix[];
  /** Per-class correct counts for every K, when the engine gave them. */
  classAccuracy?: ClassAccuracyData;
}

/** The K where each summary band (1, 2, 5 points) ends, from the first ranking's sweep. */
export function bandKs(result: SweepResult): { points: number; k: number }[] {
  return bandChoices(result.results, result.calib).map(({ points, k }) => ({ points, k }));
}

/**
 * The page of a sweep.
 *
 * @example
 * ```ts
 * await writeReport(join(out, "report.html"), sweepReport(input));
 * ```
 */
export function sweepReport(input: SweepReportInput): ReportRecord {
  const { result } = input;
  const charts: ReportChart[] = [{
    id: "accuracy",
    title: "Accuracy against pruned channels",
    caption: `${result.layer}, ${result.channels} channels, ${result.samples} test images; hover for values.`,
    spec: input.accuracySpec,
  }];
  for (const m of input.confusion) {
    charts.push({
      id: `confusion-k${m.k}`,
      title: `Confusion matrix at K = ${m.k}`,
      caption: `${m.correct} of ${m.total} right (${(100 * m.correct / m.total).toFixed(2)}%); ` +
        (m.k === 0 ? "nothing pruned." : `${input.ranked.label}: the ${m.k} first channels pruned.`),
      spec: confusionChart(m, { title: `${result.layer}, K = ${m.k}` }),
    });
  }
  if (input.classAccuracy) {
    charts.push({
      id: "class-accuracy",
      title: "Per-class accuracy against K",
      caption:
        `${input.ranked.label}; colour: the share of each class's test images right; hover for counts.`,
      spec: classChart(input.classAccuracy, result.layer),
    });
  }
  const order = input.ranked.ranking.order;
  const tables: ReportTable[] = [
    ...input.confusion.map((m) => ({
      title: `Confusion matrix at K = ${m.k}, as a table (rows: true class; columns: predicted)`,
      folded: true,
      ...confusionTable(m),
    })),
    {
      title: `Ranking (${input.ranked.label}; rank 0 is pruned first)`,
      ...input.rankingTable,
    },
  ];
  return {
    title: `prunescope sweep: ${result.layer} of ${input.run.model.path}`,
    summary: input.summary,
    charts,
    featureMaps: input.tiles
      ? {
        title: `Averaged feature maps of ${result.layer}, in ranking order`,
        scoreName: input.scoreName,
        bands: bandKs(result),
        tiles: order.map((channel, rank) => ({
          channel,
          rank,
          score: input.ranked.ranking.scores[channel],
          png: input.tiles![channel],
        })),
      }
      : undefined,
    tables,
    run: input.run,
  };
}
