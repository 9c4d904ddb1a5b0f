/**
 * The CIFAR ResNet-20 (v1) of He et al. (2016), section 4.2: a 3x3 conv of 16 filters, then three
 * stages of three basic blocks (16, 32, 64 filters; the first block of stages 2 and 3 halves the
 * map with stride 2), global average pooling and a 10-way softmax. A basic block is
 * conv3x3-BN-relu-conv3x3-BN, added to its shortcut, then relu. Shortcuts are identities within
 * a stage and 1x1 stride-2 projection convs (with BN) where the stage changes. About 0.27 M
 * parameters and 41 M multiply-adds per 32x32 image.
 */
import * as tf from "@tensorflow/tfjs";

/** Filters of the three stages. */
export const RESNET20_STAGES = [16, 32, 64];
/** Basic blocks per stage (n = 3 gives 6n + 2 = 20 layers). */
export const RESNET20_BLOCKS = 3;

/** How to build the network. */
export interface ResnetOptions {
  /** Seed for the weight initializers (deterministic builds). */
  seed?: number;
}

/**
 * Build the (untrained) functional ResNet-20.
 *
 * @example
 * ```ts
 * const model = buildResnet20({ seed: 1 });
 * model.getLayer("stage3_block3_conv2"); // the last conv layer: 64 channels
 * ```
 */
export function buildResnet20(opts: ResnetOptions = {}): tf.LayersModel {
  let seed = opts.seed ?? 1;
  const init = () => tf.initializers.heNormal({ seed: seed++ });
  const conv = (name: string, filters: number, kernelSize: number, strides: number) =>
    tf.layers.conv2d({ name, filters, kernelSize, strides, padding: "same", kernelInitializer: init() });
  const bn = (name: string) => tf.layers.batchNormalization({ name });
  const relu = (name: string) => tf.layers.activation({ name, activation: "relu" });

  const input = tf.input({ shape: [32, 32, 3], name: "input" });
  let x = conv("conv1", RESNET20_STAGES[0], 3, 1).apply(input) as tf.SymbolicTensor;
  x = bn("bn1").apply(x) as tf.SymbolicTensor;
  x = relu("relu1").apply(x) as tf.SymbolicTensor;
  let channels = RESNET20_STAGES[0];
  RESNET20_STAGES.forEach((filters, s) => {
    for (let b = 0; b < RESNET20_BLOCKS; b++) {
      const p = `stage${s + 1}_block${b + 1}`;
      const strides = s > 0 && b === 0 ? 2 : 1;
      let y = conv(`${p}_conv1`, filters, 3, strides).apply(x) as tf.SymbolicTensor;
      y = bn(`${p}_bn1`).apply(y) as tf.SymbolicTensor;
      y = relu(`${p}_relu1`).apply(y) as tf.SymbolicTensor;
      y = conv(`${p}_conv2`, filters, 3, 1).apply(y) as tf.SymbolicTensor;
      y = bn(`${p}_bn2`).apply(y) as tf.SymbolicTensor;
      let shortcut = x;
      if (strides !== 1 || channels !== filters) {
        shortcut = conv(`${p}_proj`, filters, 1, strides).apply(x) as tf.SymbolicTensor;
        shortcut = bn(`${p}_proj_bn`).apply(shortcut) as tf.SymbolicTensor;
      }
      x = tf.layers.add({ name: `${p}_add` }).apply([y, shortcut]) as tf.SymbolicTensor;
      x = relu(`${p}_relu2`).apply(x) as tf.SymbolicTensor;
      channels = filters;
    }
  });
  x = tf.layers.globalAveragePooling2d({ name: "avg_pool" }).apply(x) as tf.SymbolicTensor;
  const output = tf.layers.dense({
    name: "predictions",
    units: 10,
    activation: "softmax",
    kernelInitializer: tf.initializers.glorotUniform({ seed: seed++ }),
  }).apply(x) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: output, name: "resnet20" });
}
