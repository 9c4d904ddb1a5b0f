/**
 * Small branched CNNs built in memory for tests (untrained: seed them with `randomize`): a
 * MobileNet-style model (depthwise conv, an inverted residual) and an Inception-style one (two
 * branches joined by a Concatenate).
 */
import * as tf from "@tensorflow/tfjs";

type Sym = tf.SymbolicTensor;

/** conv -> BN -> relu, then an inverted residual (1x1 expand, depthwise, 1x1 project, Add), GAP, Dense. */
export function mobilenetStyle(): tf.LayersModel {
  const input = tf.input({ shape: [32, 32, 3] });
  const bn = (name: string, x: Sym) => tf.layers.batchNormalization({ name }).apply(x) as Sym;
  const relu = (name: string, x: Sym) => tf.layers.reLU({ name }).apply(x) as Sym;
  let x = tf.layers.conv2d({ name: "stem", filters: 8, kernelSize: 3, strides: 2, padding: "same" }).apply(
    input,
  ) as Sym;
  x = relu("stem_relu", bn("stem_bn", x));
  let y = tf.layers.conv2d({ name: "expand", filters: 16, kernelSize: 1 }).apply(x) as Sym;
  y = relu("expand_relu", bn("expand_bn", y));
  y = tf.layers.depthwiseConv2d({ name: "dw", kernelSize: 3, padding: "same" }).apply(y) as Sym;
  y = relu("dw_relu", bn("dw_bn", y));
  y = tf.layers.conv2d({ name: "project", filters: 8, kernelSize: 1 }).apply(y) as Sym;
  y = bn("project_bn", y);
  x = tf.layers.add({ name: "add" }).apply([x, y]) as Sym;
  x = tf.layers.conv2d({ name: "head", filters: 12, kernelSize: 1, activation: "relu" }).apply(x) as Sym;
  x = tf.layers.globalAveragePooling2d({ name: "gap" }).apply(x) as Sym;
  const out = tf.layers.dense({ name: "scores", units: 10, activation: "softmax" }).apply(x) as Sym;
  return tf.model({ inputs: input, outputs: out });
}

/** A stem conv, two branches (1x1 and 3x3 convs) joined by a Concatenate, a conv, GAP, Dense. */
export function inceptionStyle(): tf.LayersModel {
  const input = tf.input({ shape: [32, 32, 3] });
  const conv = (name: string, filters: number, k: number, x: Sym, strides = 1) =>
    tf.layers.conv2d({ name, filters, kernelSize: k, strides, padding: "same", activation: "relu" }).apply(
      x,
    ) as Sym;
  const x = conv("stem", 8, 3, input, 2);
  const a = conv("branch_1x1", 6, 1, x);
  const b = conv("branch_3x3", 10, 3, conv("branch_reduce", 4, 1, x));
  let y = tf.layers.concatenate({ name: "concat" }).apply([a, b]) as Sym;
  y = conv("after", 12, 3, y, 2);
  y = tf.layers.globalAveragePooling2d({ name: "gap" }).apply(y) as Sym;
  const out = tf.layers.dense({ name: "scores", units: 10, activation: "softmax" }).apply(y) as Sym;
  return tf.model({ inputs: input, outputs: out });
}
