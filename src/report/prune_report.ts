/**
 * The report.html record of `prune`: the accuracy sweep of each layer whose K was chosen by a
 * sweep, the fine-tuning recovery chart when there was fine-tuning, the per-layer surgery table,
 * the before / masked / slim (/ fine-tuned) figures and the run record. Pure: plain numbers in,
 * a `ReportRecord` out.
 */
import type { SweepPoint } from "../types.ts";
import { accuracyChart } from "../viz/charts.ts";
import type { ReportChart, ReportRecord, RunRecord } from "./html.ts";

/** One model's figures in the comparison table (null: not measured). */
export interface PruneFigures {
  model: string;
  accuracy: number;
  parameters: number | null;
  multiplyAdds: number | null;
  weightsBinBytes: number | null;
  latencyBatch1Ms: number | null;
  latencyBatch256Ms: number | null;
}

/** What {@link pruneReport} needs. */
export interface PruneReportInput {
  summary: string[];
  /** One row per pruned layer. */
  layers: {
    layer: string;
    k: number;
    channelsBefore: number;
    channelsAfter: number;
    carrier: number | null;
    consumer: string;
    fold: string;
  }[];
  figures: PruneFigures[];
  /** The sweeps that chose K (--max-drop), per layer. */
  sweeps: { layer: string; channels: number; points: SweepPoint[] }[];
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
export function pruneReport(input: PruneReportInput): ReportRecord {
  const charts: ReportChart[] = input.sweeps.map((s, i) => {
    const baseline = s.points.find((p) => p.k === 0)?.accuracy ?? NaN;
    return {
      id: `sweep-${i}`,
      title: `Accuracy against pruned channels: ${s.layer}`,
      caption: "The sweep K was chosen from (channels masked, on the unpruned model); hover for values.",
      spec: accuracyChart([{ criterion: s.layer, points: s.points }], {
        title: `${s.layer}: test accuracy vs channels pruned`,
        baseline,
        channels: s.channels,
      }),
    };
  });
  if (input.recoverySpec) {
    charts.push({ id: "recovery", title: "Fine-tuning after pruning", spec: input.recoverySpec });
  }
  return {
    title: `prunescope prune: ${
      input.layers.map((l) => `${l.layer} -${l.k}`).join(", ")
    } of ${input.run.model.path}`,
    summary: input.summary,
    charts,
    tables: [
      {
        title: "Pruned layers",
        header: ["layer", "K", "channels before", "channels after", "carrier", "consumer", "fold"],
        rows: input.layers.map((l) => [
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
        rows: input.figures.map((f) => [
          f.model,
          f.accuracy,
          f.parameters,
          f.multiplyAdds,
          f.weightsBinBytes,
          f.latencyBatch1Ms,
          f.latencyBatch256Ms,
        ]),
      },
    ],
    run: input.run,
  };
}
