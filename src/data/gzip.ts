/**
 * Bounded gunzip: inflate a .gz file in chunks and stop with a UserError as soon as the output
 * passes a cap, so a small hostile file cannot exhaust memory.
 */
import { Gunzip } from "fflate";
import { UserError } from "../core/errors.ts";

/**
 * Whether `bytes` start with the gzip magic (1f 8b).
 *
 * @example
 * ```ts
 * isGzip(new Uint8Array([0x1f, 0x8b, 8])); // true
 * ```
 */
export function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/**
 * Inflate `bytes`, refusing past `maxBytes` of output.
 *
 * @example
 * ```ts
 * const raw = gunzipBounded(await Deno.readFile("t10k-labels-idx1-ubyte.gz"), 2 ** 20, "t10k-labels");
 * ```
 */
export function gunzipBounded(bytes: Uint8Array, maxBytes: number, source: string): Uint8Array {
  const parts: Uint8Array[] = [];
  let total = 0;
  const g = new Gunzip((data) => {
    total += data.length;
    if (total > maxBytes) {
      throw new UserError(
        `${source} inflates to more than ${maxBytes} bytes, more than its contents can need: ` +
          `the file is corrupt or hostile; download it again.`,
      );
    }
    parts.push(data);
  });
  const CHUNK = 1 << 20;
  try {
    for (let at = 0; at < bytes.length; at += CHUNK) {
      g.push(bytes.subarray(at, Math.min(bytes.length, at + CHUNK)), at + CHUNK >= bytes.length);
    }
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw new UserError(`${source} is not a valid gzip file (${(e as Error).message}): download it again.`);
  }
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
