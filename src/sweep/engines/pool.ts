/**
 * The sweep on several cores: a pool of Deno workers (../worker.ts), each with its own
 * backend instance and its own copy of the model, sent as the model's artifacts (topology and
 * weight buffers, so a model read from Keras works as well as one read from model.json).
 *
 * The prefix pass splits the images between the workers. The sweep splits either the images
 * (`split: "images"`, the default: each worker sweeps every K on the images whose layer outputs
 * it already holds, and the counts are added) or the K values (`split: "k"`: contiguous K ranges
 * of equal work, every worker holding all the outputs). Each worker runs the change-only engine
 * (change_only.ts) on its share; the rows a worker evaluates are exactly the rows one
 * process would, so the counts equal a single worker's.
 */
import * as tf from "@tensorflow/tfjs";
import { UserError } from "../../core/errors.ts";
import type { BackendName } from "../../backend.ts";
import type { LayerRef } from "../../model/layers.ts";
import { splitModelAsync } from "../../model/split.ts";
import { type Dataset, imageSize, type Preprocessing, type Ranking, type SweepPoint } from "../../types.ts";
import { DEFAULT_MAX_OUTPUT_BYTES, type LayerOutputs } from "../../activations/layer_outputs.ts";
import { resolveKValues, sweepPoint } from "../kvalues.ts";
import { changeCounts } from "./change_only.ts";
import type { SweepShare, WorkerRequest } from "../worker.ts";
import { balancedRanges, evenRanges, modelArtifacts, PoolWorker } from "../../parallel/pool.ts";
import type { RowEngine } from "../rows.ts";

/** The sweep worker's module. */
const WORKER_URL = new URL("../worker.ts", import.meta.url);

/** How the sweep's work is shared: by images or by K values. */
export type SweepSplit = "images" | "k";

/** Options of `SweepPool.sweep`. */
export interface PoolSweepOptions {
  /** The K values to evaluate (default 0..C). */
  kValues?: number[];
  /** The rows each worker sweeps (../linear_head.ts `engineRows`; "algebra" is not bit-exact). Default "exact". */
  engine?: RowEngine;
  /** With the algebra: run the relu Dense layers after the first with the sparse kernel (default: on wasm and cpu). */
  sparseTail?: boolean;
  /** How to share the work (default "images"). */
  split?: SweepSplit;
  /** Each worker's memory budget for one suffix call. */
  memoryBudgetBytes?: number;
  /** Called as work finishes, with the K values' worth of work done so far. */
  onProgress?: (kDone: number) => void;
}

/**
 * A pool of sweep workers for one model cut at one layer.
 *
 * @example
 * ```ts
 * const pool = await SweepPool.start(model, layer, { workers: 2, backend: "wasm" });
 * try {
 *   const out = await pool.layerOutputs(test, prep);
 *   const points = await pool.sweep(out, test.labels, rankByMean(out));
 * } finally {
 *   pool.close();
 * }
 * ```
 */
export class SweepPool {
  /** Suffix rows the workers ran in the last sweep, all together. */
  lastSweepRows = 0;
  /** Which outputs the workers hold: `out` sliced by image ranges, or whole in every worker. */
  private held: { out: LayerOutputs; ranges: [number, number][] | null } | null = null;

  private constructor(
    private readonly workers: PoolWorker<WorkerRequest>[],
    private readonly layer: LayerRef,
    /** The backend every worker runs. */
    readonly backend: string,
    /** What a pruned channel emits (the layer's activation of 0). */
    private readonly fill: number,
  ) {}

  /** Start `workers` workers, each with `backend` and a copy of `model` cut at `layer`. */
  static async start(
    model: tf.LayersModel,
    layer: LayerRef,
    opts: { workers: number; backend: BackendName },
  ): Promise<SweepPool> {
    const count = Math.floor(opts.workers);
    if (!(count >= 1)) throw new UserError(`--workers must be a positive integer, got ${opts.workers}.`);
    const artifacts = await modelArtifacts(model);
    const workers = Array.from({ length: count }, () => new PoolWorker<WorkerRequest>(WORKER_URL));
    try {
      const backends = await Promise.all(
        workers.map((w) =>
          w.request<string>({ type: "init", backend: opts.backend, artifacts, layer: layer.name })
        ),
      );
      return new SweepPool(
        workers,
        layer,
        backends[0],
        (await splitModelAsync(model, layer)).activationOfZero,
      );
    } catch (e) {
      workers.forEach((w) => w.worker.terminate());
      throw e;
    }
  }

  /** Number of workers. */
  get size(): number {
    return this.workers.length;
  }

  /** The largest tf.memory().numBytes any worker reported. */
  get tfPeakBytes(): number {
    return Math.max(0, ...this.workers.map((w) => w.tfPeakBytes));
  }

  /**
   * The layer's outputs for every image of `ds`, the images split between the workers (each
   * keeps its share for an images-split sweep). Equal to `computeLayerOutputs`'s.
   */
  async layerOutputs(
    ds: Dataset,
    prep: Preprocessing,
    opts: { batch?: number; onProgress?: (done: number) => void; maxBytes?: number } = {},
  ): Promise<LayerOutputs> {
    const [height, width, channels] = this.layer.outputShape;
    const perImage = height * width * channels;
    const bytes = ds.count * perImage * 4;
    const maxBytes = opts.maxBytes ?? DEFAULT_MAX_OUTPUT_BYTES;
    if (bytes > maxBytes) {
      throw new UserError(
        `layer ${this.layer.name}'s outputs for ${ds.count} images need ${
          (bytes / 2 ** 30).toFixed(1)
        } GiB, ` +
          `more than the ${
            (maxBytes / 2 ** 30).toFixed(1)
          } GiB allowed: use fewer images (--limit) or a later layer.`,
      );
    }
    const ranges = evenRanges(ds.count, this.size);
    const done = ranges.map(() => 0);
    const parts = await Promise.all(ranges.map(([s, e], w) => {
      if (e === s) return Promise.resolve(null);
      const images = ds.images.slice(s * imageSize(ds), e * imageSize(ds));
      return this.workers[w].request<LayerOutputs>(
        { type: "prefix", images, count: e - s, prep, batch: opts.batch ?? 256 },
        (n) => {
          done[w] = n;
          opts.onProgress?.(done.reduce((a, b) => a + b, 0));
        },
        [images.buffer],
      );
    }));
    const data = new Float32Array(ds.count * perImage);
    parts.forEach((part, w) => {
      if (part) data.set(part.data, ranges[w][0] * perImage);
    });
    const out: LayerOutputs = { data, count: ds.count, height, width, channels };
    this.held = { out, ranges };
    return out;
  }

  /** Make every worker hold `out`: its image range when `ranges` is given, else all of it. */
  private async hold(out: LayerOutputs, ranges: [number, number][] | null): Promise<void> {
    const same = this.held?.out === out &&
      JSON.stringify(this.held.ranges) === JSON.stringify(ranges);
    if (same) return;
    const perImage = out.height * out.width * out.channels;
    await Promise.all(this.workers.map((w, i) => {
      const [s, e] = ranges ? ranges[i] : [0, out.count];
      const data = out.data.slice(s * perImage, e * perImage);
      const outputs: LayerOutputs = { ...out, count: e - s, data };
      return w.request<number>({ type: "outputs", outputs }, undefined, [data.buffer as ArrayBuffer]);
    }));
    this.held = { out, ranges };
  }

  /**
   * Accuracy for each K, the work shared between the workers. Same counts as one worker's
   * `sweepIncremental` (and so as `sweepFast`, unless the engine is "algebra").
   */
  async sweep(
    out: LayerOutputs,
    labels: Uint8Array,
    ranking: Ranking,
    opts: PoolSweepOptions = {},
  ): Promise<SweepPoint[]> {
    const ks = resolveKValues(opts.kValues, out.channels);
    const splitBy = opts.split ?? "images";
    const workDone = this.workers.map(() => 0);
    const workTotal = this.workers.map(() => 1);
    const progress = (w: number) => (done: number, total: number) => {
      workDone[w] = done;
      workTotal[w] = total;
      const fraction = workDone.reduce((a, b) => a + b, 0) / workTotal.reduce((a, b) => a + b, 0);
      opts.onProgress?.(Math.min(ks.length, Math.floor(fraction * ks.length)));
    };
    const base = {
      type: "sweep" as const,
      order: ranking.order,
      engine: opts.engine ?? "exact",
      sparseTail: opts.sparseTail,
      memoryBudgetBytes: opts.memoryBudgetBytes,
    };
    let correct: number[];
    let classCorrect: number[][];
    let shares: SweepShare[];
    if (splitBy === "images") {
      const ranges = evenRanges(out.count, this.size);
      await this.hold(out, ranges);
      shares = await Promise.all(
        ranges.map(([s, e], w) =>
          e === s
            ? Promise.resolve({ correct: ks.map(() => 0), classCorrect: ks.map(() => []), rows: 0 })
            : this.workers[w].request<SweepShare>(
              { ...base, labels: labels.slice(s, e), kValues: ks },
              progress(w),
            )
        ),
      );
      correct = ks.map((_, j) => shares.reduce((sum, c) => sum + c.correct[j], 0));
      classCorrect = ks.map((_, j) => addCounts(shares.map((c) => c.classCorrect[j])));
    } else {
      await this.hold(out, null);
      const cost = changeCounts(out, this.fill, ranking.order, ks);
      const ranges = balancedRanges(cost, this.size, out.count);
      shares = await Promise.all(
        ranges.map(([s, e], w) =>
          e === s
            ? Promise.resolve({ correct: [], classCorrect: [], rows: 0 })
            : this.workers[w].request<SweepShare>(
              { ...base, labels: labels.slice(0, out.count), kValues: ks.slice(s, e) },
              progress(w),
            )
        ),
      );
      correct = shares.flatMap((c) => c.correct);
      classCorrect = shares.flatMap((c) => c.classCorrect);
    }
    this.lastSweepRows = shares.reduce((sum, c) => sum + c.rows, 0);
    opts.onProgress?.(ks.length);
    return ks.map((k, j) => sweepPoint(k, ranking, correct[j], out.count, classCorrect[j]));
  }

  /** Stop every worker. */
  close(): void {
    for (const w of this.workers) w.worker.terminate();
  }

  /** `close()`, for `using pool = await SweepPool.start(...)`. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/** Per-class counts added entry by entry (an empty list, from a worker with no images, adds nothing). */
function addCounts(parts: number[][]): number[] {
  const width = Math.max(0, ...parts.map((p) => p.length));
  return Array.from({ length: width }, (_, c) => parts.reduce((sum, p) => sum + (p[c] ?? 0), 0));
}
