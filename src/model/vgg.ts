/**
 * The lab's VGG-16-style CIFAR-10 network: 13 conv 3x3 'same' + relu layers in five blocks
 * (64,64 | 128,128 | 256x3 | 512x3 | 512x3), each conv followed by BatchNormalization, a 2x2
 * max-pool and dropout after each block, then Flatten, dense 4096-1024-512 (relu, dropout) and a
 * 10-way softmax. `width` scales every channel count and dense size (1.0 = the lab's full size).
 */
import * as tf from "@tensorflow/tfjs";

export const VGG_BLOCKS = [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]];
export const VGG_DENSE = [4096, 1024, 512];

/** How to build the network. */
export interface VggOptions {
  width: number;
  /** Dropout after each conv block, and in the dense head. */
  blockDropout?: number;
  denseDropout?: number;
  /** Seed for the weight initializers (deterministic builds). */
  seed?: number;
}

/** Scale a channel or unit count by `width`, at least 1. */
export function scaled(n: number, width: number): number {
  return Math.max(1, Math.round(n * width));
}

/**
 * Build the (untrained) network.
 *
 * @example
 * ```ts
 * const model = buildVgg({ width: 0.25 }); // last conv layer: 128 channels
 * ```
 */
export function buildVgg(opts: VggOptions): tf.Sequential {
  const { width, blockDropout = 0.1, denseDropout = 0.3 } = opts;
  let seed = opts.seed ?? 1;
  const init = () => tf.initializers.heNormal({ seed: seed++ });
  const glorot = () => tf.initializers.glorotUniform({ seed: seed++ });
  const model = tf.sequential({ name: `vgg16_w${width}` });
  model.add(tf.layers.inputLayer({ inputShape: [32, 32, 3], name: "input" }));
  VGG_BLOCKS.forEach((block, b) => {
    block.forEach((filters, i) => {
      model.add(tf.layers.conv2d({
        name: `block${b + 1}_conv${i + 1}`,
        filters: scaled(filters, width),
        kernelSize: 3,
        padding: "same",
        activation: "relu",
        kernelInitializer: init(),
      }));
      model.add(tf.layers.batchNormalization({ name: `block${b + 1}_bn${i + 1}` }));
    });
    model.add(tf.layers.maxPooling2d({ name: `block${b + 1}_pool`, poolSize: 2, strides: 2 }));
    if (blockDropout > 0) {
      model.add(tf.layers.dropout({ name: `block${b + 1}_drop`, rate: blockDropout }));
    }
  });
  model.add(tf.layers.flatten({ name: "flatten" }));
  VGG_DENSE.forEach((units, i) => {
    model.add(tf.layers.dense({
      name: `fc${i + 1}`,
      units: scaled(units, width),
      activation: "relu",
      kernelInitializer: init(),
    }));
    if (denseDropout > 0) {
      model.add(tf.layers.dropout({ name: `fc${i + 1}_drop`, rate: denseDropout }));
    }
  });
  model.add(
    tf.layers.dense({ name: "predictions", units: 10, activation: "softmax", kernelInitializer: glorot() }),
  );
  return model;
}

/** Multiply-adds of one forward pass of one image (conv and dense layers). */
export function vggMultiplyAdds(width: number): number {
  let macs = 0, size = 32, cin = 3;
  for (const block of VGG_BLOCKS) {
    for (const f of block) {
      const cout = scaled(f, width);
      macs += size * size * 9 * cin * cout;
      cin = cout;
    }
    size /= 2;
  }
  let inUnits = cin * size * size;
  for (const u of [...VGG_DENSE.map((d) => scaled(d, width)), 10]) {
    macs += inUnits * u;
    inUnits = u;
  }
  return macs;
}
