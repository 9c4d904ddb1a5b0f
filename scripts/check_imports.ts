/**
 * The import rules of src/, checked by `deno task check`: imports point only down the list of
 * stages below (a module may import its own stage and the stages before it), and no chain of
 * imports (type imports included) leads from a module back to itself.
 *
 * Prints one line per broken rule and exits 1; prints nothing and exits 0 when the rules hold.
 *
 * @example
 * ```sh
 * deno run --allow-read scripts/check_imports.ts
 * ```
 */
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The stages of a run, bottom to top: paths under src/ (a folder, or a module at the top). */
export const STAGES: readonly (readonly string[])[] = [
  ["core", "types.ts"],
  ["ui"],
  ["backend.ts", "kernels"],
  ["parallel"],
  ["data"],
  ["model"],
  ["activations"],
  ["rank"],
  ["sweep"],
  ["sensitivity"],
  ["surgery"],
  ["train"],
  ["viz"],
  ["report"],
  ["cli"],
  ["commands"],
];

/** The stage index of a path relative to src/, or -1 when no stage holds it. */
export function stageOf(path: string): number {
  const top = path.split("/")[0];
  return STAGES.findIndex((s) => s.includes(top));
}

/** The relative imports of one module's text (static, dynamic, type-only and re-exports). */
export function relativeImports(text: string): string[] {
  const specs: string[] = [];
  const re =
    /(?:^|[\s;])(?:import|export)\b[^"'`;]*?["'](\.{1,2}\/[^"']+)["']|import\(\s*["'](\.{1,2}\/[^"']+)["']/gm;
  for (const m of text.matchAll(re)) specs.push(m[1] ?? m[2]);
  return specs;
}

/** Every broken rule among the modules `files` (path under src/ -> text), one line each. */
export function importProblems(files: Map<string, string>): string[] {
  const problems: string[] = [];
  const graph = new Map<string, string[]>();
  for (const [path, text] of files) {
    const from = stageOf(path);
    if (from < 0) {
      problems.push(`src/${path}: in no stage of scripts/check_imports.ts: add its folder to STAGES.`);
    }
    const targets: string[] = [];
    for (const spec of relativeImports(text)) {
      const target = relative("/src", resolve("/src", dirname(path), spec));
      if (target.startsWith("..")) continue; // outside src/ (fixtures): not a module of ours
      targets.push(target);
      const to = stageOf(target);
      if (from >= 0 && to > from) {
        problems.push(
          `src/${path} imports src/${target}: ${STAGES[from][0]}/ may not import from ${
            STAGES[to][0]
          }/, which comes later; move the shared part down.`,
        );
      }
    }
    graph.set(path, targets);
  }
  // Cycles: depth-first search, reporting each cycle once by its path.
  const state = new Map<string, "open" | "done">();
  const stack: string[] = [];
  const visit = (m: string) => {
    state.set(m, "open");
    stack.push(m);
    for (const t of graph.get(m) ?? []) {
      if (!graph.has(t)) continue;
      if (state.get(t) === "open") {
        const cycle = [...stack.slice(stack.indexOf(t)), t].map((p) => `src/${p}`);
        problems.push(`import cycle: ${cycle.join(" -> ")}; break it by moving the shared part down.`);
      } else if (!state.has(t)) visit(t);
    }
    stack.pop();
    state.set(m, "done");
  };
  for (const m of [...graph.keys()].sort()) if (!state.has(m)) visit(m);
  return problems;
}

function readModules(dir: string, base = dir, files = new Map<string, string>()): Map<string, string> {
  for (const e of Deno.readDirSync(dir)) {
    const p = join(dir, e.name);
    if (e.isDirectory) readModules(p, base, files);
    else if (e.name.endsWith(".ts")) files.set(relative(base, p), Deno.readTextFileSync(p));
  }
  return files;
}

if (import.meta.main) {
  const src = fileURLToPath(new URL("../src", import.meta.url));
  const problems = importProblems(readModules(src));
  for (const p of problems) console.error(p);
  Deno.exit(problems.length ? 1 : 0);
}
