/**
 * A chain of Dense layers on the CPU that skips zero inputs: our own small WebAssembly module
 * (SIMD, emitted below as bytes, no toolchain) for the sweep's dense tail.
 *
 * After a relu Dense layer about half of each row is exactly zero, and the rows of one image at
 * consecutive K values are zero in nearly the same places. The kernel takes rows four at a time
 * and runs the product only over the inputs where one of the four is non-zero, so on the lab
 * VGG's 4096 -> 1024 layer it does a little over half the multiply-adds of a dense product.
 *
 * Same numbers as tfjs-backend-wasm: each output starts from its bias and adds input x weight
 * products in input order, one multiply and one add each (no fused multiply-add), as XNNPACK's
 * wasm SIMD kernels do; a skipped input adds an exact zero, which changes no sum. The tests check
 * the outputs bit for bit against `tf.fused.matMul` on the wasm backend.
 */

/** One Dense layer of the chain: `kernel` is inputs x units, row-major (as Keras stores it). */
export interface DenseSpec {
  kernel: Float32Array;
  bias: Float32Array | null;
  inputs: number;
  units: number;
  relu: boolean;
}

const ROWS = 4; // rows per block (the kernel keeps 4 x 8 sums in registers)
const TILE = 8; // output columns per pass
const K_BLOCK = 512; // inputs per pass, so that a block of weights stays in cache
const UNROLL = 4; // inputs per loop turn (a block's list of inputs is padded to a multiple)

// --- WebAssembly bytes --------------------------------------------------------------------------

const uleb = (n: number): number[] => {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return out;
};
const sleb = (n: number): number[] => {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && !(b & 0x40)) || (n === -1 && (b & 0x40))) return [...out, b];
    out.push(b | 0x80);
  }
};
const name = (s: string) => [...uleb(s.length), ...new TextEncoder().encode(s)];
const section = (id: number, body: number[]) => [id, ...uleb(body.length), ...body];
const vec = (items: number[][]) => [...uleb(items.length), ...items.flat()];

const I32 = 0x7f, V128 = 0x7b;
const get = (i: number) => [0x20, ...uleb(i)];
const set = (i: number) => [0x21, ...uleb(i)];
const tee = (i: number) => [0x22, ...uleb(i)];
const i32 = (v: number) => [0x41, ...sleb(v)];
const simd = (op: number, ...imm: number[]) => [0xfd, ...uleb(op), ...imm];
const memarg = (alignLog2: number, offset: number) => [...uleb(alignLog2), ...uleb(offset)];
const ADD = 0x6a, MUL = 0x6c, SHL = 0x74, LT_U = 0x49, NE = 0x47, EQZ = 0x45, LOAD = 0x28;
const BLOCK = 0x02, LOOP = 0x03, BR_IF = 0x0d, END = 0x0b, VOID = 0x40;
const V_LOAD = 0, V_SPLAT32 = 9, V_STORE = 11, V_CONST = 12, F_ADD = 228, F_MUL = 230, F_MAX = 233;
const ZERO = simd(V_CONST, ...new Array(16).fill(0));

/**
 * `block(a, idx, len, ldb, c, relu)`: for the 4 rows of one block, c[r][j..j+8) +=
 * a[t][r] * w[idx[t] + j ..] for t = 0, 1, ..., len-1 in turn, for every column tile j < ldb
 * (bytes), then c = max(c, 0) when `relu`. a: len x 4 floats; idx: len byte addresses of weight
 * rows; c: 4 rows of ldb bytes, holding the sums so far (the bias at first); len a multiple of
 * UNROLL.
 */
function kernelBytes(): Uint8Array<ArrayBuffer> {
  const [A, IDX, LEN, LDB, C, RELU] = [0, 1, 2, 3, 4, 5];
  const [J, IP, IP_END, AP, BP] = [6, 7, 8, 9, 10];
  const ACC = 11, B0 = ACC + 2 * ROWS, B1 = B0 + 1, AV = B0 + 2;
  const cAddress = (r: number) => [...get(C), ...get(LDB), ...i32(r), MUL, ADD, ...get(J), ADD];
  const body: number[] = [...i32(0), ...set(J), LOOP, VOID];
  for (let q = 0; q < 2 * ROWS; q++) {
    body.push(...cAddress(q >> 1), ...simd(V_LOAD, ...memarg(4, 16 * (q & 1))), ...set(ACC + q));
  }
  body.push(...get(A), ...set(AP), ...get(IDX), ...set(IP));
  body.push(...get(IDX), ...get(LEN), ...i32(2), SHL, ADD, ...set(IP_END));
  body.push(BLOCK, VOID, ...get(LEN), EQZ, BR_IF, 0, LOOP, VOID);
  for (let u = 0; u < UNROLL; u++) {
    body.push(...get(IP), LOAD, 2, ...uleb(4 * u), ...get(J), ADD, ...set(BP));
    body.push(...get(BP), ...simd(V_LOAD, ...memarg(4, 0)), ...set(B0));
    body.push(...get(BP), ...simd(V_LOAD, ...memarg(4, 16)), ...set(B1));
    for (let r = 0; r < ROWS; r++) {
      body.push(...get(AP), ...simd(V_SPLAT32, ...memarg(2, 4 * (u * ROWS + r))), ...set(AV));
      for (let h = 0; h < 2; h++) {
        const acc = ACC + 2 * r + h;
        body.push(...get(acc), ...get(AV), ...get(h ? B1 : B0), ...simd(F_MUL), ...simd(F_ADD), ...set(acc));
      }
    }
  }
  body.push(...get(AP), ...i32(4 * ROWS * UNROLL), ADD, ...set(AP));
  body.push(...get(IP), ...i32(4 * UNROLL), ADD, ...tee(IP), ...get(IP_END), NE, BR_IF, 0, END, END);
  for (let q = 0; q < 2 * ROWS; q++) {
    // store select(relu ? max(acc, 0) : acc)
    body.push(...cAddress(q >> 1));
    body.push(...get(ACC + q), ...ZERO, ...simd(F_MAX), ...get(ACC + q), ...get(RELU), 0x1c, 1, V128);
    body.push(...simd(V_STORE, ...memarg(4, 16 * (q & 1))));
  }
  body.push(...get(J), ...i32(4 * TILE), ADD, ...tee(J), ...get(LDB), LT_U, BR_IF, 0, END, END);
  const code = [...vec([[5, I32], [2 * ROWS + 3, V128]]), ...body];
  return new Uint8Array([
    ...[0, 0x61, 0x73, 0x6d, 1, 0, 0, 0],
    ...section(1, vec([[0x60, ...vec(new Array(6).fill([I32])), 0]])),
    ...section(2, vec([[...name("env"), ...name("memory"), 0x02, 0x00, ...uleb(1)]])),
    ...section(3, vec([[0]])),
    ...section(7, vec([[...name("block"), 0x00, 0]])),
    ...section(10, vec([[...uleb(code.length), ...code]])),
  ]);
}

let compiled: WebAssembly.Module | null = null;

/** True when this runtime runs the kernel (WebAssembly with SIMD). */
export function sparseDenseSupported(): boolean {
  try {
    compiled ??= new WebAssembly.Module(kernelBytes());
    return true;
  } catch {
    return false;
  }
}

// --- the chain ----------------------------------------------------------------------------------

interface Layer {
  inputs: number;
  units: number;
  /** Columns padded to a multiple of TILE. */
  stride: number;
  relu: boolean;
  /** Float offsets of the weights (inputs x stride) and bias (stride) in memory. */
  weights: number;
  bias: number;
}

type BlockFn = (a: number, idx: number, len: number, ldb: number, c: number, relu: number) => void;

const padded = (n: number) => Math.ceil(n / TILE) * TILE;

/**
 * Dense layers applied one after the other on the CPU, skipping zero inputs (see above).
 *
 * @example
 * ```ts
 * const chain = new SparseDenseChain([{ kernel, bias, inputs: 4096, units: 1024, relu: true }]);
 * const y = chain.apply(x, rows); // rows x 1024, the same floats as tf.fused.matMul on wasm
 * ```
 */
export class SparseDenseChain {
  readonly inputs: number;
  readonly units: number;
  /** Multiply-adds run and those a dense product would run, since creation. */
  macs = { run: 0, dense: 0 };
  #memory: WebAssembly.Memory;
  #block: BlockFn;
  #layers: Layer[] = [];
  #fixed: number; // floats taken by weights and biases
  #widest: number; // floats per row in the work buffers: every input or output, plus input-block padding
  #zeros: Float32Array; // what a padding slot reads

  constructor(specs: DenseSpec[]) {
    if (specs.length === 0) throw new Error("a dense chain needs at least one layer");
    specs.forEach((s, i) => {
      if (s.kernel.length !== s.inputs * s.units) throw new Error(`layer ${i}: kernel is not inputs x units`);
      if (i > 0 && s.inputs !== specs[i - 1].units) throw new Error(`layer ${i}: inputs do not chain`);
    });
    compiled ??= new WebAssembly.Module(kernelBytes());
    let floats = 0;
    for (const s of specs) {
      const stride = padded(s.units);
      this.#layers.push({ inputs: s.inputs, units: s.units, stride, relu: s.relu, weights: floats, bias: 0 });
      floats += s.inputs * stride;
      this.#layers[this.#layers.length - 1].bias = floats;
      floats += stride;
    }
    this.#fixed = floats;
    const inputs = Math.max(...specs.map((s) => s.inputs));
    this.#widest = Math.max(inputs, ...this.#layers.map((l) => l.stride)) +
      Math.ceil(inputs / K_BLOCK) * UNROLL;
    this.#zeros = new Float32Array(inputs);
    this.#memory = new WebAssembly.Memory({ initial: Math.ceil((floats * 4) / 65536) + 1 });
    const instance = new WebAssembly.Instance(compiled, { env: { memory: this.#memory } });
    this.#block = instance.exports.block as BlockFn;
    const heap = new Float32Array(this.#memory.buffer);
    specs.forEach((s, i) => {
      const l = this.#layers[i];
      for (let k = 0; k < s.inputs; k++) {
        heap.set(s.kernel.subarray(k * s.units, (k + 1) * s.units), l.weights + k * l.stride);
      }
      if (s.bias) heap.set(s.bias, l.bias);
    });
    this.inputs = specs[0].inputs;
    this.units = specs[specs.length - 1].units;
  }

  /**
   * The chain's output for `rows` rows of `x` (rows x inputs, row-major): rows x units. The rows
   * are taken four at a time in the order `order` (default 0..rows-1): put rows that are zero in
   * the same places next to each other. The result is in the rows' own order either way.
   */
  apply(x: Float32Array, rows: number, order?: Int32Array): Float32Array {
    if (x.length < rows * this.inputs) {
      throw new Error(`${x.length} values for ${rows} rows of ${this.inputs}`);
    }
    const blocks = Math.ceil(rows / ROWS);
    const slots = blocks * ROWS;
    const widest = this.#widest;
    // Memory after the weights: packed inputs (slots x widest), their indices (blocks x widest),
    // and two output buffers (slots x widest each).
    const pack = this.#fixed, idx = pack + slots * widest, out0 = idx + blocks * widest;
    const out1 = out0 + slots * widest, end = out1 + slots * widest;
    const need = Math.ceil((end * 4) / 65536) - this.#memory.buffer.byteLength / 65536;
    if (need > 0) this.#memory.grow(need);
    const heap = new Float32Array(this.#memory.buffer);
    const index = new Int32Array(this.#memory.buffer);
    const rowAt = new Int32Array(slots).fill(-1);
    for (let s = 0; s < rows; s++) rowAt[s] = order ? order[s] : s;

    // Source of layer 0's inputs is x (rows in their own order); later layers read the previous
    // output (rows in slot order, `stride` floats apart).
    let src: Float32Array = x, srcBase = 0, srcStride = this.inputs, bySlot = false;
    let dst = out0;
    const starts = new Int32Array(blocks * (Math.ceil(widest / K_BLOCK) + 1));
    for (const layer of this.#layers) {
      const kBlocks = Math.ceil(layer.inputs / K_BLOCK);
      // Pack each block's rows over the inputs where one of them is non-zero.
      for (let b = 0; b < blocks; b++) {
        // The block's four rows (a padding slot reads zeros).
        const row = (r: number) => {
          const s = b * ROWS + r;
          if (rowAt[s] < 0) return this.#zeros;
          const at = srcBase + (bySlot ? s : rowAt[s]) * srcStride;
          return src.subarray(at, at + layer.inputs);
        };
        const x0 = row(0), x1 = row(1), x2 = row(2), x3 = row(3);
        let len = 0;
        const packAt = pack + b * ROWS * widest, idxAt = idx + b * widest;
        for (let kb = 0; kb < kBlocks; kb++) {
          starts[b * (kBlocks + 1) + kb] = len;
          const kEnd = Math.min(layer.inputs, (kb + 1) * K_BLOCK);
          for (let k = kb * K_BLOCK; k < kEnd; k++) {
            const a0 = x0[k], a1 = x1[k], a2 = x2[k], a3 = x3[k];
            if (a0 === 0 && a1 === 0 && a2 === 0 && a3 === 0) continue;
            const at = packAt + len * ROWS;
            heap[at] = a0;
            heap[at + 1] = a1;
            heap[at + 2] = a2;
            heap[at + 3] = a3;
            index[idxAt + len] = 4 * (layer.weights + k * layer.stride);
            len++;
          }
          // Pad with zero inputs (they add exact zeros) to a multiple of UNROLL.
          while ((len - starts[b * (kBlocks + 1) + kb]) % UNROLL !== 0) {
            heap.fill(0, packAt + len * ROWS, packAt + (len + 1) * ROWS);
            index[idxAt + len] = 4 * layer.weights;
            len++;
          }
        }
        starts[b * (kBlocks + 1) + kBlocks] = len;
        this.macs.run += len * ROWS * layer.units;
        this.macs.dense += layer.inputs * ROWS * layer.units;
      }
      // Start every output row from the bias.
      const bias = heap.subarray(layer.bias, layer.bias + layer.stride);
      for (let s = 0; s < slots; s++) heap.set(bias, dst + s * layer.stride);
      for (let kb = 0; kb < kBlocks; kb++) {
        const relu = layer.relu && kb === kBlocks - 1 ? 1 : 0;
        for (let b = 0; b < blocks; b++) {
          const s0 = starts[b * (kBlocks + 1) + kb], s1 = starts[b * (kBlocks + 1) + kb + 1];
          if (s1 === s0 && !relu) continue;
          this.#block(
            4 * (pack + b * ROWS * widest + s0 * ROWS),
            4 * (idx + b * widest + s0),
            s1 - s0,
            4 * layer.stride,
            4 * (dst + b * ROWS * layer.stride),
            relu,
          );
        }
      }
      src = heap;
      srcBase = dst;
      srcStride = layer.stride;
      bySlot = true;
      dst = dst === out0 ? out1 : out0;
    }
    // Back to the rows' own order, without the padding columns.
    const units = this.units, result = new Float32Array(rows * units);
    for (let s = 0; s < rows; s++) {
      result.set(heap.subarray(srcBase + s * srcStride, srcBase + s * srcStride + units), rowAt[s] * units);
    }
    return result;
  }
}
