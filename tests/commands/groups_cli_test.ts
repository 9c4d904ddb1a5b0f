/**
 * `sweep` on a residual model end to end (ResNet-20 layout, seeded random weights, saved as a
 * TF.js model): `--layer` on a coupled conv sweeps its whole group and names every member; a
 * block's first conv (its shortcut crosses the cut) sweeps as one layer; a criterion with no
 * group score yet (taylor) is one line; the model exported to a Functional Keras .h5 (Add,
 * GlobalAveragePooling2D) by our writer sweeps to the same counts.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { setupBackend } from "../../src/backend.ts";
import { buildResnet20 } from "../../src/model/resnet.ts";
import { fileSaver } from "../../src/model/tfjs_io.ts";
import { writeKerasH5 } from "../../src/model/keras/h5_writer.ts";
import { loadModel } from "../../src/model/load.ts";
import { modelCost } from "../../src/surgery/cost.ts";
import { fixture, mainInProcess, randomize, withTempDir } from "../_helpers.ts";

Deno.test("sweep CLI: a coupled conv sweeps its group; a block's first conv sweeps alone", async () => {
  await withTempDir(async (dir) => {
    await setupBackend("wasm");
    const model = buildResnet20({ seed: 2 });
    randomize(model, 4, 2);
    await model.save(fileSaver(join(dir, "resnet")));
    // The same model as a Functional Keras 2 .h5 (Add, GlobalAveragePooling2D), written by our writer.
    await Deno.writeFile(join(dir, "resnet20.h5"), await writeKerasH5(model));
    model.dispose();
    const common = [
      "--model",
      join(dir, "resnet", "model.json"),
      "--data",
      fixture("cifar10-tiny"),
      "--limit",
      "12",
    ];

    const bad = await mainInProcess([
      "sweep",
      ...common,
      "--layer",
      "stage3_block2_conv2",
      "--criterion",
      "taylor",
      "--out",
      join(dir, "x"),
    ]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr.join("\n"), /criterion taylor has no group score yet .*stage3_block1_conv2\+/);

    const out = join(dir, "group");
    const ok = await mainInProcess([
      "sweep",
      ...common,
      "--layer",
      "stage3_block2_conv2",
      "--criterion",
      "mean,l1",
      "--k",
      "0,16,64",
      "--out",
      out,
    ]);
    assert.equal(ok.code, 0, ok.stderr.join("\n"));
    const result = JSON.parse(await Deno.readTextFile(join(out, "sweep.json")));
    assert.deepEqual(result.members, [
      "stage3_block1_conv2",
      "stage3_block1_proj",
      "stage3_block2_conv2",
      "stage3_block3_conv2",
    ]);
    assert.equal(result.layer, result.members.join("+"));
    assert.deepEqual(result.results.map((p: { k: number }) => p.k), [0, 16, 64]);

    const plain = join(dir, "plain");
    const one = await mainInProcess([
      "sweep",
      ...common,
      "--layer",
      "stage2_block2_conv1",
      "--k",
      "0,8,32",
      "--out",
      plain,
    ]);
    assert.equal(one.code, 0, one.stderr.join("\n"));
    const single = JSON.parse(await Deno.readTextFile(join(plain, "sweep.json")));
    assert.equal(single.layer, "stage2_block2_conv1");
    assert.equal(single.members, undefined);

    // The .h5 sweeps end to end to the same counts as the TF.js copy.
    const h5 = join(dir, "h5");
    const fromH5 = await mainInProcess([
      "sweep",
      "--model",
      join(dir, "resnet20.h5"),
      ...common.slice(2),
      "--layer",
      "stage2_block2_conv1",
      "--k",
      "0,8,32",
      "--out",
      h5,
    ]);
    assert.equal(fromH5.code, 0, fromH5.stderr.join("\n"));
    const again = JSON.parse(await Deno.readTextFile(join(h5, "sweep.json")));
    assert.deepEqual(
      again.results.map((p: { correct: number }) => p.correct),
      single.results.map((p: { correct: number }) => p.correct),
    );
  });
});

Deno.test("prune CLI: --k and --max-drop on a coupled group remove the channels from every member; the .h5 input too", async () => {
  await withTempDir(async (dir) => {
    await setupBackend("wasm");
    const model = buildResnet20({ seed: 6 });
    randomize(model, 7, 2);
    await model.save(fileSaver(join(dir, "resnet")));
    await Deno.writeFile(join(dir, "resnet20.h5"), await writeKerasH5(model));
    const before = modelCost(model);
    model.dispose();
    const members = [
      "stage2_block1_conv2",
      "stage2_block1_proj",
      "stage2_block2_conv2",
      "stage2_block3_conv2",
    ];
    const common = ["--data", fixture("cifar10-tiny"), "--limit", "12", "--latency-runs", "0"];
    for (
      const [name, path, select] of [
        ["k", join(dir, "resnet", "model.json"), ["--k", "12"]],
        ["max-drop", join(dir, "resnet20.h5"), ["--max-drop", "10"]],
      ] as const
    ) {
      const out = join(dir, `out-${name}`);
      const run = await mainInProcess([
        "prune",
        "--model",
        path,
        "--layer",
        "stage2_block2_conv2",
        ...select,
        "--criterion",
        "l1",
        ...common,
        "--out",
        out,
      ]);
      assert.equal(run.code, 0, run.stderr.join("\n"));
      const report = JSON.parse(await Deno.readTextFile(join(out, "compression.json")));
      assert.deepEqual(report.layers.map((l: { layer: string }) => l.layer), members);
      const k = report.selection.k.stage2_block2_conv2;
      if (name === "k") assert.equal(k, 12);
      else assert.ok(k > 0 && k < 32, `--max-drop chose K = ${k}`);
      const after = report.layers[0].channelsAfter;
      for (const l of report.layers) {
        assert.equal(report.selection.k[l.layer], k);
        assert.equal(l.channelsAfter, after);
      }
      assert.equal(report.check.slimEqualsMasked, true);
      assert.equal(report.after.correct, report.masked.correct);
      // The slim model reloads with the channels gone from every member, the BN and the consumers.
      const slim = (await loadModel(join(out, "model", "model.json"))).model;
      assert.equal(slim.countParams(), report.after.parameters);
      for (const m of members) assert.equal(slim.getLayer(m).getWeights()[0].shape[3], after);
      assert.equal(slim.getLayer("stage3_block1_conv1").getWeights()[0].shape[2], after);
      const cost = modelCost(slim);
      assert.equal(cost.multiplyAdds, report.after.multiplyAdds);
      if (after < 32) assert.ok(cost.multiplyAdds < before.multiplyAdds);
      slim.dispose();
    }
  });
});
