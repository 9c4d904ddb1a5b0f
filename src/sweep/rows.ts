/**
 * What the change-only engine evaluates, whichever engine builds it: one row per image
 * (`RowSource`), and the engines that build rows (`RowEngine`): the masked layer outputs
 * (engines/change_only.ts `maskedRows`), or, after a Dense head, linear_head.ts's algebra and
 * kernel rows.
 */
import type * as tf from "@tensorflow/tfjs";
import type { LayerOutputs } from "../activations/layer_outputs.ts";

/** The change-only sweep's engines: exact masked rows, the Dense algebra, or the exact rows through the kernel. */
export type RowEngine = "exact" | "algebra" | "dense-kernel";

/**
 * What the engine evaluates: one row per image, the image's current (partly pruned) input to
 * the part of the network that is re-run, kept up to date as channels are pruned one by one.
 */
export interface RowSource {
  /** The shape of one row (without the batch dimension). */
  rowShape: number[];
  /** Device bytes one row takes while being scored (input and activations), for batching. */
  bytesPerRow: number;
  /** Host bytes the state of one loaded image takes. */
  stateBytesPerImage: number;
  /** Load images `start .. start+n-1` of `out`, none of their channels pruned yet. */
  begin(out: LayerOutputs, start: number, n: number): Promise<void>;
  /** Prune channel `c` in every loaded image; set `changed[i] = 1` where image i's row changed. */
  prune(c: number, changed: Uint8Array): void;
  /** Write loaded image i's current row into `dst` (rowShape's size). */
  row(i: number, dst: Float32Array): void;
  /**
   * Stacked rows `[m, ...rowShape]` to class scores `[m, classes]`, where `images[r]` is row r's
   * loaded image (for the tensors that cross the cut; default: row r is image r); the caller
   * owns the result.
   */
  scores(rows: tf.Tensor, images?: Int32Array): tf.Tensor2D;
  /**
   * Optional, used instead of `scores` when present: the same scores straight from the stacked
   * rows on the host (`stack`, m rows), where `images[r]` is row r's loaded image (rows of one
   * image can then be handled together).
   */
  scoreRows?(stack: Float32Array, m: number, images: Int32Array): tf.Tensor2D;
  /** Optional: images to load at a time (fewer images put more K values of each in one call). */
  imageBatch?: number;
}
