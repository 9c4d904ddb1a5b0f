/** Training: the loss falls on learnable synthetic data, checkpoints resume, and the saved model round-trips. */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { join } from "node:path";
import { setupBackend } from "../../src/backend.ts";
import { decodeRecords } from "../../src/data/cifar10.ts";
import { syntheticCifar } from "../../src/data/synthetic.ts";
import { loadModel } from "../../src/model/load.ts";
import { fileSaver } from "../../src/model/tfjs_io.ts";
import {
  DEFAULT_RECIPE,
  evaluateLoss,
  learningRate,
  totalEpochs,
  train,
  type TrainRecipe,
} from "../../src/train/trainer.ts";
import { oneCycle } from "../../src/train/schedule.ts";
import { gatherBatch } from "../../src/train/augment.ts";
import { mulberry32 } from "../../src/core/random.ts";

const recipe: TrainRecipe = {
  ...DEFAULT_RECIPE,
  width: 0.0625,
  epochs: 3,
  batch: 32,
  valSize: 64,
  peakLr: 0.05,
  blockDropout: 0,
  denseDropout: 0,
};

Deno.test("training on synthetic CIFAR: loss falls, resume continues, save -> load -> evaluate round-trips", async () => {
  await setupBackend("wasm");
  const data = decodeRecords(syntheticCifar(480, 11), "synthetic");
  const dir = await Deno.makeTempDir();
  try {
    const stepLosses: number[] = [];
    // Two epochs, then "interrupted"; a resumed run finishes the third from the checkpoint.
    await train({
      recipe: { ...recipe, epochs: 3 },
      data,
      outDir: dir,
      resume: false,
      hooks: {
        onStep: (_e, _s, _n, loss) => stepLosses.push(loss),
        onEpoch: (log) => {
          if (log.epoch === 2) throw new Error("stop after epoch 2");
        },
      },
    }).catch((e) => {
      if (!String(e).includes("stop after epoch 2")) throw e;
    });
    // The hook threw before epoch 2's checkpoint: the checkpoint holds epoch 1.
    const state1 = JSON.parse(await Deno.readTextFile(join(dir, "checkpoint", "state.json")));
    if (state1.epochsDone !== 1) throw new Error(`checkpoint has ${state1.epochsDone} epochs`);
    const resumed = await train({ recipe, data, outDir: dir, resume: true });
    if (resumed.history.length !== 3) throw new Error(`history has ${resumed.history.length} epochs`);
    const [first, , last] = resumed.history;
    if (!(last.trainLoss < first.trainLoss)) {
      throw new Error(`loss did not fall: ${first.trainLoss} -> ${last.trainLoss}`);
    }
    if (!(stepLosses.at(-1)! < stepLosses[0])) throw new Error(`step loss did not fall: ${stepLosses}`);

    const test = decodeRecords(syntheticCifar(128, 99), "synthetic test");
    const before = await evaluateLoss(resumed.model, test, resumed.preprocessing);
    const meta = { prunescope: { preprocessing: resumed.preprocessing } };
    await resumed.model.save(fileSaver(join(dir, "model"), meta));
    const loaded = await loadModel(join(dir, "model", "model.json"));
    if (JSON.stringify(loaded.preprocessing) !== JSON.stringify(resumed.preprocessing)) {
      throw new Error("preprocessing metadata did not round-trip");
    }
    const after = await evaluateLoss(loaded.model, test, loaded.preprocessing);
    if (before.accuracy !== after.accuracy || Math.abs(before.loss - after.loss) > 1e-6) {
      throw new Error(
        `round trip changed the evaluation: ${JSON.stringify(before)} vs ${JSON.stringify(after)}`,
      );
    }
    resumed.model.dispose();
    loaded.model.dispose();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("one-cycle schedule: warm-up to the peak at 30%, then anneal to peak/25e4", () => {
  const total = 1000, peak = 0.05;
  const at = (s: number) => oneCycle(s, total, peak);
  if (Math.abs(at(0) - peak / 25) > 1e-12) throw new Error(`start ${at(0)}`);
  if (Math.abs(at(300) - peak) > 1e-12) throw new Error(`peak ${at(300)}`);
  if (Math.abs(at(1000) - peak / 25 / 1e4) > 1e-12) throw new Error(`end ${at(1000)}`);
  for (let s = 1; s <= 300; s++) if (!(at(s) >= at(s - 1))) throw new Error(`not rising at ${s}`);
  for (let s = 301; s <= 1000; s++) if (!(at(s) <= at(s - 1))) throw new Error(`not falling at ${s}`);
});

Deno.test("augmentation: a zero shift without flip copies the image; a flip mirrors it; shifts pad with zeros", () => {
  const img = new Uint8Array(3072).map((_, i) => (i * 7) % 251);
  const same = gatherBatch(img, [0], false, mulberry32(1));
  if (same.some((v, i) => v !== img[i])) throw new Error("no-augment copy differs");
  // rand() sequence picks dy, dx, flip: force dy = dx = 0 (0.5 -> 4 - 4) and flip (0.1 < 0.5).
  const seq = [0.5, 0.5, 0.1];
  const flipped = gatherBatch(img, [0], true, () => seq.shift()!);
  for (let y = 0; y < 32; y++) {
    for (let x = 0; x < 32; x++) {
      for (let c = 0; c < 3; c++) {
        if (flipped[(y * 32 + x) * 3 + c] !== img[(y * 32 + 31 - x) * 3 + c]) {
          throw new Error(`flip wrong at ${y},${x}`);
        }
      }
    }
  }
  const seq2 = [0, 0.5, 0.9]; // dy = -4, dx = 0, no flip: the top 4 rows are zero padding
  const shifted = gatherBatch(img, [0], true, () => seq2.shift()!);
  if (shifted.subarray(0, 4 * 32 * 3).some((v) => v !== 0)) throw new Error("padding rows not zero");
  if (shifted[(4 * 32) * 3] !== img[0]) throw new Error("row 4 should be the image's row 0");
});

Deno.test("training leaks no tensors per step", async () => {
  await setupBackend("wasm");
  const data = decodeRecords(syntheticCifar(160, 5), "synthetic");
  const dir = await Deno.makeTempDir();
  try {
    const counts: number[] = [];
    const r = await train({
      recipe: { ...recipe, epochs: 1, valSize: 32 },
      data,
      outDir: dir,
      resume: false,
      hooks: { onStep: () => counts.push(tf.memory().numTensors) },
    });
    if (counts.length < 3 || counts.some((c) => c !== counts[0])) {
      throw new Error(`tensor counts per step: ${counts}`);
    }
    r.model.dispose();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("extra cycles: --extend adds a short one-cycle after the main one, and a finished run resumes into it", async () => {
  const r: TrainRecipe = { ...recipe, epochs: 2, extraCycles: [{ epochs: 1, peakLr: 0.005 }] };
  if (totalEpochs(r) !== 3) throw new Error(`total ${totalEpochs(r)}`);
  const spe = 10;
  if (learningRate(r, 1, 9, spe) !== oneCycle(19, 20, r.peakLr)) throw new Error("main cycle");
  if (learningRate(r, 2, 0, spe) !== oneCycle(0, 10, 0.005)) throw new Error("extra cycle start");
  if (learningRate(r, 2, 3, spe) !== oneCycle(3, 10, 0.005)) throw new Error("extra cycle");

  await setupBackend("wasm");
  const data = decodeRecords(syntheticCifar(160, 5), "synthetic");
  const dir = await Deno.makeTempDir();
  try {
    const first = await train({
      recipe: { ...recipe, epochs: 1, valSize: 32 },
      data,
      outDir: dir,
      resume: false,
    });
    first.model.dispose();
    const more = await train({ recipe, data, outDir: dir, resume: true, extend: { epochs: 1 } });
    if (more.history.length !== 2) throw new Error(`history ${more.history.length}`);
    if (
      JSON.stringify(more.recipe.extraCycles) !== JSON.stringify([{ epochs: 1, peakLr: recipe.peakLr / 10 }])
    ) {
      throw new Error(`extra cycles ${JSON.stringify(more.recipe.extraCycles)}`);
    }
    more.model.dispose();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("--dropout B,D: two rates in [0, 1) reach the model's dropout layers; anything else is a UserError", async () => {
  const { parseDropout } = await import("../../src/commands/train.ts");
  const { buildVgg } = await import("../../src/model/vgg.ts");
  const { UserError } = await import("../../src/core/errors.ts");
  assert.deepEqual(parseDropout(undefined), undefined);
  const [block, dense] = parseDropout("0.05, 0.15")!;
  assert.deepEqual([block, dense], [0.05, 0.15]);
  for (const bad of ["1,2", "0.1", "0.1,0.2,0.3", "a,b", "-0.1,0.2"]) {
    assert.throws(
      () => parseDropout(bad),
      (e: unknown) => e instanceof UserError && e.message.includes("--dropout"),
    );
  }
  const model = buildVgg({ width: 0.0625, blockDropout: block, denseDropout: dense });
  const rates = model.layers.filter((l) => l.getClassName() === "Dropout").map((l) =>
    (l.getConfig() as { rate: number }).rate
  );
  assert.deepEqual(rates, [0.05, 0.05, 0.05, 0.05, 0.05, 0.15, 0.15, 0.15]);
  model.dispose();
});

Deno.test("train: an unknown flag or a bad number is one UserError naming it, before any work", async () => {
  const { run } = await import("../../src/commands/train.ts");
  const { UserError } = await import("../../src/core/errors.ts");
  for (
    const [args, text] of [[["--bogus"], "--bogus"], [["--epochs", "0"], "--epochs"], [
      ["--dropout", "0.5"],
      "--dropout",
    ]]
  ) {
    await assert.rejects(
      run(args as string[]),
      (e: unknown) => e instanceof UserError && e.message.includes(text as string),
    );
  }
});
