/**
 * Our wasm gradient kernels against the cpu backend's gradients on random data: the cpu
 * backend is tfjs's plain reference implementation.
 */
import * as tf from "@tensorflow/tfjs";
import { setupBackend } from "../../src/backend.ts";

type Case = () => tf.Tensor[];

/** Run `f` on cpu and on wasm; return the largest |difference| / (1 + |cpu value|). */
async function compare(f: Case): Promise<number> {
  await setupBackend("cpu");
  const ref = f().map((t) => t.dataSync() as Float32Array);
  await setupBackend("wasm");
  const got = f().map((t) => t.dataSync() as Float32Array);
  let worst = 0;
  ref.forEach((r, i) => {
    if (r.length !== got[i].length) throw new Error(`shape mismatch in output ${i}`);
    for (let j = 0; j < r.length; j++) {
      worst = Math.max(worst, Math.abs(r[j] - got[i][j]) / (1 + Math.abs(r[j])));
    }
  });
  return worst;
}

const rnd = (shape: number[], seed: number) => tf.randomNormal(shape, 0, 1, "float32", seed);

const convCases: [string, number[], number[], number | [number, number], "same" | "valid"][] = [
  ["3x3 same", [4, 9, 9, 3], [3, 3, 3, 5], 1, "same"],
  ["3x3 same stride 2", [2, 8, 8, 4], [3, 3, 4, 6], 2, "same"],
  ["5x3 valid", [3, 10, 7, 2], [5, 3, 2, 4], 1, "valid"],
  ["3x3 valid strides 2,3", [2, 11, 11, 3], [3, 3, 3, 2], [2, 3], "valid"],
  ["4x2 same (uneven padding)", [2, 10, 10, 3], [4, 2, 3, 2], 1, "same"],
  ["3x3 same stride 2, odd size", [2, 9, 9, 3], [3, 3, 3, 4], 2, "same"],
  ["1x1 same stride 2 (a projection shortcut)", [2, 8, 8, 4], [1, 1, 4, 6], 2, "same"],
  ["3x3 valid stride 2, even size (a row past the last window)", [2, 10, 10, 2], [3, 3, 2, 3], 2, "valid"],
  ["2x2 valid stride 3", [1, 8, 7, 2], [2, 2, 2, 3], 3, "valid"],
];

for (const [name, xs, fs, strides, pad] of convCases) {
  Deno.test(`wasm Conv2D gradients (filter and input) match cpu: ${name}`, async () => {
    const worst = await compare(() =>
      tf.grads((x: tf.Tensor, f: tf.Tensor) =>
        tf.conv2d(x as tf.Tensor4D, f as tf.Tensor4D, strides, pad).square().sum()
      )([
        rnd(xs, 1),
        rnd(fs, 2),
      ])
    );
    if (!(worst < 1e-4)) throw new Error(`relative difference ${worst}`);
  });
}

Deno.test("wasm BatchMatMul with transposed operands matches cpu", async () => {
  const worst = await compare(() => [
    tf.matMul(rnd([7, 5], 1), rnd([7, 3], 2), true, false),
    tf.matMul(rnd([5, 7], 3), rnd([3, 7], 4), false, true),
    tf.matMul(rnd([2, 7, 5], 5), rnd([2, 3, 7], 6), true, true),
    ...tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.matMul(a, b).square().sum())([
      rnd([6, 4], 7),
      rnd([4, 3], 8),
    ]),
  ]);
  if (!(worst < 1e-5)) throw new Error(`relative difference ${worst}`);
});

Deno.test("wasm MaxPoolGrad routes every window's gradient to its maximum (cpu semantics)", async () => {
  const worst = await compare(() => {
    // Garbage in freed memory first: the stock wasm kernel fails on reused memory and drops windows.
    for (let i = 0; i < 3; i++) tf.fill([8, 8, 8, 3], 7.5).dispose();
    const x = rnd([8, 8, 8, 3], 1) as tf.Tensor4D;
    return [
      tf.grad((a: tf.Tensor) => tf.maxPool(a as tf.Tensor4D, 2, 2, "valid").square().sum())(x),
      tf.grad((a: tf.Tensor) => tf.maxPool(a as tf.Tensor4D, 3, 2, "same").square().sum())(x),
    ];
  });
  if (worst !== 0) throw new Error(`relative difference ${worst}`);
});

Deno.test("BatchNorm gradient (training mode, through the moments) matches cpu", async () => {
  const worst = await compare(() =>
    tf.grads((x: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => {
      const { mean, variance } = tf.moments(x, [0, 1, 2]);
      return tf.batchNorm(x as tf.Tensor4D, mean, variance, b, g, 1e-3).mul(rnd([8, 4, 4, 6], 9)).sum();
    })([rnd([8, 4, 4, 6], 1), rnd([6], 2), rnd([6], 3)])
  );
  if (!(worst < 1e-4)) throw new Error(`relative difference ${worst}`);
});

Deno.test("setupBackend installs the tile-free BatchNorm gradient", async () => {
  await setupBackend("wasm");
  const { getGradient } = await import("@tensorflow/tfjs-core");
  const grad = getGradient("FusedBatchNorm");
  if (!grad || grad.gradFunc.toString().includes("tile(")) {
    throw new Error("tfjs-core's tiling gradient is still active");
  }
});

Deno.test("BatchNorm training gradient equals the closed form gamma/sigma (dy - mean(dy) - xhat mean(dy xhat))", async () => {
  await setupBackend("cpu");
  const n = 8 * 4 * 4, eps = 1e-3;
  const x = rnd([8, 4, 4, 6], 1), gamma = rnd([6], 2), beta = rnd([6], 3), dy = rnd([8, 4, 4, 6], 4);
  const [dx, dgamma, dbeta] = tf.grads((a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => {
    const { mean, variance } = tf.moments(a, [0, 1, 2]);
    return tf.batchNorm(a as tf.Tensor4D, mean, variance, b, g, eps).mul(dy).sum();
  })([x, gamma, beta]);
  // The closed form, computed in float64 from the same inputs.
  const xs = x.dataSync(), ds = dy.dataSync(), gs = gamma.dataSync();
  const worst = { dx: 0, dgamma: 0, dbeta: 0 };
  for (let c = 0; c < 6; c++) {
    let mu = 0, v = 0, mdy = 0, mdyx = 0;
    for (let i = c; i < xs.length; i += 6) mu += xs[i] / n;
    for (let i = c; i < xs.length; i += 6) v += (xs[i] - mu) ** 2 / n;
    const rstd = 1 / Math.sqrt(v + eps);
    for (let i = c; i < xs.length; i += 6) {
      mdy += ds[i] / n;
      mdyx += ds[i] * (xs[i] - mu) * rstd / n;
    }
    for (let i = c; i < xs.length; i += 6) {
      const want = gs[c] * rstd * (ds[i] - mdy - (xs[i] - mu) * rstd * mdyx);
      worst.dx = Math.max(worst.dx, Math.abs(dx.dataSync()[i] - want));
    }
    worst.dgamma = Math.max(worst.dgamma, Math.abs(dgamma.dataSync()[c] - mdyx * n));
    worst.dbeta = Math.max(worst.dbeta, Math.abs(dbeta.dataSync()[c] - mdy * n));
  }
  if (!(worst.dx < 1e-4 && worst.dgamma < 1e-3 && worst.dbeta < 1e-4)) throw new Error(JSON.stringify(worst));
});
