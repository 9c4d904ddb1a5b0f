/**
 * HDF5 access through h5wasm (the HDF5 C library compiled to WebAssembly): open bytes read-only,
 * walk groups, read attributes and float datasets, and write a new file. h5wasm works on an
 * in-memory (emscripten) file system, so a file is written there, used, closed and unlinked.
 *
 * The HDF5 library prints its error stack to stderr; here that output is captured instead and
 * folded into one `UserError` line naming the file.
 */
import { UserError } from "../../core/errors.ts";

// deno-lint-ignore no-explicit-any
type H5wasm = any;

/** The 8-byte HDF5 signature (it may sit at offset 0, 512, 1024, 2048, ...). */
const SIGNATURE = [0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a];

let h5Promise: Promise<H5wasm> | undefined;
let capturing: string[] | null = null;
let fileCounter = 0;

/**
 * Load h5wasm once. Its stderr printer is bound to `console.error` when the module starts, so a
 * gate is put in place for that moment: while `capturing` is set, HDF5 diagnostics are collected
 * rather than printed. `console.error` itself is restored right after.
 */
function h5(): Promise<H5wasm> {
  h5Promise ??= (async () => {
    const original = console.error;
    console.error = (...args: unknown[]) => {
      if (capturing) capturing.push(args.map(String).join(" "));
      else original.apply(console, args);
    };
    try {
      const lib = await import("h5wasm");
      await lib.ready;
      return lib;
    } finally {
      console.error = original;
    }
  })();
  return h5Promise;
}

/** True when `bytes` starts with the HDF5 signature (at offset 0 or a power-of-two user block). */
export function isHdf5(bytes: Uint8Array): boolean {
  for (let at = 0; at + 8 <= bytes.length; at = at === 0 ? 512 : at * 2) {
    if (SIGNATURE.every((b, i) => bytes[at + i] === b)) return true;
    if (at > 1 << 20) break;
  }
  return false;
}

/** Run `fn` with HDF5 diagnostics captured; a failure becomes one UserError line about `label`. */
function guarded<T>(label: string, what: string, fn: () => T): T {
  const lines: string[] = [];
  capturing = lines;
  try {
    return fn();
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw new UserError(`${label}: ${what}: ${diagnose(lines, e)}`);
  } finally {
    capturing = null;
  }
}

/** The most telling line of an HDF5 error stack (its innermost entry), else the JS error. */
function diagnose(lines: string[], e: unknown): string {
  const text = lines.join("\n");
  const truncated = text.match(/truncated file: eof = (\d+).*stored_eof = (\d+)/);
  if (truncated) {
    return `the file is truncated (${truncated[1]} bytes of ${truncated[2]}); copy or download it again.`;
  }
  const details = [...text.matchAll(/#\d+: .*? in (\w+)\(\): (.*)/g)].map((m) => m[2].trim());
  const inner = details.at(-1);
  if (inner) return `HDF5 error: ${inner}; the file is damaged or not HDF5.`;
  const msg = e instanceof Error ? e.message : String(e);
  return `${msg.split("\n")[0]}; the file is damaged or not HDF5.`;
}

/** A numeric dataset read as float32, with its shape. */
export interface FloatArray {
  shape: number[];
  data: Float32Array;
}

/**
 * An HDF5 file opened read-only from bytes. Paths are absolute ("/model_weights/conv2d").
 *
 * @example
 * ```ts
 * const file = await Hdf5File.open(await Deno.readFile("model.h5"), "model.h5");
 * try { console.log(file.attr("/", "keras_version")); } finally { file.close(); }
 * ```
 */
export class Hdf5File {
  /** Float values `readFloat` may still return (see `limitValues`); Infinity = no limit. */
  private valuesLeft = Infinity;
  private valuesCap = { values: Infinity, what: "" };

  private constructor(
    private readonly lib: H5wasm,
    // deno-lint-ignore no-explicit-any
    private readonly file: any,
    private readonly fsPath: string,
    /** The name used in error messages. */
    readonly label: string,
    /** The size of the whole file in bytes. */
    readonly fileBytes: number,
  ) {}

  /** Open `bytes` (a whole HDF5 file); `label` names it in errors. Close it when done. */
  static async open(bytes: Uint8Array, label: string): Promise<Hdf5File> {
    if (!isHdf5(bytes)) {
      throw new UserError(
        `${label} is not an HDF5 file (no HDF5 signature${
          bytes.length < 8 ? `; it has only ${bytes.length} bytes` : ""
        }): expected a Keras .h5 model.`,
      );
    }
    const lib = await h5();
    const fsPath = `/prunescope-read-${++fileCounter}.h5`;
    const FS = lib.Module.FS;
    FS.writeFile(fsPath, bytes);
    try {
      const file = guarded(label, "cannot open it as HDF5", () => {
        const f = new lib.File(fsPath, "r");
        if (typeof f.file_id === "bigint" && f.file_id < 0n) throw new Error("open failed");
        return f;
      });
      return new Hdf5File(lib, file, fsPath, label, bytes.length);
    } catch (e) {
      FS.unlink(fsPath);
      throw e;
    }
  }

  // deno-lint-ignore no-explicit-any
  private entity(path: string): any {
    return guarded(this.label, `cannot read ${path}`, () => (path === "/" ? this.file : this.file.get(path)));
  }

  /** "group", "dataset", or null when nothing is at `path`. */
  kind(path: string): "group" | "dataset" | null {
    if (path !== "/" && !guarded(this.label, `cannot read ${path}`, () => this.exists(path))) return null;
    const e = this.entity(path);
    if (e instanceof this.lib.Group) return "group";
    if (e instanceof this.lib.Dataset) return "dataset";
    return null;
  }

  private exists(path: string): boolean {
    // Walk down one link at a time so a missing parent is not an HDF5 error.
    let at = this.file;
    for (const part of path.split("/").filter((p) => p.length > 0)) {
      if (!(at instanceof this.lib.Group) || !at.keys().includes(part)) return false;
      at = at.get(part);
    }
    return true;
  }

  /** The names of a group's members (sorted as HDF5 lists them). */
  keys(path: string): string[] {
    const e = this.entity(path);
    if (!(e instanceof this.lib.Group)) return [];
    return guarded(this.label, `cannot list ${path}`, () => e.keys() as string[]);
  }

  /** The attribute names of the object at `path`. */
  attrNames(path: string): string[] {
    const e = this.entity(path);
    return guarded(this.label, `cannot read attributes of ${path}`, () => Object.keys(e.attrs));
  }

  /** An attribute's value (string, string[], number, typed array ...), or undefined when absent. */
  attr(path: string, name: string): unknown {
    if (!this.attrNames(path).includes(name)) return undefined;
    const e = this.entity(path);
    return guarded(this.label, `cannot read attribute ${name} of ${path}`, () => e.attrs[name].value);
  }

  /**
   * From now on, refuse to read more than `values` float values in all through `readFloat`;
   * `what` says where the bound comes from, for the message (e.g. "the 15M weights of the config").
   */
  limitValues(values: number, what: string): void {
    this.valuesCap = { values, what };
    this.valuesLeft = values;
  }

  /**
   * Read a floating-point dataset as float32. Its size is checked before it is read: an
   * uncompressed dataset cannot hold more bytes than the whole file, and no dataset may take the
   * values read past `limitValues`.
   */
  readFloat(path: string): FloatArray {
    const e = this.entity(path);
    if (!(e instanceof this.lib.Dataset)) {
      throw new UserError(`${this.label}: ${path} is not a dataset.`);
    }
    return guarded(this.label, `cannot read dataset ${path}`, () => {
      const meta = e.metadata as { type: number };
      if (meta.type !== this.lib.Module.H5T_class_t.H5T_FLOAT.value) {
        throw new UserError(`${this.label}: dataset ${path} is not floating point, so it is not a weight.`);
      }
      const shape = (e.shape ?? []) as number[];
      const { total_size: values, size, chunks } = e.metadata as {
        total_size: number;
        size: number;
        chunks: number[] | null;
      };
      const stored = values * size;
      if (!chunks && stored > this.fileBytes) {
        throw new UserError(
          `${this.label}: dataset ${path} claims shape [${shape}] (${stored} bytes), more than the whole ` +
            `file (${this.fileBytes} bytes): the file is damaged; refusing to read it.`,
        );
      }
      if (values > this.valuesLeft) {
        throw new UserError(
          `${this.label}: dataset ${path} holds ${values} values (shape [${shape}]), more than ` +
            `${this.valuesCap.what} leave room for (${this.valuesCap.values} in all); refusing to read it.`,
        );
      }
      this.valuesLeft -= values;
      const value = e.value;
      const data = value instanceof Float32Array
        ? value
        : typeof value === "number"
        ? Float32Array.of(value)
        : Float32Array.from(value as ArrayLike<number>);
      return { shape, data };
    });
  }

  /** Close the file and remove it from the in-memory file system. */
  close(): void {
    try {
      guarded(this.label, "cannot close it", () => this.file.close());
    } finally {
      try {
        this.lib.Module.FS.unlink(this.fsPath);
      } catch { /* already gone */ }
    }
  }
}

/** A value to store as an HDF5 attribute, in the layout h5py gives Keras's own values. */
export type AttrValue =
  | { kind: "utf8"; value: string }
  | { kind: "ascii-list"; value: string[] }
  | { kind: "empty-list" };

/** Writes a new HDF5 file; used by the Keras writer. Paths are absolute. */
export interface Hdf5Builder {
  group(path: string): void;
  attr(path: string, name: string, value: AttrValue): void;
  float32(path: string, shape: number[], data: Float32Array): void;
}

/**
 * Build an HDF5 file in memory and return its bytes.
 *
 * @example
 * ```ts
 * const bytes = await writeHdf5((b) => { b.group("/g"); b.float32("/g/w", [2], Float32Array.of(1, 2)); });
 * ```
 */
export async function writeHdf5(build: (b: Hdf5Builder) => void): Promise<Uint8Array> {
  const lib = await h5();
  const FS = lib.Module.FS;
  const fsPath = `/prunescope-write-${++fileCounter}.h5`;
  const label = "HDF5 writer";
  const file = guarded(
    label,
    "cannot create a file",
    () => new lib.File(fsPath, "w", { libver: ["earliest", "v108"] }),
  );
  // deno-lint-ignore no-explicit-any
  const at = (path: string): any => (path === "/" ? file : file.get(path));
  try {
    guarded(label, "cannot write", () =>
      build({
        group: (path) => {
          const slash = path.lastIndexOf("/");
          at(path.slice(0, slash) || "/").create_group(path.slice(slash + 1));
        },
        attr: (path, name, v) => {
          const target = at(path);
          if (v.kind === "utf8") target.create_attribute(name, v.value);
          else if (v.kind === "ascii-list") target.create_attribute(name, v.value, [v.value.length], "A");
          else target.create_attribute(name, new Float64Array(0), [0], "<d");
        },
        float32: (path, shape, data) => {
          const slash = path.lastIndexOf("/");
          at(path.slice(0, slash) || "/").create_dataset({
            name: path.slice(slash + 1),
            data,
            shape,
            dtype: "<f",
          });
        },
      }));
    guarded(label, "cannot close the file", () => file.close());
    return FS.readFile(fsPath) as Uint8Array;
  } finally {
    try {
      FS.unlink(fsPath);
    } catch { /* not created */ }
  }
}
