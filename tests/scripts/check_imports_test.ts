import assert from "node:assert/strict";
import { importProblems, relativeImports, stageOf } from "../../scripts/check_imports.ts";

Deno.test("check_imports: an import up the stages and each cycle are one line each; src/ itself has none", async () => {
  const files = new Map([
    ["model/a.ts", 'import { b } from "./b.ts";\nimport type { S } from "../sweep/s.ts";'],
    ["model/b.ts", 'export { a } from "./a.ts";'],
    ["sweep/s.ts", 'import { c } from "../core/c.ts";\nconst m = await import("../model/a.ts");'],
    ["core/c.ts", "export const c = 1;"],
  ]);
  const problems = importProblems(files);
  assert.deepEqual(problems.length, 3, problems.join("\n"));
  assert.match(
    problems[0],
    /^src\/model\/a\.ts imports src\/sweep\/s\.ts: model\/ may not import from sweep\//,
  );
  assert.deepEqual(
    problems[1].split(";")[0],
    "import cycle: src/model/a.ts -> src/model/b.ts -> src/model/a.ts",
  );

  const cmd = new Deno.Command("deno", {
    args: ["run", "--quiet", "--allow-read=src", "scripts/check_imports.ts"],
    stdout: "piped",
    stderr: "piped",
  });
  const { code, stderr } = await cmd.output();
  assert.deepEqual(new TextDecoder().decode(stderr), "");
  assert.deepEqual(code, 0);
});

Deno.test("check_imports: every form of relative import is read, stages by top folder", () => {
  const text = [
    'import * as tf from "@tensorflow/tfjs";',
    'import { a } from "./a.ts";',
    'import type { B } from "../b.ts";',
    'export { c } from "./c.ts";',
    'import "./side.ts";',
    'const d = await import("./d.ts");',
    "import {",
    "  e,",
    '} from "./e.ts";',
  ].join("\n");
  assert.deepEqual(relativeImports(text), ["./a.ts", "../b.ts", "./c.ts", "./side.ts", "./d.ts", "./e.ts"]);
  assert.deepEqual(stageOf("core/errors.ts"), 0);
  assert.deepEqual(stageOf("types.ts"), 0);
  assert.deepEqual(stageOf("sweep/engines/pool.ts"), stageOf("sweep/engine.ts"));
  assert.deepEqual(stageOf("nowhere/x.ts"), -1);
});
