/**
 * The opening every command that runs a model shares: the backend, then the model (with the
 * preprocessing its metadata or the flags give), then, once the command has checked its options
 * against the model, the data folder and the test set, each opened once; and one stopwatch for
 * the command's phases.
 */
import { fileURLToPath } from "node:url";
import { type BackendName, setupBackend } from "../backend.ts";
import { type LoadedModel, loadModel } from "../model/load.ts";
import { loadTestSet, loadTrainSet } from "../data/cifar10.ts";
import { resolveDataDir } from "../data/fetch.ts";
import { DATA_FORMATS, type DataFormat, detectFormat, openImageSet } from "../data/open.ts";
import { describeShape } from "../data/image_set.ts";
import { checkDataFits, describeIO } from "../model/load.ts";
import { UserError } from "../core/errors.ts";
import { splitTrainVal } from "../train/trainer.ts";
import { positiveInt } from "./args.ts";
import { Progress } from "../ui/progress.ts";
import { type Dataset, datasetShape, type Preprocessing } from "../types.ts";

/** The model commands use when no --model is given: the one `deno task train` made for this repo. */
export const DEFAULT_MODEL = fileURLToPath(
  new URL("../../fixtures/models/default/model.json", import.meta.url),
);

/** Wall-clock seconds of a command's phases, in the order they ran. */
export class Stopwatch {
  /** Seconds per phase. */
  readonly timings: Record<string, number> = {};
  private t0 = performance.now();

  /** Start timing the next phase now (what ran since the last lap is not counted). */
  restart(): void {
    this.t0 = performance.now();
  }

  /** End phase `name`: the seconds since the last lap (or restart), and start the next. */
  lap(name: string): void {
    const now = performance.now();
    this.timings[name] = (now - this.t0) / 1000;
    this.t0 = now;
  }

  /** Add `total`, the sum of the phases so far. */
  total(): void {
    this.timings.total = Object.values(this.timings).reduce((s, x) => s + x, 0);
  }
}

/** A command's backend and model, and its data once asked for. */
export interface Session {
  /** The backend in use (what `--backend auto` chose). */
  backend: Exclude<BackendName, "auto">;
  /** The model file (--model, or `DEFAULT_MODEL`). */
  modelPath: string;
  loaded: LoadedModel;
  prep: Preprocessing;
  /** The CIFAR-10 folder: --data, else CIFAR10_DIR, else the cache (fetched when missing); resolved once. */
  dataDir(): Promise<string>;
  /** The first `limit` test images. */
  testSet(limit?: number): Promise<Dataset>;
  /** The first `limit` training images (loaded once per limit). */
  trainSet(limit?: number): Promise<Dataset>;
  /**
   * The held-out data that ranks and chooses (--calib DATA or --calib-split N; `calibFlags`),
   * checked against the model; undefined when neither flag is given. Opened once.
   */
  calibSet(): Promise<CalibSet | undefined>;
}

/** Held-out data for ranking and choosing, and where it came from (for outputs and reports). */
export interface CalibSet {
  data: Dataset;
  /** The --calib path, or "split N of the training files of PATH, seed S". */
  source: string;
}

/** What a command's flags say about the session. */
export interface SessionFlags {
  backend?: string;
  model?: string;
  config?: string;
  data?: string;
  /** How to read --data (default: recognised from what it holds). */
  format?: string;
  /** CIFAR-100: "fine" (100 classes) or "coarse" (20). */
  labels?: string;
  "x-key"?: string;
  "y-key"?: string;
  /** .npy images: the labels' .npy. */
  "labels-file"?: string;
  /** Image folders: resize to the model's input. */
  resize?: boolean;
  /** Image folders: convert to "rgb" or "grayscale". */
  color?: string;
  /** Held-out data that ranks and chooses (read like --data). */
  calib?: string;
  /** Instead: N images held out of the training files of --data (`splitTrainVal`). */
  "calib-split"?: string;
  "calib-seed"?: string;
}

/** The data flags every command that reads a test set takes (spread into its parseFlags options). */
export const DATA_FLAGS = {
  data: { type: "string" },
  format: { type: "string" },
  labels: { type: "string" },
  "x-key": { type: "string" },
  "y-key": { type: "string" },
  "labels-file": { type: "string" },
  resize: { type: "boolean", default: false },
  color: { type: "string" },
} as const;

/** The held-out data flags of the commands that rank and choose (sweep, prune). */
export const CALIB_FLAGS = {
  calib: { type: "string" },
  "calib-split": { type: "string" },
  "calib-seed": { type: "string" },
} as const;

/** Their lines in --help. */
export const CALIB_HELP =
  `  --calib PATH       held-out data that ranks the channels and chooses K, read like --data (any
                     format; --format, --resize, --color apply; it must fit the model)
  --calib-split N    instead: N images held out of the TRAINING files of --data (CIFAR-10/100,
                     IDX) with the seeded split 'train' and 'compress' use
  --calib-seed S     seed of that split (default 1: 'train's --val-seed, so with N <= its
                     --val-size the images are ones the model never trained on)`;

/** Their lines in a command's --help. */
export const DATA_HELP =
  `  --data PATH        the test data: a CIFAR-10 or CIFAR-100 binary folder, an MNIST-style IDX
                     folder (.gz too), an .npz (x_test/y_test or x/y), an .npy of images with its
                     labels' .npy beside it (--labels-file), or a folder of class
                     folders of PNG/JPEG images (Keras' layout)  (default: CIFAR-10, else
                     CIFAR10_DIR, else the cache; fetched if missing)
  --format F         ${DATA_FORMATS.join(" | ")}: how to read --data (default: recognised)
  --labels L         CIFAR-100: fine (100 classes) | coarse (20)         (default fine)
  --x-key K, --y-key K  the .npz arrays of images and labels
  --labels-file PATH --data X.npy (images alone): the labels' .npy  (default: the name with its
                     leading x made y, x_test.npy -> y_test.npy)
  --resize           image folders: resize every image bilinearly to the model's input
  --color C          image folders: rgb | grayscale, converting where the files differ`;

function dataOptions(flags: SessionFlags) {
  if (flags.format !== undefined && !(DATA_FORMATS as readonly string[]).includes(flags.format)) {
    throw new UserError(`--format takes ${DATA_FORMATS.join(", ")}, not '${flags.format}'.`);
  }
  if (flags.labels !== undefined && flags.labels !== "fine" && flags.labels !== "coarse") {
    throw new UserError(`--labels takes fine or coarse, not '${flags.labels}'.`);
  }
  if (flags.color !== undefined && flags.color !== "rgb" && flags.color !== "grayscale") {
    throw new UserError(`--color takes rgb or grayscale, not '${flags.color}'.`);
  }
  return {
    format: flags.format as DataFormat | undefined,
    labels: flags.labels as "fine" | "coarse" | undefined,
    keys: { x: flags["x-key"], y: flags["y-key"] },
    labelsFile: flags["labels-file"],
    resize: flags.resize,
    color: flags.color as "rgb" | "grayscale" | undefined,
  };
}

/**
 * Set up the backend and load the model; the data is opened on first use.
 *
 * @example
 * ```ts
 * const s = await openSession(values, parsePreprocessing(values));
 * const layer = pickLayer(s.loaded.model, values.layer); // checks before any data is read
 * const test = await s.testSet(limit);
 * ```
 */
export async function openSession(
  flags: SessionFlags,
  preprocessing: Partial<Preprocessing>,
): Promise<Session> {
  const calibChoice = calibFlags(flags);
  const backend = await setupBackend((flags.backend ?? "auto") as BackendName);
  const modelPath = flags.model ?? DEFAULT_MODEL;
  const loaded = await loadModel(modelPath, { preprocessing, config: flags.config });
  const opts = dataOptions(flags);
  const given = flags.data ?? Deno.env.get("CIFAR10_DIR");
  const exists = given !== undefined && await Deno.stat(given).then(() => true, () => false);
  // A path that does not exist goes to the CIFAR-10 resolver, whose message names the ways to supply data.
  const format = !exists ? "cifar10" : (opts.format ?? await detectFormat(given!));
  if (opts.labelsFile !== undefined && format !== "npy") {
    throw new UserError(
      `--labels-file names the labels of --data X.npy; --data ${given} is ${format}: drop it.`,
    );
  }
  if (calibChoice && "n" in calibChoice && (format === "npz" || format === "npy" || format === "images")) {
    throw new UserError(
      `--calib-split: ${given} (${format}) has no training part to hold images out of; pass --calib DATA.`,
    );
  }
  let dir: Promise<string> | undefined;
  let calib: Promise<CalibSet | undefined> | undefined;
  const trains = new Map<number, Promise<Dataset>>();
  const dataDir =
    () => (dir ??= format === "cifar10"
      ? resolveDataDir({ data: flags.data, fetch: true })
      : Promise.resolve(given!));
  // One reader for --data and --calib: `path` read as `fmt`, then checked against the model.
  const read = async (
    path: string,
    fmt: DataFormat,
    split: "test" | "train",
    limit: number,
    flag: string,
  ): Promise<Dataset> => {
    let ds: Dataset;
    if (fmt === "cifar10") {
      ds = split === "test" ? await loadTestSet(path, limit) : await loadTrainSet(path, limit);
    } else {
      let bar: Progress | undefined;
      ds = await openImageSet(path, {
        ...opts,
        // --labels-file is --data's; an .npy given to --calib finds its labels by the sibling rule.
        labelsFile: flag === "--data" ? opts.labelsFile : undefined,
        format: fmt,
        split,
        target: loaded.io.shape,
        classes: loaded.io.classes,
        limit,
        onProgress(done, total) {
          bar ??= new Progress({ label: "decode images", total, unit: "img" });
          bar.set(done);
        },
      });
      bar?.done();
    }
    // Refused before it is described: a set that does not fit is one line.
    checkDataFits(loaded.io, ds, modelPath, flag);
    if (fmt !== "cifar10") {
      const resized = opts.resize
        ? `, resized bilinearly to ${describeShape(loaded.io.shape)}, rounded to bytes`
        : "";
      console.error(
        `${flag === "--data" ? "data" : "calib"}: ${ds.source} (${fmt}, ${split}: ${ds.count} images of ${
          describeShape(datasetShape(ds))
        } in ${ds.classNames?.length} classes${resized}); model ${describeIO(loaded.io)}`,
      );
    }
    return ds;
  };
  const open = async (split: "test" | "train", limit: number) =>
    await read(format === "cifar10" ? await dataDir() : given!, format, split, limit, "--data");
  const trainSet = (limit = Infinity) => {
    if (!trains.has(limit)) trains.set(limit, open("train", limit));
    return trains.get(limit)!;
  };
  const openCalib = async (): Promise<CalibSet | undefined> => {
    if (calibChoice === undefined) return undefined;
    if ("path" in calibChoice) {
      const path = calibChoice.path;
      if (!await Deno.stat(path).then(() => true, () => false)) {
        throw new UserError(
          `--calib ${path}: it does not exist; pass a data folder or file (as for --data).`,
        );
      }
      const fmt = opts.format ?? await detectFormat(path);
      return { data: await read(path, fmt, "test", Infinity, "--calib"), source: path };
    }
    const { n, seed } = calibChoice;
    const full = await trainSet();
    if (n >= full.count) {
      throw new UserError(
        `--calib-split ${n}: the training part of ${await dataDir()} has ${full.count} images; give fewer.`,
      );
    }
    return {
      data: splitTrainVal(full, n, seed).val,
      source: `split ${n} of the training files of ${await dataDir()}, seed ${seed}`,
    };
  };
  return {
    backend,
    modelPath,
    loaded,
    prep: loaded.preprocessing,
    dataDir,
    testSet: (limit = Infinity) => open("test", limit),
    trainSet,
    calibSet: () => (calib ??= openCalib()),
  };
}

/**
 * The held-out data the flags ask for: `{ path }` (--calib), `{ n, seed }` (--calib-split,
 * --calib-seed), or undefined; both together, or a bad N or seed, is a UserError.
 *
 * @example
 * ```ts
 * calibFlags({ "calib-split": "500" }); // { n: 500, seed: 1 }
 * calibFlags({ calib: "x.npz", "calib-split": "5" }); // throws "--calib and --calib-split ..."
 * ```
 */
export function calibFlags(flags: SessionFlags): { path: string } | { n: number; seed: number } | undefined {
  if (flags.calib !== undefined && flags["calib-split"] !== undefined) {
    throw new UserError(
      `--calib and --calib-split each name the held-out data: give --calib DATA or --calib-split N, not both.`,
    );
  }
  if (flags["calib-seed"] !== undefined && flags["calib-split"] === undefined) {
    throw new UserError(`--calib-seed seeds --calib-split N; give --calib-split too, or drop --calib-seed.`);
  }
  if (flags.calib !== undefined) return { path: flags.calib };
  if (flags["calib-split"] === undefined) return undefined;
  return {
    n: positiveInt("calib-split", flags["calib-split"], 0),
    seed: positiveInt("calib-seed", flags["calib-seed"], 1, true),
  };
}
