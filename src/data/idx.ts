/**
 * The IDX format of MNIST, Fashion-MNIST and KMNIST (plain or .gz): two zero bytes, a type byte
 * (0x08 = unsigned byte), the number of dimensions, each dimension as a big-endian 32-bit
 * integer, then the values row-major. Images are N x H x W (one channel), labels N.
 *
 * A folder holds `t10k-images-idx3-ubyte` + `t10k-labels-idx1-ubyte` (the test set) and
 * `train-images-idx3-ubyte` + `train-labels-idx1-ubyte`, each optionally `.gz`, and optionally
 * with a dot before `idx` (`t10k-images.idx3-ubyte`), as the various mirrors name them.
 */
import { basename, join } from "node:path";
import { UserError } from "../core/errors.ts";
import { gunzipBounded, isGzip } from "./gzip.ts";
import { checkLabels, checkSetSize, type ImageSet, MAX_SET_BYTES } from "./image_set.ts";

/** Class names of Fashion-MNIST, in label order. */
export const FASHION_MNIST_CLASSES = [
  "T-shirt/top",
  "Trouser",
  "Pullover",
  "Dress",
  "Coat",
  "Sandal",
  "Shirt",
  "Sneaker",
  "Bag",
  "Ankle boot",
];
/** Class names of MNIST (and the default for any IDX set): the digits. */
export const DIGIT_CLASSES = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

/** A decoded IDX file of unsigned bytes. */
export interface IdxArray {
  dims: number[];
  data: Uint8Array;
}

/**
 * Decode an IDX file of unsigned bytes (already inflated). `source` names it in errors.
 *
 * @example
 * ```ts
 * const { dims, data } = decodeIdx(bytes, "t10k-labels-idx1-ubyte"); // dims [10000]
 * ```
 */
export function decodeIdx(bytes: Uint8Array, source: string): IdxArray {
  if (bytes.length < 4 || bytes[0] !== 0 || bytes[1] !== 0) {
    throw new UserError(`${source} is not an IDX file (bad magic number): download it again.`);
  }
  if (bytes[2] !== 0x08) {
    throw new UserError(
      `${source} holds IDX type 0x${
        bytes[2].toString(16)
      }, not unsigned bytes (0x08): not an image or label file.`,
    );
  }
  const rank = bytes[3];
  if (rank < 1 || rank > 4 || bytes.length < 4 + 4 * rank) {
    throw new UserError(
      `${source} has a bad IDX header (${rank} dimensions): the file is truncated or corrupt.`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims = Array.from({ length: rank }, (_, i) => view.getUint32(4 + 4 * i, false));
  const size = dims.reduce((a, b) => a * b, 1);
  const start = 4 + 4 * rank;
  if (bytes.length - start !== size) {
    throw new UserError(
      `${source}: its header says ${dims.join(" x ")} = ${size} bytes, the file holds ${
        bytes.length - start
      }: the file is truncated or corrupt; download it again.`,
    );
  }
  return { dims, data: bytes.subarray(start) };
}

async function readIdx(path: string): Promise<IdxArray> {
  let bytes: Uint8Array = await Deno.readFile(path);
  if (isGzip(bytes)) bytes = gunzipBounded(bytes, MAX_SET_BYTES + 64, path);
  return decodeIdx(bytes, path);
}

/** The file of `kind` ("images" | "labels") and `split` in `dir`, or null. */
export async function findIdxFile(
  dir: string,
  split: "t10k" | "train",
  kind: "images" | "labels",
): Promise<string | null> {
  const rank = kind === "images" ? 3 : 1;
  for (const sep of ["-", "."]) {
    for (const gz of ["", ".gz"]) {
      const path = join(dir, `${split}-${kind}${sep}idx${rank}-ubyte${gz}`);
      try {
        if ((await Deno.stat(path)).isFile) return path;
      } catch {
        // try the next name
      }
    }
  }
  return null;
}

/**
 * Read the test (`t10k`) or training split of an IDX folder.
 *
 * @example
 * ```ts
 * const test = await loadIdxSet("data/fashion-mnist", "t10k");
 * test.shape; // { height: 28, width: 28, channels: 1 }
 * ```
 */
export async function loadIdxSet(dir: string, split: "t10k" | "train", limit = Infinity): Promise<ImageSet> {
  const imagesPath = await findIdxFile(dir, split, "images");
  const labelsPath = await findIdxFile(dir, split, "labels");
  if (!imagesPath || !labelsPath) {
    throw new UserError(
      `${dir}: no ${split}-images-idx3-ubyte[.gz] / ${split}-labels-idx1-ubyte[.gz] pair: ` +
        `not an MNIST-style IDX folder; run 'deno task fetch-data --dataset fashion-mnist' or pass --data.`,
    );
  }
  const images = await readIdx(imagesPath);
  const labels = await readIdx(labelsPath);
  if (images.dims.length !== 3) {
    throw new UserError(
      `${imagesPath} has ${images.dims.length} dimensions, not N x H x W: not an image file.`,
    );
  }
  if (labels.dims.length !== 1 || labels.dims[0] !== images.dims[0]) {
    throw new UserError(
      `${labelsPath} holds ${labels.dims.join(" x ")} labels for ${images.dims[0]} images in ${
        basename(imagesPath)
      }: the pair does not match.`,
    );
  }
  const [n, height, width] = images.dims;
  const shape = { height, width, channels: 1 };
  checkSetSize(n, shape, imagesPath);
  const classNames = /fashion/i.test(dir) ? FASHION_MNIST_CLASSES : DIGIT_CLASSES;
  checkLabels(labels.data, classNames.length, labelsPath);
  const count = Math.min(n, limit);
  return {
    images: images.data.subarray(0, count * height * width),
    labels: labels.data.subarray(0, count),
    count,
    shape,
    classNames,
    source: imagesPath,
  };
}
