/** The `random` criterion: a seeded random order, the baseline every other criterion must beat. */
import type { Ranking } from "../types.ts";
import { mulberry32 } from "../core/random.ts";
import { ascendingOrder } from "./criteria.ts";

/**
 * A random channel order drawn from `seed`: each channel gets a uniform key in [0, 1) from a
 * seeded mulberry32 stream and channels are pruned by ascending key. Same seed, same order.
 *
 * @example
 * ```ts
 * rankRandom(64, 1).order; // a permutation of 0..63, the same on every run
 * ```
 */
export function rankRandom(channels: number, seed: number): Ranking {
  const rand = mulberry32(seed);
  const scores = Float64Array.from({ length: channels }, () => rand());
  return { criterion: "random", order: ascendingOrder(scores), scores };
}
