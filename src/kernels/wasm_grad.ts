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
  BatchMatMul,
  Conv2DBackpropFilter,
  Conv2DBackpropInput,
  getKernel,
  type KernelConfig,
  type KernelFunc,
  MaxPoolGrad,
  registerKernel,
  type TensorInfo,
  unregisterKernel,
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
  if (info.dilationHeight === 1 && info.dilationWidth === 1) {
    return backpropFilterAsConv(x, dy, info, run, backend);
  }
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

/**
 * Conv2DBackpropInput as a forward convolution: dX = conv(dY', W'), where W' is the kernel
 * flipped in space with its in/out channels swapped, the padding mirrored (k - 1 - p), and dY'
 * is dY with s - 1 zeros inserted between its rows and columns at stride s (`zeroUpsample`).
 * tfjs-backend-wasm's own kernel is a plain loop about ten times slower than its XNNPACK forward
 * conv; dilated convs still go to it.
 */
function makeConv2DBackpropInput(original: KernelFunc | undefined): KernelFunc {
  return ((
    args: {
      inputs: { dy: TensorInfo; filter: TensorInfo };
      backend: Backend;
      attrs: Record<string, unknown>;
    },
  ) => {
    const { inputs: { dy, filter }, backend, attrs } = args;
    const { strides, pad, dataFormat, dimRoundingMode, inputShape } = attrs as {
      strides: number | [number, number];
      pad: "valid" | "same" | number;
      dataFormat: "NHWC" | "NCHW";
      dimRoundingMode?: "floor" | "round" | "ceil";
      inputShape: [number, number, number, number];
    };
    const [kh, kw] = filter.shape;
    const info = backend_util.computeConv2DInfo(
      inputShape,
      filter.shape as [number, number, number, number],
      strides,
      1,
      pad,
      dimRoundingMode,
      false,
      "channelsLast",
    );
    const { top, bottom, left, right } = info.padInfo;
    const sh = info.strideHeight, sw = info.strideWidth;
    // Rows (columns) of the padded input past the last window: they get no gradient.
    const restH = info.inHeight + top + bottom - kh - (info.outHeight - 1) * sh;
    const restW = info.inWidth + left + right - kw - (info.outWidth - 1) * sw;
    const pads = [kh - 1 - top, kh - 1 - bottom + restH, kw - 1 - left, kw - 1 - right + restW];
    if (
      dataFormat === "NCHW" || info.dilationHeight !== 1 || info.dilationWidth !== 1 ||
      pads.some((p) => p < 0)
    ) {
      if (!original) throw new Error("Conv2DBackpropInput: no wasm kernel for this case");
      return original(args as never);
    }
    const run = kernelRunner(backend);
    const up = sh === 1 && sw === 1 ? dy : zeroUpsample(dy, sh, sw, backend as WasmBackend);
    const flipped = run("Reverse", { x: filter }, { dims: [0, 1] });
    const swapped = run("Transpose", { x: flipped }, { perm: [0, 1, 3, 2] });
    const out = run("Conv2D", { x: up, filter: swapped }, {
      strides: 1,
      pad: [[0, 0], [pads[0], pads[1]], [pads[2], pads[3]], [0, 0]],
      dataFormat: "NHWC",
      dilations: 1,
      dimRoundingMode,
    });
    for (const t of [flipped, swapped, ...(up === dy ? [] : [up])]) backend.disposeData(t.dataId);
    return out;
  }) as unknown as KernelFunc;
}

/**
 * dW[i, j, ci, co] = sum over n, h, w of xpad[n, s*h + i, s*w + j, ci] * dY[n, h, w, co] is itself
 * a convolution, of X^T (Cin "images" of N channels) with dY^T (an Ho x Wo filter from N to Cout
 * channels, its taps spaced by the stride s: a dilated filter), which XNNPACK runs without
 * materialising the patches. Where the padded input has rows or columns past the last window
 * (a 'valid' conv whose stride does not divide the size), the result is cut to KH x KW.
 * For an undilated conv (any stride).
 */
function backpropFilterAsConv(
  x: TensorInfo,
  dy: TensorInfo,
  info: backend_util.Conv2DInfo,
  run: Run,
  backend: Backend,
): TensorInfo {
  const { top, bottom, left, right } = info.padInfo;
  const xt = run("Transpose", { x }, { perm: [3, 1, 2, 0] });
  const dyt = run("Transpose", { x: dy }, { perm: [1, 2, 0, 3] });
  const conv = run("Conv2D", { x: xt, filter: dyt }, {
    strides: 1,
    pad: [[0, 0], [top, bottom], [left, right], [0, 0]],
    dataFormat: "NHWC",
    dilations: [info.strideHeight, info.strideWidth],
  });
  const [cin, kh, kw, cout] = conv.shape;
  const cut = kh !== info.filterHeight || kw !== info.filterWidth
    ? run("Slice", { x: conv }, {
      begin: [0, 0, 0, 0],
      size: [cin, info.filterHeight, info.filterWidth, cout],
    })
    : conv;
  const out = run("Transpose", { x: cut }, { perm: [1, 2, 0, 3] });
  for (const t of new Set([xt, dyt, conv, cut])) backend.disposeData(t.dataId);
  return out;
}

/**
 * dY with s - 1 zero rows (columns) inserted between its rows (columns): the gradient of a
 * stride-s conv as the gradient of a stride-1 one. Plain TypeScript over the wasm heap.
 */
function zeroUpsample(dy: TensorInfo, sh: number, sw: number, backend: WasmBackend): TensorInfo {
  const [n, h, w, c] = dy.shape;
  const hu = (h - 1) * sh + 1, wu = (w - 1) * sw + 1;
  const out = backend.makeOutput([n, hu, wu, c], "float32");
  const src = backend.typedArrayFromHeap(dy), dst = backend.typedArrayFromHeap(out);
  dst.fill(0);
  for (let b = 0; b < n; b++) {
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const from = ((b * h + y) * w + x) * c;
        dst.set(src.subarray(from, from + c), ((b * hu + y * sh) * wu + x * sw) * c);
      }
    }
  }
  return out;
}

/**
 * BatchMatMul with transposeA or transposeB: tfjs-backend-wasm 4.22 runs those through a plain
 * loop about ten times slower than XNNPACK; transposing first keeps every product on the fast path.
 */
function makeBatchMatMul(original: KernelFunc): KernelFunc {
  return ((args: {
    inputs: { a: TensorInfo; b: TensorInfo };
    backend: Backend;
    attrs: { transposeA: boolean; transposeB: boolean };
  }) => {
    const { inputs: { a, b }, backend, attrs } = args;
    if (!attrs.transposeA && !attrs.transposeB) return original(args as never);
    const run = kernelRunner(backend);
    const swapLast = (t: TensorInfo) => {
      const perm = t.shape.map((_, i) => i);
      const r = perm.length;
      [perm[r - 2], perm[r - 1]] = [perm[r - 1], perm[r - 2]];
      return run("Transpose", { x: t }, { perm });
    };
    const at = attrs.transposeA ? swapLast(a) : a;
    const bt = attrs.transposeB ? swapLast(b) : b;
    const out = original(
      { inputs: { a: at, b: bt }, backend, attrs: { transposeA: false, transposeB: false } } as never,
    );
    if (at !== a) backend.disposeData(at.dataId);
    if (bt !== b) backend.disposeData(bt.dataId);
    return out;
  }) as unknown as KernelFunc;
}

type WasmBackend = Backend & {
  makeOutput(shape: number[], dtype: string): TensorInfo;
  typedArrayFromHeap(t: TensorInfo): Float32Array;
};

/**
 * MaxPoolGrad: tfjs-backend-wasm 4.22's kernel drops the gradient of some windows (about 6% of
 * them in a random 8x8x3 test), so we route dY to the first maximum of each window in plain
 * TypeScript over the wasm heap, exactly as the cpu backend does.
 */
function maxPoolGrad(
  args: {
    inputs: { dy: TensorInfo; input: TensorInfo };
    backend: WasmBackend;
    attrs: Record<string, unknown>;
  },
): TensorInfo {
  const { inputs: { dy, input }, backend, attrs } = args;
  const { filterSize, strides, pad, dimRoundingMode } = attrs as {
    filterSize: number | [number, number];
    strides: number | [number, number];
    pad: "valid" | "same" | number;
    dimRoundingMode?: "floor" | "round" | "ceil";
  };
  const info = backend_util.computePool2DInfo(
    input.shape as [number, number, number, number],
    filterSize,
    strides,
    1,
    pad,
    dimRoundingMode,
  );
  const x = backend.typedArrayFromHeap(input);
  const g = backend.typedArrayFromHeap(dy);
  const out = backend.makeOutput(input.shape, "float32");
  const dx = backend.typedArrayFromHeap(out);
  dx.fill(0);
  const { batchSize: n, inHeight: h, inWidth: w, inChannels: c, outHeight: ho, outWidth: wo } = info;
  const { strideHeight: sh, strideWidth: sw, effectiveFilterHeight: fh, effectiveFilterWidth: fw } = info;
  const dh = info.dilationHeight, dw = info.dilationWidth;
  const top = info.padInfo.top, left = info.padInfo.left;
  for (let b = 0; b < n; b++) {
    for (let oy = 0; oy < ho; oy++) {
      const y0 = oy * sh - top;
      for (let ox = 0; ox < wo; ox++) {
        const x0 = ox * sw - left;
        const gBase = ((b * ho + oy) * wo + ox) * c;
        for (let ch = 0; ch < c; ch++) {
          let best = -Infinity, at = -1;
          for (let fy = 0; fy < fh; fy += dh) {
            const y = y0 + fy;
            if (y < 0 || y >= h) continue;
            for (let fx = 0; fx < fw; fx += dw) {
              const xx = x0 + fx;
              if (xx < 0 || xx >= w) continue;
              const i = ((b * h + y) * w + xx) * c + ch;
              if (x[i] > best || at < 0) {
                best = x[i];
                at = i;
              }
            }
          }
          if (at >= 0) dx[at] += g[gBase + ch];
        }
      }
    }
  }
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
  if (registered) return;
  if (!getKernel(Conv2DBackpropFilter, "wasm")) { for (const c of configs) registerKernel(c); }
  if (getKernel(MaxPoolGrad, "wasm")) unregisterKernel(MaxPoolGrad, "wasm");
  registerKernel({
    kernelName: MaxPoolGrad,
    backendName: "wasm",
    kernelFunc: maxPoolGrad as unknown as KernelFunc,
  });
  const mm = getKernel(BatchMatMul, "wasm");
  if (mm) {
    unregisterKernel(BatchMatMul, "wasm");
    registerKernel({
      kernelName: BatchMatMul,
      backendName: "wasm",
      setupFunc: mm.setupFunc,
      kernelFunc: makeBatchMatMul(mm.kernelFunc),
    });
  }
  const original = getKernel(Conv2DBackpropInput, "wasm");
  if (original) unregisterKernel(Conv2DBackpropInput, "wasm");
  registerKernel({
    kernelName: Conv2DBackpropInput,
    backendName: "wasm",
    setupFunc: original?.setupFunc,
    kernelFunc: makeConv2DBackpropInput(original?.kernelFunc),
  });
  registered = true;
}
