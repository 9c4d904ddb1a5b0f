/**
 * CIFAR-100 in the official binary format (`cifar-100-binary/`): records of 3,074 bytes, the
 * coarse label (0..19), the fine label (0..99), then the red, green and blue 32x32 planes.
 * `train.bin` (50,000 records) and `test.bin` (10,000); class names one a line in
 * `fine_label_names.txt` and `coarse_label_names.txt`.
 */
import { join } from "node:path";
import { UserError } from "../core/errors.ts";
import { type ImageSet, readDataFile } from "./image_set.ts";

export const CIFAR100_RECORD_BYTES = 3074;
export const CIFAR100_TEST_FILE = "test.bin";
export const CIFAR100_TRAIN_FILE = "train.bin";

/** Which labels to read: the 100 fine classes or the 20 superclasses. */
export type Cifar100Labels = "fine" | "coarse";

/**
 * Decode CIFAR-100 records into HWC images with the chosen labels.
 *
 * @example
 * ```ts
 * const set = decodeCifar100(bytes, "test.bin", "fine", names);
 * ```
 */
export function decodeCifar100(
  bytes: Uint8Array,
  source: string,
  labels: Cifar100Labels,
  classNames: string[],
  limit = Infinity,
): ImageSet {
  if (bytes.length === 0 || bytes.length % CIFAR100_RECORD_BYTES !== 0) {
    throw new UserError(
      `${source} has ${bytes.length} bytes, not a whole number of 3,074-byte CIFAR-100 records: ` +
        `the file is truncated or not CIFAR-100 binary; download it again with 'deno task fetch-data --dataset cifar100'.`,
    );
  }
  const classes = labels === "fine" ? 100 : 20;
  const count = Math.min(bytes.length / CIFAR100_RECORD_BYTES, limit);
  const images = new Uint8Array(count * 3072);
  const out = new Uint8Array(count);
  const which = labels === "fine" ? 1 : 0;
  for (let n = 0; n < count; n++) {
    const rec = n * CIFAR100_RECORD_BYTES;
    const y = bytes[rec + which];
    if (y >= classes) {
      throw new UserError(
        `${source}: record ${n} has ${labels} label ${y}, outside 0..${classes - 1}: the file is corrupt ` +
          `or not CIFAR-100; download it again.`,
      );
    }
    out[n] = y;
    const px = rec + 2, at = n * 3072;
    for (let p = 0; p < 1024; p++) {
      images[at + p * 3] = bytes[px + p];
      images[at + p * 3 + 1] = bytes[px + 1024 + p];
      images[at + p * 3 + 2] = bytes[px + 2048 + p];
    }
  }
  return {
    images,
    labels: out,
    count,
    shape: { height: 32, width: 32, channels: 3 },
    classNames,
    source,
  };
}

/** The class names of `labels` from the folder's meta file, or numbered names when it is absent. */
async function classNamesOf(dir: string, labels: Cifar100Labels): Promise<string[]> {
  const classes = labels === "fine" ? 100 : 20;
  try {
    const names = (await Deno.readTextFile(join(dir, `${labels}_label_names.txt`)))
      .split(/\r?\n/).map((s) => s.trim()).filter((s) => s.length > 0);
    if (names.length === classes) return names;
  } catch {
    // fall through to numbered names
  }
  return Array.from({ length: classes }, (_, i) => `class_${i}`);
}

/**
 * Read the test or training split of a CIFAR-100 binary folder.
 *
 * @example
 * ```ts
 * const test = await loadCifar100Set("data/cifar-100-binary", "test", "coarse"); // 20 classes
 * ```
 */
export async function loadCifar100Set(
  dir: string,
  split: "test" | "train",
  labels: Cifar100Labels = "fine",
  limit = Infinity,
): Promise<ImageSet> {
  const path = join(dir, split === "test" ? CIFAR100_TEST_FILE : CIFAR100_TRAIN_FILE);
  const bytes = await readDataFile(
    path,
    `CIFAR-100 file missing: ${path}. Pass --data DIR or run 'deno task fetch-data --dataset cifar100'.`,
  );
  return decodeCifar100(bytes, path, labels, await classNamesOf(dir, labels), limit);
}
