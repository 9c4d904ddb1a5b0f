/**
 * Image folders in the layout Keras' `image_dataset_from_directory` reads: `root/<class>/*.png`
 * (or .jpg / .jpeg), one folder per class, classes in alphanumeric order of their folder names
 * (label 0 is the first), files in name order. PNG is decoded with fast-png, JPEG with jpeg-js.
 *
 * Images keep their size unless `resize` is set, then they are resized bilinearly (half-pixel
 * centres, as `tf.image.resize` does) to the target size right after decoding, and the result is
 * rounded to the nearest byte (halves up) and kept as uint8, like every other reader's pixels:
 * the set is held at the model's size, one byte a value (50,000 images of 32x32x3: 153.6 MB, where
 * float32 took 614.4 MB), and becomes float32 only a batch at a time (`imagesToTensor`, the
 * trainers' `gatherBatch`).
 *
 * The rounding is the one departure from Keras' `image_dataset_from_directory`, which hands the
 * model the float32 resize unrounded: each value differs from it by at most 0.5 (of 0..255), i.e.
 * 0.5/255 after the usual x / 255, so accuracies on resized folders can differ from Keras' by the
 * images that close to a class boundary. Measured: the default model on CIFAR-10's test set
 * upscaled to 40x40 and resized back to 32x32 changes 35 of 10,000 predictions, 78.08% (float) ->
 * 78.02% (bytes). Images already at the target size are never resized and match Keras exactly;
 * for Keras' float values of resized images, resize beforehand and pass a float32 .npz.
 *
 * Colour is converted only when asked: `color: "grayscale"` takes L = (299 R + 587 G + 114 B) / 1000 (PIL's and so Keras' rule),
 * `color: "rgb"` repeats a grey channel three times; alpha is dropped.
 */
import { extname, join } from "node:path";
import { convertIndexedToRgb, decode as decodePng } from "fast-png";
import jpeg from "jpeg-js";
import { UserError } from "../core/errors.ts";
import { checkSetSize, describeShape, type ImageSet, type ImageShape, type Pixels } from "./image_set.ts";

/** The extensions read, lower case. */
export const IMAGE_EXTENSIONS = [".png", ".jpg", ".jpeg"];
/** Largest image we decode (megapixels): a larger header is refused before any allocation. */
export const MAX_IMAGE_MEGAPIXELS = 64;

/** How to read an image folder. */
export interface ImageFolderOptions {
  /** The size and channels every image must have (the model's input); else the first image's. */
  target?: ImageShape;
  /** Resize images whose size differs from `target` (bilinear). */
  resize?: boolean;
  /** Convert colour to this many channels' worth: "rgb" (3) or "grayscale" (1). */
  color?: "rgb" | "grayscale";
  limit?: number;
  /** Called after each decoded image with (done, total). */
  onProgress?(done: number, total: number): void;
}

/** One decoded image: height x width x channels values (bytes; floats out of `resizeBilinear`). */
export interface DecodedImage {
  data: Pixels;
  shape: ImageShape;
}

/**
 * Class folders and their files, in Keras' order.
 *
 * @example
 * ```ts
 * const { classNames, files } = await listImageFolder("data/flowers");
 * ```
 */
export async function listImageFolder(
  root: string,
): Promise<{ classNames: string[]; files: { path: string; label: number }[] }> {
  const classNames: string[] = [];
  try {
    for await (const e of Deno.readDir(root)) {
      if (e.isDirectory && !e.name.startsWith(".")) classNames.push(e.name);
    }
  } catch (e) {
    throw new UserError(`cannot read the image folder ${root}: ${(e as Error).message}`);
  }
  classNames.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  if (classNames.length < 2) {
    throw new UserError(
      `${root} has ${classNames.length} class folder(s): an image folder holds one subfolder per class ` +
        `(root/<class>/*.png), at least two.`,
    );
  }
  if (classNames.length > 256) {
    throw new UserError(`${root} has ${classNames.length} class folders; at most 256 classes are supported.`);
  }
  const files: { path: string; label: number }[] = [];
  for (const [label, name] of classNames.entries()) {
    const names: string[] = [];
    for await (const e of Deno.readDir(join(root, name))) {
      if (e.isFile && IMAGE_EXTENSIONS.includes(extname(e.name).toLowerCase())) names.push(e.name);
    }
    if (names.length === 0) {
      throw new UserError(
        `the class folder ${join(root, name)} holds no .png/.jpg/.jpeg image: remove it or add its images.`,
      );
    }
    names.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    for (const n of names) files.push({ path: join(root, name, n), label });
  }
  return { classNames, files };
}

/** Width and height from a PNG's IHDR, or null when `bytes` is not a PNG. */
function pngSize(bytes: Uint8Array): [number, number] | null {
  const sig = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  if (bytes.length < 24 || sig.some((s, i) => bytes[i] !== s)) return null;
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return [v.getUint32(16, false), v.getUint32(20, false)];
}

/**
 * Decode one PNG or JPEG file's bytes to 8-bit pixels (1, 2, 3 or 4 channels as stored).
 *
 * @example
 * ```ts
 * const img = decodeImage(await Deno.readFile("cat/001.png"), "cat/001.png");
 * ```
 */
export function decodeImage(bytes: Uint8Array, source: string): DecodedImage {
  const size = pngSize(bytes);
  const tooBig = (w: number, h: number) => w * h > MAX_IMAGE_MEGAPIXELS * 1e6;
  try {
    if (size) {
      if (tooBig(size[0], size[1])) {
        throw new UserError(
          `${source} claims ${size[0]}x${size[1]} pixels, over ${MAX_IMAGE_MEGAPIXELS} MP.`,
        );
      }
      const png = decodePng(bytes);
      let data: Uint8Array;
      let channels = png.channels;
      if (png.palette) {
        data = convertIndexedToRgb(png);
        channels = data.length / (png.width * png.height);
      } else if (png.depth === 16) {
        data = Uint8Array.from(png.data as Uint16Array, (v) => v >> 8);
      } else if (png.depth < 8) {
        const max = (1 << png.depth) - 1;
        data = Uint8Array.from(png.data, (v) => Math.round((v * 255) / max));
      } else {
        data = png.data as Uint8Array;
      }
      return { data, shape: { height: png.height, width: png.width, channels } };
    }
    if (bytes[0] === 0xff && bytes[1] === 0xd8) {
      const img = jpeg.decode(bytes, {
        useTArray: true,
        formatAsRGBA: false,
        maxResolutionInMP: MAX_IMAGE_MEGAPIXELS,
        maxMemoryUsageInMB: 1024,
      });
      return { data: img.data, shape: { height: img.height, width: img.width, channels: 3 } };
    }
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw new UserError(`${source} is not a readable image (${(e as Error).message}): replace or remove it.`);
  }
  throw new UserError(`${source} is neither a PNG nor a JPEG (by its first bytes): replace or remove it.`);
}

/**
 * `img` with `channels` channels: alpha dropped, grey to RGB repeated, RGB to grey by PIL's rule.
 *
 * @example
 * ```ts
 * const grey = convertChannels(rgbImage, 1);
 * ```
 */
export function convertChannels(img: DecodedImage, channels: number): DecodedImage {
  const { height, width, channels: from } = img.shape;
  if (from === channels) return img;
  const px = height * width;
  const out = new Uint8Array(px * channels);
  const colour = from >= 3;
  for (let p = 0; p < px; p++) {
    const s = p * from;
    if (channels === 1) {
      out[p] = colour
        ? Math.floor((img.data[s] * 299 + img.data[s + 1] * 587 + img.data[s + 2] * 114) / 1000)
        : img.data[s];
    } else {
      for (let c = 0; c < 3; c++) out[p * 3 + c] = colour ? img.data[s + c] : img.data[s];
    }
  }
  return { data: out, shape: { height, width, channels } };
}

/**
 * Resize bilinearly with half-pixel centres (tf.image.resize's "bilinear", no antialiasing).
 * The result is float32, unrounded, as Keras' `image_dataset_from_directory` hands it to the model.
 *
 * @example
 * ```ts
 * const small = resizeBilinear(img, 32, 32);
 * ```
 */
export function resizeBilinear(img: DecodedImage, height: number, width: number): DecodedImage {
  return resize(img, height, width, false);
}

/**
 * `resizeBilinear` rounded to bytes: each float32 value to the nearest integer (halves up),
 * clamped to 0..255, without a float copy of the image.
 *
 * @example
 * ```ts
 * const small = resizeToBytes(img, 32, 32); // uint8, |small - resizeBilinear(img, 32, 32)| <= 0.5
 * ```
 */
export function resizeToBytes(img: DecodedImage, height: number, width: number): DecodedImage {
  return resize(img, height, width, true);
}

/** The bilinear kernel of both: each value as float32, rounded to a byte when `bytes`. */
function resize(img: DecodedImage, height: number, width: number, bytes: boolean): DecodedImage {
  const { height: h, width: w, channels: c } = img.shape;
  if (h === height && w === width) return img;
  const out = bytes ? new Uint8Array(height * width * c) : new Float32Array(height * width * c);
  const sy = h / height, sx = w / width;
  for (let y = 0; y < height; y++) {
    const fy = Math.max(0, (y + 0.5) * sy - 0.5);
    const y0 = Math.min(h - 1, Math.floor(fy)), y1 = Math.min(h - 1, y0 + 1), dy = fy - y0;
    for (let x = 0; x < width; x++) {
      const fx = Math.max(0, (x + 0.5) * sx - 0.5);
      const x0 = Math.min(w - 1, Math.floor(fx)), x1 = Math.min(w - 1, x0 + 1), dx = fx - x0;
      for (let k = 0; k < c; k++) {
        const a = img.data[(y0 * w + x0) * c + k], b = img.data[(y0 * w + x1) * c + k];
        const d = img.data[(y1 * w + x0) * c + k], e = img.data[(y1 * w + x1) * c + k];
        const v = (a * (1 - dx) + b * dx) * (1 - dy) + (d * (1 - dx) + e * dx) * dy;
        out[(y * width + x) * c + k] = bytes ? Math.min(255, Math.max(0, Math.round(Math.fround(v)))) : v;
      }
    }
  }
  return { data: out, shape: { height, width, channels: c } };
}

/**
 * Read an image folder into one labelled set of bytes, decoding file by file; with `resize`, each
 * image is resized to the target size as it is decoded (`resizeToBytes`), so no float copy of the
 * set is ever made.
 *
 * @example
 * ```ts
 * const set = await loadImageFolder("data/test", { target: { height: 32, width: 32, channels: 3 } });
 * ```
 */
export async function loadImageFolder(root: string, opts: ImageFolderOptions = {}): Promise<ImageSet> {
  const { classNames, files } = await listImageFolder(root);
  const count = Math.min(files.length, opts.limit ?? Infinity);
  let shape = opts.target;
  let images: Uint8Array | undefined;
  for (let i = 0; i < count; i++) {
    const { path } = files[i];
    let bytes: Uint8Array;
    try {
      bytes = await Deno.readFile(path);
    } catch (e) {
      throw new UserError(`cannot read ${path}: ${(e as Error).message}`);
    }
    let img = decodeImage(bytes, path);
    const channels = shape?.channels ??
      (opts.color === "grayscale" ? 1 : opts.color === "rgb" ? 3 : undefined);
    const stored = img.shape.channels === 4 ? 3 : img.shape.channels === 2 ? 1 : img.shape.channels;
    const want = channels ?? stored;
    if (stored !== want && opts.color === undefined) {
      throw new UserError(
        `${path} has ${stored === 1 ? "grey" : "RGB"} pixels where ${
          want === 1 ? "grey (1 channel)" : "RGB (3 channels)"
        } are expected: pass --color ${want === 1 ? "grayscale" : "rgb"} to convert.`,
      );
    }
    img = convertChannels(img, want);
    if (shape && (img.shape.height !== shape.height || img.shape.width !== shape.width)) {
      if (!opts.resize) {
        throw new UserError(
          `${path} is ${img.shape.height}x${img.shape.width}, not ${shape.height}x${shape.width} like ${
            opts.target ? "the model's input" : files[0].path
          }: pass --resize to resize every image bilinearly.`,
        );
      }
      img = resizeToBytes(img, shape.height, shape.width);
    }
    if (!shape) shape = img.shape;
    if (!images) {
      checkSetSize(count, shape, root);
      images = new Uint8Array(count * img.data.length);
    }
    images.set(img.data, i * img.data.length);
    opts.onProgress?.(i + 1, count);
  }
  if (!images || !shape) throw new UserError(`${root} holds no image to read.`);
  return {
    images,
    labels: Uint8Array.from(files.slice(0, count), (f) => f.label),
    count,
    shape,
    classNames,
    source: root,
  };
}

/** "root (N images of HxWxC in K classes)". */
export function describeSet(set: ImageSet): string {
  return `${set.source} (${set.count} images of ${
    describeShape(set.shape)
  } in ${set.classNames.length} classes)`;
}
