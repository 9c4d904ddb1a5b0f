/** Shared domain types. Data flows one way: Dataset -> LayerOutputs -> Ranking -> SweepResult. */

/**
 * Input preprocessing: x' = (x * scale - mean[c]) / std[c], x the raw 0..255 pixel. A one-channel
 * (grey) model uses mean[0] and std[0].
 */
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

/** The pixel layout of one image (channels last). */
export interface ImageShape {
  height: number;
  width: number;
  channels: number;
}

/** CIFAR-10's images: 32 x 32 RGB. */
export const CIFAR10_SHAPE: Readonly<ImageShape> = { height: 32, width: 32, channels: 3 };

/** Pixels: bytes (0..255) from image files (resized ones too), or floats where an .npz or .npy holds floats. */
export type Pixels = Uint8Array | Float32Array;

/**
 * A labelled image set: `images` is N x H x W x C values in HWC (row-major, channels last)
 * order, `labels` the class of each image. `shape` and `classNames` are absent only for
 * CIFAR-10 (32 x 32 x 3, its ten classes): see {@link datasetShape}.
 */
export interface Dataset {
  images: Pixels;
  labels: Uint8Array;
  count: number;
  /** Where it came from, for messages and reports. */
  source: string;
  shape?: ImageShape;
  classNames?: string[];
}

/**
 * The image shape of `ds` (CIFAR-10's when it does not say).
 *
 * @example
 * ```ts
 * datasetShape({ images, labels, count, source: "x" }); // { height: 32, width: 32, channels: 3 }
 * ```
 */
export function datasetShape(ds: Pick<Dataset, "shape">): ImageShape {
  return ds.shape ?? CIFAR10_SHAPE;
}

/** Values of one image of `ds`. */
export function imageSize(ds: Pick<Dataset, "shape">): number {
  const s = datasetShape(ds);
  return s.height * s.width * s.channels;
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
  /** Correct images of each true class (indexed by class; sums to `correct`), when the engine counted them. */
  classCorrect?: number[];
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
  /** With held-out data (--calib, --calib-split): it ranked the channels, and its own curve chooses K. */
  calib?: CalibCurve;
}

/** The sweep of the first ranking on the held-out data that ranked it. */
export interface CalibCurve {
  /** The --calib path, or "split N of the training files of PATH, seed S". */
  source: string;
  images: number;
  baselineAccuracy: number;
  results: SweepPoint[];
}
