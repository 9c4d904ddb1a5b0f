/**
 * `inspect`: the model.summary() table as data and as text (params add up, conv layers and the
 * last one marked), and the command end to end (table, --json, --help, a bad path).
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import * as tf from "@tensorflow/tfjs";
import { setupBackend } from "../../src/backend.ts";
import { loadModel } from "../../src/model/load.ts";
import { formatSummary, modelSummary } from "../../src/model/summary.ts";
import { runMain } from "../_helpers.ts";

const modelPath = (name: string) =>
  fileURLToPath(new URL(`../../fixtures/models/${name}/model.json`, import.meta.url));

async function inspect(...args: string[]) {
  return await runMain(["inspect", ...args]);
}

Deno.test("modelSummary: rows, shapes and parameter counts of tiny-bn", async () => {
  await setupBackend("wasm");
  const { model } = await loadModel(modelPath("tiny-bn"));
  const s = modelSummary(model);
  assert.equal(s.name, "tiny_bn");
  assert.deepEqual(s.rows.map((r) => r.name), model.layers.map((l) => l.name));
  const conv2 = s.rows.find((r) => r.name === "conv2")!;
  // 3x3 kernel over 8 input channels to 16 filters, plus 16 biases.
  assert.deepEqual(conv2, {
    name: "conv2",
    className: "Conv2D",
    outputShape: "(None, 16, 16, 16)",
    params: 3 * 3 * 8 * 16 + 16,
    isConv: true,
    isLastConv: true,
  });
  assert.equal(s.rows.find((r) => r.name === "flatten")!.outputShape, "(None, 1024)");
  assert.equal(s.rows.find((r) => r.name === "scores")!.params, 1024 * 10 + 10);
  assert.deepEqual(s.rows.filter((r) => r.isConv).map((r) => r.name), ["conv1", "conv2"]);
  assert.equal(s.rows.filter((r) => r.isLastConv).length, 1);
  assert.equal(s.totalParams, s.rows.reduce((sum, r) => sum + r.params, 0));
  assert.equal(s.totalParams, model.countParams());
  // BatchNormalization's moving mean and variance (16 + 16) are the only non-trainable weights.
  assert.equal(s.totalParams - s.trainableParams, 32);
});

Deno.test("formatSummary: a Keras-style table with the conv layers marked", () => {
  const text = formatSummary({
    name: "m",
    rows: [
      {
        name: "c1",
        className: "Conv2D",
        outputShape: "(None, 30, 30, 4)",
        params: 112,
        isConv: true,
        isLastConv: false,
      },
      {
        name: "c2",
        className: "Conv2D",
        outputShape: "(None, 28, 28, 4)",
        params: 148,
        isConv: true,
        isLastConv: true,
      },
      {
        name: "d",
        className: "Dense",
        outputShape: "(None, 10)",
        params: 31370,
        isConv: false,
        isLastConv: false,
      },
    ],
    totalParams: 31630,
    trainableParams: 31630,
  });
  const lines = text.split("\n");
  assert.equal(lines[0], 'Model: "m"');
  assert.match(text, /Layer \(type\)\s+Output Shape\s+Param #/);
  assert.match(lines.find((l) => l.includes("c1 (Conv2D)"))!, /\(None, 30, 30, 4\)\s+112\s+conv$/);
  assert.match(lines.find((l) => l.includes("c2 (Conv2D)"))!, /148\s+conv, last: the default --layer$/);
  assert.match(lines.find((l) => l.includes("d (Dense)"))!, /31,370$/);
  assert.ok(lines.includes("Total params: 31,630"));
  assert.ok(lines.includes("Non-trainable params: 0"));
  // Columns line up: every row's shape starts where the header's does.
  const at = lines.find((l) => l.includes("Output Shape"))!.indexOf("Output Shape");
  for (const l of lines.filter((l) => l.includes("(None"))) assert.equal(l.indexOf("(None"), at);
});

Deno.test("inspect command: table, --json, --help and a bad path", async () => {
  const table = await inspect("--model", modelPath("tiny-nobn"));
  assert.equal(table.code, 0, table.stderr);
  assert.match(table.stdout, /conv2 \(Conv2D\)\s+\(None, 16, 16, 16\)\s+1,168\s+conv, last/);
  assert.match(table.stdout, /default --layer: conv2/);
  assert.match(table.stdout, /Input preprocessing: x\/255 \(metadata\)/);

  const json = await inspect("--model", modelPath("tiny-func"), "--json");
  assert.equal(json.code, 0, json.stderr);
  const parsed = JSON.parse(json.stdout);
  assert.equal(parsed.defaultLayer, "conv3");
  assert.deepEqual(parsed.groups, [{ members: ["conv2", "conv3"], merges: ["residual"] }]);
  assert.deepEqual(parsed.convLayers.map((c: { name: string }) => c.name), ["conv1", "conv2", "conv3"]);
  assert.equal(
    parsed.totalParams,
    parsed.layers.reduce((s: number, r: { params: number }) => s + r.params, 0),
  );

  const help = await inspect("--help");
  assert.equal(help.code, 0);
  assert.match(help.stdout, /--model PATH/);

  const missing = await inspect("--model", "fixtures/models/none/model.json");
  assert.equal(missing.code, 1);
  assert.equal(missing.stderr.trim().split("\n").length, 1, missing.stderr);
  assert.match(missing.stderr, /model file not found/);
  assert.doesNotMatch(missing.stderr, /at .*\.ts:\d+/);

  const unknown = await inspect("--modle", "x");
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /--help/);
});

Deno.test("modelSummary leaves the tensors alone", async () => {
  await setupBackend("wasm");
  const { model } = await loadModel(modelPath("tiny-func"));
  const before = tf.memory().numTensors;
  formatSummary(modelSummary(model));
  assert.equal(tf.memory().numTensors, before);
});
