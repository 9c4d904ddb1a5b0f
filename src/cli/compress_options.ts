/**
 * `compress`'s flags as typed options: the budget, the allocation's and fine-tune's settings,
 * each checked with a one-line error naming the flag.
 */
import { positiveInt, positiveNumber } from "./args.ts";
import { criterionByName } from "../rank/registry.ts";
import { budgetFraction, parseBudget } from "../surgery/allocate.ts";
import { FINETUNE_PEAK_LR } from "../train/finetune.ts";

/** The raw flag values `compressOptions` reads (strings as parsed, `criterion` and `pareto` defaulted). */
export type CompressFlags = Record<string, string | boolean | undefined>;

/**
 * Check and convert `compress`'s flags.
 *
 * @example
 * ```ts
 * const o = compressOptions({ "target-macs": "0.7", criterion: "mean", pareto: "0.8,0.5" });
 * o.budget; // { metric: "macs", keep: 0.7 }
 * o.recalImages; // 1000
 * ```
 */
export function compressOptions(v: CompressFlags) {
  const str = (k: string) => v[k] as string | undefined;
  const budget = parseBudget(str("target-macs"), str("target-params"), str("max-drop"));
  const criterion = criterionByName(str("criterion")!);
  const seed = positiveInt("seed", str("seed"), 1);
  const steps = positiveInt("steps", str("steps"), 8);
  const valSize = positiveInt("val-size", str("val-size"), 5000);
  const valSeed = positiveInt("val-seed", str("val-seed"), 1, true);
  const recalImages = positiveInt("recalibrate", str("recalibrate"), 1000, true);
  const epochs = positiveInt("finetune-epochs", str("finetune-epochs"), 1, true);
  const peakLr = positiveNumber("finetune-lr", str("finetune-lr"), FINETUNE_PEAK_LR);
  const trainLimit = positiveInt("train-limit", str("train-limit"), Infinity);
  const pareto = str("pareto")!.split(",").map((v) => budgetFraction("--pareto", v.trim()));
  const paretoEpochs = positiveInt("pareto-epochs", str("pareto-epochs"), epochs, true);
  const paretoTrainLimit = positiveInt("pareto-train-limit", str("pareto-train-limit"), trainLimit);
  const limit = positiveInt("limit", str("limit"), Infinity);
  const batch = positiveInt("batch", str("batch"), 256);
  const workers = positiveInt("workers", str("workers"), 1);
  const latencyRuns = positiveInt("latency-runs", str("latency-runs"), 5, true);
  return {
    budget,
    criterion,
    seed,
    steps,
    valSize,
    valSeed,
    recalImages,
    epochs,
    peakLr,
    trainLimit,
    pareto,
    paretoEpochs,
    paretoTrainLimit,
    limit,
    batch,
    workers,
    latencyRuns,
  };
}
