/**
 * Reading a `.keras` archive (a zip: `config.json`, `metadata.json`, `model.weights.h5`) with
 * fflate, entirely in memory. Nothing is ever written to disk, and an archive whose entry names
 * try to leave the archive (`../x`, `/etc/x`, `C:\x`) is refused outright: a real `.keras` file
 * never holds one.
 */
import { type UnzipFileInfo, unzipSync } from "fflate";
import { UserError } from "../../core/errors.ts";

/** The parts of a `.keras` archive that the loader uses. */
export interface KerasArchive {
  /** `config.json`, parsed. */
  config: unknown;
  /** `metadata.json`, parsed ({} when absent). */
  metadata: Record<string, unknown>;
  /** The bytes of `model.weights.h5`. */
  weights: Uint8Array;
}

/** Largest entry we agree to inflate (a .keras model of 2 GiB is far beyond a CIFAR-10 CNN). */
const MAX_ENTRY_BYTES = 2 ** 31;
const WANTED = new Set(["config.json", "metadata.json", "model.weights.h5"]);

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

/**
 * Unpack the parts of a `.keras` archive; `label` names the file in errors.
 *
 * @example
 * ```ts
 * const { config, weights } = readKerasArchive(await Deno.readFile("m.keras"), "m.keras");
 * ```
 */
export function readKerasArchive(bytes: Uint8Array, label: string): KerasArchive {
  const names: string[] = [];
  let unsafe: { name: string; reason: string } | null = null;
  let tooBig: UnzipFileInfo | null = null;
  let files: Record<string, Uint8Array>;
  try {
    files = unzipSync(bytes, {
      filter(info) {
        names.push(info.name);
        const reason = unsafeEntryReason(info.name);
        if (reason && !unsafe) unsafe = { name: info.name, reason };
        if (info.originalSize > MAX_ENTRY_BYTES && !tooBig) tooBig = info;
        return WANTED.has(info.name) && !unsafe && !tooBig;
      },
    });
  } catch (e) {
    throw new UserError(
      `${label} is not a readable zip archive (${
        (e as Error).message
      }): a .keras file is a zip; it may be truncated or damaged.`,
    );
  }
  const bad = unsafe as { name: string; reason: string } | null;
  if (bad) {
    throw new UserError(
      `${label}: refusing the archive: its entry ${JSON.stringify(bad.name)} ${bad.reason}; ` +
        `a .keras file never holds such a name.`,
    );
  }
  const big = tooBig as UnzipFileInfo | null;
  if (big) {
    throw new UserError(
      `${label}: archive entry ${
        JSON.stringify(big.name)
      } claims ${big.originalSize} bytes uncompressed, beyond the 2 GiB this reader accepts.`,
    );
  }
  const listing = names.length > 0
    ? names.slice(0, 8).join(", ") + (names.length > 8 ? ", ..." : "")
    : "none";
  if (!files["config.json"]) {
    if (names.includes("model.weights.json") || names.some((n) => /^model_\d+\.weights\.h5$/.test(n))) {
      throw new UserError(`${label}: sharded .keras weights are not supported; save the model unsharded.`);
    }
    throw new UserError(
      `${label} has no config.json (entries: ${listing}): it is not a Keras .keras model archive.`,
    );
  }
  if (!files["model.weights.h5"]) {
    throw new UserError(
      `${label} has a config.json but no model.weights.h5 (entries: ${listing}); ` +
        `re-save the model with model.save("name.keras").`,
    );
  }
  return {
    config: parseJson(files["config.json"], `${label}: config.json`),
    metadata: files["metadata.json"]
      ? asRecord(parseJson(files["metadata.json"], `${label}: metadata.json`))
      : {},
    weights: files["model.weights.h5"],
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
