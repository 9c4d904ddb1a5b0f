/**
 * Tiny synthetic CIFAR-10 data for tests and fixtures: records in the official binary format
 * (label byte, then the red, green and blue 32x32 planes) whose classes are easy to learn.
 * Each class has its own background colour and a bright 8x8 square at its own position, under
 * seeded noise, so a tiny CNN separates them in a few steps. Same `(count, seed)`, same bytes.
 */
import { CLASS_NAMES, RECORD_BYTES, TEST_FILE, TRAIN_FILES } from "./cifar10.ts";
import { mulberry32 } from "../core/random.ts";

const SIDE = 32;
const PLANE = SIDE * SIDE;
const SQUARE = 8;

/** Each class's background colour (RGB). */
export const CLASS_COLOURS: ReadonlyArray<readonly [number, number, number]> = [
  [70, 130, 220], // airplane: sky blue
  [200, 40, 40], // automobile: red
  [230, 200, 60], // bird: yellow
  [150, 100, 60], // cat: brown
  [90, 170, 70], // deer: green
  [210, 150, 100], // dog: tan
  [30, 100, 40], // frog: dark green
  [110, 50, 20], // horse: dark brown
  [30, 50, 130], // ship: navy
  [140, 140, 140], // truck: grey
];

/** Top-left corner (row, column) of each class's bright square: cells of an 8-pixel grid. */
export function squareCorner(label: number): [number, number] {
  const row = Math.floor(label / 4) * 12; // rows 0, 12, 24
  const col = (label % 4) * 8; // columns 0, 8, 16, 24
  return [row, col];
}

function clampByte(v: number): number {
  return v < 0 ? 0 : v > 255 ? 255 : Math.round(v);
}

/**
 * `count` synthetic CIFAR-10 records (count x 3,073 bytes). Labels are balanced (count/10 per
 * class, the first `count % 10` classes get one more) and shuffled.
 *
 * @example
 * ```ts
 * const bytes = syntheticCifar(200, 1);
 * const ds = decodeRecords(bytes, "synthetic");   // 200 images, 20 per class
 * ```
 */
export function syntheticCifar(count: number, seed: number): Uint8Array {
  if (!Number.isInteger(count) || count < 0) {
    throw new RangeError(`count must be a whole number >= 0, got ${count}`);
  }
  const rand = mulberry32(seed);
  const labels = Array.from({ length: count }, (_, i) => i % 10);
  for (let i = count - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [labels[i], labels[j]] = [labels[j], labels[i]];
  }
  const out = new Uint8Array(count * RECORD_BYTES);
  for (let n = 0; n < count; n++) {
    const label = labels[n];
    const rec = n * RECORD_BYTES;
    out[rec] = label;
    const [sr, sc] = squareCorner(label);
    // Per-image brightness jitter, then per-pixel noise.
    const jitter = (rand() - 0.5) * 30;
    for (let c = 0; c < 3; c++) {
      const base = CLASS_COLOURS[label][c] + jitter;
      const plane = rec + 1 + c * PLANE;
      for (let y = 0; y < SIDE; y++) {
        for (let x = 0; x < SIDE; x++) {
          const inSquare = y >= sr && y < sr + SQUARE && x >= sc && x < sc + SQUARE;
          const v = (inSquare ? 245 : base) + (rand() - 0.5) * 50;
          out[plane + y * SIDE + x] = clampByte(v);
        }
      }
    }
  }
  return out;
}

/** The text of `batches.meta.txt`: the ten class names, one a line. */
export function batchesMetaText(): string {
  return CLASS_NAMES.join("\n") + "\n";
}

/**
 * A whole synthetic CIFAR-10 folder in memory: file name -> bytes, with the five training
 * batches and the test batch of `recordsPerFile` records each (each file its own seed) and
 * `batches.meta.txt`.
 *
 * @example
 * ```ts
 * for (const [name, bytes] of Object.entries(syntheticCifarFiles(200, 7))) await Deno.writeFile(`d/${name}`, bytes);
 * ```
 */
export function syntheticCifarFiles(recordsPerFile: number, seed: number): Record<string, Uint8Array> {
  const files: Record<string, Uint8Array> = {};
  TRAIN_FILES.forEach((name, i) => files[name] = syntheticCifar(recordsPerFile, seed + 1 + i));
  files[TEST_FILE] = syntheticCifar(recordsPerFile, seed + 100);
  files["batches.meta.txt"] = new TextEncoder().encode(batchesMetaText());
  return files;
}
