/**
 * The helpers the test files share: where the fixtures and ../shared are, temporary folders,
 * the one-line UserError assertion, seeded weights, and small readers of files and PNGs.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import * as tf from "@tensorflow/tfjs";
import { UserError } from "../src/core/errors.ts";
import { mulberry32 } from "../src/core/random.ts";
import { main } from "../main.ts";

/** The repository's root folder. */
export const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** A path under fixtures/, e.g. `fixture("models/tiny-bn/model.json")`. */
export const fixture = (p: string): string => join(ROOT, "fixtures", p);

/** The read-only ../shared folder (CIFAR-10, third-party models); tests that need it skip without it. */
export const SHARED = join(ROOT, "..", "shared");

/** Whether `path` exists (file or folder). */
export async function exists(path: string | URL): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Run `fn` in a fresh temporary folder, removed afterwards. */
export async function withTempDir(
  fn: (dir: string) => Promise<void>,
  prefix = "prunescope-test-",
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** The names in folder `dir`, sorted. */
export async function listDir(dir: string): Promise<string[]> {
  return (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();
}

/** A check for `assert.throws` / `assert.rejects`: a one-line UserError matching every pattern. */
export function oneLineUserError(...patterns: RegExp[]): (e: unknown) => boolean {
  return (e: unknown) => {
    assert.ok(e instanceof UserError, `expected a UserError, got ${e}`);
    assert.doesNotMatch(e.message, /\n/, "a UserError message must be one line");
    for (const p of patterns) assert.match(e.message, p);
    return true;
  };
}

/** Assert `fn` rejects with a one-line UserError whose message matches every pattern; returns the message. */
export async function rejectsUserError(fn: () => Promise<unknown>, ...patterns: RegExp[]): Promise<string> {
  let message = "";
  await assert.rejects(fn, (e: unknown) => {
    oneLineUserError(...patterns)(e);
    message = (e as UserError).message;
    return true;
  });
  return message;
}

/** The largest |a - b| over two tensors of one shape. */
export function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
}

/**
 * Seeded weights for every layer of `model`: kernels uniform in +-sqrt(`gain` / fan-in), biases
 * and betas in +-0.3, BatchNorm's gamma and statistics well away from 0 and 1.
 */
export function randomize(model: tf.LayersModel, seed: number, gain = 3): void {
  const rand = mulberry32(seed);
  const u = (lo: number, hi: number) => lo + (hi - lo) * rand();
  for (const layer of model.layers) {
    const values = layer.weights.map((w) => {
      const shape = w.shape as number[];
      const n = shape.reduce((p, d) => p * d, 1);
      const fanIn = shape.length >= 2 ? n / shape[shape.length - 1] : 1;
      const name = w.originalName;
      const a = new Float32Array(n);
      for (let i = 0; i < n; i++) {
        if (name.endsWith("moving_variance")) a[i] = u(0.3, 1.5);
        else if (name.endsWith("moving_mean")) a[i] = u(-0.5, 0.8);
        else if (name.endsWith("gamma")) a[i] = u(0.5, 1.5);
        else if (shape.length === 1) a[i] = u(-0.3, 0.3); // biases, beta
        else a[i] = u(-1, 1) * Math.sqrt(gain / fanIn);
      }
      return tf.tensor(a, shape);
    });
    layer.setWeights(values);
    values.forEach((t) => t.dispose());
  }
}

/** The first bytes of every PNG file. */
export const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** Width and height from a PNG's IHDR chunk, read straight from the bytes. */
export function ihdr(png: Uint8Array): { width: number; height: number } {
  assert.deepEqual([...png.subarray(0, 8)], PNG_SIGNATURE, "PNG signature");
  assert.equal(new TextDecoder().decode(png.subarray(12, 16)), "IHDR");
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
  return { width: view.getUint32(16), height: view.getUint32(20) };
}

/** How `mainProcess` grants and pipes: writes only under `write` (none when absent), as the tasks do. */
export interface MainProcessOptions {
  write?: string;
  stdout?: "piped" | "null";
  /** Keep the progress bars, uncoloured (default: silenced with PRUNESCOPE_NO_PROGRESS=1). */
  progress?: boolean;
}

/**
 * `deno run main.ts ...args` from the repository root with the tasks' kind of grant: read, env, the
 * memory probe, and writes only under `write`. Tests that need a real process (exit codes, signals, permissions) build
 * it here, then `.output()` or `.spawn()` it.
 */
export function mainProcess(args: string[], opts: MainProcessOptions = {}): Deno.Command {
  return new Deno.Command("deno", {
    args: [
      "run",
      "--quiet",
      "--allow-read",
      ...(opts.write ? [`--allow-write=${opts.write}`] : []),
      "--allow-env",
      "--allow-sys=systemMemoryInfo",
      "main.ts",
      ...args,
    ],
    cwd: ROOT,
    stdout: opts.stdout ?? "piped",
    stderr: "piped",
    env: opts.progress ? { PRUNESCOPE_NO_PROGRESS: "0", NO_COLOR: "1" } : { PRUNESCOPE_NO_PROGRESS: "1" },
  });
}

/** Run `mainProcess(args, opts)` to the end: its exit code, stdout and stderr as text. */
export async function runMain(
  args: string[],
  opts: MainProcessOptions = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await mainProcess(args, opts).output();
  const dec = new TextDecoder();
  return {
    code: out.code,
    stdout: opts.stdout === "null" ? "" : dec.decode(out.stdout),
    stderr: dec.decode(out.stderr),
  };
}

/**
 * Run `main(args)` in this process with the progress bars off: its exit code and the lines it
 * printed to stderr (stdout is dropped). The environment is restored afterwards, so child
 * processes of later tests do not inherit the setting. Exceptions propagate.
 */
export async function mainInProcess(args: string[]): Promise<{ code: number; stderr: string[] }> {
  const lines: string[] = [];
  const { error, log } = console;
  console.error = (...a: unknown[]) => lines.push(a.map(String).join(" "));
  console.log = () => {};
  const quiet = Deno.env.get("PRUNESCOPE_NO_PROGRESS");
  Deno.env.set("PRUNESCOPE_NO_PROGRESS", "1");
  try {
    return { code: await main(args), stderr: lines };
  } finally {
    console.error = error;
    console.log = log;
    if (quiet === undefined) Deno.env.delete("PRUNESCOPE_NO_PROGRESS");
    else Deno.env.set("PRUNESCOPE_NO_PROGRESS", quiet);
  }
}
