/**
 * The facts report.html shows about a run (`RunRecord`): the model's SHA-256 (and, for a TF.js
 * model.json, each weight file's), and the versions of the runtime and libraries.
 */
import { createHash } from "node:crypto";
import { basename, dirname, join } from "node:path";
import { version as tfVersions } from "@tensorflow/tfjs";
import { version as vegaVersion } from "vega";
import { version as vegaLiteVersion } from "vega-lite";
import type { RunRecord } from "./html.ts";

/**
 * The SHA-256 of a file, hex.
 *
 * @example
 * ```ts
 * await fileSha256("fixtures/models/default/model.json"); // "3f1c…"
 * ```
 */
export async function fileSha256(path: string): Promise<string> {
  const hash = createHash("sha256");
  using file = await Deno.open(path, { read: true });
  for await (const chunk of file.readable) hash.update(chunk);
  return hash.digest("hex");
}

/**
 * The model file's SHA-256 and, when it is a TF.js model.json, the weight files its manifest
 * names (a file the manifest names that cannot be read is listed with the reason instead).
 *
 * @example
 * ```ts
 * const { sha256, files } = await modelHashes("fixtures/models/default/model.json");
 * ```
 */
export async function modelHashes(
  path: string,
): Promise<{ sha256: string; files: { path: string; sha256: string }[] }> {
  const sha256 = await fileSha256(path);
  const files: { path: string; sha256: string }[] = [];
  if (path.endsWith(".json")) {
    let paths: string[] = [];
    try {
      const manifest = JSON.parse(await Deno.readTextFile(path)).weightsManifest;
      if (Array.isArray(manifest)) {
        paths = manifest.flatMap((g) =>
          Array.isArray(g?.paths) ? g.paths.filter((p: unknown) => typeof p === "string") : []
        );
      }
    } catch {
      // Not a readable manifest: the model loader has already accepted or refused the file.
    }
    for (const p of paths.slice(0, 1000)) {
      const full = join(dirname(path), p);
      files.push({
        path: basename(p) === p ? p : full,
        sha256: await fileSha256(full).catch((e) => `unreadable: ${(e as Error).message}`),
      });
    }
  }
  return { sha256, files };
}

/**
 * Deno, V8, TypeScript, TF.js (each package), vega and vega-lite versions.
 *
 * @example
 * ```ts
 * runtimeVersions().deno; // "2.9.6"
 * ```
 */
export function runtimeVersions(): Record<string, string> {
  return {
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    typescript: Deno.version.typescript,
    ...(tfVersions as Record<string, string>),
    vega: vegaVersion,
    "vega-lite": vegaLiteVersion,
  };
}

/** A command line as a POSIX shell would take it back: arguments with special characters single-quoted. */
export function commandLine(words: string[]): string {
  return words.map((a) => /^[\w./:=,@+-]+$/.test(a) ? a : `'${a.replaceAll("'", `'\\''`)}'`).join(" ");
}

/**
 * The run record of a command: `facts` plus the command line, the model's hashes and the versions.
 *
 * @example
 * ```ts
 * const run = await runRecord(["sweep", ...args], { started, model: { path }, data, backend, timings });
 * ```
 */
export async function runRecord(
  words: string[],
  facts: Omit<RunRecord, "command" | "versions" | "model"> & { model: { path: string; format?: string } },
): Promise<RunRecord> {
  return {
    ...facts,
    command: commandLine(["prunescope", ...words]),
    model: { ...facts.model, ...await modelHashes(facts.model.path) },
    versions: runtimeVersions(),
  };
}
