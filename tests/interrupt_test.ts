/**
 * Ctrl-C (SIGINT) or SIGTERM during a long command leaves no partial file and no lock behind: a
 * real `deno run main.ts` process on the tiny fixtures, signalled once it has started its work.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { LOCK_NAME } from "../src/cli/out_dir.ts";
import { mainProcess } from "./_helpers.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const TINY_DATA = join(root, "fixtures", "cifar10-tiny");
const DEFAULT_MODEL = join(root, "fixtures", "models", "default", "model.json");

/** Every path under `dir` (relative), or [] when `dir` does not exist. */
async function tree(dir: string): Promise<string[]> {
  const out: string[] = [];
  async function walk(at: string, rel: string) {
    for await (const e of Deno.readDir(at)) {
      out.push(rel + e.name);
      if (e.isDirectory) await walk(join(at, e.name), `${rel}${e.name}/`);
    }
  }
  await walk(dir, "").catch((e) => {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  });
  return out.sort();
}

/**
 * Start `args` with writes allowed under `dir`, wait until stderr shows `started` (the command's
 * description line, printed once the model and data are loaded), wait `afterMs`, send `signal`;
 * return the exit code and stderr.
 */
async function interrupt(
  args: string[],
  dir: string,
  started: RegExp,
  signal: Deno.Signal,
  afterMs: number,
): Promise<{ code: number; signal: string | null; stderr: string }> {
  const child = mainProcess(args, { write: dir, stdout: "null" }).spawn();
  const killer = setTimeout(() => child.kill("SIGKILL"), 120_000);
  let stderr = "";
  let signalled = false;
  const decoder = new TextDecoder();
  for await (const chunk of child.stderr) {
    stderr += decoder.decode(chunk, { stream: true });
    if (!signalled && started.test(stderr)) {
      signalled = true;
      await new Promise((r) => setTimeout(r, afterMs));
      child.kill(signal);
    }
  }
  const status = await child.status;
  clearTimeout(killer);
  return { code: status.code, signal: status.signal, stderr };
}

Deno.test("SIGINT during a sweep: exit 130, one line, the --out folder is not left behind", async () => {
  const dir = await Deno.makeTempDir({ prefix: "prunescope-int-" });
  try {
    const out = join(dir, "out", "sweep");
    // --naive on the shipped VGG: hundreds of full forward passes, far longer than the wait.
    const r = await interrupt(
      ["sweep", "--model", DEFAULT_MODEL, "--data", TINY_DATA, "--out", out, "--backend", "wasm", "--naive"],
      dir,
      /^sweep: /m,
      "SIGINT",
      1500,
    );
    assert.equal(r.code, 130, r.stderr);
    assert.match(
      r.stderr.trimEnd().split("\n").at(-1)!,
      /^prunescope: interrupted \(SIGINT\); no partial output/,
    );
    assert.deepEqual(await tree(dir), [], "nothing may be left: not the folder, not the lock");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("SIGTERM during training: exit 143, no temporary file or lock, every file whole", async () => {
  const dir = await Deno.makeTempDir({ prefix: "prunescope-term-" });
  try {
    const out = join(dir, "out");
    const r = await interrupt(
      [
        "train",
        "--data",
        TINY_DATA,
        "--out",
        out,
        "--backend",
        "wasm",
        "--width",
        "0.25",
        "--epochs",
        "50",
        "--val-size",
        "50",
      ],
      dir,
      /^train: /m,
      "SIGTERM",
      3000,
    );
    assert.equal(r.code, 143, r.stderr);
    const files = await tree(dir);
    assert.ok(!files.some((f) => f.endsWith(".tmp") || f.endsWith(LOCK_NAME)), files.join("\n"));
    for (const f of files.filter((f) => f.endsWith(".json"))) {
      JSON.parse(await Deno.readTextFile(join(dir, f)));
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
