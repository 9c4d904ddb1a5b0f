/**
 * The sweep command end to end: bad input gives one clear line, exit code 1 and no file in --out;
 * good input writes every promised file; and on ../shared (when present) a real third-party model.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs";
import { fileSaver } from "../../src/model/tfjs_io.ts";
import { setupBackend } from "../../src/backend.ts";
import { fixture, mainInProcess, runMain, SHARED } from "../_helpers.ts";

const TINY_MODEL = fixture("models/tiny-bn/model.json");
const TINY_DATA = fixture("cifar10-tiny");
const hasShared = await Deno.stat(join(SHARED, "cifar10", "test_batch.bin")).then(() => true, () => false);

async function filesIn(dir: string): Promise<string[]> {
  try {
    return (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();
  } catch {
    return [];
  }
}

/** Copy the tiny data set into a temp folder, with `test_batch.bin` replaced by `mutate(bytes)`. */
async function dataWith(mutate: (b: Uint8Array) => Uint8Array | null): Promise<string> {
  const dir = await Deno.makeTempDir();
  const bytes = await Deno.readFile(join(TINY_DATA, "test_batch.bin"));
  const changed = mutate(bytes.slice());
  if (changed) await Deno.writeFile(join(dir, "test_batch.bin"), changed);
  return dir;
}

/** Copy the tiny model into a temp folder, letting `edit` change model.json and the shard. */
async function modelWith(edit: (dir: string) => Promise<void>): Promise<string> {
  const dir = await Deno.makeTempDir();
  await Deno.copyFile(TINY_MODEL, join(dir, "model.json"));
  await Deno.copyFile(join(fixture("models/tiny-bn"), "weights.bin"), join(dir, "weights.bin"));
  await edit(dir);
  return join(dir, "model.json");
}

/** `sweep` of `model` on the tiny data into `out` with wasm, plus `extra` flags. */
function sweepArgs(model: string, out: string, ...extra: string[]): string[] {
  return ["sweep", "--model", model, "--data", TINY_DATA, "--out", out, "--backend", "wasm", ...extra];
}

async function expectOneLineFailure(args: string[], pattern: RegExp): Promise<void> {
  const out = await Deno.makeTempDir();
  const { code, stderr } = await mainInProcess([
    "sweep",
    "--backend",
    "wasm",
    "--out",
    join(out, "run"),
    ...args,
  ]);
  const errors = stderr.filter((l) => l.startsWith("prunescope"));
  assert.equal(code, 1, `exit code for ${args.join(" ")}: ${stderr.join("\n")}`);
  assert.equal(errors.length, 1, `one error line expected, got:\n${stderr.join("\n")}`);
  assert.ok(!errors[0].includes("\n"), "the error is one line");
  assert.match(errors[0], pattern);
  assert.deepEqual(await filesIn(join(out, "run")), [], "no file may be left in --out");
  await Deno.remove(out, { recursive: true });
}

Deno.test("sweep: missing test_batch.bin names the file and the three ways to supply data", async () => {
  const data = await dataWith(() => null);
  await expectOneLineFailure(
    ["--model", TINY_MODEL, "--data", data],
    /test_batch\.bin.*(--data|CIFAR10_DIR|fetch-data)/,
  );
});

Deno.test("sweep: a truncated test_batch.bin is refused", async () => {
  const data = await dataWith((b) => b.subarray(0, 3073 * 10 - 7));
  await expectOneLineFailure(["--model", TINY_MODEL, "--data", data], /test_batch\.bin.*3,073-byte/);
});

Deno.test("sweep: a test_batch.bin with one byte too many is refused", async () => {
  const data = await dataWith((b) => {
    const c = new Uint8Array(b.length + 1);
    c.set(b);
    return c;
  });
  await expectOneLineFailure(["--model", TINY_MODEL, "--data", data], /not a whole number/);
});

Deno.test("sweep: a label outside 0..9 is refused", async () => {
  const data = await dataWith((b) => {
    b[3073 * 5] = 42;
    return b;
  });
  await expectOneLineFailure(["--model", TINY_MODEL, "--data", data], /record 5 has label 42/);
});

Deno.test("sweep: a model.json that is not JSON is refused", async () => {
  const model = await modelWith((d) => Deno.writeTextFile(join(d, "model.json"), "{ not json"));
  await expectOneLineFailure(["--model", model, "--data", TINY_DATA], /not valid JSON/);
});

Deno.test("sweep: a JSON file that is not a LayersModel is refused", async () => {
  const model = await modelWith((d) => Deno.writeTextFile(join(d, "model.json"), '{"hello": 1}'));
  await expectOneLineFailure(["--model", model, "--data", TINY_DATA], /modelTopology/);
});

Deno.test("sweep: a missing weight shard is named", async () => {
  const model = await modelWith((d) => Deno.remove(join(d, "weights.bin")));
  await expectOneLineFailure(["--model", model, "--data", TINY_DATA], /weight shard missing.*weights\.bin/);
});

Deno.test("sweep: a truncated weight shard is refused", async () => {
  const model = await modelWith(async (d) => {
    const w = await Deno.readFile(join(d, "weights.bin"));
    await Deno.writeFile(join(d, "weights.bin"), w.subarray(0, w.length - 8));
  });
  await expectOneLineFailure(["--model", model, "--data", TINY_DATA], /truncated/);
});

Deno.test("sweep: a model file that does not exist is named", async () => {
  await expectOneLineFailure(
    ["--model", "/nonexistent/model.json", "--data", TINY_DATA],
    /not found.*nonexistent/,
  );
});

Deno.test("sweep: an unknown --layer lists the conv layers", async () => {
  await expectOneLineFailure(["--model", TINY_MODEL, "--data", TINY_DATA, "--layer", "nope"], /nope.*conv/i);
});

Deno.test("sweep: a --layer that is not a conv layer is refused", async () => {
  await setupBackend("wasm");
  const { loadModel } = await import("../../src/model/load.ts");
  const dense = (await loadModel(TINY_MODEL)).model.layers.find((l) => l.getClassName() === "Dense")!.name;
  await expectOneLineFailure(
    ["--model", TINY_MODEL, "--data", TINY_DATA, "--layer", dense],
    /not a Conv2D|Conv2D/,
  );
});

Deno.test("sweep: a model whose input differs from the data's is refused in one line", async () => {
  await setupBackend("wasm");
  const m = tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [28, 28, 1], filters: 4, kernelSize: 3 }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 10, activation: "softmax" }),
    ],
  });
  const dir = await Deno.makeTempDir();
  await m.save(fileSaver(dir));
  m.dispose();
  await expectOneLineFailure(
    ["--model", join(dir, "model.json"), "--data", TINY_DATA],
    /the model expects 28x28x1 -> 10, the data .* is 32x32x3 with 10 classes/,
  );
});

Deno.test("sweep: bad flags are one line too", async () => {
  await expectOneLineFailure(["--model", TINY_MODEL, "--data", TINY_DATA, "--batch", "0"], /--batch/);
  await expectOneLineFailure(["--model", TINY_MODEL, "--data", TINY_DATA, "--k", "0,999"], /999/);
  await expectOneLineFailure(["--model", TINY_MODEL, "--data", TINY_DATA, "--backend", "tpu"], /backend/);
  await expectOneLineFailure(["--model", TINY_MODEL, "--data", TINY_DATA, "--bogus"], /bogus/);
});

Deno.test("sweep CLI process: exit code 1, one stderr line, no stack trace", async () => {
  const out = await Deno.makeTempDir();
  const r = await runMain([
    "sweep",
    "--model",
    "/no/model.json",
    "--data",
    TINY_DATA,
    "--out",
    join(out, "run"),
  ], { write: out });
  const stderr = r.stderr.trim().split("\n");
  assert.equal(r.code, 1);
  assert.equal(stderr.length, 1, stderr.join("\n"));
  assert.match(stderr[0], /^prunescope sweep: model file not found: \/no\/model\.json/);
  assert.deepEqual(await filesIn(join(out, "run")), []);
  await Deno.remove(out, { recursive: true });
});

Deno.test("sweep: a good run writes every promised file, and sweep.csv agrees with sweep.json", async () => {
  const out = await Deno.makeTempDir();
  const { code } = await mainInProcess(sweepArgs(TINY_MODEL, out));
  assert.equal(code, 0);
  assert.deepEqual(
    (await filesIn(out)).filter((f) => !f.startsWith("sweep_")),
    [
      "accuracy.png",
      "accuracy.svg",
      ...[0, 9].flatMap((k) => ["csv", "json", "png", "svg"].map((e) => `confusion_k${k}.${e}`)),
      "featuremap_0.png",
      "featuremaps.json",
      "featuremaps.png",
      "ranking.csv",
      "report.html",
      "sweep.csv",
      "sweep.json",
    ],
  );
  const json = JSON.parse(await Deno.readTextFile(join(out, "sweep.json")));
  // K = 9 is the 1-point K here; each confusion matrix counts every image once, and its
  // diagonal (counted by zeroing weights) is the sweep's correct count at its K.
  for (const k of [0, 9]) {
    const m = JSON.parse(await Deno.readTextFile(join(out, `confusion_k${k}.json`)));
    assert.equal(m.counts.flat().reduce((s: number, x: number) => s + x, 0), 200);
    assert.equal(
      m.counts.reduce((s: number, row: number[], i: number) => s + row[i], 0),
      json.results[k].correct,
    );
    const csv = (await Deno.readTextFile(join(out, `confusion_k${k}.csv`))).trim().split("\n");
    assert.equal(csv.length, 11);
    assert.equal(csv[0].split(",").length, 13);
  }
  const csv = (await Deno.readTextFile(join(out, "sweep.csv"))).trim().split("\n");
  assert.equal(csv[0], "k,channel_pruned_at_k,accuracy,correct,total");
  assert.equal(csv.length - 1, json.channels + 1);
  for (const [i, line] of csv.slice(1).entries()) {
    const [k, , acc, correct, total] = line.split(",");
    assert.equal(Number(k), i);
    assert.equal(Number(correct), json.results[i].correct);
    assert.equal(Number(total), 200);
    assert.equal(Number(acc), Number(correct) / 200);
  }
  assert.equal(json.baselineAccuracy, json.results[0].accuracy);
  assert.equal(json.results[json.channels].channelPrunedAtK !== null, true);
  await Deno.remove(out, { recursive: true });
});

Deno.test({
  name:
    "sweep on ../shared: the TF.js model from the wild, 1,000 real test images, fast equals --naive at K = 0, 32, 64",
  ignore: !hasShared,
  fn: async () => {
    const model = join(SHARED, "models", "tfjs-cnn-zz632893783", "model.json");
    const data = join(SHARED, "cifar10");
    const fast = await Deno.makeTempDir(), naive = await Deno.makeTempDir();
    const common = ["--model", model, "--data", data, "--limit", "1000", "--backend", "wasm"];
    assert.equal((await mainInProcess(["sweep", ...common, "--out", fast])).code, 0);
    assert.equal(
      (await mainInProcess(["sweep", ...common, "--out", naive, "--naive", "--k", "0,32,64"])).code,
      0,
    );
    const f = JSON.parse(await Deno.readTextFile(join(fast, "sweep.json")));
    const n = JSON.parse(await Deno.readTextFile(join(naive, "sweep.json")));
    assert.equal(f.channels, 64);
    assert.equal(f.results.length, 65);
    for (const p of n.results) assert.equal(p.correct, f.results[p.k].correct, `K = ${p.k}`);
    assert.ok(f.baselineAccuracy > 0.6 && f.baselineAccuracy < 0.75, `baseline ${f.baselineAccuracy}`);
    await Deno.remove(fast, { recursive: true });
    await Deno.remove(naive, { recursive: true });
  },
});

Deno.test("sweep --engine on the shipped VGG: the default (auto), dense-kernel and algebra give the counts of --workers 1 --engine exact for every K, per class too; refused where they do not apply", async () => {
  const model = fixture("models/default/model.json");
  const counts = async (extra: string[]) => {
    const out = await Deno.makeTempDir();
    const { code, stderr } = await mainInProcess(sweepArgs(model, out, ...extra));
    assert.equal(code, 0, stderr.join("\n"));
    const json = JSON.parse(await Deno.readTextFile(join(out, "sweep.json")));
    await Deno.remove(out, { recursive: true });
    type Point = { correct: number; classCorrect: number[] };
    return {
      engine: json.engine,
      workers: json.workers,
      chosen: json.chosen,
      correct: json.results.map((r: Point) => r.correct),
      classCorrect: json.results.map((r: Point) => r.classCorrect),
    };
  };
  const exact = await counts(["--workers", "1", "--engine", "exact"]);
  const auto = await counts([]);
  const algebra = await counts(["--engine", "algebra"]);
  const kernel = await counts(["--dense-kernel", "--workers", "2"]); // the old flag, an alias
  assert.equal(exact.engine, "exact");
  assert.equal(exact.chosen.engine, "flag");
  // Its Dense head (0.43 M weights) is too small for the kernel to pay: auto runs exact.
  assert.equal(auto.engine, "exact");
  assert.match(
    auto.chosen.engine,
    /^auto: the Dense head after block5_conv3 \(0\.43 M weights\) is too small/,
  );
  assert.match(auto.chosen.workers, /^auto: /);
  assert.deepEqual(auto.correct, exact.correct);
  assert.deepEqual(auto.classCorrect, exact.classCorrect);
  assert.equal(exact.classCorrect[0].length, 10);
  assert.deepEqual(kernel.classCorrect, exact.classCorrect);
  assert.equal(algebra.engine, "algebra");
  assert.equal(kernel.engine, "dense-kernel");
  assert.equal(algebra.correct.length, 129);
  assert.deepEqual(algebra.correct, exact.correct);
  assert.deepEqual(kernel.correct, exact.correct);
  await expectOneLineFailure(
    ["--model", model, "--data", TINY_DATA, "--algebra", "--layer", "block1_conv1"],
    /--algebra does not apply after block1_conv1: block1_conv2 \(Conv2D\) is not a per-channel layer/,
  );
  await expectOneLineFailure(
    ["--model", model, "--data", TINY_DATA, "--engine", "algebra", "--naive"],
    /--naive and --engine algebra each pick an engine: pass one --engine/,
  );
  await expectOneLineFailure(
    ["--model", model, "--data", TINY_DATA, "--dense-kernel", "--layer", "block5_conv2"],
    /--dense-kernel does not apply after block5_conv2/,
  );
});
