/**
 * The report.html record of `sensitivity`: its chart, the NNI-layout table (top-1 per layer and
 * fraction), the Distiller-layout table (folded) and the run record. Pure: plain numbers in, a
 * `ReportRecord` out.
 */
import type { LayerSensitivityResult } from "../../sensitivity/scan.ts";
import type { ReportRecord, RunRecord } from "./html.ts";
import { distillerTable, nniTable } from "../sensitivity_tables.ts";

/** What {@link sensitivityReport} needs. */
export interface SensitivityReportInput {
  results: LayerSensitivityResult[];
  /** The requested fractions (NNI columns), or undefined for --step. */
  fractions?: number[];
  /** The sensitivity chart's vega-lite spec. */
  chartSpec: object;
  /** The lines the terminal summary printed. */
  summary: string[];
  run: RunRecord;
}

/**
 * The page of a sensitivity analysis.
 *
 * @example
 * ```ts
 * await writeReport(join(out, "report.html"), sensitivityReport(input));
 * ```
 */
export function sensitivityReport(input: SensitivityReportInput): ReportRecord {
  const nni = nniTable(input.results, input.fractions);
  return {
    title: `prunescope sensitivity: ${input.results.length} conv layers of ${input.run.model.path}`,
    summary: input.summary,
    charts: [{
      id: "sensitivity",
      title: "Accuracy with each conv layer pruned alone",
      caption: "Hover for values.",
      spec: input.chartSpec,
    }],
    tables: [
      {
        title: "Top-1 accuracy by layer and fraction of its channels pruned (NNI layout)",
        header: nni.header,
        rows: nni.rows,
      },
      {
        title: "Every point (Distiller layout: top-1 and top-5 in %)",
        folded: true,
        ...distillerTable(input.results),
      },
    ],
    run: input.run,
  };
}
