/**
 * Reading CIFAR-10 in the official binary format: records of 3,073 bytes, one label byte
 * (0..9) then 1024 red, 1024 green and 1024 blue bytes, each plane 32x32 row-major.
 * Images are returned in HWC order (N x 32 x 32 x 3), the layout TF.js models expect.
 */
import { join } from "node:path";
import { UserError } from "../core/errors.ts";
import { type Dataset, imageSize } from "../types.ts";
import { readDataFile } from "./image_set.ts";

export const RECORD_BYTES = 3073;
export const IMAGE_BYTES = 3072;
export const RECORDS_PER_FILE = 10000;
export const TRAIN_FILES = [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`);
export const TEST_FILE = "test_batch.bin";
export const CLASS_NAMES = [
  "airplane",
  "automobile",
  "bird",
  "cat",
  "deer",
  "dog",
  "frog",
  "horse",
  "ship",
  "truck",
];

/**
 * Decode CIFAR-10 records from bytes. `source` names the file in error messages.
 *
 * @example
 * ```ts
 * const ds = decodeRecords(await Deno.readFile("cifar10/test_batch.bin"), "test_batch.bin");
 * ```
 */
export function decodeRecords(bytes: Uint8Array, source: string, limit = Infinity): Dataset {
  if (bytes.length === 0 || bytes.length % RECORD_BYTES !== 0) {
    throw new UserError(
      `${source} has ${bytes.length} bytes, not a whole number of 3,073-byte CIFAR-10 records: ` +
        `the file is truncated or not CIFAR-10 binary; download it again with 'deno task fetch-data'.`,
    );
  }
  const count = Math.min(bytes.length / RECORD_BYTES, limit);
  const images = new Uint8Array(count * IMAGE_BYTES);
  const labels = new Uint8Array(count);
  for (let n = 0; n < count; n++) {
    const rec = n * RECORD_BYTES;
    const label = bytes[rec];
    if (label > 9) {
      throw new UserError(
        `${source}: record ${n} has label ${label}, outside 0..9: the file is corrupt or not CIFAR-10; ` +
          `download it again with 'deno task fetch-data'.`,
      );
    }
    labels[n] = label;
    const out = n * IMAGE_BYTES;
    for (let p = 0; p < 1024; p++) {
      images[out + p * 3] = bytes[rec + 1 + p];
      images[out + p * 3 + 1] = bytes[rec + 1 + 1024 + p];
      images[out + p * 3 + 2] = bytes[rec + 1 + 2048 + p];
    }
  }
  return { images, labels, count, source };
}

async function readBatchFile(dir: string, name: string, limit: number): Promise<Dataset> {
  const path = join(dir, name);
  const bytes = await readDataFile(
    path,
    `CIFAR-10 file missing: ${path}. Pass --data DIR, set CIFAR10_DIR, or run 'deno task fetch-data'.`,
  );
  return decodeRecords(bytes, path, limit);
}

/** Join datasets end to end. */
export function concatDatasets(parts: Dataset[], source: string): Dataset {
  const count = parts.reduce((s, p) => s + p.count, 0);
  const images = new Uint8Array(count * IMAGE_BYTES);
  const labels = new Uint8Array(count);
  let at = 0;
  for (const p of parts) {
    images.set(p.images, at * IMAGE_BYTES);
    labels.set(p.labels, at);
    at += p.count;
  }
  return { images, labels, count, source };
}

/** Read the test set (`test_batch.bin`) from `dir`, at most `limit` images. */
export function loadTestSet(dir: string, limit = Infinity): Promise<Dataset> {
  return readBatchFile(dir, TEST_FILE, limit);
}

/** Read the five training batches from `dir`, at most `limit` images in all. */
export async function loadTrainSet(dir: string, limit = Infinity): Promise<Dataset> {
  const parts: Dataset[] = [];
  let left = limit;
  for (const name of TRAIN_FILES) {
    if (left <= 0) break;
    const part = await readBatchFile(dir, name, left);
    parts.push(part);
    left -= part.count;
  }
  return concatDatasets(parts, join(dir, "data_batch_{1..5}.bin"));
}

/** Take `count` images starting at `start` (a view, no copy), of any data set. */
export function sliceDataset<D extends Dataset>(ds: D, start: number, count: number): D {
  const end = Math.min(ds.count, start + count);
  const size = imageSize(ds);
  return {
    ...ds,
    images: ds.images.subarray(start * size, end * size),
    labels: ds.labels.subarray(start, end),
    count: end - start,
  };
}
