/**
 * A sensitivity run over several layers: which layers (every uncoupled conv layer, or the named
 * ones), then each layer's scan in this process or, with workers, on the worker pool; the
 * progress of either in one style.
 */
import type * as tf from "@tensorflow/tfjs";
import { UserError } from "../core/errors.ts";
import type { Dataset, Preprocessing } from "../types.ts";
import { convLayers, type LayerRef, pickLayer } from "../model/layers.ts";
import { channelGroup, channelGroups } from "../model/coupling.ts";
import type { Criterion } from "../rank/registry.ts";
import { layerSensitivity, type LayerSensitivityResult } from "./scan.ts";
import { sensitivityOnWorkers, type SensitivityPoolOptions } from "./pool.ts";

/**
 * The layers to analyse: every conv layer, a coupled channel group once (by its first member;
 * `layerSensitivity` analyses the group), or the named ones. `skipped` stays for layers a scan
 * cannot take (none at present).
 *
 * @example
 * ```ts
 * chooseLayers(resnet20, "all").layers.length; // 12: the 9 blocks' first convs, the 3 stage groups once each
 * ```
 */
export function chooseLayers(
  model: Parameters<typeof convLayers>[0],
  spec: string,
): { layers: LayerRef[]; skipped: { layer: string; reason: string }[] } {
  const skipped: { layer: string; reason: string }[] = [];
  if (spec.trim().toLowerCase() === "all") {
    // Every conv layer; a coupled channel group once, by its first member (analysed as the group).
    const later = new Set(channelGroups(model).flatMap((g) => g.members.slice(1).map((m) => m.name)));
    const layers = convLayers(model).filter((l) => !later.has(l.name));
    if (layers.length === 0) {
      throw new UserError("the model has no Conv2D layer; run 'deno task inspect' to see its layers.");
    }
    return { layers, skipped };
  }
  const names = spec.split(",").map((s) => s.trim()).filter((s) => s !== "");
  if (names.length === 0) throw new UserError(`--layers needs 'all' or conv layer names a,b,...`);
  const layers = names.map((n) => pickLayer(model, n));
  if (new Set(names).size !== names.length) throw new UserError(`--layers names a layer twice.`);
  const heads = layers.map((l) => channelGroup(model, l)?.members[0].name ?? l.name);
  const twice = heads.find((h, i) => heads.indexOf(h) !== i);
  if (twice !== undefined) {
    throw new UserError(`--layers names two members of the channel group that starts at ${twice}; name one.`);
  }
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
        stopBelow: opts.stopBelow,
        gradientImages: opts.gradientImages,
        onWork: (n) => opts.onProgress?.(done += n, info),
      }),
    );
  }
  return results;
}
