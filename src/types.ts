/** Shared domain types. Data flows one way: Dataset -> LayerOutputs -> Ranking -> SweepResult. */

/** Input preprocessing: x' = (x * scale - mean[c]) / std[c], x the raw 0..255 pixel. */
export interface Preprocessing {
  scale: number;
  mean: [number, number, number];
  std: [number, number, number];
}

/** The default preprocessing: x / 255. */
export const DEFAULT_PREPROCESSING: Preprocessing = {
  scale: 1 / 255,
  mean: [0, 0, 0],
  std: [1, 1, 1],
};

/** A labelled image set: `images` is N x 32 x 32 x 3 uint8 in HWC (row-major, RGB last) order. */
export interface Dataset {
  images: Uint8Array;
  labels: Uint8Array;
  count: number;
  /** Where it came from, for messages and reports. */
  source: string;
}

/** A channel ranking: `order[0]` is the channel pruned first. */
export interface Ranking {
  criterion: string;
  order: number[];
  /** The score of every channel, indexed by channel (lower = pruned earlier for ascending criteria). */
  scores: Float64Array;
}

/** One point of a sweep: K channels pruned. */
export interface SweepPoint {
  k: number;
  /** The channel whose pruning takes K-1 -> K; null for K = 0. */
  channelPrunedAtK: number | null;
  correct: number;
  total: number;
  accuracy: number;
}

/** A whole sweep over K = 0..C for one ranking. */
export interface SweepResult {
  model: string;
  /** The layer swept, or a coupled channel group's members joined by "+". */
  layer: string;
  /** A coupled channel group's conv layers, pruned together (absent for one layer). */
  members?: string[];
  channels: number;
  criterion: string;
  backend: string;
  /** How the counts were made: "exact" (cached outputs), "dense-kernel", "algebra" or "naive". */
  engine?: string;
  samples: number;
  baselineAccuracy: number;
  results: SweepPoint[];
  timings: Record<string, number>;
}
