/**
 * Choosing a compression plan on a validation set: the model's prunable units (every conv layer
 * surgery can cut, its carrier found by a probe surgery), their sensitivity curves measured on
 * the validation images, the greedy path and the plan for a budget, uniform ratios at the same
 * budget, and the masked accuracy of any plan (every pruned channel zeroed, the reference the
 * slim model must reproduce).
 *
 * Why curves plus a greedy walk: a curve per unit costs one scan (one prefix pass and one suffix
 * pass per K); re-measuring the whole model after every greedy step would cost a full evaluation
 * per step (hundreds on a VGG). The curves ignore how drops compound, so the plan the path gives
 * is always measured jointly, and --max-drop searches the path by measuring (bisection) instead
 * of trusting the sum of the curves.
 */
import type * as tf from "@tensorflow/tfjs";
import { UserError } from "../core/errors.ts";
import type { Dataset, Preprocessing, Ranking } from "../types.ts";
import { outputKind } from "../model/class_scores.ts";
import { chooseLayers, scanLayers, type ScanOptions } from "../sensitivity/run.ts";
import {
  DEFAULT_MAX_CACHE_BYTES,
  kValuesFromFractions,
  type LayerSensitivityResult,
} from "../sensitivity/scan.ts";
import { Progress } from "../ui/progress.ts";
import { type ChannelRemoval, maskedReference, removeChannels } from "./remove.ts";
import { traceChannels } from "./trace.ts";
import { channelGroup, groupName } from "../model/coupling.ts";
import { countMatches, predictClasses } from "./measure.ts";
import { evaluate } from "../model/evaluate.ts";
import {
  type Budget,
  type CostMetric,
  type CostModel,
  costModel,
  type GreedyStep,
  type Plan,
  planWithin,
  type PrunableUnit,
  uniformPlan,
  type UnitCurve,
} from "./allocate.ts";

/** The prunable units of a model and why the other conv layers are not. */
export interface Units {
  units: PrunableUnit[];
  skipped: { layer: string; reason: string }[];
  cost: CostModel;
}

/** Channels 1 .. C - 1. */
const allBut0 = (channels: number) => Array.from({ length: channels - 1 }, (_, c) => c + 1);

/**
 * Every conv layer of `model` that surgery can cut, a coupled channel group as one unit (named
 * by its members joined by "+"); whether each keeps a carrier comes from one probe surgery that
 * prunes all channels but channel 0 of every unit (a unit keeps one when some of its pruned
 * channels send a constant to a 'same' conv: the cost model counts it whenever K > 0, so its
 * figure is exact then and one channel high for a K whose channels send none).
 *
 * @example
 * ```ts
 * const { units, cost } = await prunableUnits(model);
 * cost.cost({}).macs; // the unpruned model's multiply-adds
 * ```
 */
export async function prunableUnits(model: tf.LayersModel, spec = "all"): Promise<Units> {
  const chosen = chooseLayers(model, spec);
  const skipped = [...chosen.skipped];
  const units: PrunableUnit[] = [];
  for (const l of chosen.layers) {
    const group = channelGroup(model, l);
    const layers = group ? group.members.map((m) => m.name) : [l.name];
    try {
      traceChannels(model, layers.map((layer) => ({ layer, channels: [] })));
      units.push({ name: group ? groupName(group) : l.name, layers, channels: l.channels, carrier: false });
    } catch (e) {
      if (!(e instanceof UserError)) throw e;
      skipped.push({ layer: group ? groupName(group) : l.name, reason: e.message });
    }
  }
  if (units.length === 0) {
    throw new UserError(
      `no conv layer of the model can be pruned: ${skipped.map((s) => s.reason).join("; ")}`,
    );
  }
  const probe = await removeChannels(
    model,
    units.flatMap((u) => u.layers.map((layer) => ({ layer, channels: allBut0(u.channels) }))),
  );
  probe.model.dispose();
  for (const u of units) {
    u.carrier = probe.layers.some((l) => u.layers.includes(l.layer) && l.fold === "carrier");
  }
  const trace = traceChannels(
    model,
    units.flatMap((u) => u.layers.map((layer) => ({ layer, channels: [] }))),
  );
  return { units, skipped, cost: costModel(model, units, trace) };
}

/** How to measure the curves: the scan's options, with K values from `steps`. */
export interface CurveOptions
  extends Omit<ScanOptions, "kValues" | "outputKind" | "maxCacheBytes" | "onProgress"> {
  /** K values per unit: K = round(i / steps * C) for i = 0 .. steps - 1. */
  steps: number;
}

/** Each unit's measured curve on the validation set and its ranking. */
export interface Curves {
  curves: UnitCurve[];
  rankings: Record<string, Ranking>;
  results: LayerSensitivityResult[];
}

/**
 * Scan every unit alone on `val` (one sensitivity scan per unit) at `opts.steps` K values.
 *
 * @example
 * ```ts
 * const { curves, rankings } = await measureCurves(model, units, val, prep, { steps: 8, ... });
 * ```
 */
export async function measureCurves(
  model: tf.LayersModel,
  u: Units,
  val: Dataset,
  prep: Preprocessing,
  opts: CurveOptions,
): Promise<Curves> {
  const fractions = Array.from({ length: opts.steps }, (_, i) => i / opts.steps);
  const refs = chooseLayers(model, u.units.map((x) => x.layers[0]).join(",")).layers;
  const kValues = (l: { channels: number }) => kValuesFromFractions(fractions, l.channels);
  const total = refs.reduce((s, l) => s + (1 + kValues(l).length) * val.count, 0);
  const bar = new Progress({ label: "sensitivity (validation)", total, unit: "work" });
  const { steps: _, ...scan } = opts;
  const results = await scanLayers(model, refs, val, prep, {
    ...scan,
    kValues,
    outputKind: outputKind(model),
    maxCacheBytes: DEFAULT_MAX_CACHE_BYTES,
    onProgress: (done, layers) => bar.set(Math.min(done, total), layers),
  });
  bar.done();
  return {
    curves: results.map((r) => ({
      unit: r.layer,
      points: r.points.map((p) => ({ k: p.k, accuracy: p.top1 })),
    })),
    rankings: Object.fromEntries(results.map((r) => [r.layer, r.ranking])),
    results,
  };
}

/**
 * The channels `plan` prunes: each unit's K weakest by its ranking, for every layer of the unit.
 *
 * @example
 * ```ts
 * removalsOf(units, { conv1: 2 }, rankings); // [{ layer: "conv1", channels: [5, 1] }]
 * ```
 */
export function removalsOf(
  units: PrunableUnit[],
  plan: Plan,
  rankings: Record<string, Ranking>,
): ChannelRemoval[] {
  return units.filter((u) => (plan[u.name] ?? 0) > 0).flatMap((u) =>
    u.layers.map((layer) => ({ layer, channels: rankings[u.name].order.slice(0, plan[u.name]) }))
  );
}

/** The correct count and every image's class of `model` with `removals` zeroed, on `ds`. */
export async function maskedAccuracy(
  model: tf.LayersModel,
  removals: ChannelRemoval[],
  ds: Dataset,
  prep: Preprocessing,
  batch: number,
  label: string,
): Promise<{ correct: number; accuracy: number; classes: Int32Array }> {
  const masked = removals.length > 0 ? await maskedReference(model, removals) : model;
  const bar = new Progress({ label, total: ds.count, unit: "img" });
  try {
    const classes = await predictClasses(masked, ds, prep, { batch, onProgress: (n) => bar.set(n) });
    bar.done();
    const correct = countMatches(classes, ds.labels);
    return { correct, accuracy: correct / ds.count, classes };
  } finally {
    if (masked !== model) masked.dispose();
  }
}

/** A plan for a budget, sensitivity-guided, and uniform ratios at the same cost. */
export interface ChosenPlan {
  plan: Plan;
  uniform: { ratio: number; plan: Plan };
  /** Validation accuracy (fractions): unpruned, the plan, uniform. */
  validation: { before: number; plan: number; uniform: number };
  /** How the plan was chosen, in words. */
  method: string;
}

/** What `choosePlan` needs. */
export interface PlanContext {
  model: tf.LayersModel;
  units: Units;
  curves: Curves;
  path: GreedyStep[];
  val: Dataset;
  prep: Preprocessing;
  batch: number;
}

/**
 * The sensitivity-guided plan for `budget` and uniform ratios at the same cost, both measured
 * on the validation set. --max-drop bisects the greedy path by measured validation accuracy.
 *
 * @example
 * ```ts
 * const chosen = await choosePlan(ctx, { metric: "macs", keep: 0.6 });
 * ```
 */
export async function choosePlan(ctx: PlanContext, budget: Budget, baseline?: number): Promise<ChosenPlan> {
  const { units, curves, path, model, val, prep, batch } = ctx;
  const cm = units.cost;
  const valAcc = async (plan: Plan, label: string) =>
    (await maskedAccuracy(model, removalsOf(cm.units, plan, curves.rankings), val, prep, batch, label))
      .accuracy;
  const before = baseline ?? await valAcc({}, "validation (unpruned)");
  const curveWords =
    `each unit's curve measured alone on ${val.count} validation images of the training files`;
  let plan: Plan, metric: CostMetric, method: string, planAcc: number | undefined;
  if ("maxDrop" in budget) {
    metric = "macs";
    // Bisect the greedy path: the last step whose measured (joint) validation drop is within P.
    let lo = -1, hi = path.length - 1;
    const measured = new Map<number, number>();
    while (lo < hi) {
      const mid = Math.ceil((lo + hi + 1) / 2);
      const acc = await valAcc(path[mid].plan, `validation, greedy step ${mid + 1}/${path.length}`);
      measured.set(mid, acc);
      if ((before - acc) * 100 <= budget.maxDrop + 1e-9) lo = mid;
      else hi = mid - 1;
    }
    plan = lo < 0 ? Object.fromEntries(cm.units.map((u) => [u.name, 0])) : path[lo].plan;
    planAcc = lo < 0 ? before : measured.get(lo);
    method = `sensitivity-greedy, bisected: ${curveWords}; greedy steps by least accuracy lost per ` +
      `multiply-add saved; the last of ${path.length} steps whose joint validation drop is within ` +
      `${budget.maxDrop} points (bisection, ${measured.size} joint evaluations)`;
  } else {
    metric = budget.metric;
    const target = budget.keep * cm.cost({})[metric];
    const found = planWithin(cm, path, metric, target);
    if (!found) {
      const end = path.at(-1)?.cost[metric] ?? cm.cost({})[metric];
      throw new UserError(
        `--target-${metric} ${budget.keep}: the smallest plan the measured K values reach keeps ` +
          `${(end / cm.cost({})[metric]).toFixed(3)} of the ${metric}; ask for more, or raise --steps.`,
      );
    }
    plan = found;
    method = `sensitivity-greedy: ${curveWords}; greedy steps by least accuracy lost per ` +
      `${
        metric === "macs" ? "multiply-add" : "parameter"
      } saved, until ${metric} <= ${budget.keep} of the original`;
  }
  const uniform = uniformPlan(cm, metric, cm.cost(plan)[metric]);
  if (!uniform) throw new Error("uniform ratios cannot reach a cost the greedy path reached");
  return {
    plan,
    uniform,
    validation: {
      before,
      plan: planAcc ?? await valAcc(plan, "validation (plan)"),
      uniform: await valAcc(uniform.plan, "validation (uniform)"),
    },
    method,
  };
}

/** One point of the Pareto table: a method's plan at one multiply-add budget. */
export interface ParetoRow {
  /** Multiply-adds asked to keep. */
  budget: number;
  method: "sensitivity" | "uniform";
  plan: Plan;
  macs: number;
  params: number;
  macsKept: number;
  paramsKept: number;
  /** Test accuracy with the plan's channels removed, before fine-tuning. */
  testPruned: number;
  /** Removed for real and BatchNorm recalibrated, before fine-tuning (null when not recalibrated). */
  testRecalibrated: number | null;
  /** After recalibration (if any) and fine-tuning (null when no fine-tune ran). */
  testAfter: number | null;
  finetuneEpochs: number;
  finetuneSeconds: number;
}

/**
 * Both methods at every multiply-add budget of `budgets`: the sensitivity-guided plan (the
 * greedy path) and uniform ratios, each scored on `test` pruned and, when `after` is given,
 * removed for real, recalibrated by `after.recalibrate` and scored again, then fine-tuned in place
 * by `after.run` (for `after.epochs` > 0) and scored again.
 *
 * @example
 * ```ts
 * const rows = await paretoRows(ctx, [0.8, 0.5], test, {
 *   epochs: 1,
 *   run: (m) => finetune(m, train, ft),
 *   recalibrate: (m) => recalibrateBatchNorm(m, train, prep),
 * });
 * ```
 */
export async function paretoRows(
  ctx: PlanContext,
  budgets: number[],
  test: Dataset,
  after?: {
    epochs: number;
    run: (slim: tf.LayersModel) => Promise<unknown>;
    recalibrate?: (slim: tf.LayersModel) => Promise<unknown>;
  },
): Promise<ParetoRow[]> {
  const { model, units, curves, path, prep, batch } = ctx;
  const cm = units.cost;
  const c0 = cm.cost({});
  const rows: ParetoRow[] = [];
  for (const keep of budgets) {
    const sens = planWithin(cm, path, "macs", keep * c0.macs);
    const uni = uniformPlan(cm, "macs", keep * c0.macs)?.plan ?? null;
    for (const [method, plan] of [["sensitivity", sens], ["uniform", uni]] as const) {
      if (!plan) continue;
      const removals = removalsOf(cm.units, plan, curves.rankings);
      const pruned = await maskedAccuracy(model, removals, test, prep, batch, `pareto ${keep} ${method}`);
      let testAfter: number | null = null, testRecalibrated: number | null = null, seconds = 0;
      const tune = after && after.epochs > 0;
      if (tune || after?.recalibrate) {
        const t0 = performance.now();
        const slim = (await removeChannels(model, removals)).model;
        const score = async () => {
          const { correct, total } = await evaluate(slim, test, prep, batch);
          return correct / total;
        };
        try {
          if (after.recalibrate) {
            await after.recalibrate(slim);
            testRecalibrated = await score();
          }
          if (tune) {
            await after.run(slim);
            testAfter = await score();
          }
        } finally {
          slim.dispose();
        }
        seconds = (performance.now() - t0) / 1000;
      }
      const cost = cm.cost(plan);
      rows.push({
        budget: keep,
        method,
        plan,
        macs: cost.macs,
        params: cost.params,
        macsKept: cost.macs / c0.macs,
        paramsKept: cost.params / c0.params,
        testPruned: pruned.accuracy,
        testRecalibrated,
        testAfter,
        finetuneEpochs: tune ? after.epochs : 0,
        finetuneSeconds: seconds,
      });
    }
  }
  return rows;
}
