/**
 * The sensitivity run on several cores: each Deno worker (worker.ts) holds its own
 * backend, model copy and test set, and takes the next whole layer from a queue in the given
 * order (the early layers, whose suffix is the longest, first). A layer's result does not depend
 * on which worker ran it, so the run equals the one-process run.
 */
import type * as tf from "@tensorflow/tfjs";
import type { BackendName } from "../backend.ts";
import { UserError } from "../core/errors.ts";
import type { LayerRef } from "../model/layers.ts";
import type { Dataset, Preprocessing } from "../types.ts";
import type { OutputKind } from "../model/class_scores.ts";
import { modelArtifacts, PoolWorker } from "../parallel/pool.ts";
import type { LayerSensitivityResult } from "./scan.ts";
import type { SensitivityRequest } from "./worker.ts";

/** Options of `sensitivityOnWorkers`. */
export interface SensitivityPoolOptions {
  workers: number;
  backend: BackendName;
  criterion: string;
  seed: number;
  /** The K values of each layer. */
  kValues: (layer: LayerRef) => number[];
  outputKind: OutputKind;
  maxCacheBytes: number;
  batch: number;
  /** See `SensitivityOptions.stopBelow`. */
  stopBelow?: number;
  /** Where a gradient criterion's training images come from. */
  dataDir: string;
  taylorImages: number;
  /** Called with newly done work units (`plannedWork`'s units) and the layer they belong to. */
  onWork?: (units: number, layer: string) => void;
  /** Called when a worker starts a layer, and when it has finished it. */
  onLayerStart?: (layer: string, index: number) => void;
  onLayerDone?: (layer: string, index: number) => void;
}

/**
 * `layerSensitivity` for every layer of `layers`, on `opts.workers` workers; results in the
 * order of `layers`.
 *
 * @example
 * ```ts
 * const results = await sensitivityOnWorkers(model, layers, test, prep, { workers: 2, backend: "wasm", ... });
 * ```
 */
export async function sensitivityOnWorkers(
  model: tf.LayersModel,
  layers: LayerRef[],
  test: Dataset,
  prep: Preprocessing,
  opts: SensitivityPoolOptions,
): Promise<LayerSensitivityResult[]> {
  const count = Math.min(Math.floor(opts.workers), layers.length);
  if (!(count >= 1)) throw new UserError(`--workers must be a positive integer, got ${opts.workers}.`);
  const artifacts = await modelArtifacts(model);
  const url = new URL("./worker.ts", import.meta.url);
  const workers = Array.from({ length: count }, () => new PoolWorker<SensitivityRequest>(url));
  try {
    await Promise.all(workers.map((w) =>
      w.request<string>({
        type: "init",
        backend: opts.backend,
        artifacts,
        test,
        prep,
        outputKind: opts.outputKind,
        dataDir: opts.dataDir,
        taylorImages: opts.taylorImages,
      })
    ));
    const results: LayerSensitivityResult[] = new Array(layers.length);
    let next = 0;
    const drain = async (w: PoolWorker<SensitivityRequest>) => {
      while (next < layers.length) {
        const index = next++;
        const layer = layers[index];
        opts.onLayerStart?.(layer.name, index);
        let reported = 0;
        results[index] = await w.request<LayerSensitivityResult>(
          {
            type: "layer",
            layer: layer.name,
            criterion: opts.criterion,
            seed: opts.seed,
            kValues: opts.kValues(layer),
            maxCacheBytes: opts.maxCacheBytes,
            batch: opts.batch,
            stopBelow: opts.stopBelow,
          },
          (done) => {
            opts.onWork?.(done - reported, layer.name);
            reported = done;
          },
        );
        opts.onLayerDone?.(layer.name, index);
      }
    };
    await Promise.all(workers.map(drain));
    return results;
  } finally {
    workers.forEach((w) => w.worker.terminate());
  }
}
