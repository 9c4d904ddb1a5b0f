/**
 * Choosing what to remove: rank each chosen layer's channels on the unpruned model, pick K (given,
 * or the largest within a drop of accuracy, swept K = 0, 1, ... and stopped early), and the
 * masked reference the slim model must reproduce (its correct count and every image's class).
 */
import type { LoadedModel } from "../model/load.ts";
import { pickLayer } from "../model/layers.ts";
import { type SweepTarget, sweepTarget } from "../model/coupling.ts";
import { type SplitModel, splitModelAsync } from "../model/split.ts";
import { outputKind } from "../model/class_scores.ts";
import { computeLayerOutputs, type LayerOutputs } from "../activations/layer_outputs.ts";
import { sweepStats } from "../rank/group_stats.ts";
import { assertGroupCriterion, type Criterion } from "../rank/registry.ts";
import { sweepFast } from "../sweep/engines/masked.ts";
import { largestKWithin } from "../sweep/summary.ts";
import { UserError } from "../core/errors.ts";
import { Progress } from "../ui/progress.ts";
import type { Dataset, Ranking, SweepPoint } from "../types.ts";
import { type ChannelRemoval, maskedReference, passesDepthwise } from "./remove.ts";
import { countMatches, maskedClasses, predictClasses } from "./measure.ts";

/** One `layer:k` entry of --plan; `k` null when --max-drop chooses it from the layer's own sweep. */
export interface PlanEntry {
  layer: string;
  k: number | null;
}

/**
 * Parse --plan "layer:k,layer:k" (a bare "layer" leaves K to --max-drop).
 *
 * @example
 * ```ts
 * parsePlan("block5_conv1:40,block5_conv3"); // [{ layer: "block5_conv1", k: 40 }, { layer: "block5_conv3", k: null }]
 * ```
 */
export function parsePlan(v: string): PlanEntry[] {
  const entries = v.split(",").filter((s) => s.trim() !== "").map((part) => {
    const at = part.lastIndexOf(":");
    if (at < 0) return { layer: part.trim(), k: null };
    const layer = part.slice(0, at).trim();
    const k = Number(part.slice(at + 1));
    if (at === 0 || !Number.isInteger(k) || k < 0) {
      throw new UserError(`--plan: '${part}' is not LAYER:K with K a non-negative integer, or a bare LAYER.`);
    }
    return { layer, k };
  });
  if (entries.length === 0) throw new UserError(`--plan is empty; give LAYER:K,LAYER:K.`);
  const names = entries.map((e) => e.layer);
  const twice = names.find((n, i) => names.indexOf(n) !== i);
  if (twice) throw new UserError(`--plan names ${twice} twice.`);
  return entries;
}

/** What the chosen layers, their rankings and K give: the removals and the masked reference. */
export interface Selection {
  mode: "k" | "max-drop" | "plan";
  removals: ChannelRemoval[];
  ks: Record<string, number>;
  rankings: Record<string, Ranking>;
  /** The full sweep of each layer whose K --max-drop chose. */
  sweeps: Record<string, SweepPoint[]>;
  before: { correct: number };
  masked: { correct: number; from: string; classes: Int32Array };
  /** The held-out data that ranked and chose K (absent: the test set did, as in the lab). */
  heldOut?: { source: string; images: number };
}

/** Held-out data to rank and choose on instead of the test set (--calib, --calib-split). */
export interface HeldOut {
  data: Dataset;
  /** Where it came from, for compression.json and the report. */
  source: string;
}

/** How to rank a layer's channels. */
export interface RankOptions {
  criterion: Criterion;
  seed: number;
  /** Training images for gradient criteria (loaded on first use). */
  gradientImages: () => Promise<Dataset>;
  batch: number;
}

/** `split`'s layer outputs over `data`, with a progress bar. */
async function outputsOf(
  split: SplitModel,
  data: Dataset,
  loaded: LoadedModel,
  batch: number,
  label: string,
) {
  const bar = new Progress({ label, total: data.count, unit: "img" });
  const outputs = await computeLayerOutputs(split, data, loaded.preprocessing, {
    batch,
    onProgress: (n) => bar.set(n),
  });
  bar.done();
  return outputs;
}

/**
 * Rank `target`'s channels on the unpruned model (one prefix pass over `data`, one more to a
 * group's last merge for its activation criteria); a coupled conv is ranked as its group.
 */
async function rankTarget(
  loaded: LoadedModel,
  target: SweepTarget,
  data: Dataset,
  opts: RankOptions,
  heldOut: boolean,
) {
  const { layer, members, group } = target;
  if (group) assertGroupCriterion(opts.criterion, target.name);
  const split = await splitModelAsync(loaded.model, layer, members.map((m) => m.name));
  const label = `${target.name} ${heldOut ? "held-out " : ""}outputs`;
  const outputs = await outputsOf(split, data, loaded, opts.batch, label);
  const prep = loaded.preprocessing;
  const ranking = await opts.criterion.rank({
    model: loaded.model,
    layer,
    members,
    split,
    stats: await sweepStats(loaded.model, group, outputs, data, prep, split.activationOfZero, opts.batch),
    seed: opts.seed,
    gradientImages: opts.gradientImages,
    prep,
    outputKind: outputKind(loaded.model),
  });
  if (ranking.order.length !== layer.channels) {
    throw new Error(
      `criterion ${opts.criterion.name} ranked ${ranking.order.length} of ${layer.channels} channels`,
    );
  }
  return { split, outputs, ranking: { ...ranking, criterion: opts.criterion.name } };
}

/** The conv layers a target prunes: the layer, or every member of its group. */
const convsOf = (t: SweepTarget) => [t.layer, ...t.members].map((m) => m.name);

/** `value` under the name of every conv of `t` (reports look K and rankings up by layer). */
function byConv<T>(t: SweepTarget, value: T): Record<string, T> {
  return Object.fromEntries(convsOf(t).map((name) => [name, value]));
}

/** The masked reference of `removals` on `test`: every image's class and the correct count. */
async function referenceOn(
  loaded: LoadedModel,
  test: Dataset,
  removals: ChannelRemoval[],
  batch: number,
): Promise<{ correct: number; classes: Int32Array }> {
  const masked = await maskedReference(loaded.model, removals);
  const bar = new Progress({ label: "masked accuracy", total: test.count, unit: "img" });
  const classes = await predictClasses(masked, test, loaded.preprocessing, {
    batch,
    onProgress: (n) => bar.set(n),
  });
  bar.done();
  masked.dispose();
  return { correct: countMatches(classes, test.labels), classes };
}

/** K values per step of `sweepWithin`. */
export const SWEEP_CHUNK = 16;

/**
 * The largest K (at most C - 1: a layer keeps one channel) whose accuracy, and that of every
 * smaller K, stays within `maxDrop` points of K = 0: `largestKWithin` over the sweep, but
 * evaluated K = 0, 1, 2, ... in chunks and stopped after the chunk where accuracy first leaves
 * the band (the K values after it cannot change the answer). Returns the points evaluated.
 *
 * @example
 * ```ts
 * const { k, sweep } = await sweepWithin(split, outputs, test.labels, ranking, 1.0, "sweep");
 * ```
 */
export async function sweepWithin(
  split: SplitModel,
  outputs: LayerOutputs,
  labels: Uint8Array,
  ranking: Ranking,
  maxDrop: number,
  label: string,
  chunk = SWEEP_CHUNK,
): Promise<{ k: number; sweep: SweepPoint[] }> {
  const channels = outputs.channels;
  const bar = new Progress({ label, total: channels + 1, unit: "K" });
  const sweep: SweepPoint[] = [];
  for (let start = 0; start <= channels; start += chunk) {
    const kValues = Array.from({ length: Math.min(chunk, channels + 1 - start) }, (_, i) => start + i);
    sweep.push(
      ...await sweepFast(split, outputs, labels, ranking, {
        kValues,
        onProgress: (n) => bar.set(start + n),
      }),
    );
    const floor = sweep[0].accuracy - maxDrop / 100;
    if (sweep.some((p) => p.accuracy < floor - 1e-12)) break;
  }
  bar.done(`${sweep.length} of ${channels + 1} K values evaluated`);
  return { k: Math.min(largestKWithin(sweep, maxDrop), channels - 1), sweep };
}

/**
 * One layer (`opts.layer`, default the last Conv2D) and its K: given (`opts.k`), or the largest
 * within `opts.maxDrop` points (`sweepWithin`); the masked reference from the fast sweep.
 *
 * @example
 * ```ts
 * const sel = await selectSingle(loaded, test, { k: 40, rank });
 * sel.removals; // [{ layer: "block5_conv3", channels: [...40 channels] }]
 * ```
 */
export async function selectSingle(
  loaded: LoadedModel,
  test: Dataset,
  opts: { layer?: string; k?: number; maxDrop?: number; rank: RankOptions; heldOut?: HeldOut },
): Promise<Selection> {
  const target = sweepTarget(loaded.model, pickLayer(loaded.model, opts.layer));
  const layer = target.layer;
  if (opts.k !== undefined && opts.k > layer.channels) {
    throw new UserError(`--k ${opts.k} is more than the ${layer.channels} channels of ${target.name}.`);
  }
  const held = opts.heldOut;
  const chooseOn = held?.data ?? test;
  const ranked = await rankTarget(loaded, target, chooseOn, opts.rank, held !== undefined);
  const { split, ranking } = ranked;
  const full = opts.k === undefined;
  let k = opts.k!, sweep: SweepPoint[] = [];
  if (full) {
    const label = held ? "held-out sweep" : "sweep";
    ({ k, sweep } = await sweepWithin(split, ranked.outputs, chooseOn.labels, ranking, opts.maxDrop!, label));
  }
  // The test set: the same pass when it chose, else one more, scored at K = 0 and the K chosen.
  const outputs = held
    ? await outputsOf(split, test, loaded, opts.rank.batch, `${target.name} outputs`)
    : ranked.outputs;
  const scored = full && !held
    ? sweep
    : await sweepFast(split, outputs, test.labels, ranking, { kValues: [0, k] });
  const pruned = ranking.order.slice(0, k);
  const removals = convsOf(target).map((name) => ({ layer: name, channels: pruned }));
  const at = (kk: number) => scored.find((p) => p.k === kk)!;
  // Where a pruned channel passes a depthwise kernel the reference is not the lab's zeroing (remove.ts).
  const masked = passesDepthwise(loaded.model, removals)
    ? { ...await referenceOn(loaded, test, removals, opts.rank.batch), from: "the masked reference model" }
    : {
      correct: at(k).correct,
      from: `the fast sweep at K = ${k}`,
      classes: await maskedClasses(split, outputs, pruned, opts.rank.batch),
    };
  return {
    ...(held ? { heldOut: { source: held.source, images: held.data.count } } : {}),
    mode: full ? "max-drop" : "k",
    removals,
    ks: byConv(target, k),
    rankings: byConv(target, ranking),
    sweeps: full ? { [target.name]: sweep } : {},
    before: { correct: at(0).correct },
    masked,
  };
}

/**
 * Several layers (--plan), each ranked on the unpruned model, each K given or chosen by its own
 * sweep within `maxDrop`; the masked reference from the model with every pruned channel zeroed.
 * With `heldOut` that data ranks and chooses; the test set is only scored.
 *
 * @example
 * ```ts
 * const sel = await selectPlan(loaded, test, [{ layer: "conv1", k: 2 }, { layer: "conv2", k: null }], rank, 1);
 * ```
 */
export async function selectPlan(
  loaded: LoadedModel,
  test: Dataset,
  plan: PlanEntry[],
  rank: RankOptions,
  maxDrop: number | undefined,
  heldOut?: HeldOut,
): Promise<Selection> {
  const batch = rank.batch;
  // A coupled conv is pruned with its group: the plan entry names any member.
  const targets = plan.map((e) => sweepTarget(loaded.model, pickLayer(loaded.model, e.layer)));
  const convs = targets.flatMap(convsOf);
  const twice = convs.find((n, i) => convs.indexOf(n) !== i);
  if (twice) {
    throw new UserError(`--plan prunes ${twice} twice (two entries name its channel group); name it once.`);
  }
  plan.forEach((e, i) => {
    const channels = targets[i].layer.channels;
    if (e.k !== null && e.k > channels) {
      throw new UserError(`--plan ${e.layer}:${e.k}: ${targets[i].name} has only ${channels} channels.`);
    }
    if (e.k === null && maxDrop === undefined) {
      throw new UserError(
        `--plan ${e.layer} has no K: write ${e.layer}:K, or give --max-drop P to choose it.`,
      );
    }
  });
  const rankings: Record<string, Ranking> = {};
  const sweeps: Record<string, SweepPoint[]> = {};
  const ks: Record<string, number> = {};
  const removals: ChannelRemoval[] = [];
  for (const [i, target] of targets.entries()) {
    const chooseOn = heldOut?.data ?? test;
    const { split, outputs, ranking } = await rankTarget(
      loaded,
      target,
      chooseOn,
      rank,
      heldOut !== undefined,
    );
    let k = plan[i].k;
    if (k === null) {
      // This layer (or group) alone, swept: the largest K within --max-drop (at most C - 1).
      const label = `${target.name} ${heldOut ? "held-out " : ""}sweep`;
      const found = await sweepWithin(split, outputs, chooseOn.labels, ranking, maxDrop!, label);
      sweeps[target.name] = found.sweep;
      k = found.k;
    }
    Object.assign(rankings, byConv(target, ranking));
    Object.assign(ks, byConv(target, k));
    for (const layer of convsOf(target)) removals.push({ layer, channels: ranking.order.slice(0, k) });
  }
  const bar = new Progress({ label: "unpruned accuracy", total: test.count, unit: "img" });
  const beforeClasses = await predictClasses(loaded.model, test, loaded.preprocessing, {
    batch,
    onProgress: (n) => bar.set(n),
  });
  bar.done();
  return {
    ...(heldOut ? { heldOut: { source: heldOut.source, images: heldOut.data.count } } : {}),
    mode: "plan",
    removals,
    ks,
    rankings,
    sweeps,
    before: { correct: countMatches(beforeClasses, test.labels) },
    masked: { ...await referenceOn(loaded, test, removals, batch), from: "the masked reference model" },
  };
}
