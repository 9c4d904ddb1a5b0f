/**
 * One generic pool of Deno workers: a worker and its outstanding requests (`PoolWorker`, the main
 * thread's half of protocol.ts), the model's artifacts a worker rebuilds the model from, and the
 * ways of sharing work out (`evenRanges`, `balancedRanges`). The sweep pool (sweep/engines/pool.ts)
 * and the sensitivity pool (sensitivity/pool.ts) are built on it.
 */
import * as tf from "@tensorflow/tfjs";
import { UserError } from "../core/errors.ts";
import type { WorkerReply } from "./protocol.ts";

/** The model's artifacts (topology, weight specs, weight buffers), as `model.save` gives them. */
export async function modelArtifacts(model: tf.LayersModel): Promise<tf.io.ModelArtifacts> {
  let artifacts: tf.io.ModelArtifacts | null = null;
  await model.save(tf.io.withSaveHandler((a) => {
    artifacts = a;
    return Promise.resolve({ modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: "JSON" } });
  }));
  if (!artifacts) throw new Error("model.save gave no artifacts");
  return artifacts;
}

/** Split `total` items into `parts` contiguous ranges, as equal as possible: [start, end) pairs. */
export function evenRanges(total: number, parts: number): [number, number][] {
  return Array.from({ length: parts }, (_, w) => [
    Math.floor((w * total) / parts),
    Math.floor(((w + 1) * total) / parts),
  ]);
}

/**
 * Split K steps 0..n-1 of costs `cost` into `parts` contiguous ranges whose largest cost is as
 * small as it can be, where a range's first step costs `first` (a worker evaluates every image at
 * its first K) instead of its own cost. Ranges past the last step are empty.
 *
 * @example
 * ```ts
 * balancedRanges([100, 1, 1, 1, 100, 100], 2, 100); // [[0, 4], [4, 6]]: costs 103 and 200
 * ```
 */
export function balancedRanges(cost: ArrayLike<number>, parts: number, first: number): [number, number][] {
  const n = cost.length;
  const greedy = (bound: number): [number, number][] | null => {
    const ranges: [number, number][] = [];
    for (let s = 0; s < n;) {
      if (ranges.length === parts || first > bound) return null;
      let acc = first, e = s + 1;
      while (e < n && acc + cost[e] <= bound) acc += cost[e++];
      ranges.push([s, e]);
      s = e;
    }
    while (ranges.length < parts) ranges.push([n, n]);
    return ranges;
  };
  let lo = first, hi = first;
  for (let j = 1; j < n; j++) hi += cost[j];
  // Smallest bound (to 1 unit: costs are row counts) for which the greedy split fits in `parts`.
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (greedy(mid)) hi = mid;
    else lo = mid;
  }
  return greedy(lo) ?? greedy(hi)!;
}

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  onProgress?: (done: number, total: number) => void;
}

/**
 * One Deno worker (the module at `url`) and its outstanding requests: each request is
 * answered by one result or error message with its `id`, progress messages in between.
 */
export class PoolWorker<Request extends { id: number }> {
  readonly worker: Worker;
  private next = 1;
  private pending = new Map<number, Pending>();
  tfPeakBytes = 0;

  constructor(url: URL) {
    this.worker = new Worker(url.href, { type: "module" });
    this.worker.onmessage = (e: MessageEvent<WorkerReply>) => {
      const reply = e.data;
      const p = this.pending.get(reply.id);
      if (!p) return;
      if (reply.type === "progress") {
        p.onProgress?.(reply.done, reply.total);
        return;
      }
      this.pending.delete(reply.id);
      if (reply.type === "result") {
        this.tfPeakBytes = Math.max(this.tfPeakBytes, reply.tfPeakBytes);
        p.resolve(reply.value);
      } else {
        p.reject(
          reply.userError ? new UserError(reply.message) : new Error(`worker: ${reply.message}`),
        );
      }
    };
    this.worker.onerror = (e: ErrorEvent) => {
      e.preventDefault();
      const error = new Error(`worker failed: ${e.message}`);
      for (const p of this.pending.values()) p.reject(error);
      this.pending.clear();
    };
  }

  request<T>(
    msg: DistributiveOmit<Request, "id">,
    onProgress?: (done: number, total: number) => void,
    transfer: Transferable[] = [],
  ): Promise<T> {
    const id = this.next++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, onProgress });
      this.worker.postMessage({ ...msg, id }, transfer);
    });
  }
}

/** `Omit` applied to each member of a union. */
export type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
