/**
 * The ranking criteria by name, for `--criterion a,b,...`: each maps one `RankingContext` to a
 * `Ranking` (`order[0]` pruned first). To add a criterion, write its pure function in a
 * `criteria_*.ts` module and add one entry to `CRITERIA`.
 *
 * | name       | reads                                   | pruned first                     |
 * |------------|-----------------------------------------|----------------------------------|
 * | mean       | layer outputs (the lab's criterion)     | lowest mean activation           |
 * | apoz       | layer outputs (Hu et al. 2016)          | most zero activations            |
 * | l1, l2     | the conv kernel (Li et al. 2017)        | smallest filter norm             |
 * | bn-gamma   | the BatchNormalization after the conv   | smallest abs(gamma)              |
 * | taylor     | gradients on training images            | smallest abs(activation x grad)  |
 * | random     | a seed                                  | random (several seeds)           |
 * | largest    | layer outputs                           | highest mean (the reverse of mean)|
 */
import type * as tf from "@tensorflow/tfjs";
import { UserError } from "../core/errors.ts";
import type { LayerRef } from "../model/layers.ts";
import type { SplitModel } from "../model/split.ts";
import type { Dataset, Preprocessing, Ranking } from "../types.ts";
import { type ChannelStats, rankByApoz, rankByMeanStats, rankLargest } from "./activation.ts";
import { filterNorms, rankByBnGamma } from "./weights.ts";
import { ascendingOrder } from "./criteria.ts";
import { rankRandom } from "./random.ts";
import { rankByTaylor, taylorScores } from "./taylor.ts";
import { batchNormAfter, batchNormGammaAfter, convKernel } from "../model/coupling.ts";
import type { OutputKind } from "../model/class_scores.ts";

/** Everything a criterion may read; each reads only what it needs. */
export interface RankingContext {
  model: tf.LayersModel;
  layer: LayerRef;
  /** The other members of the layer's coupled channel group (none for a layer alone). */
  members?: LayerRef[];
  split: SplitModel;
  /** Statistics of the layer's outputs over the evaluation images (activation criteria). */
  stats?: ChannelStats;
  /** The seed of a seeded criterion (`random`). */
  seed: number;
  /** Gradient criteria: the images to take gradients on (loaded on first use), and how. */
  gradientImages?: () => Promise<Dataset>;
  prep: Preprocessing;
  outputKind: OutputKind;
  /** Images per gradient call. */
  gradientBatch?: number;
  /** Called with the images done by a gradient pass. */
  onGradientProgress?: (done: number) => void;
}

/** What a criterion reads, so a caller knows which pass it needs first. */
export type CriterionSource = "activations" | "weights" | "gradients" | "seed";

/** One named ranking criterion. */
export interface Criterion {
  /** The name used on the command line and in file names (`sweep_<name>.csv`). */
  name: string;
  /** Legend label in charts. */
  label: string;
  /** The score column in `ranking*.csv`. */
  scoreName: string;
  source: CriterionSource;
  /** Run once per seed (`random`). */
  seeded: boolean;
  /** One line for `--help`. */
  description: string;
  /** Cheap check that the criterion applies to this layer (UserError if not), before any pass. */
  check?(model: tf.LayersModel, layer: LayerRef): void;
  rank(ctx: RankingContext): Promise<Ranking>;
}

/** bn-gamma of one layer. */
const rankBnGammaOf = async (ctx: RankingContext) =>
  rankByBnGamma((await batchNormGammaAfter(ctx.model, ctx.layer)).gamma);

/** The layer and its group's other members. */
const convsOf = (ctx: RankingContext) => [ctx.layer, ...(ctx.members ?? [])];

/** The p-norm of each filter, summed over the group's members (one member: its own norms). */
async function groupNorms(ctx: RankingContext, p: 1 | 2, criterion: string): Promise<Ranking> {
  const scores = new Float64Array(ctx.layer.channels);
  for (const conv of convsOf(ctx)) {
    const norms = filterNorms((await convKernel(ctx.model, conv)).values, ctx.layer.channels, p);
    norms.forEach((v, c) => (scores[c] += v));
  }
  return { criterion, order: ascendingOrder(scores), scores };
}

/** |gamma| of the BatchNormalization after each member, summed over the group. */
async function groupGamma(ctx: RankingContext): Promise<Ranking> {
  const scores = new Float64Array(ctx.layer.channels);
  for (const conv of convsOf(ctx)) {
    (await batchNormGammaAfter(ctx.model, conv)).gamma.forEach((g, c) => (scores[c] += Math.abs(g)));
  }
  return { criterion: "bn-gamma", order: ascendingOrder(scores), scores };
}

/**
 * Refuse, in one line, a criterion that has no group score yet on a coupled channel group
 * (taylor; the activation criteria read the merged output, `rank/group_stats.ts`, the weight
 * criteria sum over the members: see the README).
 */
export function assertGroupCriterion(c: Criterion, group: string): void {
  if (c.source !== "gradients") return;
  throw new UserError(
    `criterion ${c.name} has no group score yet for the coupled channel group ${group}; ` +
      `use --criterion mean, apoz, l1, l2, bn-gamma or random.`,
  );
}

function needStats(ctx: RankingContext, name: string): ChannelStats {
  if (!ctx.stats) throw new Error(`criterion ${name} needs the layer's output statistics`);
  return ctx.stats;
}

/** Every criterion, in the order `--help` lists them. */
export const CRITERIA: readonly Criterion[] = [
  {
    name: "mean",
    label: "mean activation",
    scoreName: "mean_activation",
    source: "activations",
    seeded: false,
    description: "lowest mean activation first (the lab's criterion)",
    rank: (ctx) => Promise.resolve(rankByMeanStats(needStats(ctx, "mean"))),
  },
  {
    name: "apoz",
    label: "APoZ",
    scoreName: "apoz",
    source: "activations",
    seeded: false,
    description: "largest fraction of zero activations first (Hu et al. 2016)",
    rank: (ctx) => Promise.resolve(rankByApoz(needStats(ctx, "apoz"))),
  },
  {
    name: "l1",
    label: "L1 norm",
    scoreName: "l1_norm",
    source: "weights",
    seeded: false,
    description: "smallest L1 norm of the filter's kernel weights first (Li et al. 2017)",
    rank: (ctx) => groupNorms(ctx, 1, "l1"),
  },
  {
    name: "l2",
    label: "L2 norm",
    scoreName: "l2_norm",
    source: "weights",
    seeded: false,
    description: "smallest L2 norm of the filter's kernel weights first",
    rank: (ctx) => groupNorms(ctx, 2, "l2"),
  },
  {
    name: "bn-gamma",
    label: "BN |gamma|",
    scoreName: "abs_gamma",
    source: "weights",
    seeded: false,
    description: "smallest |gamma| of the BatchNormalization right after the conv first",
    check: (model, layer) => void batchNormAfter(model, layer),
    rank: (ctx) => ctx.members?.length ? groupGamma(ctx) : rankBnGammaOf(ctx),
  },
  {
    name: "taylor",
    label: "Taylor |a x grad|",
    scoreName: "taylor",
    source: "gradients",
    seeded: false,
    description: "smallest first-order Taylor score |activation x gradient| on training images first",
    rank: async (ctx) => {
      if (!ctx.gradientImages) throw new Error("criterion taylor needs gradient images");
      const images = await ctx.gradientImages();
      return rankByTaylor(
        await taylorScores(ctx.split, images, ctx.prep, ctx.outputKind, {
          batch: ctx.gradientBatch,
          onProgress: ctx.onGradientProgress,
        }),
      );
    },
  },
  {
    name: "random",
    label: "random",
    scoreName: "random_key",
    source: "seed",
    seeded: true,
    description: "a seeded random order, one run per seed (--seeds)",
    rank: (ctx) => Promise.resolve(rankRandom(ctx.layer.channels, ctx.seed)),
  },
  {
    name: "largest",
    label: "largest mean",
    scoreName: "mean_activation",
    source: "activations",
    seeded: false,
    description: "highest mean activation first: the reverse of mean, a sanity floor",
    rank: (ctx) => Promise.resolve(rankLargest(needStats(ctx, "largest"))),
  },
];

/** The valid names, for messages: "mean, apoz, l1, ...". */
export function criterionNames(): string {
  return CRITERIA.map((c) => c.name).join(", ");
}

/**
 * The criterion called `name`; a UserError listing the valid names otherwise.
 *
 * @example
 * ```ts
 * criterionByName("l1").scoreName; // "l1_norm"
 * ```
 */
export function criterionByName(name: string): Criterion {
  const found = CRITERIA.find((c) => c.name === name.trim().toLowerCase());
  if (!found) {
    throw new UserError(`--criterion: unknown criterion '${name}'; the criteria are: ${criterionNames()}.`);
  }
  return found;
}

/**
 * Parse `--criterion a,b,...` into criteria, in the given order; unknown, repeated or missing
 * names are a UserError.
 *
 * @example
 * ```ts
 * parseCriteria("mean,random").map((c) => c.name); // ["mean", "random"]
 * ```
 */
export function parseCriteria(list: string): Criterion[] {
  const names = list.split(",").map((s) => s.trim()).filter((s) => s !== "");
  if (names.length === 0) {
    throw new UserError(`--criterion needs at least one name; the criteria are: ${criterionNames()}.`);
  }
  const criteria = names.map(criterionByName);
  const seen = new Set<string>();
  for (const c of criteria) {
    if (seen.has(c.name)) throw new UserError(`--criterion: '${c.name}' is given twice.`);
    seen.add(c.name);
  }
  return criteria;
}

/** One ranking of a comparison: a criterion, and its seed when it is seeded. */
export interface NamedRanking {
  criterion: Criterion;
  /** The seed (seeded criteria only). */
  seed?: number;
  ranking: Ranking;
}

/**
 * Every ranking a comparison needs: one per criterion, and `seeds` (1..seeds) for seeded ones.
 * Each ranking's `criterion` field is the registry name.
 *
 * @example
 * ```ts
 * const rankings = await computeRankings(parseCriteria("mean,random"), ctx, 5); // 1 + 5 rankings
 * ```
 */
export async function computeRankings(
  criteria: Criterion[],
  ctx: Omit<RankingContext, "seed">,
  seeds: number,
): Promise<NamedRanking[]> {
  const out: NamedRanking[] = [];
  for (const criterion of criteria) {
    const seedList = criterion.seeded ? Array.from({ length: seeds }, (_, i) => i + 1) : [0];
    for (const seed of seedList) {
      const ranking = await criterion.rank({ ...ctx, seed });
      if (ranking.order.length !== ctx.layer.channels) {
        throw new Error(
          `criterion ${criterion.name} ranked ${ranking.order.length} of ${ctx.layer.channels} channels`,
        );
      }
      out.push({
        criterion,
        ...(criterion.seeded ? { seed } : {}),
        ranking: { ...ranking, criterion: criterion.name },
      });
    }
  }
  return out;
}
