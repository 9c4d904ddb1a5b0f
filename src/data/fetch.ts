/**
 * Getting CIFAR-10 onto disk: the official binary tarball is downloaded with a progress bar,
 * checked (size, SHA-256, MD5), un-gzipped (the runtime's DecompressionStream) and untarred
 * (`modern-tar`'s streaming decoder) into a temporary folder beside the destination, checked
 * again (six .bin files of the right size, batches.meta.txt), and only then renamed into place.
 * A failure leaves no partial folder behind.
 *
 * Where data is looked for: `--data DIR`, else `$CIFAR10_DIR`, else the cache
 * (`<cacheDir()>/cifar-10-batches-bin`), which is the only place downloads go by default.
 *
 * Overrides for mirrors and tests (option, else env, else the official value):
 * `url` / `PRUNESCOPE_CIFAR10_URL`, `sha256` / `PRUNESCOPE_CIFAR10_SHA256`, `size` /
 * `PRUNESCOPE_CIFAR10_SIZE`, `md5` / `PRUNESCOPE_CIFAR10_MD5`, `recordsPerFile` /
 * `PRUNESCOPE_CIFAR10_RECORDS`.
 */
import { createHash } from "node:crypto";
import { basename, dirname, join, resolve } from "node:path";
import { createTarDecoder } from "modern-tar";
import { UserError } from "../core/errors.ts";
import { Progress } from "../ui/progress.ts";
import { CLASS_NAMES, RECORD_BYTES, RECORDS_PER_FILE, TEST_FILE, TRAIN_FILES } from "./cifar10.ts";

export const CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz";
export const CIFAR10_SIZE = 170_052_171;
export const CIFAR10_SHA256 = "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd";
export const CIFAR10_MD5 = "c32a1d4ab5d03f1284b67883e8d87530";
/** The folder inside the tarball, and the name of the data folder in the cache. */
export const CIFAR10_FOLDER = "cifar-10-batches-bin";
/** The files a complete CIFAR-10 binary folder holds. */
export const BIN_FILES = [...TRAIN_FILES, TEST_FILE];
export const META_FILE = "batches.meta.txt";
/** Files taken from the tarball; anything else in it is skipped. */
const WANTED = new Set([...BIN_FILES, META_FILE, "readme.html"]);
/** Abort a download that receives nothing for this long. */
const STALL_MS = 60_000;

/** Options of `fetchCifar10`; every field falls back to its env override, then the official value. */
export interface FetchOptions {
  /** The data folder to create (default `<cacheDir()>/cifar-10-batches-bin`). */
  dest?: string;
  url?: string;
  /** Expected SHA-256 of the tarball, hex. */
  sha256?: string;
  /** Expected size of the tarball in bytes. */
  size?: number;
  /** Expected MD5, hex; by default the official one, checked only when `sha256` is the official one. */
  md5?: string;
  /** Records expected in each .bin file (10,000 for the real data). */
  recordsPerFile?: number;
}

interface FetchConfig {
  dest: string;
  url: string;
  sha256: string;
  size: number;
  md5: string | null;
  recordsPerFile: number;
}

function env(name: string): string | undefined {
  const v = Deno.env.get(name);
  return v === undefined || v.trim() === "" ? undefined : v.trim();
}

function envNumber(name: string): number | undefined {
  const v = env(name);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new UserError(`${name}=${v} is not a whole number > 0.`);
  return n;
}

/** One line, whatever the underlying error said. */
function oneLine(text: string): string {
  return text.replace(/\s+/g, " ").trim();
}

/** Whether `e` (or an error in its `cause` chain) is Deno refusing a permission. */
function isPermissionError(e: unknown): boolean {
  for (let c = e; c instanceof Error; c = c.cause) {
    if (c instanceof Deno.errors.NotCapable || c instanceof Deno.errors.PermissionDenied) return true;
  }
  return false;
}

/** The most specific reason in an error's `cause` chain ("fetch failed" says little by itself). */
function reason(e: unknown): string {
  let deepest = e;
  for (let c = e; c instanceof Error; c = c.cause) deepest = c;
  const text = deepest instanceof Error ? deepest.message : String(deepest);
  return oneLine(text.replace(/^error sending request for url \([^)]*\): /, ""));
}

/**
 * The cache folder: `$PRUNESCOPE_CACHE`, else `$XDG_CACHE_HOME/prunescope`, else
 * `$HOME/.cache/prunescope`.
 *
 * @example
 * ```ts
 * join(cacheDir(), "cifar-10-batches-bin"); // "/home/me/.cache/prunescope/cifar-10-batches-bin"
 * ```
 */
export function cacheDir(): string {
  const own = env("PRUNESCOPE_CACHE");
  if (own) return resolve(own);
  const xdg = env("XDG_CACHE_HOME");
  if (xdg) return resolve(xdg, "prunescope");
  const home = env("HOME") ?? env("USERPROFILE");
  if (home) return resolve(home, ".cache", "prunescope");
  throw new UserError("cannot find a cache folder: set PRUNESCOPE_CACHE (or HOME) or pass --data DIR.");
}

/** The CIFAR-10 data folder inside the cache. */
export function cachedDataDir(): string {
  return join(cacheDir(), CIFAR10_FOLDER);
}

function resolveConfig(opts: FetchOptions): FetchConfig {
  const envSha = env("PRUNESCOPE_CIFAR10_SHA256");
  const sha256 = (opts.sha256 ?? envSha ?? CIFAR10_SHA256).toLowerCase();
  const officialSha = sha256 === CIFAR10_SHA256;
  const md5 = opts.md5 ?? env("PRUNESCOPE_CIFAR10_MD5") ?? (officialSha ? CIFAR10_MD5 : null);
  if (!/^[0-9a-f]{64}$/.test(sha256)) {
    throw new UserError(`expected SHA-256 '${sha256}' is not 64 hex digits.`);
  }
  const size = opts.size ?? envNumber("PRUNESCOPE_CIFAR10_SIZE") ?? CIFAR10_SIZE;
  const recordsPerFile = opts.recordsPerFile ?? envNumber("PRUNESCOPE_CIFAR10_RECORDS") ?? RECORDS_PER_FILE;
  return {
    dest: resolve(opts.dest ?? cachedDataDir()),
    url: opts.url ?? env("PRUNESCOPE_CIFAR10_URL") ?? CIFAR10_URL,
    sha256,
    size,
    md5: md5 ? md5.toLowerCase() : null,
    recordsPerFile,
  };
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/**
 * What is wrong with a CIFAR-10 binary folder, or null when it is complete: the six .bin files
 * with `recordsPerFile` records each, and batches.meta.txt naming the ten classes.
 *
 * @example
 * ```ts
 * const problem = await checkDataDir("fixtures/cifar10-tiny", 200); // null
 * ```
 */
export async function checkDataDir(dir: string, recordsPerFile = RECORDS_PER_FILE): Promise<string | null> {
  const want = recordsPerFile * RECORD_BYTES;
  for (const name of BIN_FILES) {
    let size: number;
    try {
      size = (await Deno.stat(join(dir, name))).size;
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return `${name} is missing`;
      throw e;
    }
    if (size !== want) return `${name} has ${size} bytes, expected ${want} (${recordsPerFile} records)`;
  }
  let meta: string;
  try {
    meta = await Deno.readTextFile(join(dir, META_FILE));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return `${META_FILE} is missing`;
    throw e;
  }
  const names = meta.split(/\r?\n/).map((s) => s.trim()).filter((s) => s !== "");
  if (names.join(",") !== CLASS_NAMES.join(",")) {
    return `${META_FILE} does not list the ten CIFAR-10 classes`;
  }
  return null;
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.length) off += await file.write(bytes.subarray(off));
}

/** Download `cfg.url` to `path`, checking size and checksums on the way. */
async function download(cfg: FetchConfig, path: string): Promise<void> {
  const abort = new AbortController();
  let stalled = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      stalled = true;
      abort.abort();
    }, STALL_MS);
  };
  const host = (() => {
    try {
      return new URL(cfg.url).host;
    } catch {
      throw new UserError(`'${cfg.url}' is not a valid URL.`);
    }
  })();
  arm();
  let response: Response;
  try {
    response = await fetch(cfg.url, { signal: abort.signal });
  } catch (e) {
    clearTimeout(timer);
    if (isPermissionError(e)) {
      throw new UserError(
        `no permission to reach ${host}: 'deno task fetch-data' may download only from www.cs.toronto.edu; ` +
          `for another --url run 'deno run --allow-read --allow-env --allow-write --allow-net=${host} main.ts fetch-data --url ...'.`,
      );
    }
    const why = stalled ? `no answer in ${STALL_MS / 1000} s` : reason(e);
    throw new UserError(`download of ${cfg.url} failed: ${why}.`);
  }
  if (!response.ok || !response.body) {
    clearTimeout(timer);
    await response.body?.cancel();
    throw new UserError(
      `download of ${cfg.url} failed: the server answered ${response.status} ${
        oneLine(response.statusText)
      }.`,
    );
  }
  const announced = Number(response.headers.get("content-length") ?? NaN);
  if (Number.isFinite(announced) && announced !== cfg.size) {
    clearTimeout(timer);
    await response.body.cancel();
    throw new UserError(
      `download of ${cfg.url} failed: the server offers ${announced} bytes, expected ${cfg.size}; ` +
        `it is not the CIFAR-10 binary tarball.`,
    );
  }

  const sha = createHash("sha256");
  const md5 = cfg.md5 ? createHash("md5") : null;
  const bar = new Progress({
    label: `download ${basename(new URL(cfg.url).pathname) || host}`,
    total: cfg.size,
    unit: "B",
  });
  const file = await Deno.open(path, { write: true, create: true, truncate: true });
  let received = 0;
  try {
    for await (const chunk of response.body) {
      arm();
      received += chunk.length;
      if (received > cfg.size) {
        throw new UserError(
          `download of ${cfg.url} failed: more than the expected ${cfg.size} bytes arrived.`,
        );
      }
      sha.update(chunk);
      md5?.update(chunk);
      await writeAll(file, chunk);
      bar.tick(chunk.length);
    }
  } catch (e) {
    if (e instanceof UserError) throw e;
    const why = stalled ? `nothing arrived for ${STALL_MS / 1000} s` : reason(e);
    throw new UserError(`download of ${cfg.url} broke off after ${received} bytes: ${why}.`);
  } finally {
    clearTimeout(timer);
    file.close();
    bar.done();
  }
  if (received !== cfg.size) {
    throw new UserError(`download of ${cfg.url} is incomplete: ${received} of ${cfg.size} bytes arrived.`);
  }
  const gotSha = sha.digest("hex");
  if (gotSha !== cfg.sha256) {
    throw new UserError(
      `download of ${cfg.url} has the wrong SHA-256 (${gotSha}, expected ${cfg.sha256}): ` +
        `the file is corrupt or not the CIFAR-10 binary tarball; nothing was kept.`,
    );
  }
  const gotMd5 = md5?.digest("hex");
  if (md5 && gotMd5 !== cfg.md5) {
    throw new UserError(
      `download of ${cfg.url} has the wrong MD5 (${gotMd5}, expected ${cfg.md5}); nothing was kept.`,
    );
  }
}

/**
 * Extract the wanted files of `cifar-10-batches-bin/` from the .tar.gz at `archive` into `into`
 * (flat: `into/test_batch.bin`, ...). Entries are written only under fixed names from an
 * allow-list, so no path in the archive can reach outside `into`.
 */
async function extract(archive: string, into: string): Promise<void> {
  await Deno.mkdir(into);
  const size = (await Deno.stat(archive)).size;
  const bar = new Progress({ label: "extract", total: size, unit: "B" });
  const source = await Deno.open(archive, { read: true });
  const counted = source.readable.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, ctl) {
        bar.tick(chunk.length);
        ctl.enqueue(chunk);
      },
    }),
  );
  try {
    const entries = counted
      .pipeThrough(new DecompressionStream("gzip") as unknown as TransformStream<Uint8Array, Uint8Array>)
      .pipeThrough(createTarDecoder());
    for await (const entry of entries) {
      const name = entry.header.name.replace(/^\.\//, "");
      const type = entry.header.type ?? "file";
      if (type === "file" && dirname(name) === CIFAR10_FOLDER && WANTED.has(basename(name))) {
        const out = await Deno.open(join(into, basename(name)), { write: true, createNew: true });
        await entry.body.pipeTo(out.writable); // closes `out`
      } else {
        for await (const _ of entry.body) { /* skip this entry's bytes */ }
      }
    }
  } catch (e) {
    if (e instanceof Deno.errors.AlreadyExists) {
      throw new UserError(`cannot extract ${archive}: it holds a file twice.`);
    }
    throw new UserError(`cannot extract ${archive}: ${reason(e)}.`);
  } finally {
    bar.done();
  }
}

/** Remove leftovers of interrupted downloads (older than a day) beside `dest`. */
async function removeStaleTemps(parent: string, base: string): Promise<void> {
  try {
    for await (const entry of Deno.readDir(parent)) {
      if (!entry.isDirectory || !entry.name.startsWith(`.${base}.`) || !entry.name.endsWith(".tmp")) continue;
      const path = join(parent, entry.name);
      const mtime = (await Deno.stat(path)).mtime?.getTime() ?? Date.now();
      if (Date.now() - mtime > 24 * 3600 * 1000) await Deno.remove(path, { recursive: true });
    }
  } catch {
    // best effort
  }
}

function writeDenied(path: string): UserError {
  return new UserError(
    `no permission to write ${path}: 'deno task fetch-data' may write only under out/ and ~/.cache/prunescope; ` +
      `pick --dest there, or run main.ts with --allow-write=${path}.`,
  );
}

/**
 * Download the CIFAR-10 binary tarball, verify it and extract it atomically into `dest`
 * (default: the cache). Returns the data folder. Does nothing when `dest` already holds the data.
 * Throws a one-line `UserError` on network, checksum or disk failures, leaving no partial folder.
 *
 * @example
 * ```ts
 * const dir = await fetchCifar10({}); // ~/.cache/prunescope/cifar-10-batches-bin
 * const test = await loadTestSet(dir);
 * ```
 */
export async function fetchCifar10(opts: FetchOptions = {}): Promise<string> {
  const cfg = resolveConfig(opts);
  const { dest } = cfg;
  if (await exists(dest)) {
    const problem = await checkDataDir(dest, cfg.recordsPerFile);
    if (problem === null) return dest;
    const isEmpty = await Array.fromAsync(Deno.readDir(dest)).then((l) => l.length === 0, () => false);
    if (!isEmpty) {
      throw new UserError(
        `${dest} exists but is not a complete CIFAR-10 folder (${problem}); remove it or choose another --dest.`,
      );
    }
  }
  const parent = dirname(dest);
  const base = basename(dest);
  const tmp = join(parent, `.${base}.${crypto.randomUUID().slice(0, 8)}.tmp`);
  try {
    await Deno.mkdir(tmp, { recursive: true });
  } catch (e) {
    if (isPermissionError(e)) throw writeDenied(parent);
    throw new UserError(`cannot create ${tmp}: ${oneLine((e as Error).message)}.`);
  }
  await removeStaleTemps(parent, base);
  try {
    const archive = join(tmp, "cifar-10-binary.tar.gz");
    await download(cfg, archive);
    const staged = join(tmp, CIFAR10_FOLDER);
    await extract(archive, staged);
    const problem = await checkDataDir(staged, cfg.recordsPerFile);
    if (problem !== null) {
      throw new UserError(
        `the archive from ${cfg.url} is not CIFAR-10 binary: ${problem}; nothing was kept.`,
      );
    }
    await Deno.remove(dest).catch(() => {}); // an empty folder left from before, if any
    try {
      await Deno.rename(staged, dest);
    } catch (e) {
      // Another process may have finished the same download first.
      if ((await exists(dest)) && (await checkDataDir(dest, cfg.recordsPerFile)) === null) return dest;
      throw e;
    }
    return dest;
  } catch (e) {
    if (e instanceof UserError) throw e;
    if (isPermissionError(e)) throw writeDenied(parent);
    throw new UserError(`cannot store CIFAR-10 in ${dest}: ${oneLine((e as Error).message)}.`);
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
}

const SUPPLY =
  "Supply CIFAR-10 with --data DIR, or CIFAR10_DIR=DIR, or run 'deno task fetch-data' to download it";

/**
 * The CIFAR-10 folder to read: `data` (from --data), else `$CIFAR10_DIR`, else the cache. When
 * the cache lacks test_batch.bin and `fetch` is true, it is downloaded there first. Throws a
 * one-line `UserError` naming the three ways to supply the data when none can be had.
 *
 * @example
 * ```ts
 * const dir = await resolveDataDir({ data: args.data, fetch: true });
 * const test = await loadTestSet(dir);
 * ```
 */
export async function resolveDataDir(opts: { data?: string; fetch: boolean; url?: string }): Promise<string> {
  let dir: string;
  let from: string;
  const envDir = env("CIFAR10_DIR");
  if (opts.data !== undefined && opts.data !== "") {
    dir = opts.data;
    from = "--data";
  } else if (envDir !== undefined) {
    dir = envDir;
    from = "CIFAR10_DIR";
  } else {
    dir = cachedDataDir();
    from = "the cache";
  }
  if (await exists(join(dir, TEST_FILE))) return dir;

  const where = (await exists(dir))
    ? `${dir} (${from}) has no ${TEST_FILE}`
    : `${dir} (${from}) does not exist`;
  if (from !== "the cache") throw new UserError(`no CIFAR-10 data: ${where}. ${SUPPLY}.`);
  if (!opts.fetch) throw new UserError(`no CIFAR-10 data: ${where} and downloading is off. ${SUPPLY}.`);
  try {
    return await fetchCifar10({ dest: dir, url: opts.url });
  } catch (e) {
    if (!(e instanceof UserError)) throw e;
    throw new UserError(
      `no CIFAR-10 data: ${where} and the download failed (${e.message.replace(/\.$/, "")}). ${SUPPLY}.`,
    );
  }
}
