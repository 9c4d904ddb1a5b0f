/**
 * Cutting a model at a layer: `prefix` maps images to the layer's output (after its own
 * activation), `suffix` maps that output to the class scores. The cut may be anywhere: tensors
 * other than the layer's output that the part after it reads (a shortcut from before the layer
 * to an `Add` after it) are the split's `carried` tensors; `prefixAll` computes them with the
 * layer's output and the suffix takes them back.
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
  /**
   * Input images -> `[layer output, ...carried]` (one pass). The caller owns the results.
   */
  prefixAll(x: tf.Tensor4D): tf.Tensor[];
  /**
   * The layer's output (and the `carried` tensors, in order, for the same images) -> the model's
   * output (class scores). With `masks`, the outputs of the `members` in the suffix are masked
   * too (see `StackedMasks`). The caller owns the result.
   */
  suffix(y: tf.Tensor4D, carried?: tf.Tensor[], masks?: StackedMasks): tf.Tensor2D;
  /**
   * The tensors other than the layer's output that cross the cut, with their per-image shapes
   * (empty for a plain chain).
   */
  carried: { name: string; shape: number[] }[];
  /**
   * The other conv layers pruned with this one (a coupled channel group), all in the suffix,
   * and the value each one's pruned channel emits (its activation of 0). Empty for one layer.
   */
  members: { name: string; fill: number }[];
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
 * The same channels pruned in every member of a group, for m K values at once: `bits` holds m
 * masks of C entries (1 = pruned), and the suffix's batch is m blocks of equal size, block j
 * under mask j (as `maskChannelsStacked` builds them).
 */
export interface StackedMasks {
  bits: Uint8Array;
  m: number;
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
  /** The output of the channel-local layers (and the carried tensors) -> the model's output. The caller owns the result. */
  tail(z: tf.Tensor4D, carried?: tf.Tensor[], masks?: StackedMasks): tf.Tensor2D;
  /** What a pruned channel holds after the channel-local layers, per channel (C values). */
  fill: Float32Array;
  /** Float elements per image held by the tail's layer outputs, summed. */
  tailElementsPerImage: number;
}

/** Group members' outputs masked after their step: layer name -> the pruned channel's value. */
type MemberFills = ReadonlyMap<string, number>;

/** `t` (m blocks of images) with the channels of mask j set to `fill` in block j. */
function maskBlocks(t: tf.Tensor, masks: StackedMasks, fill: number): tf.Tensor {
  const [rows, h, w, c] = t.shape;
  const { m, bits } = masks;
  if (t.rank !== 4 || rows % m !== 0 || bits.length !== m * c) {
    throw new Error(`group masks (${m} x ${bits.length / m}) do not fit a ${t.shape} member output`);
  }
  const cond = tf.tensor(bits, [m, 1, 1, c], "bool");
  return tf.where(cond, tf.scalar(fill, "float32"), t.reshape([m, (rows / m) * h, w, c])).reshape(t.shape);
}

/**
 * Run `steps` with each `starts` tensor fed its value; return the values of `ends`.
 * Intermediates are disposed as soon as no later step needs them (as tfjs's executor does in
 * inference). With `masks`, the output of each step whose layer is in `fills` is masked.
 */
function runSteps(
  steps: Step[],
  starts: [Sym, tf.Tensor][],
  ends: Sym[],
  masks?: StackedMasks,
  fills?: MemberFills,
): tf.Tensor[] {
  return tf.tidy(() => {
    const uses = new Map<Sym, number>();
    for (const s of steps) for (const t of s.inputs) uses.set(t, (uses.get(t) ?? 0) + 1);
    const values = new Map<Sym, tf.Tensor>(starts);
    const keep = new Set<Sym>([...starts.map(([t]) => t), ...ends]);
    for (const step of steps) {
      const inputs = step.inputs.map((t) => values.get(t)!);
      const result = step.layer.apply(inputs) as tf.Tensor | tf.Tensor[];
      const outs = Array.isArray(result) ? result : [result];
      const fill = masks ? fills?.get(step.layer.name) : undefined;
      step.outputs.forEach((t, i) =>
        values.set(t, fill === undefined ? outs[i] : maskBlocks(outs[i], masks!, fill))
      );
      for (const t of step.inputs) {
        const left = uses.get(t)! - 1;
        uses.set(t, left);
        if (left === 0 && !keep.has(t)) values.get(t)!.dispose();
      }
    }
    return ends.map((end) => {
      const y = values.get(end);
      if (!y) throw new Error(`split: ${end.name} was not computed`);
      return y;
    });
  });
}

/** `runSteps` from one start to one end. */
function runOne(steps: Step[], start: Sym, x: tf.Tensor, end: Sym): tf.Tensor {
  return runSteps(steps, [[start, x]], [end])[0];
}

/** Layers applied at inference to each channel on its own, that map a constant channel to a constant channel. */
function isChannelLocal(layer: tf.layers.Layer): boolean {
  return layerClass(layer).keepsConstant && notOnChannels(layer) === null;
}

const elementsPerImage = (t: Sym) => t.shape.slice(1).reduce((p: number, d) => p * (d ?? 1), 1);

/** Float elements per image of every output of `steps`, summed. */
const stepElements = (steps: Step[]) =>
  steps.reduce((sum, s) => sum + s.outputs.reduce((n, t) => n + elementsPerImage(t), 0), 0);

/** The carried tensors paired with their values, checked. */
function startsOf(carried: Sym[], values: tf.Tensor[] | undefined): [Sym, tf.Tensor][] {
  if (carried.length === 0) return [];
  if (!values || values.length !== carried.length) {
    throw new Error(`the suffix needs ${carried.length} carried tensors, got ${values?.length ?? 0}`);
  }
  return carried.map((t, i) => [t, values[i]]);
}

/** The suffix's leading channel-local steps: a chain from the cut, each the sole consumer of the one before. */
function channelLocalChain(suffixSteps: Step[], cut: Sym, output: Sym, members: Set<string>): Step[] {
  const chain: Step[] = [];
  let at = cut;
  for (;;) {
    const consumers = suffixSteps.filter((s) => s.inputs.includes(at));
    if (consumers.length !== 1) break;
    const next = consumers[0];
    const uses = next.inputs.filter((t) => t === at).length;
    if (next.inputs.length !== 1 || uses !== 1 || next.outputs.length !== 1) break;
    if (
      next.outputs[0] === output || next.outputs[0].shape.length !== 4 || !isChannelLocal(next.layer) ||
      members.has(next.layer.name)
    ) {
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
  c: Cut,
  constant: Float32Array,
  fills: MemberFills,
): Pushdown | undefined {
  const { cut, output, carried } = c;
  const channels = plan.after[2];
  const bits = new Uint32Array(constant.buffer, constant.byteOffset, constant.length);
  for (let i = channels; i < bits.length; i++) {
    if (bits[i] !== bits[i % channels]) return undefined;
  }
  const { chain, end, tailSteps } = plan;
  return {
    layers: chain.map((s) => s.layer.name),
    shape: plan.after,
    head: (y) => runOne(chain, cut, y, end) as tf.Tensor4D,
    tail: (z, more, masks) =>
      runSteps(tailSteps, [[end, z], ...startsOf(carried, more)], [output], masks, fills)[0] as tf.Tensor2D,
    fill: constant.slice(0, channels),
    tailElementsPerImage: stepElements(tailSteps) + carried.reduce((n, t) => n + elementsPerImage(t), 0),
  };
}

/** A model cut at a layer, before the two constants that need the device (see `SplitModel`). */
interface Cut {
  layer: LayerRef;
  input: Sym;
  output: Sym;
  cut: Sym;
  /** Tensors other than `cut` that suffix steps read and prefix steps (or the input) make. */
  carried: Sym[];
  prefixSteps: Step[];
  suffixSteps: Step[];
  /** The group's other members (suffix layers), with their activations. */
  members: { name: string; activation?: { apply(x: tf.Tensor): tf.Tensor } }[];
  /** The cut layer's own activation, if it has one. */
  activation?: { apply(x: tf.Tensor): tf.Tensor };
  /** The layer's output shape per image, `[H, W, C]`. */
  expected: number[];
  plan?: PushdownPlan;
}

/** The graph work of a split: validate, then order the prefix and suffix steps. No device work. */
function cutModel(model: tf.LayersModel, layer: LayerRef, memberNames: string[] = []): Cut {
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
  // Suffix: every other node. The tensors it reads from the prefix (or the input) cross the cut.
  const inPrefix = new Set(prefixSteps);
  const suffixSteps = steps.filter((s) => !inPrefix.has(s));
  const made = new Set<Sym>([cut]);
  const carried: Sym[] = [];
  for (const s of suffixSteps) {
    for (const t of s.inputs) {
      if (!made.has(t) && !carried.includes(t)) carried.push(t);
    }
    for (const t of s.outputs) made.add(t);
  }
  // The output must depend on the cut.
  const downstream = new Set<Sym>([cut]);
  for (const s of suffixSteps) {
    if (s.inputs.some((t) => downstream.has(t))) { for (const t of s.outputs) downstream.add(t); }
  }
  if (!downstream.has(output)) {
    throw new UserError(
      `the model's output does not depend on layer ${layer.name}; pick another conv layer.`,
    );
  }
  const memberSet = new Set(memberNames);
  const members = memberNames.map((name) => {
    const l = model.getLayer(name);
    const uses = suffixSteps.filter((s) => s.layer === l);
    if (uses.length !== 1) {
      throw new Error(`group member ${name} is run ${uses.length} times after ${layer.name}, not once`);
    }
    return {
      name,
      activation: (l as unknown as { activation?: { apply(x: tf.Tensor): tf.Tensor } }).activation,
    };
  });

  const activation = (target as unknown as { activation?: { apply(x: tf.Tensor): tf.Tensor } }).activation;
  const expected = layerOutputShape(target);
  const plan = pushdownPlan(channelLocalChain(suffixSteps, cut, output, memberSet), suffixSteps, expected[2]);
  return {
    layer,
    input,
    output,
    cut,
    carried,
    prefixSteps,
    suffixSteps,
    members,
    activation,
    expected,
    plan,
  };
}

/** The layer's activation applied to 0, then each member's: one tensor the caller reads (and disposes). */
function activationAtZero(c: Cut): tf.Tensor {
  return tf.tidy(() => {
    const zero = tf.zeros([1]);
    return tf.concat(
      [c.activation, ...c.members.map((m) => m.activation)].map((a) => a ? a.apply(zero) : zero),
    );
  });
}

/** The pushdown chain run on one image that is `fill` everywhere (the caller reads and disposes it). */
function chainOnConstant(c: Cut, plan: PushdownPlan, fill: number): tf.Tensor {
  return tf.tidy(() => runOne(plan.chain, c.cut, tf.fill([1, ...c.expected], fill, "float32"), plan.end));
}

/** The split from the cut and the constants read from the device (activations of 0: the layer's, then each member's). */
function finishSplit(c: Cut, zeros: Float32Array, constant: Float32Array | undefined): SplitModel {
  const { layer, input, output, cut, carried, prefixSteps, suffixSteps, expected } = c;
  const activationOfZero = zeros[0];
  const members = c.members.map((m, i) => ({ name: m.name, fill: zeros[i + 1] }));
  const fills: MemberFills = new Map(members.map((m) => [m.name, m.fill]));
  const pushdown = c.plan && constant ? makePushdown(c.plan, c, constant, fills) : undefined;
  return {
    layer,
    prefix(x: tf.Tensor4D): tf.Tensor4D {
      return runOne(prefixSteps, input, x, cut) as tf.Tensor4D;
    },
    prefixAll(x: tf.Tensor4D): tf.Tensor[] {
      return runSteps(prefixSteps, [[input, x]], [cut, ...carried]);
    },
    suffix(y: tf.Tensor4D, more?: tf.Tensor[], masks?: StackedMasks): tf.Tensor2D {
      const got = y.shape.slice(1);
      if (got.some((d, i) => d !== expected[i])) {
        throw new Error(`suffix of ${layer.name}: input shape ${got} is not the layer's output ${expected}`);
      }
      return runSteps(
        suffixSteps,
        [[cut, y], ...startsOf(carried, more)],
        [output],
        masks,
        fills,
      )[0] as tf.Tensor2D;
    },
    carried: carried.map((t) => ({ name: t.name, shape: t.shape.slice(1).map((d) => d ?? -1) })),
    members,
    activationOfZero,
    suffixElementsPerImage: stepElements(suffixSteps) + carried.reduce((n, t) => n + elementsPerImage(t), 0),
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
 * Works for Sequential and Functional models, cut anywhere: what the part after the layer reads
 * from before it (a skip connection across the cut) is carried (`carried`, `prefixAll`).
 * `members`: the other conv layers of a coupled channel group (all after `layer`), masked in
 * the suffix with the same channels (`StackedMasks`).
 *
 * @example
 * ```ts
 * const split = await splitModelAsync(model, pickLayer(model));
 * const scores = tf.tidy(() => split.suffix(split.prefix(x))); // == model.predict(x)
 * ```
 */
export async function splitModelAsync(
  model: tf.LayersModel,
  layer: LayerRef,
  members: string[] = [],
): Promise<SplitModel> {
  const c = cutModel(model, layer, members);
  const zeros = await readLater(activationAtZero(c));
  const constant = c.plan ? await readLater(chainOnConstant(c, c.plan, zeros[0])) : undefined;
  return finishSplit(c, zeros, constant);
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
export function splitModel(model: tf.LayersModel, layer: LayerRef, members: string[] = []): SplitModel {
  const c = cutModel(model, layer, members);
  const zeros = readNow(activationAtZero(c));
  const constant = c.plan ? readNow(chainOnConstant(c, c.plan, zeros[0])) : undefined;
  return finishSplit(c, zeros, constant);
}
