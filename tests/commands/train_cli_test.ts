/**
 * `train --resume` through the CLI: the first line describes the checkpoint's recipe (the one
 * that runs), not the flags' defaults, and says where it resumes.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fixture, runMain } from "../_helpers.ts";

async function train(args: string[], dir: string): Promise<string> {
  const { code, stderr } = await runMain(["train", ...args], { write: dir, stdout: "null" });
  assert.equal(code, 0, stderr);
  return stderr;
}

Deno.test("train --resume: the first line is the checkpoint's recipe and its epoch", async () => {
  const dir = await Deno.makeTempDir({ prefix: "prunescope-train-" });
  try {
    const out = join(dir, "run");
    const common = ["--data", fixture("cifar10-tiny"), "--out", out, "--backend", "wasm", "--val-size", "50"];
    const first = await train([...common, "--width", "0.125", "--epochs", "1", "--limit", "150"], dir);
    assert.match(first, /^train: VGG-16 width 0\.125, 1 epochs, batch 128, 100 training \+ 50 validation/m);
    // Flags that differ from the checkpoint's recipe do not change what runs, nor the first line.
    const again = await train([
      ...common,
      "--resume",
      "--arch",
      "resnet20",
      "--epochs",
      "9",
      "--limit",
      "150",
    ], dir);
    assert.match(
      again,
      /^train: VGG-16 width 0\.125, 1 epochs, .*; resuming after epoch 1 \(the checkpoint's recipe\)$/m,
    );
    const state = JSON.parse(await Deno.readTextFile(join(out, "checkpoint", "state.json")));
    assert.equal(state.epochsDone, 1);
    assert.equal(state.recipe.width, 0.125);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
