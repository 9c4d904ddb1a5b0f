/**
 * The defaults a command picks for its machine when the flags leave them open: how many workers
 * (`--workers auto`: the cores, capped by memory and by the images there are to share), the
 * memory budget of one call, and the images per forward pass (`--batch`, from that budget and the
 * model's activations per image). Each choice comes with its reason in words, for the first line
 * of output and the run's JSON.
 */
import type * as tf from "@tensorflow/tfjs";
import { DEFAULT_MEMORY_BUDGET } from "../sweep/kvalues.ts";
import { layerOutputShape } from "../model/layers.ts";
import { chooseEngine, type EngineChoice, type EngineName, type SweepTask } from "../sweep/engine.ts";

/** Images a worker must get at least, or the start of another worker costs more than it saves. */
export const MIN_IMAGES_PER_WORKER = 1024;

/** Memory a worker takes besides its share of the work: a Deno isolate and a TF.js backend. */
const WORKER_RUNTIME_BYTES = 256 * 2 ** 20;

/** What a command runs with, and why. */
export interface ResourcePlan {
  workers: number;
  /** Images per forward pass. */
  batch: number;
  /** Bytes one call (a forward pass, a suffix call) may take, per process. */
  memoryBudgetBytes: number;
  /** How each value was chosen: "flag", or the automatic choice's reason. */
  why: { workers: string; batch: string };
}

/** What {@link planResources} weighs. */
export interface ResourceRequest {
  /** `--workers`: a number, or "auto". */
  workers: number | "auto";
  /** `--batch`, when given. */
  batch?: number;
  /** Images the command runs on. */
  images: number;
  model: tf.LayersModel;
  /** The backend in use: WebGPU runs in one process. */
  backend: string;
  /** Units of work the workers share, when fewer than the images allow (sensitivity's layers). */
  units?: number;
  /** Bytes each worker holds besides its runtime, weights and budget (e.g. a cache). */
  workerBytes?: number;
  /** The machine: cores and available memory (default: read from this one). */
  machine?: { cores: number; availableBytes: number | null };
}

/**
 * Bytes of memory available to new work (`Deno.systemMemoryInfo().available`), or null when
 * unknown: the tasks grant `--allow-sys=systemMemoryInfo`; without it nothing is asked (no
 * prompt) and the workers are capped by the cores alone.
 */
export function availableMemoryBytes(): number | null {
  try {
    const granted = Deno.permissions.querySync({ name: "sys", kind: "systemMemoryInfo" }).state === "granted";
    return granted ? Deno.systemMemoryInfo().available : null;
  } catch {
    return null;
  }
}

/** Float32 bytes one image's activations take through every layer of `model` (a memory estimate). */
export function activationBytesPerImage(model: tf.LayersModel): number {
  let elements = 0;
  for (const layer of model.layers) {
    try {
      elements += layerOutputShape(layer).reduce((a, b) => a * Math.max(1, b), 1);
    } catch {
      // A layer without a node (never applied) holds nothing.
    }
  }
  return 4 * elements;
}

/** Bytes of `model`'s weights. */
function weightBytes(model: tf.LayersModel): number {
  return 4 * model.countParams();
}

/**
 * The workers, memory budget and batch for one run: the flags where given; else workers = the
 * cores, no more than the available memory holds (a third of it, each worker taking its runtime,
 * two copies of the weights, a budget and `workerBytes`), than `MIN_IMAGES_PER_WORKER` images
 * each or than `units`, and 1 on WebGPU; the budget `DEFAULT_MEMORY_BUDGET`, less when the
 * memory is short; the batch the power of two whose activations (every layer's output, summed)
 * fit the budget, 16 to 1024.
 *
 * @example
 * ```ts
 * const plan = planResources({ workers: "auto", images: 10_000, model, backend: "wasm" });
 * plan.workers; // 2 on a 2-core machine with memory to spare
 * ```
 */
export function planResources(req: ResourceRequest): ResourcePlan {
  const machine = req.machine ??
    { cores: navigator.hardwareConcurrency || 1, availableBytes: availableMemoryBytes() };
  const available = machine.availableBytes;
  const perWorkerBase = WORKER_RUNTIME_BYTES + 2 * weightBytes(req.model) + (req.workerBytes ?? 0);
  let workers: number, whyWorkers: string;
  if (req.workers !== "auto") {
    workers = req.workers;
    whyWorkers = "flag";
  } else if (req.backend === "webgpu") {
    workers = 1;
    whyWorkers = "auto: WebGPU runs in one process";
  } else {
    const byMemory = available === null
      ? machine.cores
      : Math.floor(available / 3 / (perWorkerBase + DEFAULT_MEMORY_BUDGET));
    const byImages = Math.floor(req.images / MIN_IMAGES_PER_WORKER);
    const byUnits = req.units ?? Infinity;
    workers = Math.max(1, Math.min(machine.cores, byMemory, byImages, byUnits));
    whyWorkers = `auto: ${machine.cores} cores` +
      (available === null ? "" : `, memory for ${Math.max(1, byMemory)}`) +
      (byImages < machine.cores ? `, ${req.images} images (${MIN_IMAGES_PER_WORKER} a worker)` : "") +
      (byUnits < machine.cores ? `, ${byUnits} units of work` : "");
  }
  // The budget of one call in each process (the main one and each worker's).
  const memoryBudgetBytes = available === null
    ? DEFAULT_MEMORY_BUDGET
    : Math.max(16 * 2 ** 20, Math.min(DEFAULT_MEMORY_BUDGET, Math.floor(available / 3 / (workers + 1))));
  let batch: number, whyBatch: string;
  if (req.batch !== undefined) {
    batch = req.batch;
    whyBatch = "flag";
  } else {
    // Every layer's output at once: more than a forward pass holds (it frees each as it goes).
    const perImage = activationBytesPerImage(req.model);
    const fits = Math.max(1, Math.floor(memoryBudgetBytes / Math.max(1, perImage)));
    batch = Math.min(1024, Math.max(16, 2 ** Math.floor(Math.log2(fits))));
    whyBatch = `auto: ${Math.round(memoryBudgetBytes / 2 ** 20)} MiB budget, ${
      (perImage / 2 ** 20).toFixed(2)
    } MiB an image`;
  }
  return { workers, batch, memoryBudgetBytes, why: { workers: whyWorkers, batch: whyBatch } };
}

/**
 * The workers, batch and engine of a sweep run, each from its flag or chosen for this model and
 * machine, printed (with why) as one line on stderr.
 *
 * @example
 * ```ts
 * const run = await planSweepRun("sweep", { workers: "auto", batch: undefined, engine: "auto" }, task, backend);
 * ```
 */
export async function planSweepRun(
  command: string,
  flags: { workers: ResourceRequest["workers"]; batch?: number; engine: EngineChoice },
  task: SweepTask,
  backend: string,
): Promise<{ plan: ResourcePlan; engine: EngineName; why: string }> {
  const plan = planResources({
    workers: flags.workers,
    batch: flags.batch,
    images: task.data.count,
    model: task.model,
    backend,
  });
  const chosen = await chooseEngine(flags.engine, task, { backend, workers: plan.workers });
  console.error(
    `${command}: engine ${chosen.name} (${chosen.why}), workers ${plan.workers} (${plan.why.workers}), ` +
      `batch ${plan.batch} (${plan.why.batch})`,
  );
  return { plan, engine: chosen.name, why: chosen.why };
}
