import assert from "node:assert/strict";
import { join } from "node:path";
import { main } from "../../main.ts";
import { setupBackend } from "../../src/backend.ts";
import { loadTestSet, loadTrainSet } from "../../src/data/cifar10.ts";
import { evaluate } from "../../src/model/evaluate.ts";
import { loadModel } from "../../src/model/load.ts";
import { modelCost } from "../../src/surgery/cost.ts";
import { maskedAccuracy } from "../../src/surgery/plan.ts";
import { trainValSets } from "../../src/train/trainer.ts";
import type { CompressRecord } from "../../src/report/compress_report.ts";
import type { ParetoRow } from "../../src/surgery/plan.ts";
import { fixture, ihdr, withTempDir } from "../_helpers.ts";

await setupBackend("wasm");

const MODEL = fixture("models/tiny-bn/model.json");
const DATA = fixture("cifar10-tiny");
const base = (out: string) => [
  "compress",
  "--model",
  MODEL,
  "--data",
  DATA,
  "--backend",
  "wasm",
  "--val-size",
  "200",
  "--steps",
  "4",
  "--limit",
  "100",
  "--latency-runs",
  "1",
  "--pareto",
  "0.8,0.5",
  "--out",
  out,
];

const readJson = async <T>(p: string) => JSON.parse(await Deno.readTextFile(p)) as T;

Deno.test("compress --target-macs: the budget met, every figure reproduced from the written models", async () => {
  await withTempDir(async (dir) => {
    const out = join(dir, "out");
    await main([...base(out), "--target-macs", "0.6", "--finetune-epochs", "0"]);
    const r = await readJson<CompressRecord>(join(out, "compress.json"));
    const source = await loadModel(MODEL);
    const test = await loadTestSet(DATA, 100);
    // Costs: before from the source, after from the written model; the budget is kept.
    assert.equal(r.before.macs, modelCost(source.model).multiplyAdds);
    for (const file of [join(out, "model", "model.json"), join(out, "model.h5")]) {
      const written = await loadModel(file);
      assert.equal(modelCost(written.model).multiplyAdds, r.after.macs, file);
      assert.equal(written.model.countParams(), r.after.params, file);
      // No fine-tune: the written model is the pruned one, and scores testAccuracy.pruned.
      const { correct } = await evaluate(written.model, test, written.preprocessing);
      assert.equal(correct / test.count, r.testAccuracy.pruned, file);
      written.model.dispose();
    }
    assert.ok(r.after.macs <= 0.6 * r.before.macs);
    assert.deepEqual(r.predicted, r.after);
    assert.equal(r.macsRemovedFraction, 1 - r.after.macs / r.before.macs);
    assert.equal(r.paramsRemovedFraction, 1 - r.after.params / r.before.params);
    assert.equal(r.testAccuracy.after, r.testAccuracy.pruned);
    assert.equal(r.finetuneEpochs, 0);
    assert.ok(r.check.slimEqualsMasked);
    const { correct: before } = await evaluate(source.model, test, source.preprocessing);
    assert.equal(r.testAccuracy.before, before / test.count);
    // The plan was chosen on the validation split of the training files: re-measure it there.
    const { val } = trainValSets(await loadTrainSet(DATA), 200, 1);
    const removals = r.units.filter((u) => u.k > 0).map((u) => ({ layer: u.layers[0], channels: u.pruned }));
    assert.ok(removals.length > 0);
    const onVal = await maskedAccuracy(source.model, removals, val, source.preprocessing, 50, "val");
    assert.equal(onVal.accuracy, r.validation.plan);
    assert.equal(r.validation.images, 200);
    assert.match(r.method, /validation images of the training files/);
    assert.ok(r.uniform.ratio > 0 && r.uniform.ratio < 1);
    for (const key of ["batch1", "batch256"] as const) {
      assert.ok(r.latencyMs.before[key]! > 0 && r.latencyMs.after[key]! > 0);
    }
    // The Pareto files: both methods at both budgets, each within its budget.
    const pareto = await readJson<{ before: number; rows: ParetoRow[] }>(join(out, "pareto.json"));
    assert.deepEqual(pareto.rows.map((x) => `${x.budget} ${x.method}`), [
      "0.8 sensitivity",
      "0.8 uniform",
      "0.5 sensitivity",
      "0.5 uniform",
    ]);
    for (const row of pareto.rows) assert.ok(row.macsKept <= row.budget + 1e-12);
    const csv = (await Deno.readTextFile(join(out, "pareto.csv"))).trim().split("\n");
    assert.equal(csv.length, 5);
    assert.ok(ihdr(await Deno.readFile(join(out, "pareto.png"))).width > 200);
    assert.match(await Deno.readTextFile(join(out, "pareto.svg")), /multiply-adds kept/);
    const html = await Deno.readTextFile(join(out, "report.html"));
    assert.match(html, /Test accuracy against multiply-adds/);
    assert.match(html, /Pareto points/);
    // The Pareto row at the main budget's neighbour: its pruned accuracy is in [0, 1], no fine-tune ran.
    assert.ok(pareto.rows.every((x) => x.testPruned >= 0 && x.testPruned <= 1 && x.testAfter === null));
    source.model.dispose();
  });
});

Deno.test("compress --max-drop 0 with fine-tuning: validation drop within the budget, recovery written", async () => {
  await withTempDir(async (dir) => {
    const out = join(dir, "out");
    await main([
      ...base(out),
      "--max-drop",
      "0",
      "--finetune-epochs",
      "1",
      "--train-limit",
      "256",
      "--pareto-epochs",
      "0",
    ]);
    const r = await readJson<CompressRecord>(join(out, "compress.json"));
    assert.ok(r.validation.before - r.validation.plan <= 1e-12, "the plan keeps validation accuracy");
    assert.equal(r.budget.maxDrop, 0);
    assert.match(r.method, /bisect/);
    assert.equal(r.finetuneEpochs, 1);
    assert.equal(r.finetune!.trainImages, 256);
    assert.equal(r.finetune!.history.length, 1);
    assert.equal(r.testAccuracy.after, r.finetune!.history[0].evalAccuracy);
    // The written model is the fine-tuned one.
    const written = await loadModel(join(out, "model.h5"));
    const test = await loadTestSet(DATA, 100);
    const { correct } = await evaluate(written.model, test, written.preprocessing);
    assert.equal(correct / test.count, r.testAccuracy.after);
    written.model.dispose();
    assert.ok(ihdr(await Deno.readFile(join(out, "recovery.png"))).width > 200);
  });
});
