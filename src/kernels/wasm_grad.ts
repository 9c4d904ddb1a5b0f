/**
 * Gradient kernels that tfjs-backend-wasm 4.22 lacks, built from the wasm kernels it has.
 *
 * Conv2DBackpropFilter is an im2col product: with P the (N*Ho*Wo) x (KH*KW*Cin) matrix of input
 * patches and dY the (N*Ho*Wo) x Cout output gradient, dW = P^T dY, reshaped to KH x KW x Cin x Cout.
 * P^T is built directly (one transpose of the padded input, then one strided slice per kernel tap),
 * so the product is a plain, untransposed matrix multiply on XNNPACK's fast path.
 */
import {
  backend_util,
  Conv2DBackpropFilter,
  getKernel,
  type KernelConfig,
  type KernelFunc,
  registerKernel,
  type TensorInfo,
} from "@tensorflow/tfjs-core";

type Backend = { disposeData(id: unknown): void };
type Run = (name: string, inputs: Record<string, TensorInfo> | TensorInfo[], attrs: unknown) => TensorInfo;

function kernelRunner(backend: Backend): Run {
  return (name, inputs, attrs) => {
    const k = getKernel(name, "wasm");
    if (!k) throw new Error(`wasm kernel ${name} missing`);
    return k.kernelFunc({
      inputs: inputs as never,
      backend: backend as never,
      attrs: attrs as never,
    }) as TensorInfo;
  };
}

function conv2DBackpropFilter(
  args: { inputs: { x: TensorInfo; dy: TensorInfo }; backend: Backend; attrs: Record<string, unknown> },
): TensorInfo {
  const { inputs: { x, dy }, backend, attrs } = args;
  const { strides, pad, dataFormat, dimRoundingMode, filterShape } = attrs as {
    strides: number | [number, number];
    pad: "valid" | "same" | number;
    dataFormat: "NHWC" | "NCHW";
    dimRoundingMode?: "floor" | "round" | "ceil";
    filterShape: [number, number, number, number];
  };
  if (dataFormat === "NCHW") throw new Error("Conv2DBackpropFilter on wasm supports NHWC only");
  const info = backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    filterShape,
    strides,
    1,
    pad,
    dimRoundingMode,
    false,
    "channelsLast",
  );
  const run = kernelRunner(backend);
  const temps: TensorInfo[] = [];
  const keep = (t: TensorInfo) => (temps.push(t), t);
  const [kh, kw, cin, cout] = filterShape;
  const { top, bottom, left, right } = info.padInfo;
  const n = info.batchSize, ho = info.outHeight, wo = info.outWidth;
  const sh = info.strideHeight, sw = info.strideWidth;
  const dh = info.dilationHeight, dw = info.dilationWidth;
  // Pad, then move channels to the front: [Cin, N, Hp, Wp].
  const padded = (top || bottom || left || right)
    ? keep(
      run("PadV2", { x }, { paddings: [[0, 0], [top, bottom], [left, right], [0, 0]], constantValue: 0 }),
    )
    : x;
  const xt = keep(run("Transpose", { x: padded }, { perm: [3, 0, 1, 2] }));
  const taps: TensorInfo[] = [];
  for (let i = 0; i < kh; i++) {
    for (let j = 0; j < kw; j++) {
      const tap = run("StridedSlice", { x: xt }, {
        begin: [0, 0, i * dh, j * dw],
        end: [cin, n, i * dh + (ho - 1) * sh + 1, j * dw + (wo - 1) * sw + 1],
        strides: [1, 1, sh, sw],
        beginMask: 0,
        endMask: 0,
        ellipsisMask: 0,
        newAxisMask: 0,
        shrinkAxisMask: 0,
      });
      taps.push(keep(tap));
    }
  }
  // [KH*KW*Cin, N, Ho, Wo] -> [KH*KW*Cin, N*Ho*Wo]
  const pt = keep(run("Concat", taps, { axis: 0 }));
  const pt2 = keep(run("Reshape", { x: pt }, { shape: [kh * kw * cin, n * ho * wo] }));
  const dy2 = keep(run("Reshape", { x: dy }, { shape: [n * ho * wo, cout] }));
  const prod = keep(run("BatchMatMul", { a: pt2, b: dy2 }, { transposeA: false, transposeB: false }));
  const out = run("Reshape", { x: prod }, { shape: [kh, kw, cin, cout] });
  for (const t of temps) if (t.dataId !== out.dataId) backend.disposeData(t.dataId);
  return out;
}

const configs: KernelConfig[] = [
  {
    kernelName: Conv2DBackpropFilter,
    backendName: "wasm",
    kernelFunc: conv2DBackpropFilter as unknown as KernelFunc,
  },
];

let registered = false;
/** Register our wasm gradient kernels once (before `tf.setBackend("wasm")` or after). */
export function registerWasmGradKernels(): void {
  if (registered || getKernel(Conv2DBackpropFilter, "wasm")) return;
  for (const c of configs) registerKernel(c);
  registered = true;
}
