/**
 * The sweep engines behind one interface, picked by name in one place (`openEngine`).
 *
 * | name           | what runs per K                                                                 | counts            |
 * |----------------|----------------------------------------------------------------------------------|-------------------|
 * | `exact`        | the suffix, only for images whose masked layer output changed (change-only)      | the naive method's |
 * |                | (on WebGPU in one process: the masked engine, every K batched on the device)     |                   |
 * | `dense-kernel` | the same rows, the Dense layers after the layer on our wasm kernel               | the naive method's |
 * | `algebra`      | the first Dense layer updated per pruned channel, the rest on the kernel         | near ties may flip |
 * | `naive`        | the lab's method: zero the weights, run the whole model                          | the reference      |
 *
 * Each engine holds the prefix pass too (`layerOutputs`), so that with `workers > 1` the workers
 * that hold a share of the layer outputs are the ones that sweep them (sweep/engines/pool.ts).
 * With `naive`, the prefix pass still feeds the ranking, on the workers when there are some, and
 * the sweep runs in this process. To add an engine: one module under engines/, one name here.
 */
import * as tf from "@tensorflow/tfjs";
import { UserError } from "../core/errors.ts";
import type { BackendName } from "../backend.ts";
import type { Dataset, Preprocessing, Ranking, SweepPoint } from "../types.ts";
import type { LayerRef } from "../model/layers.ts";
import type { SplitModel } from "../model/split.ts";
import { computeLayerOutputs, type LayerOutputs } from "../activations/layer_outputs.ts";
import { resolveKValues } from "./kvalues.ts";
import { engineRows, planLinearHead } from "./linear_head.ts";
import type { RowEngine } from "./rows.ts";
import { sweepIncremental } from "./engines/change_only.ts";
import { sweepFast } from "./engines/masked.ts";
import { sweepNaive } from "./engines/naive.ts";
import { SweepPool, type SweepSplit } from "./engines/pool.ts";

/** One engine's name: an engine of rows, or the lab's method. */
export type EngineName = RowEngine | "naive";

/** The engines, by the name `openEngine` takes. */
export const ENGINE_NAMES: readonly EngineName[] = ["exact", "dense-kernel", "algebra", "naive"];

/** What `--engine` takes: an engine, or "auto" (`chooseEngine`). */
export type EngineChoice = EngineName | "auto";

/**
 * Weights of the Dense layers after the layer (the kernel's chain) from which the dense kernel
 * beats the exact engine. Measured on the 2-core machine, wasm, one worker: on the shipped VGG's
 * head (0.43 M weights: 128 -> 1024 -> 256 -> 128) the exact engine sweeps 2,000 images in 17-28 s
 * and the kernel in 21-40 s; on the full-size lab VGG's (6.8 M: 512 -> 4096 -> 1024 -> 512) the
 * kernel takes 14.6 min and the exact engine 22.0 min (README, bench case b).
 */
export const DENSE_KERNEL_MIN_WEIGHTS = 2 ** 21;

/**
 * The engine `--engine auto` runs: the fastest exact one for the task. On WebGPU in one process
 * the exact engine (the masked engine, every K batched on the device); elsewhere the dense
 * kernel where it applies (a Dense head after the layer, relu or linear, WebAssembly SIMD) and
 * that head is big enough to pay for it (`DENSE_KERNEL_MIN_WEIGHTS`), else the exact engine.
 * Both give the naive method's counts. A named engine is returned as is.
 *
 * @example
 * ```ts
 * const { name, why } = await chooseEngine("auto", task, { backend: "wasm", workers: 2 });
 * // name "dense-kernel" on the shipped VGG; why says so in words
 * ```
 */
export async function chooseEngine(
  choice: EngineChoice,
  task: SweepTask,
  opts: { backend: string; workers: number; minKernelWeights?: number },
): Promise<{ name: EngineName; why: string }> {
  if (choice !== "auto") return { name: choice, why: "flag" };
  if (opts.backend === "webgpu" && opts.workers === 1) {
    return { name: "exact", why: "auto: the masked engine on the GPU" };
  }
  try {
    await engineRows(task.model, task.split, "dense-kernel");
  } catch (e) {
    if (!(e instanceof UserError)) throw e;
    return {
      name: "exact",
      why: `auto: no dense kernel here (${e.message.replace(/^--dense-kernel /, "")})`,
    };
  }
  const plan = await planLinearHead(task.model, task.layer);
  const layers = "head" in plan ? [plan.head.dense, ...(plan.head.denseTail?.layers ?? [])] : [];
  const weights = layers.reduce((sum, l) => sum + l.countParams(), 0);
  const head = `the Dense head after ${task.layer.name} (${(weights / 1e6).toFixed(2)} M weights)`;
  return weights >= (opts.minKernelWeights ?? DENSE_KERNEL_MIN_WEIGHTS)
    ? { name: "dense-kernel", why: `auto: ${head} runs on the kernel` }
    : { name: "exact", why: `auto: ${head} is too small to pay for the kernel` };
}

/** Progress of a long step: `done` units of `total` (images, rows or K values). */
export type OnProgress = (done: number, total: number) => void;

/** What an engine sweeps: one layer of one model, on one data set. */
export interface SweepTask {
  model: tf.LayersModel;
  layer: LayerRef;
  /** The model cut at `layer` (`splitModelAsync`). */
  split: SplitModel;
  /** The images and labels (the test set). */
  data: Dataset;
  prep: Preprocessing;
}

/** How an engine runs. */
export interface EngineOptions {
  /** Worker threads sharing the prefix pass and the sweep (default 1: this process). */
  workers?: number;
  /** The backend the workers set up (required with `workers > 1`). */
  backend?: BackendName;
  /** With `algebra`: the relu Dense layers after the first on the sparse kernel (default: on wasm and cpu). */
  sparseTail?: boolean;
  /** With workers: share the sweep by images (default) or by K ranges. */
  split?: SweepSplit;
  /** Bytes one suffix call may take (each worker's, with workers). */
  memoryBudgetBytes?: number;
  /** Images per forward pass of `naive` (default 256). */
  batch?: number;
}

/** Options of one sweep. */
export interface EngineSweepOptions {
  /** The K values (default 0..C). */
  kValues?: number[];
  onProgress?: OnProgress;
}

/**
 * One engine for one `SweepTask`: the prefix pass once, then any number of sweeps (one per
 * ranking) from its outputs. Close it (or `using`) to stop its workers.
 */
export interface SweepEngine extends Disposable {
  readonly name: EngineName;
  /** What runs, in words (recorded by the bench). */
  readonly description: string;
  /** Worker threads (1: this process). */
  readonly workers: number;
  /** The layer's outputs for every image of the task's data (the prefix pass). */
  layerOutputs(opts?: { batch?: number; onProgress?: OnProgress }): Promise<LayerOutputs>;
  /** Accuracy for each K, the K first channels of `ranking.order` pruned. */
  sweep(outputs: LayerOutputs, ranking: Ranking, opts?: EngineSweepOptions): Promise<SweepPoint[]>;
  /** Suffix rows the last sweep ran (0 for `naive`). */
  readonly lastSweepRows: number;
  /** The largest tf.memory().numBytes a worker reported (0 without workers). */
  readonly workerPeakBytes: number;
  close(): void;
}

/**
 * Open engine `name` on `task`. An engine that does not apply to the layer (`algebra` or
 * `dense-kernel` with no Dense head after it) and workers on WebGPU are UserErrors, raised here,
 * before any long work.
 *
 * @example
 * ```ts
 * using engine = await openEngine("exact", { model, layer, split, data: test, prep });
 * const outputs = await engine.layerOutputs();
 * const points = await engine.sweep(outputs, rankByMean(outputs));
 * ```
 */
export async function openEngine(
  name: EngineName,
  task: SweepTask,
  opts: EngineOptions = {},
): Promise<SweepEngine> {
  if (!ENGINE_NAMES.includes(name)) {
    throw new UserError(`unknown sweep engine '${name}'; engines: ${ENGINE_NAMES.join(", ")}.`);
  }
  const workers = opts.workers ?? 1;
  if (workers > 1 && opts.backend === "webgpu") {
    // The pool cuts the model with synchronous reads, which WebGPU cannot do.
    throw new UserError("--workers runs on cpu or wasm only; with --backend webgpu use --workers 1.");
  }
  const { model, layer, split, data, prep } = task;
  if (workers > 1 && (split.carried.length > 0 || split.members.length > 0)) {
    throw new UserError(
      `--workers does not yet apply to ${layer.name}: ${
        split.members.length > 0
          ? "it heads a coupled channel group"
          : "a skip connection crosses the cut there"
      }; use --workers 1.`,
    );
  }
  // The rows of --algebra / --dense-kernel, refused here where they do not apply; one source
  // serves every sweep (the workers build their own).
  const rows = name === "naive"
    ? undefined
    : await engineRows(model, split, name, { sparseTail: opts.sparseTail });
  const pool = workers > 1 ? await SweepPool.start(model, layer, { workers, backend: opts.backend! }) : null;
  // On a GPU in one process, the masked engine: many K batched in one device call, the masks
  // built on the device; the change-only engine's rows are built on the host.
  // A group's members after the cut change scores where the cut's values did not, so a group is
  // always swept by the masked engine.
  const masked = name === "exact" && !pool && (tf.getBackend() === "webgpu" || split.members.length > 0);
  let lastSweepRows = 0;
  const description = masked
    ? "masked (exact)"
    : name === "naive"
    ? "naive (weights zeroed, whole model)"
    : name === "algebra"
    ? `change-only + dense algebra${rows?.scoreRows ? " + sparse dense tail" : ""}`
    : name === "dense-kernel"
    ? "change-only + dense kernel (exact)"
    : "change-only (exact)";
  const engine: SweepEngine = {
    name,
    description,
    workers,
    get lastSweepRows() {
      return lastSweepRows;
    },
    get workerPeakBytes() {
      return pool?.tfPeakBytes ?? 0;
    },
    layerOutputs(o = {}) {
      const onProgress = (n: number) => o.onProgress?.(n, data.count);
      return pool
        ? pool.layerOutputs(data, prep, { batch: o.batch, onProgress })
        : computeLayerOutputs(split, data, prep, { batch: o.batch, onProgress });
    },
    async sweep(outputs, ranking, o = {}) {
      const ks = resolveKValues(o.kValues, layer.channels).length;
      const kProgress = (k: number) => o.onProgress?.(k, ks);
      if (name === "naive") {
        lastSweepRows = 0;
        return await sweepNaive(model, layer, data, prep, ranking, {
          members: split.members.map((m) => m.name),
          kValues: o.kValues,
          batch: opts.batch,
          onProgress: kProgress,
        });
      }
      if (masked) {
        let rowsRun = 0;
        const points = await sweepFast(split, outputs, data.labels, ranking, {
          kValues: o.kValues,
          memoryBudgetBytes: opts.memoryBudgetBytes,
          onWork: (done, total) => {
            rowsRun = done;
            o.onProgress?.(done, total);
          },
        });
        lastSweepRows = rowsRun;
        return points;
      }
      if (pool) {
        const points = await pool.sweep(outputs, data.labels, ranking, {
          kValues: o.kValues,
          engine: name,
          sparseTail: opts.sparseTail,
          split: opts.split,
          memoryBudgetBytes: opts.memoryBudgetBytes,
          onProgress: kProgress,
        });
        lastSweepRows = pool.lastSweepRows;
        return points;
      }
      return await sweepIncremental(split, outputs, data.labels, ranking, {
        kValues: o.kValues,
        rows,
        memoryBudgetBytes: opts.memoryBudgetBytes,
        onWork: (done, total) => {
          lastSweepRows = done;
          o.onProgress?.(done, total);
        },
      });
    },
    close() {
      pool?.close();
    },
    [Symbol.dispose]() {
      pool?.close();
    },
  };
  return engine;
}
