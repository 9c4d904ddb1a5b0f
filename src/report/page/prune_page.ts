/**
 * The report.html record of `prune`: the accuracy sweep of each layer whose K was chosen by a
 * sweep, the fine-tuning recovery chart when there was fine-tuning, the per-layer surgery table,
 * the before / masked / slim (/ fine-tuned) figures and the run record. Pure: plain numbers in,
 * a `ReportRecord` out.
 */
import type { SweepPoint } from "../../types.ts";
import { accuracyChart } from "../../viz/charts.ts";
import type { ReportChart, ReportRecord, RunRecord } from "./html.ts";
import type { CompressionReport, ModelFigures } from "../prune_report.ts";

/** What {@link pruneReport} needs besides compression.json's record. */
export interface PrunePageInput {
  report: CompressionReport;
  summary: string[];
  /** The sweeps that chose K (--max-drop), per layer. */
  sweeps: Record<string, SweepPoint[]>;
  /** The recovery chart's vega-lite spec, after fine-tuning. */
  recoverySpec?: object;
  run: RunRecord;
}

/**
 * The page of a prune run.
 *
 * @example
 * ```ts
 * await writeReport(join(out, "report.html"), pruneReport(input));
 * ```
 */
export function pruneReport(input: PrunePageInput): ReportRecord {
  const { report } = input;
  const row = (
    model: string,
    f: ModelFigures,
  ) => [
    model,
    f.accuracy,
    f.parameters,
    f.multiplyAdds,
    f.weightsBinBytes,
    f.latencyMs.batch1,
    f.latencyMs.batch256,
  ];
  const accuracyOnly = (
    model: string,
    accuracy: number | null,
  ) => [model, accuracy, null, null, null, null, null];
  const charts: ReportChart[] = Object.entries(input.sweeps).map(([layer, points], i) => {
    const baseline = points.find((p) => p.k === 0)?.accuracy ?? NaN;
    return {
      id: `sweep-${i}`,
      title: `Accuracy against pruned channels: ${layer}`,
      caption: "The sweep K was chosen from (channels masked, on the unpruned model); hover for values.",
      spec: accuracyChart([{ criterion: layer, points }], {
        title: `${layer}: test accuracy vs channels pruned`,
        baseline,
        channels: report.layers.find((l) => l.layer === layer)?.channelsBefore ?? points.length - 1,
      }),
    };
  });
  if (input.recoverySpec) {
    charts.push({ id: "recovery", title: "Fine-tuning after pruning", spec: input.recoverySpec });
  }
  return {
    title: `prunescope prune: ${
      report.layers.map((l) => `${l.layer} -${l.k}`).join(", ")
    } of ${input.run.model.path}`,
    summary: input.summary,
    charts,
    tables: [
      {
        title: "Pruned layers",
        header: ["layer", "K", "channels before", "channels after", "carrier", "consumer", "fold"],
        rows: report.layers.map((l) => [
          l.layer,
          l.k,
          l.channelsBefore,
          l.channelsAfter,
          l.carrier,
          l.consumer,
          l.fold,
        ]),
      },
      {
        title: "Before and after",
        header: [
          "model",
          "test accuracy",
          "parameters",
          "multiply-adds",
          "weights.bin bytes",
          "latency batch 1 (ms)",
          "latency batch 256 (ms)",
        ],
        rows: [
          row("before", report.before),
          accuracyOnly("masked (zeroed)", report.masked.accuracy),
          row("slim", report.after),
          ...(report.finetuned ? [accuracyOnly("fine-tuned", report.finetuned.accuracy)] : []),
        ],
      },
    ],
    run: input.run,
  };
}
