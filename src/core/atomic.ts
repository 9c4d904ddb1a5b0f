/**
 * Output files are written whole or not at all: to a temporary name beside the target, then
 * renamed over it, so a crash or a bad input never leaves a half-written file in `--out`.
 */
import { dirname } from "node:path";
import { onInterrupt } from "../core/interrupt.ts";

/**
 * Write `data` to `path` atomically, creating the parent folder.
 *
 * @example
 * ```ts
 * await writeFileAtomic("out/sweep.csv", "k,accuracy\n0,0.9\n");
 * ```
 */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  await Deno.mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  // Ctrl-C while the temporary file is being written removes it: no partial file is left.
  const forget = onInterrupt(() => Deno.removeSync(tmp));
  try {
    if (typeof data === "string") await Deno.writeTextFile(tmp, data);
    else await Deno.writeFile(tmp, data);
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  } finally {
    forget();
  }
}
