/// <reference no-default-lib="true" />
/// <reference lib="deno.worker" />
/**
 * One worker of the parallel sensitivity run (pool.ts): its own TF.js backend, its
 * own copy of the model (rebuilt from the artifacts the main thread sends) and of the test set.
 * It analyses whole layers, one per request, with `layerSensitivity`: the very computation one
 * process runs for that layer, so the results are the same.
 *
 * Protocol (main -> worker, each with an `id`; the answer carries the same `id`):
 * - `init` {backend, artifacts, test, prep, outputKind, dataDir, taylorImages}: set up.
 * - `layer` {layer, criterion, seed, kValues, maxCacheBytes, batch}: analyse one layer; progress
 *   messages carry the work units done so far (`plannedWork`'s units); the answer is the
 *   `LayerSensitivityResult`.
 */
import * as tf from "@tensorflow/tfjs";
import { type BackendName, setupBackend } from "../backend.ts";
import { loadTrainSet } from "../data/cifar10.ts";
import { pickLayer } from "../model/layers.ts";
import type { Dataset, Preprocessing } from "../types.ts";
import type { OutputKind } from "../model/class_scores.ts";
import { criterionByName } from "../rank/registry.ts";
import { layerSensitivity } from "./scan.ts";
import { postProgress, serveRequests } from "../parallel/protocol.ts";

/** A request to a sensitivity worker. */
export type SensitivityRequest =
  | {
    id: number;
    type: "init";
    backend: BackendName;
    artifacts: tf.io.ModelArtifacts;
    test: Dataset;
    prep: Preprocessing;
    outputKind: OutputKind;
    dataDir: string;
    taylorImages: number;
  }
  | {
    id: number;
    type: "layer";
    layer: string;
    criterion: string;
    seed: number;
    kValues: number[];
    maxCacheBytes: number;
    batch: number;
    stopBelow?: number;
  };

let state: {
  model: tf.LayersModel;
  test: Dataset;
  prep: Preprocessing;
  outputKind: OutputKind;
  gradientImages: () => Promise<Dataset>;
} | null = null;

async function handle(msg: SensitivityRequest): Promise<unknown> {
  if (msg.type === "init") {
    const backend = await setupBackend(msg.backend);
    const model = await tf.loadLayersModel(tf.io.fromMemory(msg.artifacts));
    let train: Promise<Dataset> | undefined;
    state = {
      model,
      test: msg.test,
      prep: msg.prep,
      outputKind: msg.outputKind,
      gradientImages: () => (train ??= loadTrainSet(msg.dataDir, msg.taylorImages)),
    };
    return backend;
  }
  if (!state) throw new Error("sensitivity worker used before init");
  let done = 0;
  return await layerSensitivity(state.model, pickLayer(state.model, msg.layer), state.test, state.prep, {
    criterion: criterionByName(msg.criterion),
    seed: msg.seed,
    kValues: msg.kValues,
    outputKind: state.outputKind,
    maxCacheBytes: msg.maxCacheBytes,
    batch: msg.batch,
    stopBelow: msg.stopBelow,
    gradientImages: state.gradientImages,
    onWork: (n) => postProgress(msg.id, done += n, 0),
  });
}

serveRequests(handle);
