/**
 * The model's graph, read in one way for everyone: the one table of layer kinds (what a layer
 * class does to a conv layer's channels) and the one walker over the model's nodes. Splitting
 * (split.ts), coupling (coupling.ts), surgery (surgery/trace.ts) and the dense-head planner
 * (sweep/linear_head.ts) all ask here, so a layer class added to the table is known to all four.
 *
 * The kinds, for a layer after a conv layer whose channel c we follow:
 * - `element-wise`: each value on its own (activations, inference BatchNormalization, dropout and
 *   noise, identities at inference): channel c stays channel c, on maps and on flat features.
 * - `channel-wise`: each channel of an H x W x C map on its own, across positions (pooling,
 *   padding, cropping, up-sampling, depthwise conv): channel c stays channel c, maps only.
 * - `flattening`: H x W x C to features; feature g comes from channel g mod C.
 * - `merge`: an element-wise merge of several inputs (the `Add` of a residual block): channel c
 *   of each input meets channel c of the others.
 * - `mixing`: everything else (Conv2D, Dense, Concatenate, Reshape, any class not in the table):
 *   its outputs mix the channels, so channel c ends there.
 */
import type * as tf from "@tensorflow/tfjs";

/** What a layer class does to the channels of its input (see the module doc). */
export type LayerKind = "element-wise" | "channel-wise" | "flattening" | "merge" | "mixing";

/** What the table says of one layer class. */
export interface LayerClass {
  kind: LayerKind;
  /**
   * The weights it holds per channel: none; `per-channel` (BatchNormalization's gamma, beta and
   * moving statistics, PReLU's alpha: one entry per channel to cut with it); `kernel` (a
   * depthwise kernel: channel c's filter).
   */
  weights: "none" | "per-channel" | "kernel";
  /**
   * A channel that is one value everywhere comes out one value everywhere, bit for bit
   * (at inference): the layers the sweep may run once per image instead of once per K.
   */
  keepsConstant: boolean;
}

const entry = (kind: LayerKind, weights: LayerClass["weights"], keepsConstant: boolean): LayerClass => ({
  kind,
  weights,
  keepsConstant,
});

/** The one table of layer classes. A class not listed is `mixing`. */
export const LAYER_CLASSES: Readonly<Record<string, LayerClass>> = {
  // Element-wise activations. PReLU's alpha varies by position unless shared, so a constant
  // channel does not stay constant.
  Activation: entry("element-wise", "none", true),
  ReLU: entry("element-wise", "none", true),
  LeakyReLU: entry("element-wise", "none", true),
  ELU: entry("element-wise", "none", true),
  ThresholdedReLU: entry("element-wise", "none", true),
  PReLU: entry("element-wise", "per-channel", false),
  BatchNormalization: entry("element-wise", "per-channel", true),
  // Identities at inference. (TF.js 4.22 has SpatialDropout1D and no SpatialDropout2D class, so
  // no model we load holds one.)
  Dropout: entry("element-wise", "none", true),
  SpatialDropout1D: entry("element-wise", "none", true),
  GaussianNoise: entry("element-wise", "none", true),
  GaussianDropout: entry("element-wise", "none", true),
  AlphaDropout: entry("element-wise", "none", true),
  // Per channel across positions. Average pooling's float sums need not give back the constant,
  // zero padding adds zeros around it.
  MaxPooling2D: entry("channel-wise", "none", true),
  AveragePooling2D: entry("channel-wise", "none", false),
  ZeroPadding2D: entry("channel-wise", "none", false),
  Cropping2D: entry("channel-wise", "none", false),
  UpSampling2D: entry("channel-wise", "none", false),
  DepthwiseConv2D: entry("channel-wise", "kernel", false),
  // Maps to features.
  Flatten: entry("flattening", "none", false),
  GlobalAveragePooling2D: entry("flattening", "none", false),
  GlobalMaxPooling2D: entry("flattening", "none", false),
  // Element-wise merges (TF.js 4.22 has no Subtract layer).
  Add: entry("merge", "none", false),
  Multiply: entry("merge", "none", false),
  Average: entry("merge", "none", false),
  Maximum: entry("merge", "none", false),
  Minimum: entry("merge", "none", false),
};

const MIXING: LayerClass = entry("mixing", "none", false);

/**
 * What the table says of `layer` (a layer or its class name); `mixing` for a class not in it.
 *
 * @example
 * ```ts
 * layerClass("MaxPooling2D").kind; // "channel-wise"
 * layerClass(model.getLayer("fc1")).kind; // "mixing" (a Dense layer)
 * ```
 */
export function layerClass(layer: tf.layers.Layer | string): LayerClass {
  const name = typeof layer === "string" ? layer : layer.getClassName();
  return Object.hasOwn(LAYER_CLASSES, name) ? LAYER_CLASSES[name] : MIXING;
}

/** Whether `layer` keeps channel c in channel c (element-wise or channel-wise). */
export function keepsChannels(layer: tf.layers.Layer | string): boolean {
  const kind = layerClass(layer).kind;
  return kind === "element-wise" || kind === "channel-wise";
}

/**
 * Why this layer's configuration breaks what its class promises for the channel axis (a
 * channels-first format, a BatchNormalization over another axis, a softmax across channels),
 * or null when it keeps it. `flat`: the layer acts on flat features (after a flattening), where
 * the channel axis is 1.
 *
 * @example
 * ```ts
 * notOnChannels(model.getLayer("bn")); // null, or "bn normalizes axis 1, not the channel axis"
 * ```
 */
export function notOnChannels(layer: tf.layers.Layer, flat = false): string | null {
  const config = layer.getConfig() as Record<string, unknown>;
  const format = config.dataFormat ?? config.data_format;
  if (format !== undefined && format !== "channelsLast" && format !== "channels_last") {
    return `${layer.name} is ${format}`;
  }
  const kind = layer.getClassName();
  if (kind === "BatchNormalization") {
    const axis = ([] as unknown[]).concat(config.axis);
    if (axis.length !== 1 || !(axis[0] === -1 || (!flat && axis[0] === 3) || (flat && axis[0] === 1))) {
      return `${layer.name} normalizes axis ${JSON.stringify(config.axis)}, not the channel axis`;
    }
  }
  if (kind === "Activation" && /softmax/i.test(String(config.activation))) {
    return `${layer.name} is a softmax over channels`;
  }
  return null;
}

/** A symbolic tensor of the model's graph, with the fields we read. */
export interface Sym {
  name: string;
  sourceLayer: tf.layers.Layer;
  nodeIndex: number;
  shape: (number | null)[];
}

interface GraphNode {
  inputTensors: Sym[];
  outputTensors: Sym[];
}

/** One graph node to run: `layer.apply(inputs)` gives `outputs`. */
export interface Step {
  layer: tf.layers.Layer;
  inputs: Sym[];
  outputs: Sym[];
}

function nodeOf(t: Sym): GraphNode {
  return (t.sourceLayer as unknown as { inboundNodes: GraphNode[] }).inboundNodes[t.nodeIndex];
}

/**
 * The one walker: every node from the model's inputs to `outputs` (default: the model's
 * outputs), in topological order, input layers excluded. Walked back from the outputs, so only
 * this model's uses of a shared layer object count.
 *
 * @example
 * ```ts
 * graphSteps(model).map((s) => s.layer.name); // ["conv1", "bn1", ..., "predictions"]
 * ```
 */
export function graphSteps(model: tf.LayersModel, outputs?: Sym[]): Step[] {
  const steps: Step[] = [];
  const done = new Set<GraphNode>();
  const visit = (t: Sym, depth: number) => {
    if (depth > 100_000) throw new Error("model graph too deep or cyclic");
    const node = nodeOf(t);
    if (!node || done.has(node)) return;
    done.add(node);
    // An input layer's node lists its own output as its input: nothing to run (tfjs's executor skips it too).
    if (t.sourceLayer.getClassName() === "InputLayer") return;
    for (const input of node.inputTensors) visit(input, depth + 1);
    steps.push({ layer: t.sourceLayer, inputs: node.inputTensors, outputs: node.outputTensors });
  };
  for (const t of outputs ?? (model.outputs as unknown as Sym[])) visit(t, 0);
  return steps;
}

/**
 * The model's graph as "layer name -> the layers that read its output" (this model's nodes only).
 *
 * @example
 * ```ts
 * readersOf(model).get("conv2")?.map((l) => l.name); // ["bn"]
 * ```
 */
export function readersOf(model: tf.LayersModel): Map<string, tf.layers.Layer[]> {
  const readers = new Map<string, tf.layers.Layer[]>();
  for (const step of graphSteps(model)) {
    for (const input of step.inputs) {
      const list = readers.get(input.sourceLayer.name) ?? [];
      if (!list.includes(step.layer)) list.push(step.layer);
      readers.set(input.sourceLayer.name, list);
    }
  }
  return readers;
}

/** The next link of a straight chain after a layer, or what breaks the chain there. */
export type ChainLink =
  | { next: tf.layers.Layer }
  /** The layer's output is the model's output. */
  | { end: "output" }
  /** Not exactly one layer reads the layer's output. */
  | { end: "branch"; readers: tf.layers.Layer[] }
  /** The one reader is applied several times, or takes other inputs too. */
  | { end: "joined"; reader: tf.layers.Layer };

/**
 * Follow a straight chain one step: the one layer that reads `layer`'s output, if exactly one
 * does, is applied once and takes no other input. `steps` is `graphSteps(model)` (read once by
 * a caller that walks many steps).
 *
 * @example
 * ```ts
 * const steps = graphSteps(model);
 * const link = nextInChain(model, steps, model.getLayer("block5_conv3"));
 * if ("next" in link) link.next.name; // "block5_bn3"
 * ```
 */
export function nextInChain(model: tf.LayersModel, steps: Step[], layer: tf.layers.Layer): ChainLink {
  if ((model.outputs as unknown as Sym[]).some((t) => t.sourceLayer === layer)) return { end: "output" };
  const readers: tf.layers.Layer[] = [];
  for (const s of steps) {
    if (s.inputs.some((t) => t.sourceLayer === layer) && !readers.includes(s.layer)) readers.push(s.layer);
  }
  if (readers.length !== 1) return { end: "branch", readers };
  const reader = readers[0];
  const uses = steps.filter((s) => s.layer === reader);
  if (uses.length !== 1 || uses[0].inputs.length !== 1) return { end: "joined", reader };
  return { next: reader };
}
