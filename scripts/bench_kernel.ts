/**
 * `deno task bench-kernel`: the Dense kernel's arithmetic rate on one core, beside TF.js wasm's
 * `tf.fused.matMul` on the same product, as one JSON object on stdout.
 *
 * The product is the full-size lab VGG's widest Dense layer (4096 inputs -> 1024 units, relu) on
 * `--rows` rows of seeded inputs, `--zeros` of them exactly zero (relu outputs are about half
 * zero), every row zero in the same places as its block's other rows at the given fraction. Both
 * paths give the same floats (tests/kernels/sparse_dense_test.ts); the script checks that on the
 * rows it timed.
 *
 * Fields: rows, inputs, units, zeroFraction, runs, kernel {seconds, macsRun, gflopsRun (2 flops per
 * multiply-add actually run), gflopsDenseEquivalent (the dense product's flops over the same
 * time)}, tfjs {seconds, gflops}, sameFloats.
 *
 * @example
 * ```sh
 * deno task bench-kernel --rows 1024 --zeros 0.5
 * ```
 */
import * as tf from "@tensorflow/tfjs";
import { setupBackend } from "../src/backend.ts";
import { parseFlags, positiveInt } from "../src/cli/args.ts";
import { mulberry32 } from "../src/core/random.ts";
import { UserError } from "../src/core/errors.ts";
import { SparseDenseChain } from "../src/kernels/sparse_dense.ts";
import { median } from "../src/surgery/measure.ts";

const HELP = `deno task bench-kernel [options]

Times the Dense kernel (src/kernels/sparse_dense.ts) and tf.fused.matMul on wasm, one core each,
on a 4096 -> 1024 relu layer, and prints one JSON object.

Options:
  --rows N     rows per product                          (default 1024)
  --zeros F    fraction of each row's inputs that are 0  (default 0.5)
  --runs N     timed runs after one warm-up; the median  (default 5)
  -h, --help   this text`;

const INPUTS = 4096, UNITS = 1024;

async function timed(fn: () => Promise<void> | void, runs: number): Promise<number> {
  await fn();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    times.push((performance.now() - t0) / 1000);
  }
  return median(times);
}

async function run(args: string[]): Promise<void> {
  const values = parseFlags(args, {
    rows: { type: "string" },
    zeros: { type: "string" },
    runs: { type: "string" },
    help: { type: "boolean", short: "h" },
  }, "bench-kernel");
  if (values.help) {
    console.log(HELP);
    return;
  }
  const rows = positiveInt("rows", values.rows, 1024);
  const zeros = values.zeros === undefined ? 0.5 : Number(values.zeros);
  if (!(zeros >= 0 && zeros < 1)) {
    throw new UserError(`--zeros must be a fraction in [0, 1), got '${values.zeros}'.`);
  }
  const runs = positiveInt("runs", values.runs, 5);
  await setupBackend("wasm");

  const rand = mulberry32(7);
  const scale = Math.sqrt(2 / INPUTS);
  const kernel = Float32Array.from({ length: INPUTS * UNITS }, () => (rand() * 2 - 1) * scale);
  const bias = Float32Array.from({ length: UNITS }, () => rand() * 0.1);
  // Zeros at the same inputs for all rows of a block of 4 (as after relu at nearby K), fresh per block.
  const x = new Float32Array(rows * INPUTS);
  for (let b = 0; b < rows; b += 4) {
    const zero = Array.from({ length: INPUTS }, () => rand() < zeros);
    for (let r = b; r < Math.min(rows, b + 4); r++) {
      for (let i = 0; i < INPUTS; i++) x[r * INPUTS + i] = zero[i] ? 0 : rand();
    }
  }

  const chain = new SparseDenseChain([{ kernel, bias, inputs: INPUTS, units: UNITS, relu: true }]);
  let fromKernel: Float32Array = new Float32Array(0);
  const kernelSeconds = await timed(() => {
    fromKernel = chain.apply(x, rows);
  }, runs);
  const macsRun = chain.macs.run / (runs + 1);

  const w = tf.tensor2d(kernel, [INPUTS, UNITS]), bT = tf.tensor1d(bias), xT = tf.tensor2d(x, [rows, INPUTS]);
  let fromTf: Float32Array = new Float32Array(0);
  const tfSeconds = await timed(async () => {
    const y = tf.fused.matMul({ a: xT, b: w, bias: bT, activation: "relu" });
    fromTf = (await y.data()) as Float32Array;
    y.dispose();
  }, runs);
  tf.dispose([w, bT, xT]);

  const dense = rows * INPUTS * UNITS;
  const sameFloats = fromKernel.length === fromTf.length &&
    fromKernel.every((v, i) => Object.is(v, fromTf[i]));
  console.log(JSON.stringify({
    rows,
    inputs: INPUTS,
    units: UNITS,
    zeroFraction: zeros,
    runs,
    kernel: {
      seconds: kernelSeconds,
      macsRun,
      gflopsRun: (2 * macsRun) / kernelSeconds / 1e9,
      gflopsDenseEquivalent: (2 * dense) / kernelSeconds / 1e9,
    },
    tfjs: { seconds: tfSeconds, gflops: (2 * dense) / tfSeconds / 1e9 },
    sameFloats,
  }));
  if (!sameFloats) throw new UserError("the kernel's outputs differ from tf.fused.matMul's: a kernel bug");
}

try {
  await run(Deno.args);
} catch (e) {
  if (!(e instanceof UserError)) throw e;
  console.error(`prunescope bench-kernel: ${e.message}`);
  Deno.exit(1);
}
