/// <reference no-default-lib="true" />
/// <reference lib="deno.worker" />
/**
 * One worker of the parallel sweep pool (engines/pool.ts): its own TF.js backend and its own copy
 * of the model, rebuilt from the model's artifacts (topology and weight buffers) sent by the
 * main thread. It runs the prefix pass on a share of the images and the change-only sweep on a
 * share of the work, and answers each request with one message (progress messages in between).
 *
 * Protocol (main -> worker, each with an `id`; the answer carries the same `id`):
 * - `init` {backend, artifacts, layer}: set up the backend, build the model, cut it at `layer`.
 * - `prefix` {images, count, prep, batch}: compute and keep the layer outputs of these images; answer with them.
 * - `outputs` {outputs}: keep these layer outputs instead.
 * - `sweep` {labels, order, kValues, engine, sparseTail, memoryBudgetBytes}: sweep the kept outputs; answer
 *   with the counts and the number of suffix rows run (`SweepShare`).
 */
import * as tf from "@tensorflow/tfjs";
import { type BackendName, setupBackend } from "../backend.ts";
import { pickLayer } from "../model/layers.ts";
import { type SplitModel, splitModelAsync } from "../model/split.ts";
import type { Pixels, Preprocessing } from "../types.ts";
import { computeLayerOutputs, type LayerOutputs } from "../activations/layer_outputs.ts";
import { engineRows } from "./linear_head.ts";
import { sweepIncremental } from "./engines/change_only.ts";
import type { RowEngine, RowSource } from "./rows.ts";
import { postProgress, serveRequests } from "../parallel/protocol.ts";

/** A request to a worker. */
export type WorkerRequest =
  | { id: number; type: "init"; backend: BackendName; artifacts: tf.io.ModelArtifacts; layer: string }
  | { id: number; type: "prefix"; images: Pixels; count: number; prep: Preprocessing; batch: number }
  | { id: number; type: "outputs"; outputs: LayerOutputs }
  | {
    id: number;
    type: "sweep";
    labels: Uint8Array;
    order: number[];
    kValues: number[];
    engine: RowEngine;
    sparseTail?: boolean;
    memoryBudgetBytes?: number;
  };

/** A worker's sweep result: counts per K of its share (in all, and per true class), and the suffix rows it ran. */
export interface SweepShare {
  correct: number[];
  classCorrect: number[][];
  rows: number;
}

let model: tf.LayersModel | null = null;
let split: SplitModel | null = null;
let kept: LayerOutputs | null = null;
// The row source of the last sweep, kept for the next one with the same engine (weights read once).
let rowsFor: { key: string; rows: RowSource | undefined } | null = null;

async function handle(msg: WorkerRequest): Promise<unknown> {
  if (msg.type === "init") {
    const backend = await setupBackend(msg.backend);
    model = await tf.loadLayersModel(tf.io.fromMemory(msg.artifacts));
    split = await splitModelAsync(model, pickLayer(model, msg.layer));
    rowsFor = null;
    return backend;
  }
  if (!model || !split) throw new Error("worker used before init");
  if (msg.type === "prefix") {
    const [, height, width, channels] = model.inputs[0].shape as number[];
    const ds = {
      images: msg.images,
      labels: new Uint8Array(msg.count),
      count: msg.count,
      source: "pool",
      shape: { height, width, channels },
    };
    kept = await computeLayerOutputs(split, ds, msg.prep, {
      batch: msg.batch,
      maxBytes: Infinity,
      onProgress: (done) => postProgress(msg.id, done, msg.count),
    });
    return kept;
  }
  if (msg.type === "outputs") {
    kept = msg.outputs;
    return kept.count;
  }
  if (!kept) throw new Error("worker asked to sweep before it holds layer outputs");
  const key = `${msg.engine}/${msg.sparseTail}`;
  if (rowsFor?.key !== key) {
    rowsFor = { key, rows: await engineRows(model, split, msg.engine, { sparseTail: msg.sparseTail }) };
  }
  const rows = rowsFor.rows;
  const ranking = { criterion: "pool", order: msg.order, scores: new Float64Array(0) };
  let rowsRun = 0;
  const points = await sweepIncremental(split, kept, msg.labels, ranking, {
    kValues: msg.kValues,
    rows,
    memoryBudgetBytes: msg.memoryBudgetBytes,
    onWork: (done, total) => {
      rowsRun = done;
      postProgress(msg.id, done, total);
    },
  });
  return {
    correct: points.map((p) => p.correct),
    classCorrect: points.map((p) => p.classCorrect ?? []),
    rows: rowsRun,
  } satisfies SweepShare;
}

serveRequests(handle);
