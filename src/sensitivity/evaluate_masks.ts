/**
 * Evaluating many channel masks on cached layer outputs, keeping what Distiller reports: top-1
 * and top-5 hits and the summed cross-entropy loss per mask. Same batching as the fast sweep
 * (`planBatching`, `maskStackInto` / `maskChannelsStacked`, `countCorrect`, the channel-local
 * layers after the cut run once per image batch: `Pushdown`), so its top-1 counts are the fast
 * sweep's. Tallies carry over: evaluating the images chunk by chunk, in order, into the same tallies (`opts.into`) gives
 * exactly what one call on all of them gives (losses are added one image at a time, in image
 * order, in float64), and every option gives the very tallies of the plain path (`pushdown:
 * false`), tested.
 */
import * as tf from "@tensorflow/tfjs";
import type { SplitModel } from "../model/split.ts";
import { carriedBatch, type LayerOutputs } from "../activations/layer_outputs.ts";
import { countCorrect } from "../model/evaluate.ts";
import { defaultMasking, maskChannelsStacked, type MaskingSite, maskStackInto } from "../sweep/mask.ts";
import { planBatching } from "../sweep/engines/masked.ts";
import { countTop5, crossEntropyPerImage, type OutputKind } from "../model/class_scores.ts";
import { pauseForSignals } from "../core/interrupt.ts";

/** What one mask scored over some images. */
export interface MaskTally {
  /** Images whose top class is the label. */
  top1: number;
  /** Images whose label is among the 5 top classes. */
  top5: number;
  /** Cross-entropy summed over the images (float64, image order). */
  lossSum: number;
  /** Images evaluated. */
  total: number;
}

/** Options of `tallyMasks`. */
export interface TallyOptions {
  /** Masks per suffix call (default from the memory budget, as in the fast sweep). */
  kBatch?: number;
  /** Images per suffix call before stacking. */
  imageBatch?: number;
  /** Bytes the stacked batches may take (default the fast sweep's). */
  memoryBudgetBytes?: number;
  /** Called after each suffix call with the image evaluations (masks x images) it did. */
  onWork?: (evaluations: number) => void;
  /** Tallies to add to (the previous chunks'), updated in place and returned; default fresh ones. */
  into?: MaskTally[];
  /**
   * Run the channel-local layers right after the cut (`Pushdown`: BatchNorm, pooling, ...) once
   * per image batch and mask after them, rather than once per mask (default true when the split
   * has them; the same numbers either way).
   */
  pushdown?: boolean;
  /** Where the stacked masked copies are built (default `defaultMasking()`: host on cpu and wasm). */
  masking?: MaskingSite;
}

/** `m` zero tallies. */
export function emptyTallies(m: number): MaskTally[] {
  return Array.from({ length: m }, () => ({ top1: 0, top5: 0, lossSum: 0, total: 0 }));
}

/**
 * Score `m` masks (row-major m x C in `masks`, 1 = channel pruned) on the cached outputs `out`
 * (images labelled `labels`), through the split's suffix.
 *
 * @example
 * ```ts
 * const masks = new Uint8Array(2 * C); masks[C + 5] = 1;        // mask 0: nothing, mask 1: channel 5
 * const [base, pruned] = await tallyMasks(split, out, labels, masks, 2, "probabilities");
 * // chunk by chunk: const all = emptyTallies(2); for (...) await tallyMasks(..., { into: all });
 * ```
 */
export async function tallyMasks(
  split: SplitModel,
  out: LayerOutputs,
  labels: Uint8Array,
  masks: Uint8Array,
  m: number,
  kind: OutputKind,
  opts: TallyOptions = {},
): Promise<MaskTally[]> {
  const { count, height, width, channels } = out;
  if (labels.length < count) throw new Error(`${labels.length} labels for ${count} images`);
  if (masks.length !== m * channels) {
    throw new Error(`masks hold ${masks.length} entries, not ${m} x ${channels}`);
  }
  // The channel-local layers after the cut run once per image batch, the masks go after them.
  const pushdown = opts.pushdown === false ? undefined : split.pushdown;
  const perIn = height * width * channels;
  const [h1, w1] = pushdown ? pushdown.shape : [height, width];
  const perImage = h1 * w1 * channels;
  const suffixSize = pushdown ? pushdown.tailElementsPerImage : split.suffixElementsPerImage;
  const fill = pushdown ? pushdown.fill : split.activationOfZero;
  const rest = pushdown ? pushdown.tail : split.suffix;
  const tallies = opts.into ?? emptyTallies(m);
  if (tallies.length !== m) throw new Error(`${tallies.length} tallies for ${m} masks`);
  const { kBatch, imageBatch } = planBatching(perImage, suffixSize, count, m, opts);
  const stack = (opts.masking ?? defaultMasking()) === "host"
    ? new Float32Array(Math.min(kBatch, m) * imageBatch * perImage)
    : null;
  for (let start = 0; start < count; start += imageBatch) {
    const n = Math.min(imageBatch, count - start);
    const batchLabels = labels.subarray(start, start + n);
    const raw = out.data.subarray(start * perIn, (start + n) * perIn);
    // This batch before masking: on the host (host masking) or as a tensor (device masking).
    let values = raw;
    let y: tf.Tensor4D | undefined = pushdown
      ? tf.tidy(() => pushdown.head(tf.tensor4d(raw, [n, height, width, channels])))
      : stack
      ? undefined
      : tf.tensor4d(raw, [n, height, width, channels]);
    try {
      if (stack && y) {
        values = await y.data() as Float32Array;
        y.dispose();
        y = undefined;
      }
      for (let g = 0; g < m; g += kBatch) {
        const mg = Math.min(kBatch, m - g);
        const groupMasks = masks.subarray(g * channels, (g + mg) * channels);
        const [top1, top5, losses] = tf.tidy(() => {
          const input = stack
            ? tf.tensor4d(
              maskStackInto(stack.subarray(0, mg * n * perImage), values, channels, groupMasks, mg, fill),
              [mg * n, h1, w1, channels],
            )
            : maskChannelsStacked(y!, groupMasks, mg, fill, "device");
          // The tensors that cross the cut, once per mask; a group's other members masked alike.
          const carried = carriedBatch(split, out, start, n, mg);
          const scores = rest(input, carried, { bits: groupMasks, m: mg });
          const repeated = tf.tensor1d(
            Int32Array.from({ length: mg * n }, (_, i) => batchLabels[i % n]),
            "int32",
          );
          return [
            countCorrect(scores, batchLabels, mg),
            countTop5(scores, batchLabels, mg),
            crossEntropyPerImage(scores, repeated, kind),
          ];
        });
        try {
          const [h1s, h5s, l] = await Promise.all([top1.data(), top5.data(), losses.data()]);
          await pauseForSignals();
          for (let j = 0; j < mg; j++) {
            const t = tallies[g + j];
            t.top1 += h1s[j];
            t.top5 += h5s[j];
            t.total += n;
            for (let i = 0; i < n; i++) t.lossSum += l[j * n + i];
          }
        } finally {
          top1.dispose();
          top5.dispose();
          losses.dispose();
        }
        opts.onWork?.(mg * n);
      }
    } finally {
      y?.dispose();
    }
  }
  return tallies;
}
