/**
 * Keras model configs (Keras 2 `model.to_json()`, Keras 3 `config.json` / legacy `model_config`)
 * translated into the Keras-2-style JSON that TF.js deserializes. Every field of every layer is
 * either translated, dropped because it provably does not change what the model computes, or
 * refused with a message naming the layer and the field: nothing is dropped silently.
 *
 * Lambda layers and custom classes are refused (their code is never run), as are layers this
 * reader does not know.
 *
 * @example
 * ```ts
 * const t = translateModelConfig(JSON.parse(await Deno.readTextFile("model.json")), { label: "model.json" });
 * const model = await tf.models.modelFromJSON({ modelTopology: t.topology });
 * ```
 */
import { UserError } from "../../core/errors.ts";

type Dict = Record<string, unknown>;

/** What the weight readers need to know about one layer of the config. */
export interface LayerSummary {
  name: string;
  /** The Keras class name (Conv2D, BatchNormalization, ...). */
  className: string;
  isInput: boolean;
}

/** A Keras config translated for TF.js. */
export interface TranslatedModel {
  /** `{class_name, config}` in the pythonic (snake_case) form `tf.models.modelFromJSON` reads. */
  topology: Dict;
  kind: "Sequential" | "Functional";
  /** The model's layers in config order (for Sequential, with the InputLayer first when it has one). */
  layers: LayerSummary[];
  kerasMajor: 2 | 3;
}

/** Where the config comes from, for messages, and the Keras version that wrote it when known. */
export interface TranslateContext {
  label: string;
  kerasVersion?: string;
}

/** Layer classes this reader translates (Keras class names). */
export const SUPPORTED_LAYERS = [
  "InputLayer",
  "Conv2D",
  "DepthwiseConv2D",
  "SeparableConv2D",
  "Dense",
  "BatchNormalization",
  "MaxPooling2D",
  "AveragePooling2D",
  "GlobalAveragePooling2D",
  "GlobalMaxPooling2D",
  "Dropout",
  "Flatten",
  "Reshape",
  "Permute",
  "Activation",
  "ReLU",
  "LeakyReLU",
  "ELU",
  "Softmax",
  "Add",
  "Multiply",
  "Average",
  "Maximum",
  "Minimum",
  "Concatenate",
  "ZeroPadding2D",
  "Cropping2D",
  "UpSampling2D",
  "Rescaling",
] as const;

const CODE_LAYERS = new Set(["Lambda", "TFOpLambda", "SlicingOpLambda", "TFOpLambdaLayer"]);
const MODEL_CLASSES = new Set(["Sequential", "Functional", "Model"]);

/** The major Keras version: from a version string, else from Keras-3-only traits of the config. */
export function kerasMajorOf(version: string | undefined, config: unknown): 2 | 3 {
  const m = typeof version === "string" ? version.match(/^(\d+)\./) : null;
  if (m) return Number(m[1]) >= 3 ? 3 : 2;
  const text = JSON.stringify(config ?? null);
  return text.includes('"DTypePolicy"') || text.includes('"batch_shape"') ||
      text.includes('"__keras_tensor__"')
    ? 3
    : 2;
}

/**
 * Translate a Keras model config (the object with `class_name` and `config`) for TF.js.
 * Throws a UserError naming the layer and field for anything it cannot represent.
 */
export function translateModelConfig(raw: unknown, ctx: TranslateContext): TranslatedModel {
  let top = asDict(raw);
  if (top && "model_config" in top && !("class_name" in top)) top = asDict(top.model_config);
  if (!top || typeof top.class_name !== "string") {
    throw new UserError(
      `${ctx.label}: the model config has no 'class_name': it is not a Keras model config (model.to_json()).`,
    );
  }
  const version = ctx.kerasVersion ?? (typeof top.keras_version === "string" ? top.keras_version : undefined);
  const kerasMajor = kerasMajorOf(version, top);
  const className = top.class_name;
  if (!MODEL_CLASSES.has(className)) {
    throw new UserError(
      `${ctx.label}: the model is of class '${className}', not Sequential or Functional: a subclassed ` +
        `model's forward pass is Python code, which prunescope never runs. Rebuild it as a Sequential ` +
        `or Functional model and save it again.`,
    );
  }
  checkNotCustom(top, `${ctx.label}: the model`, className);
  const tr = new Translator(ctx.label, kerasMajor);
  if (className === "Sequential") return tr.sequential(top.config, kerasMajor);
  return tr.functional(top.config, kerasMajor);
}

/** Reads a config object field by field; fields never read are checked at the end. */
class Fields {
  private readonly used = new Set<string>();
  constructor(readonly cfg: Dict, readonly where: string) {}

  get(key: string): unknown {
    this.used.add(key);
    return this.cfg[key];
  }

  has(key: string): boolean {
    return this.cfg[key] !== undefined && this.cfg[key] !== null;
  }

  /** Read a field that must equal `expected` (or be absent/null), refusing otherwise. */
  expect(key: string, expected: unknown, why: string): void {
    const v = this.get(key);
    if (v === undefined || v === null) return;
    if (JSON.stringify(v) !== JSON.stringify(expected)) {
      throw new UserError(`${this.where}: ${key}=${short(v)} is not supported (${why}).`);
    }
  }

  /** Refuse any field that was not read and holds a value. */
  finish(): void {
    for (const [k, v] of Object.entries(this.cfg)) {
      if (this.used.has(k) || v === null || v === undefined) continue;
      throw new UserError(
        `${this.where}: config field '${k}' = ${
          short(v)
        } is unknown to prunescope's Keras reader; refusing rather than ignoring it.`,
      );
    }
  }
}

class Translator {
  constructor(readonly label: string, readonly kerasMajor: 2 | 3) {}

  sequential(rawConfig: unknown, kerasMajor: 2 | 3): TranslatedModel {
    const cfg: Dict = Array.isArray(rawConfig) ? { layers: rawConfig } : asDict(rawConfig) ?? {};
    const f = new Fields(cfg, `${this.label}: the Sequential model`);
    const name = str(f.get("name")) ?? "sequential";
    const rawLayers = f.get("layers");
    if (!Array.isArray(rawLayers) || rawLayers.length === 0) {
      throw new UserError(`${this.label}: the Sequential model lists no layers.`);
    }
    f.get("trainable");
    f.get("dtype");
    const buildShape = f.get("build_input_shape");
    f.finish();
    const layers: Dict[] = [];
    const summary: LayerSummary[] = [];
    for (const entry of rawLayers) {
      const { className, config } = this.layer(entry, false);
      layers.push({ class_name: className, config });
      summary.push({ name: String(config.name), className, isInput: className === "InputLayer" });
    }
    const first = layers[0];
    if (first.class_name !== "InputLayer" && !(first.config as Dict).batch_input_shape) {
      if (!Array.isArray(buildShape)) {
        throw new UserError(
          `${this.label}: the Sequential model does not say its input shape (no InputLayer, no ` +
            `batch_input_shape, no build_input_shape).`,
        );
      }
      const taken = new Set(summary.map((s) => s.name));
      let inputName = "input_layer";
      for (let i = 1; taken.has(inputName); i++) inputName = `input_layer_${i}`;
      layers.unshift({
        class_name: "InputLayer",
        config: {
          batch_input_shape: shapeOf(buildShape, `${this.label}: build_input_shape`),
          name: inputName,
        },
      });
      summary.unshift({ name: inputName, className: "InputLayer", isInput: true });
    }
    return {
      topology: { class_name: "Sequential", config: { name, layers } },
      kind: "Sequential",
      layers: summary,
      kerasMajor,
    };
  }

  functional(rawConfig: unknown, kerasMajor: 2 | 3): TranslatedModel {
    const cfg = asDict(rawConfig) ?? {};
    const f = new Fields(cfg, `${this.label}: the Functional model`);
    const name = str(f.get("name")) ?? "model";
    const rawLayers = f.get("layers");
    if (!Array.isArray(rawLayers) || rawLayers.length === 0) {
      throw new UserError(`${this.label}: the Functional model lists no layers.`);
    }
    f.get("trainable");
    f.get("dtype");
    const inputs = this.tensorList(f.get("input_layers"), "input_layers");
    const outputs = this.tensorList(f.get("output_layers"), "output_layers");
    f.finish();
    const layers: Dict[] = [];
    const summary: LayerSummary[] = [];
    for (const entry of rawLayers) {
      const { className, config } = this.layer(entry, true);
      const layerName = String(config.name);
      const inbound = this.inboundNodes((asDict(entry) ?? {}).inbound_nodes, layerName, className);
      layers.push({ class_name: className, config, name: layerName, inbound_nodes: inbound });
      summary.push({ name: layerName, className, isInput: className === "InputLayer" });
    }
    return {
      topology: {
        class_name: "Model",
        config: { name, layers, input_layers: inputs, output_layers: outputs },
      },
      kind: "Functional",
      layers: summary,
      kerasMajor,
    };
  }

  /** `[[name, node, tensor], ...]` from Keras 2 or Keras 3 forms. */
  tensorList(v: unknown, what: string): unknown[] {
    if (Array.isArray(v) && v.length === 3 && typeof v[0] === "string") v = [v];
    if (!Array.isArray(v) || v.length === 0) {
      throw new UserError(`${this.label}: the Functional model's ${what} are missing or not a list.`);
    }
    return v.map((t) => {
      if (
        !Array.isArray(t) || typeof t[0] !== "string" || typeof t[1] !== "number" || typeof t[2] !== "number"
      ) {
        throw new UserError(
          `${this.label}: the Functional model's ${what} entry ${short(t)} is not [layer, node, tensor].`,
        );
      }
      return [t[0], t[1], t[2]];
    });
  }

  /** Keras 2 inbound nodes pass through (checked); Keras 3 `{args, kwargs}` nodes are rewritten. */
  inboundNodes(v: unknown, layer: string, className: string): unknown[] {
    const where = `${this.label}: layer '${layer}' (${className})`;
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) throw new UserError(`${where}: inbound_nodes is not a list.`);
    return v.map((node) => {
      if (Array.isArray(node)) {
        return node.map((t) => {
          if (!Array.isArray(t) || typeof t[0] !== "string") {
            throw new UserError(
              `${where}: inbound node entry ${short(t)} is not [layer, node, tensor, kwargs].`,
            );
          }
          return [t[0], Number(t[1]), Number(t[2]), this.callKwargs(t[3], where)];
        });
      }
      const n = asDict(node);
      if (!n || !Array.isArray(n.args)) {
        throw new UserError(`${where}: inbound node ${short(node)} is not understood.`);
      }
      if (n.args.length !== 1) {
        throw new UserError(
          `${where}: the layer is called with ${n.args.length} positional arguments; only a tensor or a list of tensors is supported.`,
        );
      }
      const kwargs = this.callKwargs(n.kwargs, where);
      const tensors = Array.isArray(n.args[0]) ? n.args[0] : [n.args[0]];
      return tensors.map((t) => [...kerasTensorHistory(t, where), kwargs]);
    });
  }

  /** Call keyword arguments: `training` false/None is dropped; anything else is refused. */
  callKwargs(v: unknown, where: string): Dict {
    const kw = asDict(v) ?? {};
    for (const [k, val] of Object.entries(kw)) {
      if (val === null || val === undefined) continue;
      if (k === "training" && val === false) continue;
      if (k === "training") {
        throw new UserError(
          `${where}: the layer is called with training=${short(val)} (e.g. Monte-Carlo dropout); ` +
            `prunescope evaluates models in inference mode only.`,
        );
      }
      throw new UserError(
        `${where}: the layer is called with the argument ${k}=${short(val)}, which is not supported.`,
      );
    }
    return {};
  }

  /** Translate one layer entry (`{class_name, config, ...}`). */
  layer(entry: unknown, functional: boolean): { className: string; config: Dict } {
    const e = asDict(entry);
    if (!e || typeof e.class_name !== "string") {
      throw new UserError(`${this.label}: a layer entry has no class_name: ${short(entry)}.`);
    }
    const className = e.class_name;
    const cfg = asDict(e.config) ?? {};
    const name = typeof cfg.name === "string" ? cfg.name : typeof e.name === "string" ? e.name : "?";
    const where = `${this.label}: layer '${name}' (${className})`;
    if (CODE_LAYERS.has(className)) {
      throw new UserError(
        `${where} holds Python code, which prunescope never runs; replace it with built-in layers and save the model again.`,
      );
    }
    checkNotCustom(e, where, className);
    if (MODEL_CLASSES.has(className)) {
      throw new UserError(
        `${where} is a nested model; prunescope reads flat models only: rebuild the model with its ` +
          `inner layers inlined and save it again.`,
      );
    }
    if (!(SUPPORTED_LAYERS as readonly string[]).includes(className)) {
      throw new UserError(
        `${where}: layer class '${className}' is not supported by prunescope's Keras reader ` +
          `(supported: ${SUPPORTED_LAYERS.join(", ")}).`,
      );
    }
    if (typeof cfg.name !== "string") throw new UserError(`${where}: the layer config has no name.`);
    const f = new Fields(cfg, where);
    const out: Dict = { name: f.get("name") };
    const trainable = f.get("trainable");
    if (typeof trainable === "boolean") out.trainable = trainable;
    const dtype = f.get("dtype");
    if (dtype !== undefined && dtype !== null) {
      out.dtype = translateDtype(dtype, where, className === "InputLayer");
    }
    this.inputShape(f, out, className, functional);
    LAYER_RULES[className as (typeof SUPPORTED_LAYERS)[number]](f, out, this);
    f.finish();
    return { className: out.__class_name ? String(out.__class_name) : className, config: strip(out) };
  }

  /** `batch_input_shape` from Keras 2 `batch_input_shape` or Keras 3 `batch_shape`. */
  inputShape(f: Fields, out: Dict, className: string, functional: boolean): void {
    const batchShape = f.get("batch_input_shape") ?? f.get("batch_shape");
    const inputShape = f.get("input_shape") ?? (className === "InputLayer" ? f.get("shape") : undefined);
    const batchSize = f.get("batch_size");
    let shape: unknown[] | undefined;
    if (Array.isArray(batchShape)) shape = shapeOf(batchShape, `${f.where}: batch shape`);
    else if (Array.isArray(inputShape)) {
      shape = [
        typeof batchSize === "number" ? batchSize : null,
        ...shapeOf(inputShape, `${f.where}: input shape`),
      ];
    }
    if (!shape) return;
    if (className === "InputLayer" || !functional) out.batch_input_shape = shape;
  }
}

type Rule = (f: Fields, out: Dict, t: Translator) => void;

const CONV_COMMON: Rule = (f, out, t) => {
  out.kernel_size = intTuple(f.get("kernel_size"), 2, f.where, "kernel_size");
  out.strides = intTuple(f.get("strides") ?? 1, 2, f.where, "strides");
  out.padding = padding(f.get("padding"), f.where);
  out.data_format = dataFormat(f.get("data_format"), f.where);
  out.dilation_rate = intTuple(f.get("dilation_rate") ?? 1, 2, f.where, "dilation_rate");
  const strides = out.strides as number[], dil = out.dilation_rate as number[];
  if (strides.some((s) => s !== 1) && dil.some((d) => d !== 1)) {
    throw new UserError(
      `${f.where}: strides ${short(strides)} together with dilation_rate ${
        short(dil)
      } cannot be computed (one of them must be 1).`,
    );
  }
  out.activation = activation(f.get("activation"), f.where, t.kerasMajor);
  out.use_bias = bool(f.get("use_bias"), true);
  out.bias_initializer = initializer(f.get("bias_initializer"), f.where, "bias_initializer");
  out.bias_regularizer = regularizer(f.get("bias_regularizer"), f.where, "bias_regularizer");
  out.activity_regularizer = regularizer(f.get("activity_regularizer"), f.where, "activity_regularizer");
  out.bias_constraint = constraint(f.get("bias_constraint"), f.where, "bias_constraint");
  f.expect("groups", 1, "grouped convolutions have no TF.js equivalent");
  f.expect("lora_rank", null, "LoRA adapters are not supported");
  f.expect("quantization_config", null, "quantized layers are not supported");
};

const POOL: Rule = (f, out) => {
  out.pool_size = intTuple(f.get("pool_size") ?? 2, 2, f.where, "pool_size");
  out.strides = f.has("strides") ? intTuple(f.get("strides"), 2, f.where, "strides") : out.pool_size;
  out.padding = padding(f.get("padding"), f.where);
  out.data_format = dataFormat(f.get("data_format"), f.where);
};

const GLOBAL_POOL: Rule = (f, out) => {
  out.data_format = dataFormat(f.get("data_format"), f.where);
  f.expect("keepdims", false, "TF.js global pooling cannot keep the pooled dimensions");
};

const NO_FIELDS: Rule = () => {};

const LAYER_RULES: Record<(typeof SUPPORTED_LAYERS)[number], Rule> = {
  InputLayer(f, out) {
    if (!out.batch_input_shape) throw new UserError(`${f.where}: the input layer has no shape.`);
    out.dtype ??= "float32";
    out.sparse = false;
    f.expect("sparse", false, "sparse inputs are not supported");
    f.expect("ragged", false, "ragged inputs are not supported");
    f.expect("optional", false, "optional inputs are not supported");
    f.expect("input_tensor", null, "inputs bound to an existing tensor are not supported");
  },
  Conv2D(f, out, t) {
    CONV_COMMON(f, out, t);
    out.filters = posInt(f.get("filters"), f.where, "filters");
    out.kernel_initializer = initializer(f.get("kernel_initializer"), f.where, "kernel_initializer");
    out.kernel_regularizer = regularizer(f.get("kernel_regularizer"), f.where, "kernel_regularizer");
    out.kernel_constraint = constraint(f.get("kernel_constraint"), f.where, "kernel_constraint");
  },
  DepthwiseConv2D(f, out, t) {
    CONV_COMMON(f, out, t);
    out.depth_multiplier = posInt(f.get("depth_multiplier") ?? 1, f.where, "depth_multiplier");
    out.depthwise_initializer = initializer(f.get("depthwise_initializer"), f.where, "depthwise_initializer");
    out.depthwise_regularizer = regularizer(f.get("depthwise_regularizer"), f.where, "depthwise_regularizer");
    out.depthwise_constraint = constraint(f.get("depthwise_constraint"), f.where, "depthwise_constraint");
  },
  SeparableConv2D(f, out, t) {
    CONV_COMMON(f, out, t);
    out.filters = posInt(f.get("filters"), f.where, "filters");
    out.depth_multiplier = posInt(f.get("depth_multiplier") ?? 1, f.where, "depth_multiplier");
    for (const part of ["depthwise", "pointwise"]) {
      out[`${part}_initializer`] = initializer(f.get(`${part}_initializer`), f.where, `${part}_initializer`);
      out[`${part}_regularizer`] = regularizer(f.get(`${part}_regularizer`), f.where, `${part}_regularizer`);
      out[`${part}_constraint`] = constraint(f.get(`${part}_constraint`), f.where, `${part}_constraint`);
    }
  },
  Dense(f, out, t) {
    out.units = posInt(f.get("units"), f.where, "units");
    out.activation = activation(f.get("activation"), f.where, t.kerasMajor);
    out.use_bias = bool(f.get("use_bias"), true);
    out.kernel_initializer = initializer(f.get("kernel_initializer"), f.where, "kernel_initializer");
    out.bias_initializer = initializer(f.get("bias_initializer"), f.where, "bias_initializer");
    out.kernel_regularizer = regularizer(f.get("kernel_regularizer"), f.where, "kernel_regularizer");
    out.bias_regularizer = regularizer(f.get("bias_regularizer"), f.where, "bias_regularizer");
    out.activity_regularizer = regularizer(f.get("activity_regularizer"), f.where, "activity_regularizer");
    out.kernel_constraint = constraint(f.get("kernel_constraint"), f.where, "kernel_constraint");
    out.bias_constraint = constraint(f.get("bias_constraint"), f.where, "bias_constraint");
    f.expect("lora_rank", null, "LoRA adapters are not supported");
    f.get("lora_alpha"); // only meaningful with lora_rank, refused above
    f.expect("quantization_config", null, "quantized layers are not supported");
  },
  BatchNormalization(f, out) {
    const axis = f.get("axis") ?? -1;
    const axes = Array.isArray(axis) ? axis : [axis];
    if (axes.length !== 1 || typeof axes[0] !== "number") {
      throw new UserError(`${f.where}: normalizing over several axes (${short(axis)}) is not supported.`);
    }
    out.axis = axes[0];
    out.momentum = num(f.get("momentum"), 0.99);
    out.epsilon = num(f.get("epsilon"), 1e-3);
    out.center = bool(f.get("center"), true);
    out.scale = bool(f.get("scale"), true);
    for (const w of ["beta", "gamma", "moving_mean", "moving_variance"]) {
      out[`${w}_initializer`] = initializer(f.get(`${w}_initializer`), f.where, `${w}_initializer`);
    }
    for (const w of ["beta", "gamma"]) {
      out[`${w}_regularizer`] = regularizer(f.get(`${w}_regularizer`), f.where, `${w}_regularizer`);
      out[`${w}_constraint`] = constraint(f.get(`${w}_constraint`), f.where, `${w}_constraint`);
    }
    // Synchronizing batch statistics across devices and the fused kernel change how training runs,
    // not what the layer computes.
    f.get("synchronized");
    f.get("fused");
    f.expect("renorm", false, "batch renormalization is not supported");
    f.get("renorm_clipping");
    f.get("renorm_momentum"); // only used when renorm is on, refused above
    f.expect("virtual_batch_size", null, "ghost batch normalization is not supported");
    f.expect("adjustment", null, "an adjustment function is code");
  },
  MaxPooling2D: POOL,
  AveragePooling2D: POOL,
  GlobalAveragePooling2D: GLOBAL_POOL,
  GlobalMaxPooling2D: GLOBAL_POOL,
  Dropout(f, out) {
    out.rate = num(f.get("rate"), 0);
    const noise = f.get("noise_shape");
    if (noise !== undefined && noise !== null) out.noise_shape = shapeOf(noise, `${f.where}: noise_shape`);
    const seed = f.get("seed");
    if (typeof seed === "number") out.seed = seed;
  },
  Flatten(f, out) {
    out.data_format = dataFormat(f.get("data_format"), f.where);
  },
  Reshape(f, out) {
    out.target_shape = shapeOf(f.get("target_shape"), `${f.where}: target_shape`);
  },
  Permute(f, out) {
    out.dims = shapeOf(f.get("dims"), `${f.where}: dims`);
  },
  Activation(f, out, t) {
    out.activation = activation(f.get("activation"), f.where, t.kerasMajor);
  },
  ReLU(f, out) {
    const maxValue = f.get("max_value");
    const slope = num(f.get("negative_slope"), 0);
    const threshold = num(f.get("threshold"), 0);
    if (threshold !== 0) {
      throw new UserError(
        `${f.where}: threshold=${threshold} is not supported (TF.js ReLU has no threshold).`,
      );
    }
    if (slope === 0) {
      if (maxValue !== null && maxValue !== undefined) out.max_value = num(maxValue, 0);
    } else if (maxValue === null || maxValue === undefined) {
      out.__class_name = "LeakyReLU";
      out.alpha = slope;
    } else {
      throw new UserError(`${f.where}: negative_slope together with max_value is not supported.`);
    }
  },
  LeakyReLU(f, out) {
    out.alpha = num(f.get("alpha") ?? f.get("negative_slope"), 0.3);
  },
  ELU(f, out) {
    out.alpha = num(f.get("alpha"), 1);
  },
  Softmax(f, out) {
    const axis = f.get("axis") ?? -1;
    const axes = Array.isArray(axis) ? axis : [axis];
    if (axes.length !== 1 || typeof axes[0] !== "number") {
      throw new UserError(`${f.where}: softmax over several axes (${short(axis)}) is not supported.`);
    }
    out.axis = axes[0];
  },
  Add: NO_FIELDS,
  Multiply: NO_FIELDS,
  Average: NO_FIELDS,
  Maximum: NO_FIELDS,
  Minimum: NO_FIELDS,
  Concatenate(f, out) {
    out.axis = num(f.get("axis"), -1);
  },
  ZeroPadding2D(f, out) {
    out.padding = pairs(f.get("padding") ?? 1, f.where, "padding");
    out.data_format = dataFormat(f.get("data_format"), f.where);
  },
  Cropping2D(f, out) {
    out.cropping = pairs(f.get("cropping") ?? 0, f.where, "cropping");
    out.data_format = dataFormat(f.get("data_format"), f.where);
  },
  UpSampling2D(f, out) {
    out.size = intTuple(f.get("size") ?? 2, 2, f.where, "size");
    out.data_format = dataFormat(f.get("data_format"), f.where);
    const interp = f.get("interpolation") ?? "nearest";
    if (interp !== "nearest" && interp !== "bilinear") {
      throw new UserError(`${f.where}: interpolation '${interp}' is not supported (nearest, bilinear).`);
    }
    out.interpolation = interp;
  },
  Rescaling(f, out) {
    const scale = f.get("scale") ?? 1, offset = f.get("offset") ?? 0;
    for (const [k, v] of [["scale", scale], ["offset", offset]] as const) {
      if (typeof v !== "number" && !(Array.isArray(v) && v.every((x) => typeof x === "number"))) {
        throw new UserError(`${f.where}: ${k}=${short(v)} is not a number or a list of numbers.`);
      }
    }
    out.scale = scale;
    out.offset = offset;
  },
};

// ---- value translators ----------------------------------------------------------------------

const ACTIVATIONS: Record<string, string> = {
  linear: "linear",
  relu: "relu",
  relu6: "relu6",
  elu: "elu",
  selu: "selu",
  sigmoid: "sigmoid",
  tanh: "tanh",
  softmax: "softmax",
  log_softmax: "log_softmax",
  softplus: "softplus",
  softsign: "softsign",
  swish: "swish",
  silu: "swish",
  gelu: "gelu",
  mish: "mish",
  hard_sigmoid: "hard_sigmoid",
};

function activation(v: unknown, where: string, kerasMajor: 2 | 3): string {
  if (v === null || v === undefined) return "linear";
  let name: unknown = v;
  const d = asDict(v);
  if (d) {
    const module = typeof d.module === "string" ? d.module : "keras";
    if (
      d.class_name === "function" && typeof d.config === "string" &&
      /^(keras|tf_keras|tensorflow)\b/.test(module)
    ) {
      name = d.config;
    } else {
      throw new UserError(
        `${where}: the activation ${short(v)} is not a built-in Keras activation (custom code is never run).`,
      );
    }
  }
  if (typeof name !== "string" || !(name in ACTIVATIONS)) {
    throw new UserError(
      `${where}: activation '${String(name)}' is not supported (supported: ${
        Object.keys(ACTIVATIONS).join(", ")
      }).`,
    );
  }
  if (name === "hard_sigmoid" && kerasMajor === 3) {
    throw new UserError(
      `${where}: Keras 3's hard_sigmoid (relu6(x+3)/6) differs from TF.js's (0.2x+0.5 clipped); it is not supported.`,
    );
  }
  return ACTIVATIONS[name];
}

const INITIALIZERS: Record<string, string> = {
  Zeros: "Zeros",
  Ones: "Ones",
  Constant: "Constant",
  RandomNormal: "RandomNormal",
  RandomUniform: "RandomUniform",
  TruncatedNormal: "TruncatedNormal",
  VarianceScaling: "VarianceScaling",
  Orthogonal: "Orthogonal",
  Identity: "Identity",
  GlorotUniform: "GlorotUniform",
  GlorotNormal: "GlorotNormal",
  HeNormal: "HeNormal",
  HeUniform: "HeUniform",
  LecunNormal: "LeCunNormal",
  LecunUniform: "LeCunUniform",
  LeCunNormal: "LeCunNormal",
  LeCunUniform: "LeCunUniform",
};
const INITIALIZER_STRINGS: Record<string, string> = {
  zeros: "Zeros",
  ones: "Ones",
  glorot_uniform: "GlorotUniform",
  glorot_normal: "GlorotNormal",
  he_normal: "HeNormal",
  he_uniform: "HeUniform",
  lecun_normal: "LeCunNormal",
  lecun_uniform: "LeCunUniform",
  orthogonal: "Orthogonal",
  random_normal: "RandomNormal",
  random_uniform: "RandomUniform",
  truncated_normal: "TruncatedNormal",
};
const INITIALIZER_FIELDS = new Set([
  "seed",
  "mean",
  "stddev",
  "minval",
  "maxval",
  "value",
  "scale",
  "mode",
  "distribution",
  "gain",
]);

/** Initializers only matter when a layer is re-initialized; they are kept so a saved model trains the same. */
function initializer(v: unknown, where: string, field: string): Dict | null {
  if (v === null || v === undefined) return null;
  if (typeof v === "string") {
    const cls = INITIALIZER_STRINGS[v];
    if (!cls) throw new UserError(`${where}: ${field} '${v}' is not supported.`);
    return { class_name: cls, config: {} };
  }
  const d = asDict(v);
  const cls = d && typeof d.class_name === "string" ? INITIALIZERS[d.class_name] : undefined;
  if (!d || !cls) {
    throw new UserError(`${where}: ${field} ${short(v)} is not a supported built-in initializer.`);
  }
  checkNotCustom(d, `${where}: ${field}`, String(d.class_name));
  const config: Dict = {};
  for (const [k, val] of Object.entries(asDict(d.config) ?? {})) {
    if (!INITIALIZER_FIELDS.has(k)) {
      if (val === null) continue;
      throw new UserError(`${where}: ${field} field '${k}' = ${short(val)} is not supported.`);
    }
    // TF.js has no untruncated variant; "normal" is its nearest (this only affects re-initialization).
    config[k] = k === "distribution" && val === "untruncated_normal" ? "normal" : val;
  }
  return { class_name: cls, config };
}

function regularizer(v: unknown, where: string, field: string): Dict | null {
  if (v === null || v === undefined) return null;
  if (v === "l1") return { class_name: "L1L2", config: { l1: 0.01, l2: 0 } };
  if (v === "l2") return { class_name: "L1L2", config: { l1: 0, l2: 0.01 } };
  const d = asDict(v);
  const cfg = asDict(d?.config) ?? {};
  const known = ["L1", "L2", "L1L2", "l1", "l2", "l1_l2"];
  if (!d || typeof d.class_name !== "string" || !known.includes(d.class_name)) {
    throw new UserError(`${where}: ${field} ${short(v)} is not supported (L1, L2 and L1L2 are).`);
  }
  checkNotCustom(d, `${where}: ${field}`, d.class_name);
  for (const k of Object.keys(cfg)) {
    if (k !== "l1" && k !== "l2") throw new UserError(`${where}: ${field} field '${k}' is not supported.`);
  }
  return { class_name: "L1L2", config: { l1: num(cfg.l1, 0), l2: num(cfg.l2, 0) } };
}

const CONSTRAINTS: Record<string, string[]> = {
  MaxNorm: ["max_value", "axis"],
  NonNeg: [],
  UnitNorm: ["axis"],
  MinMaxNorm: ["min_value", "max_value", "rate", "axis"],
};

function constraint(v: unknown, where: string, field: string): Dict | null {
  if (v === null || v === undefined) return null;
  const d = asDict(v);
  const allowed = d && typeof d.class_name === "string" ? CONSTRAINTS[d.class_name] : undefined;
  if (!d || !allowed) {
    throw new UserError(
      `${where}: ${field} ${short(v)} is not supported (${Object.keys(CONSTRAINTS).join(", ")} are).`,
    );
  }
  checkNotCustom(d, `${where}: ${field}`, String(d.class_name));
  const cfg = asDict(d.config) ?? {};
  for (const k of Object.keys(cfg)) {
    if (!allowed.includes(k)) throw new UserError(`${where}: ${field} field '${k}' is not supported.`);
  }
  return { class_name: d.class_name, config: cfg };
}

/** Keras 3 DTypePolicy / Keras 2 Policy objects and plain strings, as a TF.js dtype string. */
function translateDtype(v: unknown, where: string, isInput: boolean): string {
  let name: unknown = v;
  const d = asDict(v);
  if (d) {
    const cls = d.class_name;
    if (cls !== "DTypePolicy" && cls !== "Policy" && cls !== "FloatDTypePolicy") {
      throw new UserError(`${where}: dtype ${short(v)} is not supported.`);
    }
    name = (asDict(d.config) ?? {}).name;
  }
  if (name === "float32") return "float32";
  // Mixed precision keeps float32 variables and computes in half precision; TF.js computes the
  // same arithmetic in float32 (more precise, so predictions may differ in the last bits).
  if (name === "mixed_float16" || name === "mixed_bfloat16") return "float32";
  if (isInput && typeof name === "string" && /^u?int(8|16|32|64)$/.test(name)) return "int32";
  throw new UserError(`${where}: dtype '${String(name)}' is not supported (float32 and mixed float16 are).`);
}

function dataFormat(v: unknown, where: string): string {
  if (v === null || v === undefined || v === "channels_last") return "channels_last";
  if (v === "channels_first") return "channels_first";
  throw new UserError(`${where}: data_format '${String(v)}' is not supported.`);
}

function padding(v: unknown, where: string): string {
  if (v === null || v === undefined) return "valid";
  if (v === "valid" || v === "same") return v;
  throw new UserError(`${where}: padding '${String(v)}' is not supported (valid, same).`);
}

function intTuple(v: unknown, n: number, where: string, field: string): number[] {
  const arr = typeof v === "number" ? new Array(n).fill(v) : v;
  if (!Array.isArray(arr) || arr.length !== n || !arr.every((x) => Number.isInteger(x) && x > 0)) {
    throw new UserError(`${where}: ${field}=${short(v)} is not ${n} positive integers.`);
  }
  return arr as number[];
}

/** ZeroPadding2D / Cropping2D amounts: an int, a pair, or a pair of pairs. */
function pairs(v: unknown, where: string, field: string): number | number[] | number[][] {
  const isInt = (x: unknown) => Number.isInteger(x) && (x as number) >= 0;
  if (isInt(v)) return v as number;
  if (Array.isArray(v) && v.length === 2) {
    if (v.every(isInt)) return v as number[];
    if (v.every((p) => Array.isArray(p) && p.length === 2 && p.every(isInt))) return v as number[][];
  }
  throw new UserError(`${where}: ${field}=${short(v)} is not an int, a pair or a pair of pairs.`);
}

function shapeOf(v: unknown, where: string): (number | null)[] {
  if (!Array.isArray(v) || !v.every((x) => x === null || (Number.isInteger(x) && x >= -1))) {
    throw new UserError(`${where}: ${short(v)} is not a shape (a list of integers or null).`);
  }
  return v as (number | null)[];
}

function posInt(v: unknown, where: string, field: string): number {
  if (!Number.isInteger(v) || (v as number) <= 0) {
    throw new UserError(`${where}: ${field}=${short(v)} is not a positive integer.`);
  }
  return v as number;
}

function num(v: unknown, dflt: number): number {
  return typeof v === "number" ? v : dflt;
}

function bool(v: unknown, dflt: boolean): boolean {
  return typeof v === "boolean" ? v : dflt;
}

function str(v: unknown): string | undefined {
  return typeof v === "string" ? v : undefined;
}

/** `[name, node, tensor]` from a Keras 3 `__keras_tensor__` object. */
function kerasTensorHistory(t: unknown, where: string): [string, number, number] {
  const d = asDict(t);
  const hist = d && d.class_name === "__keras_tensor__" ? (asDict(d.config) ?? {}).keras_history : undefined;
  if (!Array.isArray(hist) || typeof hist[0] !== "string") {
    throw new UserError(
      `${where}: a call argument ${short(t)} is not a tensor from another layer; only tensors are supported.`,
    );
  }
  return [hist[0], Number(hist[1]), Number(hist[2])];
}

/**
 * Refuse objects that name a non-Keras module or a registered custom class. Built-ins carry
 * `module: "keras..."` and `registered_name: null` (Keras 3, tf.keras >= 2.13) or neither (Keras 2).
 */
function checkNotCustom(d: Dict, where: string, className: string): void {
  const module = d.module;
  const registered = d.registered_name;
  const foreignModule = typeof module === "string" &&
    !/^(keras|tf_keras|tensorflow\.keras|tensorflow\.python\.keras)(\.|$)/.test(module);
  const customName = typeof registered === "string" && registered !== className && registered !== "function";
  if (foreignModule || customName) {
    throw new UserError(
      `${where} uses the custom class '${typeof registered === "string" ? registered : className}'` +
        `${typeof module === "string" ? ` from module '${module}'` : ""}: custom classes are Python code, ` +
        `which prunescope never runs.`,
    );
  }
}

function asDict(v: unknown): Dict | null {
  return v !== null && typeof v === "object" && !Array.isArray(v) ? v as Dict : null;
}

/** Drop internal markers and undefined values. */
function strip(d: Dict): Dict {
  const out: Dict = {};
  for (const [k, v] of Object.entries(d)) if (!k.startsWith("__") && v !== undefined) out[k] = v;
  return out;
}

/** A short printable form of a config value. */
function short(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 80 ? s.slice(0, 77) + "..." : s;
}
