/**
 * The algebra of the sweep (issue 7.3): when the layers after the pruned conv act on each
 * channel on its own (BatchNorm, max/average pooling, dropout, elementwise activations,
 * Flatten or global pooling) up to a Dense layer, the Dense layer's pre-activation is linear in
 * its input, so pruning channel c changes it by a rank-P update (P = positions per channel
 * after pooling; P = 1 for the VGG's last conv): z += sum_p (pruned_p,c - g_p,c) * W[p*C + c, :].
 * It is computed once per image (K = 0) and updated per pruned channel in float64; the rest of
 * the network then runs on the updated pre-activations. When relu Dense layers follow (the VGG's
 * fc2, fc3), they run on `SparseDenseChain` (kernels/sparse_dense.ts), which skips the inputs the
 * relu left at zero and gives the same floats as TF.js's wasm backend.
 *
 * Max-pooling is not linear, which is why the update is taken after the per-channel layers: a
 * pruned channel is the constant activation(0) before them, and what it becomes after them
 * (`pruned_p,c`) is read off by running them once on a map filled with that constant.
 *
 * Not bit-exact: the model sums the Dense layer's products in its own order in float32; the
 * update sums them differently, so a score can differ in its last bits and an image near a tie
 * between two classes can flip. Hence an option (`--algebra`), off by default. One case is made
 * exact: once none of an image's channels differs from its pruned value (K = C, or earlier for an
 * image where the rest are silent), every such image has the same input, and it gets the Dense
 * layer's own pre-activations of that input, so they all still share one prediction (otherwise
 * rounding spreads them over near-tied classes; measured: 2,331 of 10,000 images at K = C on an
 * untrained VGG, and no other difference at any K).
 */
import * as tf from "@tensorflow/tfjs";
import type { LayerRef } from "../model/layers.ts";
import { type SplitModel, splitModelAsync } from "../model/split.ts";
import {
  graphSteps,
  keepsChannels,
  layerClass,
  nextInChain,
  notOnChannels,
  type Step,
} from "../model/graph.ts";
import { UserError } from "../core/errors.ts";
import type { LayerOutputs } from "../activations/layer_outputs.ts";
import type { RowEngine, RowSource } from "./rows.ts";
import { type DenseSpec, SparseDenseChain, sparseDenseSupported } from "../kernels/sparse_dense.ts";

/** The per-channel layers after a conv layer and the Dense layer they lead to. */
export interface LinearHead {
  /** The layers between the conv layer and the Dense layer, in order. */
  channelLayers: tf.layers.Layer[];
  /** The first Dense layer after the conv layer. */
  dense: tf.layers.Layer;
  /** The conv layer's output per image, [H, W, C]. */
  inputShape: [number, number, number];
  /** The Dense layer's inputs (positions * channels) and units. */
  inputs: number;
  units: number;
  /** The network after the Dense layer's output, or null when the Dense layer is the model's output. */
  rest: SplitModel | null;
  /**
   * When the Dense layer is relu: the relu Dense layers that follow it (Dropout between them is
   * a no-op at inference) and the network after the last of them, for `SparseDenseChain`; else null.
   */
  denseTail: { layers: tf.layers.Layer[]; rest: SplitModel | null } | null;
}

/** The layer's only successor, when it has exactly one and takes only this layer's output. */
function onlyNext(model: tf.LayersModel, steps: Step[], layer: tf.layers.Layer): tf.layers.Layer | null {
  const link = nextInChain(model, steps, layer);
  return "next" in link ? link.next : null;
}

const activationOf = (layer: tf.layers.Layer) =>
  (layer.getConfig() as { activation?: string }).activation ?? "linear";

/** Cut `model` after Dense layer `dense`; null when it is the model's output. */
function restAfter(model: tf.LayersModel, dense: tf.layers.Layer): Promise<SplitModel> | null {
  const output = (model.outputs[0] as unknown as { sourceLayer: tf.layers.Layer }).sourceLayer;
  if (output === dense) return null;
  const units = (dense.getConfig() as { units: number }).units;
  return splitModelAsync(model, {
    name: dense.name,
    index: model.layers.indexOf(dense),
    className: "Dense",
    channels: units,
    outputShape: [units],
    activation: activationOf(dense),
  });
}

/** The relu Dense layers after relu Dense layer `dense`, skipping Dropout, up to the first other layer. */
async function planDenseTail(
  model: tf.LayersModel,
  dense: tf.layers.Layer,
): Promise<LinearHead["denseTail"]> {
  if (activationOf(dense) !== "relu") return null;
  const layers: tf.layers.Layer[] = [];
  let at = dense;
  const steps = graphSteps(model);
  for (let next = onlyNext(model, steps, at); next; next = onlyNext(model, steps, next)) {
    if (next.getClassName() === "Dropout") continue;
    if (next.getClassName() !== "Dense" || activationOf(next) !== "relu") break;
    layers.push(next);
    at = next;
  }
  if (layers.length === 0) return null;
  return { layers, rest: await restAfter(model, at) };
}

/** Why `layer` does not keep channels apart, or null when it does. */
function notPerChannel(layer: tf.layers.Layer, flat: boolean): string | null {
  const kind = layer.getClassName();
  const c = layerClass(layer);
  const passes = (keepsChannels(layer) || c.kind === "flattening") && c.weights !== "kernel";
  if (!passes) return `${layer.name} (${kind}) is not a per-channel layer`;
  const why = notOnChannels(layer, flat);
  if (why) return why;
  if (flat && c.kind === "channel-wise") return `${layer.name} (${kind}) comes after the flattening`;
  return null;
}

/**
 * The linear head after conv layer `layer` of `model`, or the reason there is none (a layer
 * that mixes channels before the first Dense, a branch, a Dense on a 4-D input, ...).
 *
 * @example
 * ```ts
 * const plan = await planLinearHead(model, pickLayer(model));
 * if ("head" in plan) plan.head.dense.name; // "fc1" for the VGG's last conv
 * ```
 */
export async function planLinearHead(
  model: tf.LayersModel,
  layer: LayerRef,
): Promise<{ head: LinearHead } | { reason: string }> {
  const conv = model.getLayer(layer.name);
  const [height, width, channels] = layer.outputShape;
  const channelLayers: tf.layers.Layer[] = [];
  let current = conv;
  let flat = false;
  const steps = graphSteps(model);
  for (let guard = 0; guard < 1000; guard++) {
    const link = nextInChain(model, steps, current);
    if ("end" in link && link.end !== "joined") {
      const readers = link.end === "output" ? 0 : link.readers.length;
      return { reason: `${current.name}'s output goes to ${readers} layers, not one` };
    }
    if ("end" in link) {
      return { reason: `${link.reader.name} is applied more than once or takes more than one input` };
    }
    const layerNext = link.next;
    if (layerNext.getClassName() === "Dense") {
      if (!flat) return { reason: `${layerNext.name} is a Dense layer on a 4-D input` };
      const [kernel] = layerNext.getWeights();
      const [inputs, units] = kernel.shape;
      if (inputs % channels !== 0) {
        return { reason: `${layerNext.name} has ${inputs} inputs for ${channels} channels` };
      }
      return {
        head: {
          channelLayers,
          dense: layerNext,
          inputShape: [height, width, channels],
          inputs,
          units,
          rest: await restAfter(model, layerNext),
          denseTail: await planDenseTail(model, layerNext),
        },
      };
    }
    const why = notPerChannel(layerNext, flat);
    if (why) return { reason: why };
    if (layerClass(layerNext).kind === "flattening") flat = true;
    channelLayers.push(layerNext);
    current = layerNext;
  }
  return { reason: "no Dense layer found after the conv layer" };
}

/** Run the per-channel layers on `y` (N x H x W x C) in inference mode: N x inputs. */
function applyHead(head: LinearHead, y: tf.Tensor): tf.Tensor2D {
  return tf.tidy(() => {
    let x = y;
    for (const layer of head.channelLayers) x = layer.apply(x) as tf.Tensor;
    return x.reshape([y.shape[0], head.inputs]) as tf.Tensor2D;
  });
}

/** Options of `linearRows`. */
export interface LinearRowsOptions {
  /**
   * Run the relu Dense layers after the first one with `SparseDenseChain` (zero inputs skipped;
   * the same floats as tfjs-backend-wasm). Default: on the wasm and cpu backends when the model
   * has such layers; never on WebGPU.
   */
  sparseTail?: boolean;
}

/**
 * The algebra's row source for `sweepIncremental`: rows are the Dense layer's pre-activations,
 * computed once per image and updated per pruned channel (float64); scores are the Dense
 * layer's activation and the rest of the network applied to them. `fill` is what a pruned
 * channel emits (the conv layer's activation of 0).
 *
 * @example
 * ```ts
 * const plan = await planLinearHead(model, layer);
 * if ("head" in plan) await sweepIncremental(split, out, labels, ranking, { rows: linearRows(plan.head, split.activationOfZero) });
 * ```
 */
export function linearRows(head: LinearHead, fill: number, opts: LinearRowsOptions = {}): RowSource {
  const { inputs, units } = head;
  const [height, width, channels] = head.inputShape;
  const perImage = height * width * channels;
  const [kernelTensor, biasTensor] = head.dense.getWeights();
  const useBias = (head.dense.getConfig() as { useBias?: boolean }).useBias !== false && biasTensor;
  const activation =
    (head.dense as unknown as { activation?: { apply(x: tf.Tensor): tf.Tensor } }).activation;
  // Read on the first begin(), asynchronously (WebGPU has no synchronous reads in Deno).
  let kernel: Float32Array | null = null;
  let pruned: Float32Array = new Float32Array(0);
  // The pre-activations when every channel is pruned, as the Dense layer itself computes them.
  let allPruned: Float32Array = new Float32Array(0);
  // Per loaded image: how many channels still differ from their pruned value.
  let live = new Int32Array(0);
  let g: Float32Array = new Float32Array(0);
  let z = new Float64Array(0);
  let loaded = 0;
  const tail = head.denseTail;
  const useTail = tail !== null && (opts.sparseTail ?? tf.getBackend() !== "webgpu") &&
    sparseDenseSupported();
  let chain: SparseDenseChain | null = null;
  let input = new Float32Array(0);
  const read = async (t: tf.Tensor): Promise<Float32Array> => {
    try {
      return await t.data() as Float32Array;
    } finally {
      t.dispose();
    }
  };
  return {
    rowShape: [units],
    bytesPerRow: 8 * units + 8 * (head.rest?.suffixElementsPerImage ?? units),
    stateBytesPerImage: 8 * units + 4 * inputs,
    async begin(out: LayerOutputs, start: number, n: number) {
      if (!kernel) {
        kernel = await read(tf.clone(kernelTensor));
        if (useTail) chain = new SparseDenseChain(await denseSpecs(tail!.layers));
        pruned = await read(tf.tidy(() => applyHead(head, tf.fill([1, height, width, channels], fill))));
        allPruned = await read(tf.tidy(() =>
          tf.fused.matMul({
            a: tf.tensor2d(pruned, [1, inputs]),
            b: kernelTensor as tf.Tensor2D,
            bias: useBias ? biasTensor : undefined,
          })
        ));
      }
      const [gT, zT] = tf.tidy(() => {
        const y = tf.tensor4d(out.data.subarray(start * perImage, (start + n) * perImage), [
          n,
          height,
          width,
          channels,
        ]);
        const gi = applyHead(head, y);
        const zi = tf.fused.matMul({
          a: gi,
          b: kernelTensor as tf.Tensor2D,
          bias: useBias ? biasTensor : undefined,
        });
        return [gi, zi];
      });
      try {
        g = await gT.data() as Float32Array;
        z = Float64Array.from(await zT.data() as Float32Array);
      } finally {
        gT.dispose();
        zT.dispose();
      }
      loaded = n;
      live = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        for (let c = 0; c < channels; c++) {
          for (let at = c; at < inputs; at += channels) {
            if (pruned[at] !== g[i * inputs + at]) {
              live[i]++;
              break;
            }
          }
        }
        if (live[i] === 0) z.set(allPruned, i * units);
      }
    },
    prune(c, changed) {
      const w = kernel!;
      for (let i = 0; i < loaded; i++) {
        const zi = i * units;
        let hit = false;
        for (let at = c; at < inputs; at += channels) {
          const gi = i * inputs + at;
          const d = pruned[at] - g[gi];
          if (d === 0) continue;
          g[gi] = pruned[at];
          hit = true;
          const row = at * units;
          for (let u = 0; u < units; u++) z[zi + u] += d * w[row + u];
        }
        if (!hit) continue;
        changed[i] = 1;
        // The image's last differing channel is gone: its Dense input is now the all-pruned input,
        // whose pre-activations are known exactly (not only to rounding), like the plain path's.
        if (--live[i] === 0) z.set(allPruned, zi);
      }
    },
    row(i, dst) {
      const zi = i * units;
      for (let u = 0; u < units; u++) dst[u] = z[zi + u];
    },
    scores(rows) {
      return tf.tidy(() => {
        const a = activation ? activation.apply(rows) : rows;
        return (head.rest ? head.rest.suffix(a as tf.Tensor4D) : a) as tf.Tensor2D;
      });
    },
    ...(useTail
      ? {
        // Several K values of one image per call, so that the chain's blocks of four rows share zeros.
        imageBatch: 16,
        scoreRows(stack: Float32Array, m: number, images: Int32Array): tf.Tensor2D {
          if (input.length < m * units) input = new Float32Array(m * units);
          for (let at = 0; at < m * units; at++) input[at] = stack[at] > 0 ? stack[at] : 0; // relu
          return chainScores(chain!, tail!.rest, input, m, images);
        },
      }
      : {}),
  };
}

/** Scores of `m` rows of `x` through `chain` and then `rest` (the network after the chain), rows grouped by image. */
function chainScores(
  chain: SparseDenseChain,
  rest: SplitModel | null,
  x: Float32Array,
  m: number,
  images: Int32Array,
): tf.Tensor2D {
  const out = chain.apply(x, m, byImage(images, m));
  return tf.tidy(() => {
    const h = tf.tensor2d(out, [m, chain.units]);
    return (rest ? rest.suffix(h as unknown as tf.Tensor4D) : h) as tf.Tensor2D;
  });
}

/** The row indices 0..m-1 ordered by image (stably), so that an image's rows are adjacent. */
function byImage(images: Int32Array, m: number): Int32Array {
  let most = 0;
  for (let r = 0; r < m; r++) most = Math.max(most, images[r]);
  const start = new Int32Array(most + 2);
  for (let r = 0; r < m; r++) start[images[r] + 1]++;
  for (let i = 0; i <= most; i++) start[i + 1] += start[i];
  const order = new Int32Array(m);
  for (let r = 0; r < m; r++) order[start[images[r]]++] = r;
  return order;
}

/** The weights of Dense layers, read (asynchronously) for `SparseDenseChain`. */
async function denseSpecs(layers: tf.layers.Layer[]): Promise<DenseSpec[]> {
  const specs: DenseSpec[] = [];
  for (const layer of layers) {
    const [k, b] = layer.getWeights();
    const useBias = (layer.getConfig() as { useBias?: boolean }).useBias !== false && b;
    const [inputs, units] = k.shape;
    specs.push({
      kernel: await k.data() as Float32Array,
      bias: useBias ? await b.data() as Float32Array : null,
      inputs,
      units,
      relu: true,
    });
  }
  return specs;
}

/** Why `exactHeadRows` gave null, as one line. */
function noKernel(head: LinearHead): string {
  return `--dense-kernel does not apply: ${head.dense.name} is ${
    activationOf(head.dense)
  }, not relu or linear ` +
    `(or this runtime has no WebAssembly SIMD); run without it.`;
}

/**
 * The exact row source through the sparse kernel: rows are the first Dense layer's inputs (the
 * per-channel layers' output, pruned channels set to what those layers make of a pruned channel),
 * and the first Dense layer with the relu Dense layers after it runs on `SparseDenseChain`. Pruned
 * channels that come out as 0 (a relu conv with BatchNorm at its initial statistics, or none) are
 * skipped like any zero. The kernel gives tfjs-backend-wasm's floats, so the counts are the plain
 * path's, bit for bit; null when the Dense layer is neither relu nor linear, or when this runtime
 * has no wasm SIMD.
 *
 * @example
 * ```ts
 * const rows = exactHeadRows(plan.head, split.activationOfZero);
 * if (rows) await sweepIncremental(split, out, labels, ranking, { rows });
 * ```
 */
export function exactHeadRows(head: LinearHead, fill: number): RowSource | null {
  const activation = activationOf(head.dense);
  if ((activation !== "relu" && activation !== "linear") || !sparseDenseSupported()) return null;
  const { inputs } = head;
  const [height, width, channels] = head.inputShape;
  const perImage = height * width * channels;
  const layers = [head.dense, ...(head.denseTail?.layers ?? [])];
  const rest = head.denseTail ? head.denseTail.rest : head.rest;
  let chain: SparseDenseChain | null = null;
  let pruned: Float32Array = new Float32Array(0);
  let g: Float32Array = new Float32Array(0);
  let loaded = 0;
  return {
    rowShape: [inputs],
    bytesPerRow: 8 * inputs + 8 * (rest?.suffixElementsPerImage ?? 16),
    stateBytesPerImage: 4 * inputs,
    imageBatch: 16,
    async begin(out: LayerOutputs, start: number, n: number) {
      if (!chain) {
        const specs = await denseSpecs(layers);
        specs[0].relu = activation === "relu";
        chain = new SparseDenseChain(specs);
        const p = tf.tidy(() => applyHead(head, tf.fill([1, height, width, channels], fill)));
        pruned = await p.data() as Float32Array;
        p.dispose();
      }
      const gT = tf.tidy(() =>
        applyHead(
          head,
          tf.tensor4d(out.data.subarray(start * perImage, (start + n) * perImage), [
            n,
            height,
            width,
            channels,
          ]),
        )
      );
      g = await gT.data() as Float32Array;
      gT.dispose();
      loaded = n;
    },
    prune(c, changed) {
      for (let i = 0; i < loaded; i++) {
        let hit = false;
        for (let at = c; at < inputs; at += channels) {
          const gi = i * inputs + at;
          if (Object.is(g[gi], pruned[at])) continue;
          g[gi] = pruned[at];
          hit = true;
        }
        if (hit) changed[i] = 1;
      }
    },
    row(i, dst) {
      dst.set(g.subarray(i * inputs, (i + 1) * inputs));
    },
    scores(rows) {
      // Not used (scoreRows is), but a RowSource must have it: the same layers through TF.js.
      return tf.tidy(() => {
        let x = rows;
        for (const layer of layers) x = layer.apply(x) as tf.Tensor;
        return (rest ? rest.suffix(x as tf.Tensor4D) : x) as tf.Tensor2D;
      });
    },
    scoreRows(stack: Float32Array, m: number, images: Int32Array): tf.Tensor2D {
      return chainScores(chain!, rest, stack, m, images);
    },
  };
}

/**
 * The row source of `engine` for a sweep of `split`'s layer (undefined for "exact": the masked
 * rows, `sweepIncremental`'s default). A layer the engine does not apply after is a one-line
 * UserError naming the flag (`--algebra`, `--dense-kernel`). One source serves any number of
 * sweeps in turn: `begin` starts it over, and the weights are read once.
 *
 * @example
 * ```ts
 * const rows = await engineRows(model, split, "dense-kernel");
 * await sweepIncremental(split, out, labels, ranking, { rows });
 * ```
 */
export async function engineRows(
  model: tf.LayersModel,
  split: SplitModel,
  engine: RowEngine,
  opts: LinearRowsOptions = {},
): Promise<RowSource | undefined> {
  if (engine === "exact") return undefined;
  if (split.carried.length > 0 || split.members.length > 0) {
    const why = split.members.length > 0
      ? "it heads a coupled channel group"
      : `${split.carried.map((t) => t.name).join(", ")} crosses the cut (a skip connection)`;
    throw new UserError(`--${engine} does not apply after ${split.layer.name}: ${why}. Run without it.`);
  }
  const plan = await planLinearHead(model, split.layer);
  if ("reason" in plan) {
    throw new UserError(
      `--${engine} does not apply after ${split.layer.name}: ${plan.reason}. Run without it.`,
    );
  }
  if (engine === "algebra") return linearRows(plan.head, split.activationOfZero, opts);
  const rows = exactHeadRows(plan.head, split.activationOfZero);
  if (!rows) throw new UserError(noKernel(plan.head));
  return rows;
}
