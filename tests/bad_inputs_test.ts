/**
 * A corpus of bad inputs across sweep, sensitivity, prune, convert, train and fetch-data, every
 * one made here (zip bombs included, a few hundred KB on disk). Each case asserts: exit code 1,
 * exactly one stderr line and no stack trace, nothing written (the case's folder is the same
 * before and after), and for an output problem, failure before any model or data is read: those
 * cases name a model and data that do not exist, so reading either first would give another line.
 *
 * Most cases call `main` in-process (the CLI's own entry point, stderr captured); the ones that
 * need the tasks' narrower permissions (--allow-write=out) run `deno run main.ts` in parallel.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Deflate, unzipSync } from "fflate";
import * as tf from "@tensorflow/tfjs";
import { setupBackend } from "../src/backend.ts";
import { writeKerasH5 } from "../src/model/keras/h5_writer.ts";
import { loadModel } from "../src/model/load.ts";
import { LOCK_NAME } from "../src/cli/out_dir.ts";
import { encodeNpy } from "../src/data/numpy.ts";
import { mainInProcess, runMain } from "./_helpers.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const TINY = join(root, "fixtures", "models", "tiny-bn");
const TINY_DATA = join(root, "fixtures", "cifar10-tiny");
const KERAS3 = join(root, "fixtures", "keras", "tiny_keras3.keras");

/** One bad input: the command line (in `dir`, a fresh folder) and the line it must print. */
interface Case {
  name: string;
  /** Makes the case's inputs in `dir` and returns the command line. */
  setup: (dir: string) => Promise<string[]> | string[];
  expect: RegExp;
  /** Run as a `deno run` process with --allow-write=<dir>/out (the tasks' narrow grant). */
  process?: boolean;
  /**
   * The failure comes after the command has loaded the model and data and printed its one-line
   * description of the run (`<command>: model ..., layer ...`); that line may precede the error.
   */
  midRun?: boolean;
}

// ---------------------------------------------------------------- inputs the cases are made of

/** A copy of the tiny TF.js model in `dir/name`, with `edit` applied to its weights' floats. */
async function tinyModel(dir: string, name: string, edit?: (w: Float32Array) => void): Promise<string> {
  const at = join(dir, name);
  await Deno.mkdir(at);
  await Deno.copyFile(join(TINY, "model.json"), join(at, "model.json"));
  const bytes = await Deno.readFile(join(TINY, "weights.bin"));
  edit?.(new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4));
  await Deno.writeFile(join(at, "weights.bin"), bytes);
  return join(at, "model.json");
}

/** One entry of a hand-made zip: its name, the bytes stored, the method and the declared size. */
interface ZipPart {
  name: string;
  stored: Uint8Array;
  method: number;
  size: number;
}

/** A zip archive of `parts` exactly as given (sizes may lie; CRCs are not checked by the reader). */
function zipOf(parts: ZipPart[]): Uint8Array {
  const enc = new TextEncoder();
  const chunks: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  for (const p of parts) {
    const name = enc.encode(p.name);
    const local = new Uint8Array(30 + name.length);
    const lv = new DataView(local.buffer);
    lv.setUint32(0, 0x04034b50, true);
    lv.setUint16(4, 20, true);
    lv.setUint16(8, p.method, true);
    lv.setUint32(18, p.stored.length, true);
    lv.setUint32(22, p.size, true);
    lv.setUint16(26, name.length, true);
    local.set(name, 30);
    const cd = new Uint8Array(46 + name.length);
    const cv = new DataView(cd.buffer);
    cv.setUint32(0, 0x02014b50, true);
    cv.setUint16(4, 20, true);
    cv.setUint16(6, 20, true);
    cv.setUint16(10, p.method, true);
    cv.setUint32(20, p.stored.length, true);
    cv.setUint32(24, p.size, true);
    cv.setUint16(28, name.length, true);
    cv.setUint32(42, offset, true);
    cd.set(name, 46);
    chunks.push(local, p.stored);
    central.push(cd);
    offset += local.length + p.stored.length;
  }
  const cdSize = central.reduce((s, c) => s + c.length, 0);
  const end = new Uint8Array(22);
  const ev = new DataView(end.buffer);
  ev.setUint32(0, 0x06054b50, true);
  ev.setUint16(8, parts.length, true);
  ev.setUint16(10, parts.length, true);
  ev.setUint32(12, cdSize, true);
  ev.setUint32(16, offset, true);
  const all = [...chunks, ...central, end];
  const out = new Uint8Array(all.reduce((s, c) => s + c.length, 0));
  let at = 0;
  for (const c of all) (out.set(c, at), at += c.length);
  return out;
}

/** Raw deflate of `bytes` zero bytes (or of `fill`), made in 1 MiB steps: ~1 KB per MB. */
function deflatedZeros(bytes: number, fill = 0): Uint8Array {
  const parts: Uint8Array[] = [];
  const d = new Deflate({ level: 9 }, (chunk) => parts.push(chunk));
  const step = new Uint8Array(2 ** 20).fill(fill);
  for (let left = bytes; left > 0; left -= step.length) {
    d.push(left > step.length ? step : step.subarray(0, left), left <= step.length);
  }
  const out = new Uint8Array(parts.reduce((s, c) => s + c.length, 0));
  let at = 0;
  for (const c of parts) (out.set(c, at), at += c.length);
  return out;
}

/** The three real entries of the tiny Keras 3 fixture, stored uncompressed. */
async function kerasParts(): Promise<ZipPart[]> {
  const files = unzipSync(await Deno.readFile(KERAS3));
  return ["config.json", "metadata.json", "model.weights.h5"].map((name) => ({
    name,
    stored: files[name],
    method: 0,
    size: files[name].length,
  }));
}

/** `dir/model.keras`, a .keras archive made of the tiny fixture's entries, `change`d. */
async function keras(dir: string, change: (parts: ZipPart[]) => ZipPart[]): Promise<string> {
  const path = join(dir, "model.keras");
  await Deno.writeFile(path, zipOf(change(await kerasParts())));
  return path;
}

const MB = 2 ** 20;
const replace = (parts: ZipPart[], name: string, part: Partial<ZipPart>) =>
  parts.map((p) => p.name === name ? { ...p, ...part } : p);

/** A Keras 2 HDF5 file whose config is the tiny model's but whose weights are a far bigger model's. */
async function h5WithOversizedWeights(dir: string): Promise<string> {
  await setupBackend("wasm");
  const small = (await loadModel(join(TINY, "model.json"))).model;
  const big = tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [32, 32, 3], filters: 8, kernelSize: 3, name: "conv1" }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 16, name: "scores" }),
    ],
  });
  const json = small.toJSON(null, false) as Record<string, unknown>;
  const bytes = await writeKerasH5(big, {
    modelConfig: { class_name: json.class_name, config: json.config },
  });
  small.dispose();
  big.dispose();
  const path = join(dir, "oversized.h5");
  await Deno.writeFile(path, bytes);
  return path;
}

// ---------------------------------------------------------------- the corpus

/** A model and a data folder that do not exist: an output case must fail before touching them. */
const ABSENT = (
  dir: string,
) => ["--model", join(dir, "absent", "model.json"), "--data", join(dir, "absent-data")];
const EXISTS_AS_FILE = /exists and is a file, not a folder: remove it or pick another/;
const UNDER_A_FILE = /cannot be created: .* is a file, not a folder/;
const OUTSIDE = /is outside the folders this run may write/;
const NOT_WRITABLE = /is not writable/;
const IN_USE = /is in use by another prunescope run/;
/** Whether a folder without write bits stops this user (not so for root: then those cases are left out). */
const canDenyWrites = await (async () => {
  const dir = await Deno.makeTempDir();
  await Deno.chmod(dir, 0o555);
  try {
    await Deno.writeTextFile(join(dir, "x"), "");
    return false;
  } catch {
    return true;
  } finally {
    await Deno.chmod(dir, 0o755);
    await Deno.remove(dir, { recursive: true });
  }
})();

/** dir/ro, a folder this user may not write into. */
async function readOnlyFolder(dir: string): Promise<string> {
  await Deno.mkdir(join(dir, "ro"), { mode: 0o555 });
  await Deno.chmod(join(dir, "ro"), 0o555);
  return join(dir, "ro");
}

/** A file at dir/out (where a folder is wanted). */
async function fileAtOut(dir: string): Promise<string> {
  await Deno.writeTextFile(join(dir, "out"), "not a folder\n");
  return join(dir, "out");
}

/** Locks taken by `lockedOut`, let go when the case is over. */
const held: Deno.FsFile[] = [];

/** dir/out locked as a live run locks it (an OS lock on the lock file, held by this process). */
async function lockedOut(dir: string): Promise<string> {
  await Deno.mkdir(join(dir, "out"));
  const file = await Deno.open(join(dir, "out", LOCK_NAME), { write: true, create: true });
  assert.ok(await file.tryLock(true));
  const record = { pid: Deno.pid, command: "sweep", started: new Date().toISOString() };
  await file.write(new TextEncoder().encode(JSON.stringify(record)));
  held.push(file);
  return join(dir, "out");
}

/** The output cases of one command: its name, its flag, and the arguments it always needs. */
function outputCases(cmd: string, flag: string, base: (dir: string) => string[]): Case[] {
  const cases: Case[] = [
    {
      name: `${cmd}: ${flag} is an existing file`,
      setup: async (d) => [cmd, ...base(d), flag, await fileAtOut(d)],
      expect: EXISTS_AS_FILE,
    },
    {
      name: `${cmd}: ${flag} lies under a file`,
      setup: async (d) => [cmd, ...base(d), flag, join(await fileAtOut(d), "run")],
      expect: UNDER_A_FILE,
    },
    {
      name: `${cmd}: ${flag} outside --allow-write`,
      setup: (d) => [cmd, ...base(d), flag, join(d, "elsewhere")],
      expect: OUTSIDE,
      process: true,
    },
  ];
  if (canDenyWrites) {
    cases.push({
      name: `${cmd}: ${flag} not writable`,
      setup: async (d) => [cmd, ...base(d), flag, join(await readOnlyFolder(d), "run")],
      expect: NOT_WRITABLE,
    });
  }
  if (cmd !== "fetch-data") {
    cases.push({
      name: `${cmd}: ${flag} in use by another run`,
      setup: async (d) => [cmd, ...base(d), flag, await lockedOut(d)],
      expect: IN_USE,
    });
  }
  return cases;
}

const tinyArgs = (d: string) => ["--data", TINY_DATA, "--backend", "wasm", "--out", join(d, "out", "run")];

/** Where tensors start in the tiny model's weights.bin (floats): conv1/kernel is first, scores/bias after 11,664. */
const CONV1_KERNEL = 216;
const SCORES_BIAS = 216 + 8 + 1152 + 16 + 16 + 16 + 10240;

/**
 * A case running `cmd` with the model `model(dir)` makes (sweep, sensitivity, prune on the tiny
 * data; convert into dir/out), plus `extra` flags.
 */
function withModel(
  name: string,
  cmd: string,
  model: (dir: string) => Promise<string> | string,
  expect: RegExp,
  extra: string[] = [],
  midRun = false,
): Case {
  return {
    name,
    setup: async (d) => [
      cmd,
      ...(cmd === "convert" ? ["--out", join(d, "out")] : tinyArgs(d)),
      ...extra,
      "--model",
      await model(d),
    ],
    expect,
    midRun,
  };
}

const CASES: Case[] = [
  // Output locations, before any model or data.
  ...outputCases("sweep", "--out", (d) => [...ABSENT(d), "--backend", "wasm"]),
  ...outputCases("sensitivity", "--out", (d) => [...ABSENT(d), "--backend", "wasm"]),
  ...outputCases("prune", "--out", (d) => [...ABSENT(d), "--backend", "wasm", "--k", "1"]),
  ...outputCases("compress", "--out", (d) => [...ABSENT(d), "--backend", "wasm", "--target-macs", "0.5"]),
  ...outputCases("train", "--out", (d) => ["--data", join(d, "absent-data"), "--backend", "wasm"]),
  ...outputCases("convert", "--out", (d) => ["--model", join(d, "absent", "model.json")]),
  ...outputCases("fetch-data", "--dest", (d) => ["--url", `http://127.0.0.1:9/${d}`]),
  {
    name: "convert: --out FILE.h5 is a folder",
    setup: async (d) => {
      await Deno.mkdir(join(d, "m.h5"));
      return ["convert", "--model", join(d, "absent", "model.json"), "--out", join(d, "m.h5")];
    },
    expect: /is a folder, not a file name/,
  },
  // Argument-parser errors: one line each.
  {
    name: "sweep: --limit -5",
    setup: (d) => ["sweep", ...tinyArgs(d), "--limit", "-5"],
    expect: /--limit -5: a value that starts with '-' is written --limit=-5/,
  },
  {
    name: "sweep: --limit -5 (as a process)",
    setup: (d) => ["sweep", ...tinyArgs(d), "--limit", "-5"],
    expect: /--limit -5: a value that starts with '-'/,
    process: true,
  },
  {
    name: "sweep: --limit=0",
    setup: (d) => ["sweep", ...tinyArgs(d), "--limit=0"],
    expect: /--limit must be/,
  },
  {
    name: "sweep: --batch abc",
    setup: (d) => ["sweep", ...tinyArgs(d), "--batch", "abc"],
    expect: /--batch/,
  },
  {
    name: "sweep: an unknown flag",
    setup: (d) => ["sweep", ...tinyArgs(d), "--nope"],
    expect: /Unknown option/,
  },
  { name: "sweep: --limit with no value", setup: () => ["sweep", "--limit"], expect: /argument missing/ },
  { name: "sweep: --k 1:x", setup: (d) => ["sweep", ...tinyArgs(d), "--k", "1:x"], expect: /--k: '1:x'/ },
  {
    name: "sweep: --criterion bogus",
    setup: (d) => ["sweep", ...tinyArgs(d), "--criterion", "bogus"],
    expect: /bogus/,
  },
  {
    name: "sweep: two engines",
    setup: (d) => ["sweep", ...tinyArgs(d), "--naive", "--algebra"],
    expect: /each pick an engine: pass one --engine/,
  },
  {
    name: "sweep: --engine bogus",
    setup: (d) => ["sweep", ...tinyArgs(d), "--engine", "bogus"],
    expect: /--engine must be auto or one of exact, dense-kernel, algebra, naive, got 'bogus'/,
  },
  {
    name: "sweep: --workers none",
    setup: (d) => ["sweep", ...tinyArgs(d), "--workers", "none"],
    expect: /--workers must be auto or a positive integer, got 'none'/,
  },
  {
    name: "sensitivity: --fractions and --step",
    setup: (d) => ["sensitivity", ...tinyArgs(d), "--fractions", "0.5", "--step", "2"],
    expect: /--fractions or --step, not both/,
  },
  {
    name: "sensitivity: --stop-below without fraction 0",
    setup: (d) => ["sensitivity", ...tinyArgs(d), "--fractions", "0.5,0.75", "--stop-below", "1"],
    expect: /--stop-below measures from K = 0: add fraction 0 to --fractions/,
  },
  {
    name: "sensitivity: --stop-below 0.5",
    setup: (d) => ["sensitivity", ...tinyArgs(d), "--stop-below", "0.5"],
    expect: /--stop-below 0.5 would end curves before the summary's 1-point K; give 1 or more/,
  },
  {
    name: "sensitivity: --stop-below -2",
    setup: (d) => ["sensitivity", ...tinyArgs(d), "--stop-below=-2"],
    expect: /--stop-below must be a positive number/,
  },
  {
    name: "prune: --limit -1",
    setup: (d) => ["prune", ...tinyArgs(d), "--k", "1", "--limit=-1"],
    expect: /--limit must/,
  },
  { name: "compress: no budget", setup: (d) => ["compress", ...tinyArgs(d)], expect: /exactly one budget/ },
  {
    name: "compress: two budgets",
    setup: (d) => ["compress", ...tinyArgs(d), "--target-macs", "0.5", "--max-drop", "1"],
    expect: /exactly one budget/,
  },
  {
    name: "compress: --target-macs 1.5",
    setup: (d) => ["compress", ...tinyArgs(d), "--target-macs", "1.5"],
    expect: /--target-macs must be the fraction to keep, a number in \(0, 1\], got '1.5'/,
  },
  {
    name: "compress: --max-drop -1",
    setup: (d) => ["compress", ...tinyArgs(d), "--max-drop=-1"],
    expect: /--max-drop must be a non-negative number/,
  },
  {
    name: "compress: --pareto 0.5,x",
    setup: (d) => ["compress", ...tinyArgs(d), "--target-params", "0.5", "--pareto", "0.5,x"],
    expect: /--pareto must be the fraction to keep/,
  },
  {
    name: "compress: --val-size as large as the training files",
    setup: (
      d,
    ) => [
      "compress",
      ...tinyArgs(d),
      "--model",
      join(TINY, "model.json"),
      "--target-macs",
      "0.5",
      "--val-size",
      "1000",
    ],
    expect: /--val-size 1000 leaves no training images out of 1000/,
  },
  { name: "train: --epochs 0", setup: (d) => ["train", ...tinyArgs(d), "--epochs", "0"], expect: /--epochs/ },
  {
    name: "train: --dropout 2,2",
    setup: (d) => ["train", ...tinyArgs(d), "--dropout", "2,2"],
    expect: /--dropout/,
  },
  {
    name: "train: --extend alone",
    setup: (d) => ["train", ...tinyArgs(d), "--extend", "2"],
    expect: /--resume/,
  },
  {
    name: "fetch-data: an unknown flag",
    setup: () => ["fetch-data", "--nope"],
    expect: /Unknown option '--nope'/,
  },
  { name: "convert: no --model", setup: (d) => ["convert", "--out", join(d, "out")], expect: /--model FILE/ },
  // Models.
  withModel("sweep: a model that does not exist", "sweep", (d) => join(d, "nope.json"), /not found/i),
  withModel(
    "sweep: NaN in the first conv kernel",
    "sweep",
    (d) => tinyModel(d, "nan", (w) => (w[5] = NaN)),
    /layer conv1, tensor conv1\/kernel: 1 NaN of 216 values/,
  ),
  withModel(
    "prune: Infinity in the dense bias",
    "prune",
    (d) => tinyModel(d, "inf", (w) => (w[SCORES_BIAS + 3] = -Infinity)),
    /layer scores, tensor scores\/bias: 1 infinite of 10 values/,
    ["--k", "1"],
  ),
  withModel(
    "sweep: finite weights whose layer outputs overflow to Infinity",
    "sweep",
    (d) => tinyModel(d, "overflow", (w) => w.fill(3e38, 0, CONV1_KERNEL)),
    /layer conv1's outputs are NaN or infinite for \d+ of 200 images/,
    ["--layer", "conv1"],
    true,
  ),
  withModel(
    "sweep: finite layer outputs, scores at K = 0 overflow",
    "sweep",
    (d) => tinyModel(d, "scores", (w) => w.fill(3e38, SCORES_BIAS - 260, SCORES_BIAS)),
    /the class scores at K = 0 \(after conv1\) are NaN or infinite for \d+ of 200 images/,
    ["--layer", "conv1"],
    true,
  ),
  withModel(
    "sensitivity: layer outputs overflow to Infinity",
    "sensitivity",
    (d) => tinyModel(d, "overflow", (w) => w.fill(3e38, 0, CONV1_KERNEL)),
    /layer conv1's outputs are NaN or infinite for \d+ of 200 images/,
    [],
    true,
  ),
  withModel(
    "convert: a .keras whose config.json declares 100 MB (zip bomb)",
    "convert",
    (d) =>
      keras(
        d,
        (p) => replace(p, "config.json", { stored: deflatedZeros(MB, 0x20), method: 8, size: 100 * MB }),
      ),
    /entry "config.json" declares 104857600 bytes uncompressed, more than the 67108864/,
  ),
  withModel(
    "sweep: a .keras whose config.json lies about its size (zip bomb)",
    "sweep",
    (d) =>
      keras(
        d,
        (p) => replace(p, "config.json", { stored: deflatedZeros(4 * MB, 0x20), method: 8, size: 1000 }),
      ),
    /entry "config.json" inflates to more than the 1000 bytes it declares/,
  ),
  withModel(
    "prune: a .keras whose weights declare 1 GB (zip bomb)",
    "prune",
    (d) =>
      keras(
        d,
        (p) => replace(p, "model.weights.h5", { stored: deflatedZeros(MB), method: 8, size: 2 ** 30 }),
      ),
    /entry "model.weights.h5" declares 1073741824 bytes uncompressed, more than the \d+ bytes the weights/,
    ["--k", "1"],
  ),
  withModel(
    "sensitivity: a .keras entry climbing out with ../",
    "sensitivity",
    (d) => keras(d, (p) => [...p, { name: "../evil", stored: new Uint8Array(1), method: 0, size: 1 }]),
    /refusing the archive: its entry "..\/evil" climbs out/,
  ),
  withModel(
    "convert: a .keras with an unknown compression method",
    "convert",
    (d) => keras(d, (p) => replace(p, "config.json", { method: 12 })),
    /uses compression method 12/,
  ),
  withModel(
    "convert: a truncated .keras",
    "convert",
    async (d) => {
      const path = await keras(d, (p) => p);
      const bytes = await Deno.readFile(path);
      await Deno.writeFile(path, bytes.subarray(0, bytes.length >> 1));
      return path;
    },
    /is not a readable zip archive/,
  ),
  withModel(
    "convert: a .keras without weights",
    "convert",
    (d) => keras(d, (p) => p.filter((x) => x.name !== "model.weights.h5")),
    /has a config.json but no model.weights.h5/,
  ),
  withModel(
    "sweep: a .keras that is not a zip",
    "sweep",
    async (d) => {
      await Deno.writeTextFile(join(d, "text.keras"), "hello");
      return join(d, "text.keras");
    },
    /neither HDF5 nor a zip archive/,
  ),
  withModel(
    "convert: an .h5 whose datasets hold more than its config implies",
    "convert",
    h5WithOversizedWeights,
    /holds \d+ values .*more than the \d+ weights of the model's config leave room for/,
  ),
  // Data.
  {
    name: "sweep: --data is a folder without CIFAR-10",
    setup: async (d) => {
      await Deno.mkdir(join(d, "empty"));
      return [
        "sweep",
        "--data",
        join(d, "empty"),
        "--backend",
        "wasm",
        "--out",
        join(d, "out"),
        "--model",
        join(TINY, "model.json"),
      ];
    },
    expect: /test_batch\.bin/,
  },
  {
    name: "train: --data is a truncated CIFAR-10 folder",
    setup: async (d) => {
      await Deno.mkdir(join(d, "cut"));
      for await (const e of Deno.readDir(TINY_DATA)) {
        const bytes = await Deno.readFile(join(TINY_DATA, e.name));
        await Deno.writeFile(
          join(d, "cut", e.name),
          e.name.endsWith(".bin") ? bytes.subarray(0, 1000) : bytes,
        );
      }
      return [
        "train",
        "--data",
        join(d, "cut"),
        "--backend",
        "wasm",
        "--out",
        join(d, "out"),
        "--epochs",
        "1",
      ];
    },
    expect: /data_batch_1\.bin|test_batch\.bin/,
  },
  // Held-out data (--calib, --calib-split).
  {
    name: "sweep: --calib and --calib-split together",
    setup: (d) => ["sweep", ...tinyArgs(d), "--calib", TINY_DATA, "--calib-split", "100"],
    expect:
      /--calib and --calib-split each name the held-out data: give --calib DATA or --calib-split N, not both/,
  },
  {
    name: "prune: --calib-split larger than the training part",
    setup: (
      d,
    ) => ["prune", ...tinyArgs(d), "--model", join(TINY, "model.json"), "--k", "1", "--calib-split", "1000"],
    expect: /--calib-split 1000: the training part of .* has 1000 images; give fewer/,
  },
  {
    name: "sweep: --calib-split 0",
    setup: (d) => ["sweep", ...tinyArgs(d), "--calib-split", "0"],
    expect: /--calib-split must be a positive integer, got '0'/,
  },
  {
    name: "sweep: --calib-split on an .npz (no training part)",
    setup: (d) => [
      "sweep",
      ...tinyArgs(d),
      "--model",
      join(root, "fixtures", "models", "tiny-gray", "model.json"),
      "--data",
      join(root, "fixtures", "data", "gray-tiny.npz"),
      "--calib-split",
      "10",
    ],
    expect:
      /--calib-split: .*gray-tiny\.npz \(npz\) has no training part to hold images out of; pass --calib DATA/,
  },
  {
    name: "sweep: --calib data of another shape than the model's",
    setup: (d) => [
      "sweep",
      ...tinyArgs(d),
      "--model",
      join(TINY, "model.json"),
      "--calib",
      join(root, "fixtures", "data", "gray-tiny.npz"),
    ],
    expect:
      /the model expects 32x32x3 -> 10, the --calib data .*gray-tiny\.npz is 28x28x1 .*pick the model's data \(--calib,/,
  },
  {
    name: "prune: --calib data with other classes than the model's",
    setup: (d) => [
      "prune",
      ...tinyArgs(d),
      "--model",
      join(TINY, "model.json"),
      "--k",
      "1",
      "--calib",
      join(root, "fixtures", "data", "cifar100-tiny"),
    ],
    expect: /the --calib data .*cifar100-tiny.* is 32x32x3 with 100 classes/,
  },
  {
    name: "sweep: --labels-file with data that is not an .npy",
    setup: (
      d,
    ) => ["sweep", ...tinyArgs(d), "--model", join(TINY, "model.json"), "--labels-file", join(d, "y.npy")],
    expect: /--labels-file names the labels of --data X\.npy; --data .*cifar10-tiny is cifar10: drop it/,
  },
  {
    name: "sweep: an .npy whose labels cannot be found",
    setup: async (d) => {
      await Deno.writeFile(join(d, "x_test.npy"), encodeNpy(new Uint8Array(3072), "u1", [1, 32, 32, 3]));
      return ["sweep", ...tinyArgs(d), "--model", join(TINY, "model.json"), "--data", join(d, "x_test.npy")];
    },
    expect:
      /x_test\.npy: its labels .*y_test\.npy \(the name with the leading 'x' made 'y'\) do not exist: pass --labels-file/,
  },
  {
    name: "sweep: --calib that does not exist",
    setup: (d) => ["sweep", ...tinyArgs(d), "--model", join(TINY, "model.json"), "--calib", join(d, "nope")],
    expect: /--calib .*nope: it does not exist; pass a data folder or file/,
  },
];

// ---------------------------------------------------------------- running them

/** Every file and folder under `dir`, with sizes, as sorted lines. */
async function snapshot(dir: string): Promise<string[]> {
  const lines: string[] = [];
  async function walk(at: string, rel: string) {
    for await (const e of Deno.readDir(at)) {
      const info = await Deno.lstat(join(at, e.name));
      lines.push(`${rel}${e.name}${info.isDirectory ? "/" : ` ${info.size}`}`);
      if (info.isDirectory) await walk(join(at, e.name), `${rel}${e.name}/`);
    }
  }
  await walk(dir, "");
  return lines.sort();
}

/** Run `args` through `main` in this process; stderr lines captured (progress bars off). */
async function inProcess(args: string[]): Promise<{ code: number; stderr: string }> {
  try {
    const { code, stderr } = await mainInProcess(args);
    return { code, stderr: stderr.join("\n") };
  } catch (e) {
    return { code: -1, stderr: String((e as Error).stack) };
  }
}

/** Run `args` as `deno run main.ts` with the tasks' kind of grant: writes only under dir/out. */
async function asProcess(args: string[], dir: string): Promise<{ code: number; stderr: string }> {
  const { code, stderr } = await runMain(args, { write: join(dir, "out"), stdout: "null" });
  return { code, stderr };
}

async function check(
  c: Case,
  run: (args: string[], dir: string) => Promise<{ code: number; stderr: string }>,
) {
  const dir = await Deno.makeTempDir({ prefix: "prunescope-bad-" });
  try {
    const args = await c.setup(dir);
    const before = await snapshot(dir);
    const { code, stderr } = await run(args, dir);
    const all = stderr.trimEnd().split("\n");
    // A mid-run failure may follow the command's own description lines (what it chose, what it
    // runs on: two at most, each "<command>: ..."); nothing else may come.
    const described = all.slice(0, -1);
    const lines = c.midRun && described.length <= 2 && described.every((l) => l.startsWith(`${args[0]}: `))
      ? all.slice(-1)
      : all;
    assert.equal(code, 1, `${c.name}: exit code ${code}; stderr:\n${stderr}`);
    assert.equal(lines.length, 1, `${c.name}: one stderr line expected, got:\n${stderr}`);
    assert.doesNotMatch(stderr, /^\s+at |Error: |Stack backtrace/m, `${c.name}: a stack trace`);
    assert.match(lines[0], new RegExp(`^prunescope ${args[0]}: `), c.name);
    assert.match(lines[0], c.expect, c.name);
    assert.deepEqual(await snapshot(dir), before, `${c.name}: something was written`);
  } finally {
    for (const file of held.splice(0)) file.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test(`bad inputs: ${CASES.length} cases, each one line, exit 1, nothing written`, async (t) => {
  assert.ok(CASES.length >= 40, `${CASES.length} cases`);
  // The process cases run in parallel batches while the in-process ones run one after another.
  const spawned = CASES.filter((c) => c.process);
  const batches = (async () => {
    const failures: string[] = [];
    for (let i = 0; i < spawned.length; i += 4) {
      await Promise.all(
        spawned.slice(i, i + 4).map((c) =>
          check(c, asProcess).catch((e) => failures.push(`${c.name}: ${(e as Error).message}`))
        ),
      );
    }
    return failures;
  })();
  for (const c of CASES.filter((c) => !c.process)) {
    await t.step(c.name, () => check(c, (args) => inProcess(args)));
  }
  const failures = await batches;
  assert.deepEqual(failures, [], failures.join("\n\n"));
});
