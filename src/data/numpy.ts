/**
 * NumPy `.npy` arrays and `.npz` archives (`np.savez("test.npz", x=x_test, y=y_test)`), read
 * without Python and without unpickling anything: only little-endian numeric dtypes in C order.
 * Object arrays (which NumPy stores as pickles) are refused.
 *
 * An .npy file is the magic `\x93NUMPY`, a version (1, 2 or 3), a header length (2 bytes in
 * version 1, 4 after), a Python dict literal `{'descr': '<f4', 'fortran_order': False,
 * 'shape': (10000, 32, 32, 3), }`, then the raw values. An .npz is a zip of .npy files.
 */
import { unzipSync } from "fflate";
import { UserError } from "../core/errors.ts";
import { checkLabels, type ImageSet, type Pixels } from "./image_set.ts";

/** The dtypes we read, by NumPy's `descr` without the byte-order character. */
const DTYPES = {
  u1: { bytes: 1, read: (v: DataView, at: number) => v.getUint8(at) },
  i1: { bytes: 1, read: (v: DataView, at: number) => v.getInt8(at) },
  u2: { bytes: 2, read: (v: DataView, at: number) => v.getUint16(at, true) },
  i2: { bytes: 2, read: (v: DataView, at: number) => v.getInt16(at, true) },
  u4: { bytes: 4, read: (v: DataView, at: number) => v.getUint32(at, true) },
  i4: { bytes: 4, read: (v: DataView, at: number) => v.getInt32(at, true) },
  i8: { bytes: 8, read: (v: DataView, at: number) => Number(v.getBigInt64(at, true)) },
  u8: { bytes: 8, read: (v: DataView, at: number) => Number(v.getBigUint64(at, true)) },
  f4: { bytes: 4, read: (v: DataView, at: number) => v.getFloat32(at, true) },
  f8: { bytes: 8, read: (v: DataView, at: number) => v.getFloat64(at, true) },
  b1: { bytes: 1, read: (v: DataView, at: number) => v.getUint8(at) },
} as const;
export type NpyDtype = keyof typeof DTYPES;

/** A decoded array: its dtype, shape and raw little-endian bytes (no copy). */
export interface NpyArray {
  dtype: NpyDtype;
  shape: number[];
  bytes: Uint8Array;
  source: string;
}

/** Largest array we agree to read (4 GiB). */
export const MAX_ARRAY_BYTES = 4 * 2 ** 30;

/**
 * Decode one .npy file. `source` names it in errors.
 *
 * @example
 * ```ts
 * const a = decodeNpy(await Deno.readFile("y_test.npy"), "y_test.npy"); // a.shape [10000]
 * ```
 */
export function decodeNpy(bytes: Uint8Array, source: string): NpyArray {
  const magic = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59];
  if (bytes.length < 10 || magic.some((m, i) => bytes[i] !== m)) {
    throw new UserError(`${source} is not a NumPy .npy array (bad magic): save it with np.save or np.savez.`);
  }
  const major = bytes[6];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const start = (major === 1 ? 10 : 12) + headerLen;
  if (major < 1 || major > 3 || start > bytes.length) {
    throw new UserError(`${source}: bad .npy header (version ${major}): the file is truncated or corrupt.`);
  }
  const header = new TextDecoder().decode(bytes.subarray(major === 1 ? 10 : 12, start));
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) {
    throw new UserError(`${source}: unreadable .npy header ${JSON.stringify(header.trim())}.`);
  }
  if (descr.includes("O")) {
    throw new UserError(
      `${source} is an object array (NumPy pickles those), which prunescope never unpickles: ` +
        `save a numeric array (e.g. x.astype("uint8")).`,
    );
  }
  const order = descr[0], code = descr.slice(1);
  if (!(code in DTYPES) || !(order === "<" || order === "|" || (order === "=" && code.endsWith("1")))) {
    throw new UserError(
      `${source} has dtype '${descr}': prunescope reads little-endian integers and floats only ` +
        `(e.g. uint8, float32, int64); convert with x.astype("<f4").`,
    );
  }
  if (fortran === "True") {
    throw new UserError(`${source} is in Fortran order: save np.ascontiguousarray(x) instead.`);
  }
  const shape = shapeText.split(",").map((s) => s.trim()).filter((s) => s.length > 0).map(Number);
  if (shape.some((d) => !Number.isSafeInteger(d) || d < 0)) {
    throw new UserError(`${source}: bad shape (${shapeText}) in its .npy header.`);
  }
  const dtype = code as NpyDtype;
  const size = shape.reduce((a, b) => a * b, 1) * DTYPES[dtype].bytes;
  if (size > MAX_ARRAY_BYTES) {
    throw new UserError(`${source}: its header claims ${size} bytes, over the 4 GiB this reader accepts.`);
  }
  if (bytes.length - start !== size) {
    throw new UserError(
      `${source}: its header says shape (${shape.join(", ")}) of ${descr} = ${size} bytes, the file holds ${
        bytes.length - start
      }: the file is truncated or corrupt.`,
    );
  }
  return { dtype, shape, bytes: bytes.subarray(start), source };
}

/**
 * The values of `a` as numbers (any dtype).
 *
 * @example
 * ```ts
 * const labels = npyValues(decodeNpy(bytes, "y.npy"));
 * ```
 */
export function npyValues(a: NpyArray): Float64Array {
  const { bytes, read } = DTYPES[a.dtype];
  const n = a.bytes.length / bytes;
  const view = new DataView(a.bytes.buffer, a.bytes.byteOffset, a.bytes.byteLength);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = read(view, i * bytes);
  return out;
}

/**
 * The arrays of an .npz archive whose names (without `.npy`) are in `wanted`. Entries are
 * checked against the size cap before they are inflated.
 *
 * @example
 * ```ts
 * const arrays = readNpz(await Deno.readFile("test.npz"), "test.npz", ["x_test", "y_test"]);
 * ```
 */
export function readNpz(bytes: Uint8Array, source: string, wanted: string[]): Map<string, NpyArray> {
  const names: string[] = [];
  let tooBig: string | null = null;
  let files: Record<string, Uint8Array>;
  try {
    files = unzipSync(bytes, {
      filter(info) {
        const name = info.name.replace(/\.npy$/, "");
        names.push(name);
        if (!wanted.includes(name)) return false;
        if (info.originalSize > MAX_ARRAY_BYTES + 4096) tooBig = info.name;
        return tooBig === null;
      },
    });
  } catch (e) {
    throw new UserError(`${source} is not a readable .npz (zip) archive (${(e as Error).message}).`);
  }
  if (tooBig) {
    throw new UserError(`${source}: entry '${tooBig}' claims more than 4 GiB uncompressed; refusing it.`);
  }
  const out = new Map<string, NpyArray>();
  for (const [name, data] of Object.entries(files)) {
    const key = name.replace(/\.npy$/, "");
    out.set(key, decodeNpy(data, `${source}: ${name}`));
  }
  for (const w of wanted) {
    if (!out.has(w)) {
      throw new UserError(
        `${source} has no array '${w}' (arrays: ${names.join(", ") || "none"}): name the arrays with ` +
          `--x-key and --y-key.`,
      );
    }
  }
  return out;
}

/**
 * The bytes of a version-1 .npy file holding `values` (for fixtures and tests).
 *
 * @example
 * ```ts
 * const bytes = encodeNpy(new Uint8Array([1, 2, 3]), "u1", [3]);
 * ```
 */
export function encodeNpy(
  values: Uint8Array | Float32Array | Int32Array,
  dtype: "u1" | "f4" | "i4",
  shape: number[],
) {
  const descr = dtype === "u1" ? "|u1" : `<${dtype}`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape.join(", ")}${
    shape.length === 1 ? "," : ""
  }), }`;
  const pad = 64 - ((10 + header.length + 1) % 64);
  header += " ".repeat(pad % 64) + "\n";
  const head = new TextEncoder().encode(header);
  const out = new Uint8Array(10 + head.length + values.byteLength);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  new DataView(out.buffer).setUint16(8, head.length, true);
  out.set(head, 10);
  out.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength), 10 + head.length);
  return out;
}

/** Which arrays of an .npz hold the images and the labels. */
export interface NpzKeys {
  x?: string;
  y?: string;
}

/** The (x, y) names tried when none are given, in order. */
export const DEFAULT_NPZ_KEYS: [string, string][] = [["x_test", "y_test"], ["x", "y"], ["images", "labels"]];

/**
 * An image set from an .npz archive: x is N x H x W x C (or N x H x W, one channel) uint8 or
 * float32; y is N integer labels or N x classes one-hot. Class names are numbered unless given.
 *
 * @example
 * ```ts
 * const set = loadNpzSet(await Deno.readFile("test.npz"), "test.npz", {});
 * ```
 */
export function loadNpzSet(
  bytes: Uint8Array,
  source: string,
  keys: NpzKeys,
  classes?: number,
  limit = Infinity,
): ImageSet {
  let pair: [string, string] | undefined;
  if (keys.x || keys.y) pair = [keys.x ?? "x_test", keys.y ?? "y_test"];
  else {
    const names = npzNames(bytes, source);
    pair = DEFAULT_NPZ_KEYS.find(([x, y]) => names.includes(x) && names.includes(y));
    if (!pair) {
      throw new UserError(
        `${source} has none of the array pairs ${
          DEFAULT_NPZ_KEYS.map((p) => p.join("/")).join(", ")
        } (arrays: ${names.join(", ") || "none"}): name them with --x-key and --y-key.`,
      );
    }
  }
  const arrays = readNpz(bytes, source, pair);
  return imageSetFromArrays(arrays.get(pair[0])!, arrays.get(pair[1])!, source, classes, limit);
}

/** The array names in an .npz, without inflating anything. */
function npzNames(bytes: Uint8Array, source: string): string[] {
  const names: string[] = [];
  try {
    unzipSync(bytes, { filter: (info) => (names.push(info.name.replace(/\.npy$/, "")), false) });
  } catch (e) {
    throw new UserError(`${source} is not a readable .npz (zip) archive (${(e as Error).message}).`);
  }
  return names;
}

/**
 * An image set from an x array and a y array (see `loadNpzSet`).
 *
 * @example
 * ```ts
 * const set = imageSetFromArrays(decodeNpy(xb, "x.npy"), decodeNpy(yb, "y.npy"), "x.npy + y.npy");
 * ```
 */
export function imageSetFromArrays(
  x: NpyArray,
  y: NpyArray,
  source: string,
  classes?: number,
  limit = Infinity,
): ImageSet {
  if (x.shape.length !== 3 && x.shape.length !== 4) {
    throw new UserError(
      `${x.source} has shape (${
        x.shape.join(", ")
      }): images must be N x H x W x C (channels last) or N x H x W.`,
    );
  }
  const [n, height, width] = x.shape;
  const channels = x.shape[3] ?? 1;
  if (channels !== 1 && channels !== 3) {
    throw new UserError(
      `${x.source} has ${channels} values on its last axis: images must be channels-last with 1 or 3 ` +
        `channels (transpose an N x C x H x W array with x.transpose(0, 2, 3, 1)).`,
    );
  }
  if (y.shape[0] !== n || y.shape.length > 2) {
    throw new UserError(
      `${y.source} has shape (${y.shape.join(", ")}) for ${n} images: labels must be N or N x classes.`,
    );
  }
  const count = Math.min(n, limit);
  const shape = { height, width, channels };
  let images: Pixels;
  if (x.dtype === "u1") images = x.bytes.slice(0, count * height * width * channels);
  else if (x.dtype === "f4" || x.dtype === "f8") {
    images = Float32Array.from(npyValues(x).subarray(0, count * height * width * channels));
    const bad = images.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) {
      throw new UserError(`${x.source}: value ${images[bad]} at flat index ${bad}; images must be finite.`);
    }
  } else {
    throw new UserError(`${x.source} has dtype ${x.dtype}: images must be uint8 or float32.`);
  }
  const values = npyValues(y);
  let labels: Uint8Array;
  let k = classes;
  if (y.shape.length === 2) {
    const c = y.shape[1];
    k ??= c;
    labels = new Uint8Array(count);
    for (let i = 0; i < count; i++) {
      const row = values.subarray(i * c, (i + 1) * c);
      const hot = row.findIndex((v) => v === 1);
      if (hot < 0 || row.some((v, j) => j !== hot && v !== 0)) {
        throw new UserError(`${y.source}: row ${i} is not one-hot; labels must be integers or one-hot rows.`);
      }
      labels[i] = hot;
    }
  } else {
    const top = values.subarray(0, count).reduce((a, b) => Math.max(a, b), 0);
    k ??= top + 1;
    if (k > 256) throw new UserError(`${y.source}: ${k} classes; at most 256 are supported.`);
    checkLabels(values.subarray(0, count), k, y.source);
    labels = Uint8Array.from(values.subarray(0, count));
  }
  return {
    images,
    labels,
    count,
    shape,
    classNames: Array.from({ length: k }, (_, i) => String(i)),
    source,
  };
}
