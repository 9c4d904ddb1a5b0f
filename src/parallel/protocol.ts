/// <reference no-default-lib="true" />
/// <reference lib="deno.worker" />
/**
 * The request/answer loop shared by the pool workers (sweep/worker.ts, sensitivity/worker.ts):
 * each request carries an `id` and is answered by one `result` or `error` message with that `id`,
 * `progress` messages in between; every answer reports the worker's peak tf.memory() so far.
 */
import * as tf from "@tensorflow/tfjs";
import { UserError } from "../core/errors.ts";

/** A worker's answer: a result, progress (`done` of `total` units), or an error. */
export type WorkerReply =
  | { id: number; type: "result"; value: unknown; tfPeakBytes: number }
  | { id: number; type: "progress"; done: number; total: number }
  | { id: number; type: "error"; message: string; userError: boolean };

let tfPeakBytes = 0;

/** Record the current tf.memory() in the worker's peak. */
function sampleMemory(): void {
  tfPeakBytes = Math.max(tfPeakBytes, tf.memory().numBytes);
}

/** Send a progress message for request `id`. */
export function postProgress(id: number, done: number, total: number): void {
  sampleMemory();
  self.postMessage({ id, type: "progress", done, total } satisfies WorkerReply);
}

/**
 * Answer every request with `handle`'s value, or with its error (a UserError keeps its one line).
 *
 * @example
 * ```ts
 * serveRequests(async (msg: MyRequest) => msg.type === "ping" ? "pong" : null);
 * ```
 */
export function serveRequests<Request extends { id: number }>(
  handle: (msg: Request) => Promise<unknown>,
): void {
  self.onmessage = async (e: MessageEvent<Request>) => {
    const msg = e.data;
    try {
      const value = await handle(msg);
      sampleMemory();
      self.postMessage({ id: msg.id, type: "result", value, tfPeakBytes } satisfies WorkerReply);
    } catch (err) {
      const error = err as Error;
      self.postMessage(
        {
          id: msg.id,
          type: "error",
          message: error instanceof UserError ? error.message : `${error.message}\n${error.stack ?? ""}`,
          userError: error instanceof UserError,
        } satisfies WorkerReply,
      );
    }
  };
}
