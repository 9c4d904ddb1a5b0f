/**
 * Cutting a model at a layer: `prefix` maps images to the layer's output (after its own
 * activation), `suffix` maps that output to the class scores.
 *
 * Both halves run the model's own layer objects (weights shared, nothing copied) with the same
 * calls, in the same topological order, as `model.predict` does (`layer.apply(inputs)` per graph
 * node, inference mode), so prefix-then-suffix computes exactly what the whole model computes.
 * The model's graph is only read, never extended: no layer gains an inbound node, so
 * `layer.output`, saving and a second split keep working.
 */
import * as tf from "@tensorflow/tfjs";
import { UserError } from "../core/errors.ts";
import { layerOutputShape, type LayerRef } from "./layers.ts";
import { graphSteps, layerClass, notOnChannels, type Step, type Sym } from "./graph.ts";

/** A model cut after `layer`. */
export interface SplitModel {
  layer: LayerRef;
  /** Input images -> the layer's output (after its own activation). The caller owns the result. */
  prefix(x: tf.Tensor4D): tf.Tensor4D;
  /** The layer's output -> the model's output (class scores). The caller owns the result. */
  suffix(y: tf.Tensor4D): tf.Tensor2D;
  /** The layer's activation applied to 0 (0 for relu, 0.5 for sigmoid, ...): what a pruned channel emits. */
  activationOfZero: number;
  /** Float elements per image held by the suffix's layer outputs, summed (a memory estimate). */
  suffixElementsPerImage: number;
  /** The suffix's layers, in execution order (for messages and reports). */
  suffixLayers: string[];
  /**
   * The suffix cut in two after the channel-local layers that directly follow the layer, when
   * there are any (see `Pushdown`); absent otherwise.
   */
  pushdown?: Pushdown;
}

/**
 * The first layers of the suffix that act on each channel alone and map a channel that is one
 * constant everywhere to a channel that is one constant everywhere, bit for bit: elementwise
 * activations, inference BatchNormalization, MaxPooling2D, Dropout. Masking after them with the
 * constant they make of activation(0) (`fill`, per channel) gives exactly what masking before
 * them gives, so the fast sweep can run them once per image instead of once per K.
 */
export interface Pushdown {
  /** The channel-local layers, in order. */
  layers: string[];
  /** The per-image shape after them, `[H', W', C]`. */
  shape: number[];
  /** The layer's output -> the output of the channel-local layers. The caller owns the result. */
  head(y: tf.Tensor4D): tf.Tensor4D;
  /** The output of the channel-local layers -> the model's output. The caller owns the result. */
  tail(z: tf.Tensor4D): tf.Tensor2D;
  /** What a pruned channel holds after the channel-local layers, per channel (C values). */
  fill: Float32Array;
  /** Float elements per image held by the tail's layer outputs, summed. */
  tailElementsPerImage: number;
}

/**
 * Run `steps` with `start` fed `x`; return the value of `end`. Intermediates are disposed as
 * soon as no later step needs them (as tfjs's executor does in inference).
 */
function runSteps(steps: Step[], start: Sym, x: tf.Tensor, end: Sym): tf.Tensor {
  return tf.tidy(() => {
    const uses = new Map<Sym, number>();
    for (const s of steps) for (const t of s.inputs) uses.set(t, (uses.get(t) ?? 0) + 1);
    const values = new Map<Sym, tf.Tensor>([[start, x]]);
    for (const step of steps) {
      const inputs = step.inputs.map((t) => values.get(t)!);
      const result = step.layer.apply(inputs) as tf.Tensor | tf.Tensor[];
      const outs = Array.isArray(result) ? result : [result];
      step.outputs.forEach((t, i) => values.set(t, outs[i]));
      for (const t of step.inputs) {
        const left = uses.get(t)! - 1;
        uses.set(t, left);
        if (left === 0 && t !== start && t !== end) values.get(t)!.dispose();
      }
    }
    const y = values.get(end);
    if (!y) throw new Error(`split: ${end.name} was not computed`);
    return y;
  });
}

/** Layers applied at inference to each channel on its own, that map a constant channel to a constant channel. */
function isChannelLocal(layer: tf.layers.Layer): boolean {
  return layerClass(layer).keepsConstant && notOnChannels(layer) === null;
}

const elementsPerImage = (t: Sym) => t.shape.slice(1).reduce((p: number, d) => p * (d ?? 1), 1);

/** The suffix's leading channel-local steps: a chain from the cut, each the sole consumer of the one before. */
function channelLocalChain(suffixSteps: Step[], cut: Sym, output: Sym): Step[] {
  const chain: Step[] = [];
  let at = cut;
  for (;;) {
    const consumers = suffixSteps.filter((s) => s.inputs.includes(at));
    if (consumers.length !== 1) break;
    const next = consumers[0];
    const uses = next.inputs.filter((t) => t === at).length;
    if (next.inputs.length !== 1 || uses !== 1 || next.outputs.length !== 1) break;
    if (next.outputs[0] === output || next.outputs[0].shape.length !== 4 || !isChannelLocal(next.layer)) {
      break;
    }
    chain.push(next);
    at = next.outputs[0];
  }
  return chain;
}

/** Where a chain of channel-local layers ends and what runs after it, when the chain keeps [H', W', C]. */
interface PushdownPlan {
  chain: Step[];
  end: Sym;
  tailSteps: Step[];
  /** The per-image shape after the chain, `[H', W', C]`. */
  after: number[];
}

function pushdownPlan(chain: Step[], suffixSteps: Step[], channels: number): PushdownPlan | undefined {
  if (chain.length === 0) return undefined;
  const end = chain[chain.length - 1].outputs[0];
  const after = end.shape.slice(1).map((d) => d ?? -1);
  if (after.length !== 3 || after[2] !== channels || after.some((d) => d <= 0)) return undefined;
  return { chain, end, tailSteps: suffixSteps.filter((s) => !chain.includes(s)), after };
}

/**
 * The pushdown of `plan`, from what its chain makes of a map that is `activation(0)` everywhere
 * (`constant`, one image): undefined unless that is one value per channel, bit for bit.
 */
function makePushdown(
  plan: PushdownPlan,
  cut: Sym,
  output: Sym,
  constant: Float32Array,
): Pushdown | undefined {
  const channels = plan.after[2];
  const bits = new Uint32Array(constant.buffer, constant.byteOffset, constant.length);
  for (let i = channels; i < bits.length; i++) {
    if (bits[i] !== bits[i % channels]) return undefined;
  }
  const { chain, end, tailSteps } = plan;
  return {
    layers: chain.map((s) => s.layer.name),
    shape: plan.after,
    head: (y) => runSteps(chain, cut, y, end) as tf.Tensor4D,
    tail: (z) => runSteps(tailSteps, end, z, output) as tf.Tensor2D,
    fill: constant.slice(0, channels),
    tailElementsPerImage: tailSteps.reduce(
      (sum, s) => sum + s.outputs.reduce((n, t) => n + elementsPerImage(t), 0),
      0,
    ),
  };
}

/** A model cut at a layer, before the two constants that need the device (see `SplitModel`). */
interface Cut {
  layer: LayerRef;
  input: Sym;
  output: Sym;
  cut: Sym;
  prefixSteps: Step[];
  suffixSteps: Step[];
  /** The cut layer's own activation, if it has one. */
  activation?: { apply(x: tf.Tensor): tf.Tensor };
  /** The layer's output shape per image, `[H, W, C]`. */
  expected: number[];
  plan?: PushdownPlan;
}

/** The graph work of a split: validate, then order the prefix and suffix steps. No device work. */
function cutModel(model: tf.LayersModel, layer: LayerRef): Cut {
  if (model.inputs.length !== 1 || model.outputs.length !== 1) {
    throw new UserError(
      `cannot split a model with ${model.inputs.length} inputs and ${model.outputs.length} outputs; one of each is needed.`,
    );
  }
  const input = model.inputs[0] as unknown as Sym;
  const output = model.outputs[0] as unknown as Sym;
  const steps = graphSteps(model, [output]);
  const target = model.getLayer(layer.name);
  const cutSteps = steps.filter((s) => s.layer === target);
  if (cutSteps.length === 0) {
    throw new UserError(`layer ${layer.name} is not on the path from the model's input to its output.`);
  }
  if (cutSteps.length > 1) {
    throw new UserError(
      `layer ${layer.name} is applied ${cutSteps.length} times in the model (a shared layer); pruning it is not supported.`,
    );
  }
  const cut = cutSteps[0].outputs[0];

  // Prefix: the ancestors of the cut tensor.
  const needed = new Set<Sym>([cut]);
  const prefixSteps: Step[] = [];
  for (let i = steps.length - 1; i >= 0; i--) {
    const s = steps[i];
    if (s.outputs.some((t) => needed.has(t))) {
      prefixSteps.unshift(s);
      for (const t of s.inputs) needed.add(t);
    }
  }
  // Suffix: the nodes downstream of the cut tensor; each must take only downstream tensors.
  const downstream = new Set<Sym>([cut]);
  const suffixSteps: Step[] = [];
  for (const s of steps) {
    if (!s.inputs.some((t) => downstream.has(t))) continue;
    const outside = s.inputs.find((t) => !downstream.has(t));
    if (outside) {
      throw new UserError(
        `cannot split the model at ${layer.name}: layer ${s.layer.name} after it also takes ${outside.sourceLayer.name}'s ` +
          `output from before it (a skip connection across the cut); pick a conv layer outside the skip with --layer.`,
      );
    }
    suffixSteps.push(s);
    for (const t of s.outputs) downstream.add(t);
  }
  if (!downstream.has(output)) {
    throw new UserError(
      `the model's output does not depend on layer ${layer.name}; pick another conv layer.`,
    );
  }

  const activation = (target as unknown as { activation?: { apply(x: tf.Tensor): tf.Tensor } }).activation;
  const expected = layerOutputShape(target);
  const plan = pushdownPlan(channelLocalChain(suffixSteps, cut, output), suffixSteps, expected[2]);
  return { layer, input, output, cut, prefixSteps, suffixSteps, activation, expected, plan };
}

/** The layer's activation applied to 0, as a one-element tensor the caller reads (and disposes). */
function activationAtZero(c: Cut): tf.Tensor {
  return tf.tidy(() => {
    const zero = tf.zeros([1]);
    return c.activation ? c.activation.apply(zero) : zero;
  });
}

/** The pushdown chain run on one image that is `fill` everywhere (the caller reads and disposes it). */
function chainOnConstant(c: Cut, plan: PushdownPlan, fill: number): tf.Tensor {
  return tf.tidy(() => runSteps(plan.chain, c.cut, tf.fill([1, ...c.expected], fill, "float32"), plan.end));
}

/** The split from the cut and the two constants read from the device. */
function finishSplit(c: Cut, activationOfZero: number, constant: Float32Array | undefined): SplitModel {
  const { layer, input, output, cut, prefixSteps, suffixSteps, expected } = c;
  const pushdown = c.plan && constant ? makePushdown(c.plan, cut, output, constant) : undefined;
  return {
    layer,
    prefix(x: tf.Tensor4D): tf.Tensor4D {
      return runSteps(prefixSteps, input, x, cut) as tf.Tensor4D;
    },
    suffix(y: tf.Tensor4D): tf.Tensor2D {
      const got = y.shape.slice(1);
      if (got.some((d, i) => d !== expected[i])) {
        throw new Error(`suffix of ${layer.name}: input shape ${got} is not the layer's output ${expected}`);
      }
      return runSteps(suffixSteps, cut, y, output) as tf.Tensor2D;
    },
    activationOfZero,
    suffixElementsPerImage: suffixSteps.reduce(
      (sum, s) => sum + s.outputs.reduce((n, t) => n + elementsPerImage(t), 0),
      0,
    ),
    suffixLayers: suffixSteps.map((s) => s.layer.name),
    ...(pushdown ? { pushdown } : {}),
  };
}

/** Read `t` now and dispose it; refused on WebGPU, which has no synchronous read in Deno. */
function readNow(t: tf.Tensor): Float32Array {
  try {
    if (tf.getBackend() === "webgpu") {
      throw new Error(
        "splitModel reads the device synchronously, which WebGPU cannot do: use splitModelAsync",
      );
    }
    return t.dataSync() as Float32Array;
  } finally {
    t.dispose();
  }
}

async function readLater(t: tf.Tensor): Promise<Float32Array> {
  try {
    return await t.data() as Float32Array;
  } finally {
    t.dispose();
  }
}

/**
 * Cut `model` at `layer` (a Conv2D of this model, e.g. from `pickLayer`). Two constants of the
 * split (activation(0) and the pushdown's fill) are computed on the device and read back
 * asynchronously, so this works on every backend, WebGPU included.
 *
 * Works for Sequential and Functional models. A Functional graph whose part after the layer
 * needs a tensor from before it (a skip connection across the cut) is refused with a UserError.
 *
 * @example
 * ```ts
 * const split = await splitModelAsync(model, pickLayer(model));
 * const scores = tf.tidy(() => split.suffix(split.prefix(x))); // == model.predict(x)
 * ```
 */
export async function splitModelAsync(model: tf.LayersModel, layer: LayerRef): Promise<SplitModel> {
  const c = cutModel(model, layer);
  const activationOfZero = (await readLater(activationAtZero(c)))[0];
  const constant = c.plan ? await readLater(chainOnConstant(c, c.plan, activationOfZero)) : undefined;
  return finishSplit(c, activationOfZero, constant);
}

/**
 * `splitModelAsync`, reading its two constants synchronously: for the cpu and wasm backends
 * only (an Error on WebGPU, which cannot read synchronously in Deno). The same split, bit for bit.
 *
 * @example
 * ```ts
 * const split = splitModel(model, pickLayer(model)); // on cpu or wasm
 * ```
 */
export function splitModel(model: tf.LayersModel, layer: LayerRef): SplitModel {
  const c = cutModel(model, layer);
  const activationOfZero = readNow(activationAtZero(c))[0];
  const constant = c.plan ? readNow(chainOnConstant(c, c.plan, activationOfZero)) : undefined;
  return finishSplit(c, activationOfZero, constant);
}
