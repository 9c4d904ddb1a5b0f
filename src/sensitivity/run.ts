/**
 * A sensitivity run over several layers: which layers (every uncoupled conv layer, or the named
 * ones), then each layer's scan in this process or, with workers, on the worker pool; the
 * progress of either in one style.
 */
import type * as tf from "@tensorflow/tfjs";
import { UserError } from "../core/errors.ts";
import type { Dataset, Preprocessing } from "../types.ts";
import { convLayers, type LayerRef, pickLayer } from "../model/layers.ts";
import { couplingMessage, couplingOf } from "../model/coupling.ts";
import type { Criterion } from "../rank/registry.ts";
import { layerSensitivity, type LayerSensitivityResult } from "./scan.ts";
import { sensitivityOnWorkers, type SensitivityPoolOptions } from "./pool.ts";

/**
 * The layers to analyse: all uncoupled conv layers (the coupled ones skipped, with the reason),
 * or the named ones (a coupled one refused).
 *
 * @example
 * ```ts
 * chooseLayers(model, "all").layers.map((l) => l.name); // every conv layer not coupled by a merge
 * ```
 */
export function chooseLayers(
  model: Parameters<typeof convLayers>[0],
  spec: string,
): { layers: LayerRef[]; skipped: { layer: string; reason: string }[] } {
  const skipped: { layer: string; reason: string }[] = [];
  if (spec.trim().toLowerCase() === "all") {
    const layers: LayerRef[] = [];
    for (const l of convLayers(model)) {
      const c = couplingOf(model, l);
      if (c) skipped.push({ layer: l.name, reason: couplingMessage(c) });
      else layers.push(l);
    }
    if (layers.length === 0) {
      throw new UserError(
        convLayers(model).length === 0
          ? "the model has no Conv2D layer; run 'deno task inspect' to see its layers."
          : `every conv layer is coupled to another through a merge: ${
            skipped.map((s) => s.reason).join("; ")
          }.`,
      );
    }
    return { layers, skipped };
  }
  const names = spec.split(",").map((s) => s.trim()).filter((s) => s !== "");
  if (names.length === 0) throw new UserError(`--layers needs 'all' or conv layer names a,b,...`);
  const layers = names.map((n) => pickLayer(model, n));
  for (const l of layers) {
    const c = couplingOf(model, l);
    if (c) throw new UserError(`--layers ${l.name}: ${couplingMessage(c)}; leave it out of --layers.`);
  }
  if (new Set(names).size !== names.length) throw new UserError(`--layers names a layer twice.`);
  return { layers, skipped };
}

/** Options of `scanLayers`: the pool's, with the criterion itself and one progress callback. */
export interface ScanOptions
  extends Omit<SensitivityPoolOptions, "criterion" | "onWork" | "onLayerStart" | "onLayerDone"> {
  criterion: Criterion;
  /** The training images, for a gradient criterion in this process (the workers read `dataDir`). */
  gradientImages: () => Promise<Dataset>;
  /** Called with the work units done so far (`plannedWork`'s) and the layers being scanned. */
  onProgress?: (done: number, layers: string) => void;
}

/**
 * `layerSensitivity` for every layer of `layers`, in order: in this process, or on
 * `opts.workers` workers (the same results).
 *
 * @example
 * ```ts
 * const results = await scanLayers(model, layers, test, prep, { workers: 1, ... });
 * ```
 */
export async function scanLayers(
  model: tf.LayersModel,
  layers: LayerRef[],
  test: Dataset,
  prep: Preprocessing,
  opts: ScanOptions,
): Promise<LayerSensitivityResult[]> {
  let done = 0;
  if (opts.workers > 1) {
    const running = new Set<string>();
    const { gradientImages: _, onProgress: __, ...pool } = opts;
    return await sensitivityOnWorkers(model, layers, test, prep, {
      ...pool,
      criterion: opts.criterion.name,
      onLayerStart: (name) => running.add(name),
      onLayerDone: (name) => running.delete(name),
      onWork: (n) => opts.onProgress?.(done += n, [...running].join(", ")),
    });
  }
  const results: LayerSensitivityResult[] = [];
  for (const [i, layer] of layers.entries()) {
    const info = `${layer.name} (${i + 1}/${layers.length})`;
    opts.onProgress?.(done, info);
    results.push(
      await layerSensitivity(model, layer, test, prep, {
        criterion: opts.criterion,
        seed: opts.seed,
        kValues: opts.kValues(layer),
        outputKind: opts.outputKind,
        maxCacheBytes: opts.maxCacheBytes,
        batch: opts.batch,
        gradientImages: opts.gradientImages,
        onWork: (n) => opts.onProgress?.(done += n, info),
      }),
    );
  }
  return results;
}
