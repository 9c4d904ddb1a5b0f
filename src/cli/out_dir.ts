/**
 * Output locations, checked before any model or data is read, and held while a run writes:
 *
 * - `checkOutput(path)` refuses, in one line with the fix, a path that exists with the wrong kind
 *   (a file where a folder is wanted, or the reverse), one whose parent is a file, one outside the
 *   folders the process may write (`--allow-write`, probed with `Deno.permissions.query`), and one
 *   the file system will not let us write;
 * - `claimOutDir(path)` then creates the folder and takes a lock file in it, so a second run into the
 *   same folder stops at once with a clear line instead of interleaving its files with the first's.
 *   Releasing it (or Ctrl-C) removes the lock and any folder the claim created that is still empty:
 *   a failed run leaves nothing behind.
 */
import { dirname, join, resolve } from "node:path";
import { UserError } from "../core/errors.ts";
import { onInterrupt } from "../core/interrupt.ts";

/** What an output path must be. */
export type OutputKind = "folder" | "file";

/** The name of the lock file `claimOutDir` keeps in a folder while a run writes there. */
export const LOCK_NAME = ".prunescope.lock";

async function statOrNull(path: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.stat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) return null;
    throw e;
  }
}

/**
 * Refuse an output location that a run could not write, before it does any work. `flag` names the
 * option in the message (e.g. "--out").
 *
 * @example
 * ```ts
 * await checkOutput("out/sweep", "--out", "folder");
 * await checkOutput("out/model.h5", "--out", "file");
 * ```
 */
export async function checkOutput(path: string, flag: string, kind: OutputKind): Promise<void> {
  const status = await Deno.permissions.query({ name: "write", path });
  if (status.state !== "granted") {
    throw new UserError(
      `${flag} ${path} is outside the folders this run may write (the deno tasks allow only out/ and ` +
        `the data cache): pick a ${flag} under out/, or run main.ts with --allow-write=${path}.`,
    );
  }
  const info = await statOrNull(path);
  if (info && kind === "folder" && !info.isDirectory) {
    throw new UserError(
      `${flag} ${path} exists and is a file, not a folder: remove it or pick another ${flag}.`,
    );
  }
  if (info && kind === "file" && info.isDirectory) {
    throw new UserError(`${flag} ${path} is a folder, not a file name: pick a file name for ${flag}.`);
  }
  // The folder the run will write into, or its nearest ancestor that exists.
  let at = info ? (kind === "folder" ? path : dirname(path)) : dirname(path);
  let atInfo = info && kind === "folder" ? info : await statOrNull(at);
  while (!atInfo) {
    const up = dirname(at);
    if (up === at) break;
    at = up;
    atInfo = await statOrNull(at);
  }
  if (atInfo && !atInfo.isDirectory) {
    throw new UserError(
      `${flag} ${path} cannot be created: ${at} is a file, not a folder; pick another ${flag}.`,
    );
  }
  if (atInfo && !(await writable(at, atInfo))) {
    throw new UserError(
      `${flag} ${path} is not writable (${at} does not let this user create files): ` +
        `fix its permissions (chmod u+w ${at}) or pick another ${flag}.`,
    );
  }
}

/** Whether this user may create files in the existing folder `dir`. */
async function writable(dir: string, info: Deno.FileInfo): Promise<boolean> {
  const probe = await Deno.permissions.query({ name: "write", path: dir });
  if (probe.state === "granted") {
    // The honest test: create a file there (and remove it). Also catches read-only file systems.
    try {
      const tmp = await Deno.makeTempFile({ dir, prefix: ".prunescope-probe-" });
      await Deno.remove(tmp);
      return true;
    } catch (e) {
      if (e instanceof Deno.errors.PermissionDenied || e instanceof Deno.errors.NotCapable) return false;
      if ((e as Error).message.includes("Read-only file system")) return false;
      throw e;
    }
  }
  // Not allowed to probe there (only a subfolder is granted; knowing our uid would need --allow-sys):
  // a folder with no write bit at all is not writable, else creating the subfolder will tell.
  return info.mode === null || (info.mode & 0o222) !== 0;
}

/** A held output folder; see {@link claimOutDir}. */
export interface OutDirClaim extends AsyncDisposable {
  /** The folder. */
  path: string;
  /** Remove the lock, and the folders the claim created when they are still empty. */
  release(): Promise<void>;
}

/** What the lock file says about the run that holds it. */
interface LockRecord {
  pid: number;
  command: string;
  started: string;
}

/**
 * Create the output folder `path` (and missing parents) and lock it for `command` until the claim
 * is released. The lock is an operating-system lock (flock) on `<path>/.prunescope.lock`, so it
 * dies with its process: a folder locked by a live run is a one-line `UserError`, a lock file left
 * by a run that is gone is simply taken over. Call after `checkOutput`.
 *
 * @example
 * ```ts
 * await checkOutput(out, "--out", "folder");
 * await using _claim = await claimOutDir(out, "--out", "sweep");
 * ```
 */
export async function claimOutDir(path: string, flag: string, command: string): Promise<OutDirClaim> {
  const created: string[] = [];
  for (let at = resolve(path); !(await statOrNull(at)); at = dirname(at)) created.unshift(at);
  await Deno.mkdir(path, { recursive: true });
  const lock = join(path, LOCK_NAME);
  const removeCreated = () => {
    for (const dir of [...created].reverse()) {
      try {
        Deno.removeSync(dir); // only when empty
      } catch {
        break;
      }
    }
  };
  let file: Deno.FsFile;
  for (;;) {
    file = await Deno.open(lock, { read: true, write: true, create: true });
    if (!(await file.tryLock(true))) {
      file.close();
      const other = await Deno.readTextFile(lock).then((t) => JSON.parse(t) as LockRecord, () => null);
      removeCreated(); // not the lock file: it is the other run's
      const who = other ? ` (${other.command}, pid ${other.pid}, started ${other.started})` : "";
      throw new UserError(
        `${flag} ${path} is in use by another prunescope run${who}: wait for it to finish or pick another ${flag}.`,
      );
    }
    // The holder before us may have removed the file between our open and our lock: then start over.
    const here = await statOrNull(lock);
    if (here && here.ino === (await file.stat()).ino) break;
    file.close();
  }
  const record: LockRecord = { pid: Deno.pid, command, started: new Date().toISOString() };
  await file.truncate(0);
  await file.write(new TextEncoder().encode(JSON.stringify(record) + "\n"));
  const undo = () => {
    try {
      Deno.removeSync(lock); // removed while still locked, so no one takes a lock on a file about to go
    } catch { /* gone */ }
    try {
      file.close(); // releases the lock
    } catch { /* closed */ }
    removeCreated();
  };
  const forget = onInterrupt(undo);
  let released = false;
  const release = () => {
    if (!released) {
      released = true;
      forget();
      undo();
    }
    return Promise.resolve();
  };
  return { path, release, [Symbol.asyncDispose]: release };
}

/**
 * `checkOutput` then `claimOutDir` for a command's output folder: what every command that writes a
 * folder does first, before it reads any model or data.
 *
 * @example
 * ```ts
 * await using _out = await openOutDir(values.out!, "--out", "sweep");
 * ```
 */
export async function openOutDir(path: string, flag: string, command: string): Promise<OutDirClaim> {
  await checkOutput(path, flag, "folder");
  return await claimOutDir(path, flag, command);
}
