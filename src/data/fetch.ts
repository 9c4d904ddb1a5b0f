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
import { loadIdxSet } from "./idx.ts";

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
  /** Expected SHA-256 (hex), or null where only an MD5 is published. */
  sha256: string | null;
  /** Expected size in bytes, or null where it is not published. */
  size: number | null;
  md5: string | null;
  recordsPerFile: number;
  /** What the file is, for messages ("the CIFAR-10 binary tarball"). */
  what: string;
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
    what: "the CIFAR-10 binary tarball",
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
async function download(cfg: Omit<FetchConfig, "dest" | "recordsPerFile">, path: string): Promise<void> {
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
  if (Number.isFinite(announced) && cfg.size !== null && announced !== cfg.size) {
    clearTimeout(timer);
    await response.body.cancel();
    throw new UserError(
      `download of ${cfg.url} failed: the server offers ${announced} bytes, expected ${cfg.size}; ` +
        `it is not ${cfg.what}.`,
    );
  }
  const expected = cfg.size ?? (Number.isFinite(announced) ? announced : null);

  const sha = cfg.sha256 ? createHash("sha256") : null;
  const md5 = cfg.md5 ? createHash("md5") : null;
  const bar = new Progress({
    label: `download ${basename(new URL(cfg.url).pathname) || host}`,
    total: expected ?? 0,
    unit: "B",
  });
  const file = await Deno.open(path, { write: true, create: true, truncate: true });
  let received = 0;
  try {
    for await (const chunk of response.body) {
      arm();
      received += chunk.length;
      if (expected !== null && received > expected) {
        throw new UserError(
          `download of ${cfg.url} failed: more than the expected ${expected} bytes arrived.`,
        );
      }
      sha?.update(chunk);
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
  if (expected !== null && received !== expected) {
    throw new UserError(`download of ${cfg.url} is incomplete: ${received} of ${expected} bytes arrived.`);
  }
  const gotSha = sha?.digest("hex");
  if (sha && gotSha !== cfg.sha256) {
    throw new UserError(
      `download of ${cfg.url} has the wrong SHA-256 (${gotSha}, expected ${cfg.sha256}): ` +
        `the file is corrupt or not ${cfg.what}; nothing was kept.`,
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
 * Extract the wanted files of `folder/` (default `cifar-10-batches-bin/`) from the .tar.gz at
 * `archive` into `into` (flat: `into/test_batch.bin`, ...). Entries are written only under fixed
 * names from an allow-list, so no path in the archive can reach outside `into`.
 */
async function extract(
  archive: string,
  into: string,
  folder = CIFAR10_FOLDER,
  wanted: ReadonlySet<string> = WANTED,
): Promise<void> {
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
      if (type === "file" && dirname(name) === folder && wanted.has(basename(name))) {
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
 * A fresh temporary folder beside `dest` (`.<name>.<random>.tmp`) to download and extract into
 * before the one rename into place; leftovers of interrupted runs older than a day are removed.
 */
async function stagingFolder(dest: string): Promise<{ parent: string; tmp: string }> {
  const parent = dirname(dest), base = basename(dest);
  const tmp = join(parent, `.${base}.${crypto.randomUUID().slice(0, 8)}.tmp`);
  try {
    await Deno.mkdir(tmp, { recursive: true });
  } catch (e) {
    if (isPermissionError(e)) throw writeDenied(parent);
    throw new UserError(`cannot create ${tmp}: ${oneLine((e as Error).message)}.`);
  }
  await removeStaleTemps(parent, base);
  return { parent, tmp };
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
  const { parent, tmp } = await stagingFolder(dest);
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

/** One file of a remote data set. */
export interface RemoteFile {
  url: string;
  /** The name it is stored under. */
  name: string;
  md5: string;
  /** Its size in bytes, where published. */
  size: number | null;
}

/** A data set `fetch-data --dataset` can download (other than CIFAR-10, which has its own path). */
export interface RemoteDataset {
  name: string;
  /** The data folder's name in the cache. */
  folder: string;
  files: RemoteFile[];
  /** For a tarball: the folder inside it and the files taken from it. */
  tarball?: { folder: string; wanted: string[] };
  /** What is wrong with a downloaded folder, or null when it is complete. */
  check(dir: string): Promise<string | null>;
}

const IDX_FILES = [
  "train-images-idx3-ubyte",
  "train-labels-idx1-ubyte",
  "t10k-images-idx3-ubyte",
  "t10k-labels-idx1-ubyte",
];

async function checkIdxFolder(dir: string): Promise<string | null> {
  try {
    const test = await loadIdxSet(dir, "t10k");
    const train = await loadIdxSet(dir, "train");
    return test.count > 0 && train.count > 0 ? null : "a split is empty";
  } catch (e) {
    return (e as Error).message;
  }
}

function idxDataset(name: string, base: string, md5s: string[], sizes: number[]): RemoteDataset {
  return {
    name,
    folder: name,
    files: IDX_FILES.map((f, i) => ({
      url: `${base}${f}.gz`,
      name: `${f}.gz`,
      md5: md5s[i],
      size: sizes[i],
    })),
    check: checkIdxFolder,
  };
}

/** The data sets besides CIFAR-10, with their official URLs and MD5s. */
export const REMOTE_DATASETS: Record<string, RemoteDataset> = {
  cifar100: {
    name: "cifar100",
    folder: "cifar-100-binary",
    files: [{
      url: "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
      name: "cifar-100-binary.tar.gz",
      md5: "03b5dce01913d631647c71ecec9e9cb8",
      size: null,
    }],
    tarball: {
      folder: "cifar-100-binary",
      wanted: ["train.bin", "test.bin", "fine_label_names.txt", "coarse_label_names.txt"],
    },
    async check(dir) {
      for (const [file, records] of [["train.bin", 50000], ["test.bin", 10000]] as const) {
        try {
          const size = (await Deno.stat(join(dir, file))).size;
          if (size !== records * 3074) return `${file} has ${size} bytes, expected ${records * 3074}`;
        } catch {
          return `${file} is missing`;
        }
      }
      return null;
    },
  },
  "fashion-mnist": idxDataset(
    "fashion-mnist",
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    [
      "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
      "25c81989df183df01b3e8a0aad5dffbe",
      "bef4ecab320f06d8554ea6380940ec79",
      "bb300cfdad3c16e7a12a480ee83cd310",
    ],
    [26421880, 29515, 4422102, 5148],
  ),
  mnist: idxDataset(
    "mnist",
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    [
      "f68b3c2dcbeaaa9fbdd348bbdeb94873",
      "d53e105ee54ea40749a09fcbcd1e9432",
      "9fb629c4189551a2d022fa330f9573f3",
      "ec29112dd5afa0611ce80d1b7f02629c",
    ],
    [9912422, 28881, 1648877, 4542],
  ),
};

/** The names `fetch-data --dataset` takes. */
export const DATASET_NAMES = ["cifar10", ...Object.keys(REMOTE_DATASETS)];

/**
 * Download a data set (by name, or a `RemoteDataset`), verify every file's MD5 (and size where
 * published), extract a tarball's wanted files, check the folder, and rename it into place:
 * `dest`, default `<cacheDir()>/<folder>`. Does nothing when `dest` already holds the data.
 * A failure leaves no partial folder.
 *
 * @example
 * ```ts
 * const dir = await fetchDataset("fashion-mnist"); // ~/.cache/prunescope/fashion-mnist
 * ```
 */
export async function fetchDataset(
  which: string | RemoteDataset,
  opts: { dest?: string } = {},
): Promise<string> {
  if (which === "cifar10") return await fetchCifar10({ dest: opts.dest });
  const ds = typeof which === "string" ? REMOTE_DATASETS[which] : which;
  if (!ds) throw new UserError(`unknown data set '${which}': --dataset takes ${DATASET_NAMES.join(", ")}.`);
  const dest = resolve(opts.dest ?? join(cacheDir(), ds.folder));
  if (await exists(dest)) {
    const problem = await ds.check(dest);
    if (problem === null) return dest;
    throw new UserError(
      `${dest} exists but is not a complete ${ds.name} folder (${problem}); remove it or choose another --dest.`,
    );
  }
  const { parent, tmp } = await stagingFolder(dest);
  try {
    const staged = join(tmp, ds.folder);
    await Deno.mkdir(staged);
    for (const f of ds.files) {
      const path = join(ds.tarball ? tmp : staged, f.name);
      await download(
        { url: f.url, sha256: null, size: f.size, md5: f.md5, what: `${ds.name}'s ${f.name}` },
        path,
      );
    }
    if (ds.tarball) {
      await Deno.remove(staged);
      await extract(join(tmp, ds.files[0].name), staged, ds.tarball.folder, new Set(ds.tarball.wanted));
    }
    const problem = await ds.check(staged);
    if (problem !== null) {
      throw new UserError(`the download of ${ds.name} is incomplete: ${problem}; nothing was kept.`);
    }
    await Deno.rename(staged, dest);
    return dest;
  } catch (e) {
    if (e instanceof UserError) throw e;
    if (isPermissionError(e)) throw writeDenied(parent);
    throw new UserError(`cannot store ${ds.name} in ${dest}: ${oneLine((e as Error).message)}.`);
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
}
