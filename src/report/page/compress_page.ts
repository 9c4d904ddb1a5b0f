/**
 * The report.html record of `compress`: the Pareto chart, the recovery chart when there was
 * fine-tuning, the plan per unit, the Pareto table and the run record. Pure: plain numbers in,
 * a `ReportRecord` out.
 */
import type { ParetoRow } from "../../surgery/plan.ts";
import type { ReportChart, ReportRecord, RunRecord } from "./html.ts";
import type { CompressRecord } from "../compress_report.ts";

/** What {@link compressReport} needs besides compress.json's record. */
export interface CompressPageInput {
  record: CompressRecord;
  rows: ParetoRow[];
  summary: string[];
  paretoSpec: object;
  recoverySpec?: object;
  run: RunRecord;
}

/**
 * The page of a compress run.
 *
 * @example
 * ```ts
 * await writeReport(join(out, "report.html"), compressReport(input));
 * ```
 */
export function compressReport(input: CompressPageInput): ReportRecord {
  const { record: r } = input;
  const charts: ReportChart[] = [{
    id: "pareto",
    title: "Test accuracy against multiply-adds",
    caption: "Sensitivity-guided plans and uniform ratios at each budget, pruned and fine-tuned.",
    spec: input.paretoSpec,
  }];
  if (input.recoverySpec) {
    charts.push({ id: "recovery", title: "Fine-tuning the compressed model", spec: input.recoverySpec });
  }
  return {
    title: `prunescope compress: ${
      (r.macsRemovedFraction * 100).toFixed(1)
    }% of multiply-adds removed from ${r.model}`,
    summary: input.summary,
    charts,
    tables: [
      {
        title: "Plan",
        caption: r.method,
        header: ["unit", "channels", "K", "removed", "carrier", "uniform K"],
        rows: r.units.map((
          u,
        ) => [u.name, u.channels, u.k, u.removed, u.carrier ? "yes" : "no", r.uniform.plan[u.name] ?? 0]),
      },
      {
        title: "Pareto points",
        header: [
          "budget",
          "method",
          "multiply-adds kept",
          "parameters kept",
          "test pruned",
          "test BN recalibrated",
          "test fine-tuned",
        ],
        rows: input.rows.map((
          x,
        ) => [x.budget, x.method, x.macsKept, x.paramsKept, x.testPruned, x.testRecalibrated, x.testAfter]),
      },
    ],
    run: input.run,
  };
}
