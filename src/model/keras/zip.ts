/**
 * Reading a `.keras` archive (a zip: `config.json`, `metadata.json`, `model.weights.h5`) entirely
 * in memory. Nothing is ever written to disk, and an archive whose entry names try to leave the
 * archive (`../x`, `/etc/x`, `C:\\x`) is refused outright: a real `.keras` file never holds one.
 *
 * Memory stays bounded on a hostile archive (a zip bomb): entries are read from the central
 * directory, each wanted entry's declared size is checked against a cap before anything is
 * inflated (config.json and metadata.json 64 MiB; the weights what the caller says the config
 * implies), and the entry is inflated in small steps into a buffer of its declared size, so one
 * that inflates beyond what it declared is refused as soon as it does.
 */
import { Inflate } from "fflate";
import { UserError } from "../../core/errors.ts";
/** The parts of a `.keras` archive that the loader uses. */
export interface KerasArchive {
  /** `config.json`, parsed. */
  config: unknown;
  /** `metadata.json`, parsed ({} when absent). */
  metadata: Record<string, unknown>;
  /** The size `model.weights.h5` declares, in bytes (nothing inflated yet). */
  weightsDeclaredBytes: number;
  /** Inflate `model.weights.h5`, refusing it when it declares or inflates to more than `maxBytes`. */
  weights(maxBytes: number): Uint8Array;
}

/** The most a `config.json` or `metadata.json` may inflate to (a VGG-16 config is ~30 KB). */
export const MAX_JSON_BYTES = 64 * 2 ** 20;
/** The most any entry may inflate to, whatever the config says (far beyond a CIFAR-10 CNN). */
export const MAX_ENTRY_BYTES = 2 ** 31;
const WANTED = new Set(["config.json", "metadata.json", "model.weights.h5"]);
/** Compressed bytes inflated per step: at deflate's ~1032:1 ratio at most ~16 MiB come out of one. */
const STEP = 16 * 1024;

/** True when `bytes` starts like a zip archive (local file header or empty-archive record). */
export function isZip(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b &&
    ((bytes[2] === 0x03 && bytes[3] === 0x04) || (bytes[2] === 0x05 && bytes[3] === 0x06));
}

/** Why an entry name is unsafe, or null when it stays inside the archive. */
export function unsafeEntryReason(name: string): string | null {
  if (name.includes("\0")) return "contains a NUL byte";
  const unified = name.replaceAll("\\", "/");
  if (unified.startsWith("/") || /^[A-Za-z]:/.test(unified)) return "is an absolute path";
  if (unified.split("/").some((part) => part === "..")) return "climbs out of the archive with '..'";
  return null;
}

/** One entry of the central directory. */
interface ZipEntry {
  name: string;
  method: number;
  flags: number;
  compressedSize: number;
  size: number;
  localOffset: number;
}

class Damaged extends Error {}

/** The entries of the zip `bytes`, from its central directory (zip64 sizes and offsets included). */
function centralDirectory(bytes: Uint8Array): ZipEntry[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const u16 = (at: number) => view.getUint16(at, true);
  const u32 = (at: number) => view.getUint32(at, true);
  const u64 = (at: number) => Number(view.getBigUint64(at, true));
  let eocd = -1;
  for (let at = bytes.length - 22; at >= Math.max(0, bytes.length - 22 - 0xffff); at--) {
    if (u32(at) === 0x06054b50) {
      eocd = at;
      break;
    }
  }
  if (eocd < 0) throw new Damaged("no end of central directory record");
  let count = u16(eocd + 10);
  let cdOffset = u32(eocd + 16);
  if ((count === 0xffff || cdOffset === 0xffffffff) && eocd >= 20 && u32(eocd - 20) === 0x07064b50) {
    const z = u64(eocd - 12);
    if (z + 56 > bytes.length || u32(z) !== 0x06064b50) throw new Damaged("bad zip64 directory record");
    count = u64(z + 32);
    cdOffset = u64(z + 48);
  }
  const entries: ZipEntry[] = [];
  const decoder = new TextDecoder();
  let at = cdOffset;
  for (let i = 0; i < count; i++) {
    if (at + 46 > bytes.length || u32(at) !== 0x02014b50) throw new Damaged("bad central directory entry");
    const nameLen = u16(at + 28), extraLen = u16(at + 30), commentLen = u16(at + 32);
    if (at + 46 + nameLen + extraLen > bytes.length) throw new Damaged("central directory runs past the end");
    const entry: ZipEntry = {
      name: decoder.decode(bytes.subarray(at + 46, at + 46 + nameLen)),
      flags: u16(at + 8),
      method: u16(at + 10),
      compressedSize: u32(at + 20),
      size: u32(at + 24),
      localOffset: u32(at + 42),
    };
    // zip64: the 0xffffffff fields are in the 0x0001 extra field, in this order.
    for (let x = at + 46 + nameLen; x + 4 <= at + 46 + nameLen + extraLen;) {
      const id = u16(x), len = u16(x + 2);
      if (id === 0x0001) {
        let y = x + 4;
        if (entry.size === 0xffffffff) (entry.size = u64(y), y += 8);
        if (entry.compressedSize === 0xffffffff) (entry.compressedSize = u64(y), y += 8);
        if (entry.localOffset === 0xffffffff) entry.localOffset = u64(y);
      }
      x += 4 + len;
    }
    entries.push(entry);
    at += 46 + nameLen + extraLen + commentLen;
  }
  return entries;
}

/**
 * Inflate `entry` of `bytes`, refusing it (naming it) when it declares more than `maxBytes` or
 * inflates to more than it declares. `what` says what the cap stands for, for the message.
 */
function inflateEntry(bytes: Uint8Array, entry: ZipEntry, label: string, maxBytes: number, what: string) {
  const name = JSON.stringify(entry.name);
  if (entry.size > maxBytes) {
    throw new UserError(
      `${label}: archive entry ${name} declares ${entry.size} bytes uncompressed, more than the ` +
        `${maxBytes} ${what}; refusing to inflate it.`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const at = entry.localOffset;
  if (at + 30 > bytes.length || view.getUint32(at, true) !== 0x04034b50) {
    throw new Damaged(`entry ${name} has no local header`);
  }
  const start = at + 30 + view.getUint16(at + 26, true) + view.getUint16(at + 28, true);
  const end = start + entry.compressedSize;
  if (end > bytes.length) throw new Damaged(`entry ${name} runs past the end of the file`);
  if (entry.flags & 1) {
    throw new UserError(`${label}: archive entry ${name} is encrypted; a .keras file never is.`);
  }
  if (entry.method === 0) {
    if (entry.compressedSize !== entry.size) throw new Damaged(`stored entry ${name} has two sizes`);
    return bytes.subarray(start, end);
  }
  if (entry.method !== 8) {
    throw new UserError(
      `${label}: archive entry ${name} uses compression method ${entry.method}; a .keras file uses deflate.`,
    );
  }
  const out = new Uint8Array(entry.size);
  let filled = 0;
  let ended = false;
  const inflater = new Inflate((chunk, final) => {
    if (filled + chunk.length > out.length) {
      throw new UserError(
        `${label}: archive entry ${name} inflates to more than the ${entry.size} bytes it declares ` +
          `(a zip bomb or a damaged file); refusing it.`,
      );
    }
    out.set(chunk, filled);
    filled += chunk.length;
    if (final) ended = true;
  });
  try {
    for (let p = start; p < end; p += STEP) {
      inflater.push(bytes.subarray(p, Math.min(end, p + STEP)), p + STEP >= end);
    }
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw new Damaged(`entry ${name} does not inflate (${(e as Error).message})`);
  }
  if (!ended || filled !== entry.size) {
    throw new Damaged(`entry ${name} inflates to ${filled} bytes, not the ${entry.size} it declares`);
  }
  return out;
}

/**
 * Unpack the parts of a `.keras` archive; `label` names the file in errors. The JSON entries are
 * inflated here; the weights only when `weights(maxBytes)` is called.
 *
 * @example
 * ```ts
 * const archive = readKerasArchive(await Deno.readFile("m.keras"), "m.keras");
 * const weights = archive.weights(64 * 2 ** 20);
 * ```
 */
export function readKerasArchive(bytes: Uint8Array, label: string): KerasArchive {
  const damaged = (e: unknown): never => {
    if (!(e instanceof Damaged)) throw e;
    throw new UserError(
      `${label} is not a readable zip archive (${e.message}): a .keras file is a zip; it may be truncated or damaged.`,
    );
  };
  let entries: ZipEntry[] = [];
  try {
    entries = centralDirectory(bytes);
  } catch (e) {
    damaged(e);
  }
  const names = entries.map((e) => e.name);
  for (const name of names) {
    const reason = unsafeEntryReason(name);
    if (reason) {
      throw new UserError(
        `${label}: refusing the archive: its entry ${JSON.stringify(name)} ${reason}; ` +
          `a .keras file never holds such a name.`,
      );
    }
  }
  const byName = new Map(entries.filter((e) => WANTED.has(e.name)).map((e) => [e.name, e]));
  const listing = names.length > 0
    ? names.slice(0, 8).join(", ") + (names.length > 8 ? ", ..." : "")
    : "none";
  const configEntry = byName.get("config.json");
  const weightsEntry = byName.get("model.weights.h5");
  if (!configEntry) {
    if (names.includes("model.weights.json") || names.some((n) => /^model_\d+\.weights\.h5$/.test(n))) {
      throw new UserError(`${label}: sharded .keras weights are not supported; save the model unsharded.`);
    }
    throw new UserError(
      `${label} has no config.json (entries: ${listing}): it is not a Keras .keras model archive.`,
    );
  }
  if (!weightsEntry) {
    throw new UserError(
      `${label} has a config.json but no model.weights.h5 (entries: ${listing}); ` +
        `re-save the model with model.save("name.keras").`,
    );
  }
  const json = (entry: ZipEntry) => {
    try {
      const text = inflateEntry(bytes, entry, label, MAX_JSON_BYTES, "bytes a Keras JSON entry may have");
      return parseJson(text, `${label}: ${entry.name}`);
    } catch (e) {
      return damaged(e);
    }
  };
  const metadataEntry = byName.get("metadata.json");
  return {
    config: json(configEntry),
    metadata: metadataEntry ? asRecord(json(metadataEntry)) : {},
    weightsDeclaredBytes: weightsEntry.size,
    weights(maxBytes: number): Uint8Array {
      try {
        return inflateEntry(
          bytes,
          weightsEntry,
          label,
          Math.min(maxBytes, MAX_ENTRY_BYTES),
          "bytes the weights of this model's config can take",
        );
      } catch (e) {
        return damaged(e);
      }
    },
  };
}

function parseJson(bytes: Uint8Array, label: string): unknown {
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch (e) {
    throw new UserError(`${label} is not valid JSON (${(e as Error).message}).`);
  }
}

function asRecord(v: unknown): Record<string, unknown> {
  return v && typeof v === "object" && !Array.isArray(v) ? v as Record<string, unknown> : {};
}
