/**
 * One entry point for every data set: `--data PATH` (a folder or a file) is recognised by what
 * it holds, or read as `--format` says.
 *
 * | format   | what `--data` is                                                          |
 * | -------- | ------------------------------------------------------------------------- |
 * | cifar10  | a folder with `test_batch.bin` (and `data_batch_1..5.bin`)                |
 * | cifar100 | a folder with `test.bin` / `train.bin` of 3,074-byte records              |
 * | idx      | a folder with `t10k-images-idx3-ubyte[.gz]` and its labels (MNIST family) |
 * | npz      | an `.npz` file holding images and labels (`np.savez`)                     |
 * | npy      | an `.npy` of images, its labels in another `.npy` (`npyLabelsPath`)       |
 * | images   | a folder of class folders of PNG / JPEG files (Keras' layout)             |
 */
import { basename, dirname, extname, join } from "node:path";
import { UserError } from "../core/errors.ts";
import { CLASS_NAMES, loadTestSet, loadTrainSet, TEST_FILE } from "./cifar10.ts";
import { CIFAR100_TEST_FILE, CIFAR100_TRAIN_FILE, type Cifar100Labels, loadCifar100Set } from "./cifar100.ts";
import { findIdxFile, loadIdxSet } from "./idx.ts";
import { type ImageFolderOptions, loadImageFolder } from "./image_folder.ts";
import { type ImageSet, type ImageShape, limitSet, readDataFile } from "./image_set.ts";
import { decodeNpy, imageSetFromArrays, loadNpzSet, type NpzKeys } from "./numpy.ts";

export const DATA_FORMATS = ["cifar10", "cifar100", "idx", "npz", "npy", "images"] as const;
export type DataFormat = typeof DATA_FORMATS[number];

/** How to read a data set. */
export interface DataOptions {
  format?: DataFormat;
  /** Which split of a folder that holds both. */
  split?: "test" | "train";
  labels?: Cifar100Labels;
  keys?: NpzKeys;
  /** .npy images: the labels' .npy (default: `npyLabelsPath`'s sibling). */
  labelsFile?: string;
  /** The model's input, for image folders (size, channels) and .npz (class count). */
  target?: ImageShape;
  classes?: number;
  resize?: boolean;
  color?: "rgb" | "grayscale";
  limit?: number;
  onProgress?: ImageFolderOptions["onProgress"];
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}

/**
 * The format of `path`, by what it holds (a folder that holds nothing we know is taken for an
 * incomplete CIFAR-10 folder, whose reader then says what is missing).
 *
 * @example
 * ```ts
 * await detectFormat("fixtures/cifar10-tiny"); // "cifar10"
 * ```
 */
export async function detectFormat(path: string): Promise<DataFormat> {
  let stat: Deno.FileInfo;
  try {
    stat = await Deno.stat(path);
  } catch {
    throw new UserError(`no data at ${path}: it does not exist; pass --data with a folder or an .npz file.`);
  }
  if (stat.isFile) {
    if (extname(path).toLowerCase() === ".npz") return "npz";
    if (extname(path).toLowerCase() === ".npy") return "npy";
    throw new UserError(
      `${path} is a file but not an .npz or .npy: --data takes a folder (CIFAR-10/100 binary, MNIST IDX, class ` +
        `folders of images), an .npz or an .npy of images; or say which with --format.`,
    );
  }
  if (await isFile(join(path, TEST_FILE))) return "cifar10";
  if (await isFile(join(path, CIFAR100_TEST_FILE)) || await isFile(join(path, CIFAR100_TRAIN_FILE))) {
    return "cifar100";
  }
  if (await findIdxFile(path, "t10k", "images") || await findIdxFile(path, "train", "images")) return "idx";
  for await (const e of Deno.readDir(path)) if (e.isDirectory && !e.name.startsWith(".")) return "images";
  // Nothing recognised: CIFAR-10's reader says what a CIFAR-10 folder needs.
  return "cifar10";
}

/**
 * Read the data set at `path`.
 *
 * @example
 * ```ts
 * const test = await openImageSet("fixtures/cifar10-tiny", {});
 * ```
 */
export async function openImageSet(path: string, opts: DataOptions = {}): Promise<ImageSet> {
  const format = opts.format ?? await detectFormat(path);
  const split = opts.split ?? "test";
  const limit = opts.limit ?? Infinity;
  switch (format) {
    case "cifar10": {
      const ds = split === "test" ? await loadTestSet(path, limit) : await loadTrainSet(path, limit);
      return { ...ds, shape: { height: 32, width: 32, channels: 3 }, classNames: CLASS_NAMES };
    }
    case "cifar100":
      return await loadCifar100Set(path, split, opts.labels ?? "fine", limit);
    case "idx":
      return await loadIdxSet(path, split === "test" ? "t10k" : "train", limit);
    case "npz": {
      const bytes = await readDataFile(path, `no data at ${path}: it does not exist.`);
      return limitSet(loadNpzSet(bytes, path, opts.keys ?? {}, opts.classes), limit);
    }
    case "npy": {
      const x = decodeNpy(await readDataFile(path, `no data at ${path}: it does not exist.`), path);
      const yPath = await npyLabelsPath(path, opts.labelsFile);
      const y = decodeNpy(
        await readDataFile(yPath, `${yPath} (the labels of ${path}) does not exist.`),
        yPath,
      );
      return imageSetFromArrays(x, y, `${path} + ${basename(yPath)}`, opts.classes, limit);
    }
    case "images":
      return await loadImageFolder(path, {
        target: opts.target,
        resize: opts.resize,
        color: opts.color,
        limit,
        onProgress: opts.onProgress,
      });
  }
}

/**
 * Where the labels of the images in the .npy `path` are: `given` (--labels-file), else the
 * sibling file named by replacing the leading "x" of the file name with "y" (x_test.npy ->
 * y_test.npy, x.npy -> y.npy). A name without a leading "x", or a sibling that does not exist,
 * is a one-line UserError saying to pass --labels-file.
 *
 * @example
 * ```ts
 * await npyLabelsPath("data/x_test.npy"); // "data/y_test.npy" (when it exists)
 * ```
 */
export async function npyLabelsPath(path: string, given?: string): Promise<string> {
  if (given !== undefined) return given;
  const name = basename(path);
  if (!/^x/i.test(name)) {
    throw new UserError(
      `${path}: an .npy holds only the images and its name does not start with 'x' (x_test.npy -> ` +
        `y_test.npy), so its labels cannot be found: pass --labels-file LABELS.npy.`,
    );
  }
  const sibling = join(dirname(path), (name[0] === "X" ? "Y" : "y") + name.slice(1));
  if (!await isFile(sibling)) {
    throw new UserError(
      `${path}: its labels ${sibling} (the name with the leading 'x' made 'y') do not exist: ` +
        `pass --labels-file LABELS.npy.`,
    );
  }
  return sibling;
}
