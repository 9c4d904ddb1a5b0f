/**
 * What `sweep` prints at the end: the sweep's figures (baseline, K within 1, 2, 5 points), the
 * criteria's verdicts and the dead channels.
 */
import type { SweepResult } from "../types.ts";
import type { DeadChannel } from "../rank/activation.ts";
import { bandChoices, chosenOnText } from "../sweep/summary.ts";
import { formatSeconds } from "../ui/progress.ts";
import type { CriterionSummary, FractionVerdict } from "./compare.ts";

/** Summary lines about the criteria and the dead channels. */
export function criteriaSummary(
  summaries: CriterionSummary[],
  verdicts: FractionVerdict[],
  dead: DeadChannel[],
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

/**
 * The lines `sweep` prints at the end: the baseline, how far K goes within 1, 2 and 5 points
 * (on the held-out curve when there is one, test accuracy reported; each line says which), `extra` lines, the timings and where the outputs are.
 */
export function sweepSummary(r: SweepResult, out: string, extra: string[] = []): string {
  const pct = (x: number) => `${(x * 100).toFixed(2)}%`;
  const lines = [
    `baseline accuracy (K = 0): ${pct(r.baselineAccuracy)} on ${r.samples} images`,
    ...(r.calib
      ? [
        `held-out data (ranks and chooses K): ${r.calib.source}, ${r.calib.images} images, baseline ${
          pct(r.calib.baselineAccuracy)
        }`,
      ]
      : []),
    ...bandChoices(r.results, r.calib).map((c) =>
      `within ${c.points} point${c.points > 1 ? "s" : ""} (${
        chosenOnText(c)
      }): up to K = ${c.k} of ${r.channels} ` +
      `channels (${(100 * c.k / r.channels).toFixed(0)}%), test accuracy ${pct(c.testAccuracy)}${
        c.calibAccuracy === undefined ? "" : ` (held-out ${pct(c.calibAccuracy)})`
      }`
    ),
    ...extra,
    `timings: ${Object.entries(r.timings).map(([k, v]) => `${k} ${formatSeconds(v)}`).join(", ")}`,
    `outputs in ${out}/`,
  ];
  return lines.join("\n");
}
