/**
 * Allocating K over a model's prunable units for one budget: the units (a conv layer, or a
 * coupled channel group: a unit names the conv layers whose channels go together), an exact
 * cost model of multiply-adds and parameters as a function of every unit's K, the sensitivity-guided greedy path, and uniform ratios at the same budget.
 *
 * Cost: every weight tensor and every counted layer's multiply-adds is a product of at most two
 * channel counts: its output channels, when pruning changes them (a pruned conv, a depthwise
 * conv, a BatchNorm), and its input channels (a consumer), each a sum over the units that reach
 * it (a Concatenate joins several) plus the channels no unit reaches (trace.ts). So each term is
 * `coefficient * keptOut * keptIn`, in whole numbers (with one carrier per unit at most), and a plan's cost is exact: the same figure
 * `modelCost` gives for the slim model (tests/surgery/allocate_test.ts checks it).
 *
 * Greedy (the sensitivity-guided method): from K = 0 everywhere, each step moves one unit to its
 * next measured K, the one that loses the least validation accuracy per multiply-add (or
 * parameter) saved, from each unit's measured curve made non-increasing (a pruning step never
 * earns accuracy). The path ends when no unit can move; a budget takes the first plan on it that
 * fits, with the last step cut to the smallest K that fits.
 */
import type * as tf from "@tensorflow/tfjs";
import { UserError } from "../core/errors.ts";
import { layerMultiplyAdds } from "./cost.ts";
import { type ChannelTrace, CONSUMER_CLASSES, type LinearCount, linearCount } from "./trace.ts";

/** Channels that are pruned together, K at a time: one conv layer's, or a coupled group's. */
export interface PrunableUnit {
  /** The unit's name (the conv layer's, or the group's: its members joined by "+"). */
  name: string;
  /** The conv layers whose output channels this unit removes (a coupled group's members). */
  layers: string[];
  channels: number;
  /** One pruned channel stays in the slim model to carry a constant (see remove.ts): K - 1 go. */
  carrier: boolean;
}

/** Which metric a budget counts. */
export type CostMetric = "macs" | "params";

/** A plan: unit name -> K (channels pruned). */
export type Plan = Record<string, number>;

/** One term of the cost model: coefficient * kept(out) * kept(in), each a linear count or 1. */
interface CostTerm {
  metric: CostMetric;
  coefficient: number;
  out: LinearCount | null;
  in: LinearCount | null;
}

/** Multiply-adds and parameters of a plan. */
export interface PlanCost {
  macs: number;
  params: number;
}

/** The cost of any plan over `units`, exact. */
export interface CostModel {
  units: PrunableUnit[];
  /** The cost of `plan` (units it does not name keep K = 0). */
  cost(plan: Plan): PlanCost;
}

/** Channels the slim model loses when `k` are pruned from `unit`. */
export function removedChannels(unit: PrunableUnit, k: number): number {
  return unit.carrier && k > 0 ? k - 1 : k;
}

/** The count `c` gives when each unit keeps `kept[u]` channels. */
function evalCount(c: LinearCount | null, kept: number[]): number {
  if (c === null) return 1;
  let n = c.free;
  for (const [u, per] of c.per) n += per * kept[u];
  return n;
}

/**
 * The cost model of `model` for `units`, from `trace` (`traceChannels` of every unit's layers):
 * each layer's multiply-adds and weights as a product of the channel counts that pruning
 * changes, its output's (a pruned conv, a depthwise conv) and its input's (a consumer, BN).
 *
 * @example
 * ```ts
 * const cm = costModel(model, units, traceChannels(model, units.flatMap((u) => u.layers.map((layer) => ({ layer, channels: [] })))));
 * cm.cost({}).macs === modelCost(model).multiplyAdds; // true
 * ```
 */
export function costModel(model: tf.LayersModel, units: PrunableUnit[], trace: ChannelTrace): CostModel {
  const unitOf = (r: number) => units.findIndex((u) => u.layers.includes(trace.removals[r].layer));
  const members = new Set(units.flatMap((u) => u.layers));
  const full = units.map((u) => u.channels);
  const terms: CostTerm[] = [];
  const add = (metric: CostMetric, total: number, out: LinearCount | null, inn: LinearCount | null) => {
    if (total > 0) {
      terms.push({
        metric,
        coefficient: total / (evalCount(out, full) * evalCount(inn, full)),
        out,
        in: inn,
      });
    }
  };
  for (const layer of model.layers) {
    const step = trace.steps.find((s) => s.layer === layer);
    const labelsOf = (t: { name: string } | undefined) => {
      const l = t && trace.labels.get(t.name);
      return l ? linearCount(trace, l, unitOf) : null;
    };
    const outL = labelsOf(step?.outputs[0]);
    const inL = labelsOf(step?.inputs[0]);
    const cls = layer.getClassName();
    // What scales: a pruned conv's outputs (and inputs), a depthwise conv's channels, a consumer's inputs.
    const own = members.has(layer.name) || cls === "DepthwiseConv2D" ? outL : null;
    const perChannel = !members.has(layer.name) && !CONSUMER_CLASSES.includes(cls) &&
      cls !== "DepthwiseConv2D";
    add("macs", layerMultiplyAdds(layer), own, cls === "DepthwiseConv2D" ? null : inL);
    for (const w of layer.weights) {
      const size = w.shape.reduce((p: number, d) => p * (d ?? 1), 1);
      if (perChannel) add("params", size, null, inL);
      else if (w.shape.length >= 2) add("params", size, members.has(layer.name) ? own : null, inL);
      else add("params", size, own, null);
    }
  }
  return {
    units,
    cost(plan: Plan): PlanCost {
      const kept = units.map((u) => u.channels - removedChannels(u, plan[u.name] ?? 0));
      const total = { macs: 0, params: 0 };
      for (const t of terms) {
        total[t.metric] += t.coefficient * evalCount(t.out, kept) * evalCount(t.in, kept);
      }
      return { macs: Math.round(total.macs), params: Math.round(total.params) };
    },
  };
}

/** A unit's measured accuracy (fraction 0..1) at some K, K = 0 first. */
export interface UnitCurve {
  unit: string;
  points: { k: number; accuracy: number }[];
}

/** The greedy path: the plans after each step, from K = 0 everywhere (not included). */
export interface GreedyStep {
  plan: Plan;
  /** The unit moved and its new K. */
  unit: string;
  k: number;
  /** The sum over units of their own predicted drop (points of accuracy, from the curves). */
  predictedDrop: number;
  cost: PlanCost;
}

/** Largest K a unit may take: one channel always stays. */
const maxK = (u: PrunableUnit) => u.channels - 1;

/** Predicted drop (points) of each curve at K: from K = 0, made non-decreasing in K. */
function dropTables(curves: UnitCurve[]): Map<string, (k: number) => number> {
  const tables = new Map<string, (k: number) => number>();
  for (const c of curves) {
    const pts = [...c.points].sort((a, b) => a.k - b.k);
    if (pts.length === 0 || pts[0].k !== 0) throw new Error(`curve of ${c.unit} has no K = 0 point`);
    let worst = 0;
    const env = pts.map((p) => ({
      k: p.k,
      drop: worst = Math.max(worst, (pts[0].accuracy - p.accuracy) * 100),
    }));
    tables.set(c.unit, (k: number) => {
      let d = 0;
      for (const e of env) if (e.k <= k) d = e.drop;
      return d;
    });
  }
  return tables;
}

/**
 * The sensitivity-guided greedy path over `curves` (one per unit of `cm`), counting `metric`.
 *
 * @example
 * ```ts
 * const path = greedyPath(cm, curves, "macs");
 * path.at(-1)!.plan; // every unit at its largest measured K
 * ```
 */
export function greedyPath(cm: CostModel, curves: UnitCurve[], metric: CostMetric): GreedyStep[] {
  const drop = dropTables(curves);
  const measured = new Map(curves.map((c) => [c.unit, c.points.map((p) => p.k).sort((a, b) => a - b)]));
  const plan: Plan = Object.fromEntries(cm.units.map((u) => [u.name, 0]));
  const path: GreedyStep[] = [];
  let current = cm.cost(plan);
  for (;;) {
    let best: { unit: PrunableUnit; k: number; score: number; saved: number; cost: PlanCost } | null = null;
    for (const u of cm.units) {
      const next = (measured.get(u.name) ?? []).find((k) => k > plan[u.name] && k <= maxK(u));
      if (next === undefined) continue;
      const cost = cm.cost({ ...plan, [u.name]: next });
      const saved = current[metric] - cost[metric];
      if (saved <= 0) continue;
      const score = (drop.get(u.name)!(next) - drop.get(u.name)!(plan[u.name])) / saved;
      if (!best || score < best.score || (score === best.score && saved > best.saved)) {
        best = { unit: u, k: next, score, saved, cost };
      }
    }
    if (!best) break;
    plan[best.unit.name] = best.k;
    current = best.cost;
    const predictedDrop = cm.units.reduce((s, u) => s + drop.get(u.name)!(plan[u.name]), 0);
    path.push({ plan: { ...plan }, unit: best.unit.name, k: best.k, predictedDrop, cost: current });
  }
  return path;
}

/**
 * The first plan on `path` whose `metric` is at most `target` (an absolute count), with its
 * last step cut to the smallest K of that unit that fits; null when even the end does not fit.
 *
 * @example
 * ```ts
 * const plan = planWithin(cm, path, "macs", 0.7 * cm.cost({}).macs);
 * ```
 */
export function planWithin(
  cm: CostModel,
  path: GreedyStep[],
  metric: CostMetric,
  target: number,
): Plan | null {
  if (cm.cost({})[metric] <= target) return Object.fromEntries(cm.units.map((u) => [u.name, 0]));
  const i = path.findIndex((s) => s.cost[metric] <= target);
  if (i < 0) return null;
  const step = path[i];
  const from = i === 0 ? 0 : path[i - 1].plan[step.unit];
  for (let k = from + 1; k < step.k; k++) {
    const plan = { ...step.plan, [step.unit]: k };
    if (cm.cost(plan)[metric] <= target) return plan;
  }
  return { ...step.plan };
}

/**
 * Uniform ratios: K = round(r * C) for every unit (at most C - 1), with the smallest r (to
 * 1/1000) whose `metric` is at most `target`; null when even the largest Ks do not fit.
 *
 * @example
 * ```ts
 * uniformPlan(cm, "macs", 0.7 * cm.cost({}).macs)!.ratio; // e.g. 0.19
 * ```
 */
export function uniformPlan(
  cm: CostModel,
  metric: CostMetric,
  target: number,
): { ratio: number; plan: Plan } | null {
  const at = (r: number): Plan =>
    Object.fromEntries(cm.units.map((u) => [u.name, Math.min(maxK(u), Math.round(r * u.channels))]));
  for (let i = 0; i <= 1000; i++) {
    const plan = at(i / 1000);
    if (cm.cost(plan)[metric] <= target) return { ratio: i / 1000, plan };
  }
  return null;
}

/**
 * Check a budget fraction given on the command line (0 < F <= 1).
 *
 * @example
 * ```ts
 * budgetFraction("--target-macs", "0.6"); // 0.6
 * ```
 */
export function budgetFraction(flag: string, value: string): number {
  const f = Number(value);
  if (!Number.isFinite(f) || f <= 0 || f > 1) {
    throw new UserError(`${flag} must be the fraction to keep, a number in (0, 1], got '${value}'.`);
  }
  return f;
}

/** A budget: keep a fraction of multiply-adds or parameters, or lose at most P points. */
export type Budget = { metric: CostMetric; keep: number } | { maxDrop: number };

/**
 * The one budget of --target-macs F, --target-params F and --max-drop P (exactly one given).
 *
 * @example
 * ```ts
 * parseBudget("0.6", undefined, undefined); // { metric: "macs", keep: 0.6 }
 * ```
 */
export function parseBudget(
  targetMacs: string | undefined,
  targetParams: string | undefined,
  maxDrop: string | undefined,
): Budget {
  if ([targetMacs, targetParams, maxDrop].filter((v) => v !== undefined).length !== 1) {
    throw new UserError(`give exactly one budget: --target-macs F, --target-params F or --max-drop P.`);
  }
  if (maxDrop !== undefined) {
    const p = Number(maxDrop);
    if (!Number.isFinite(p) || p < 0) {
      throw new UserError(`--max-drop must be a non-negative number of percentage points, got '${maxDrop}'.`);
    }
    return { maxDrop: p };
  }
  return targetMacs !== undefined
    ? { metric: "macs", keep: budgetFraction("--target-macs", targetMacs) }
    : { metric: "params", keep: budgetFraction("--target-params", targetParams!) };
}
