/**
 * The one table of layer kinds and the one walker (src/model/graph.ts): every class is classified
 * once, in that module only; the four users (split, coupling, surgery, the dense-head planner)
 * agree on the classes they used to list apart; the walker reads a branching functional graph.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { setupBackend } from "../../src/backend.ts";
import {
  graphSteps,
  keepsChannels,
  LAYER_CLASSES,
  layerClass,
  nextInChain,
  notOnChannels,
  readersOf,
} from "../../src/model/graph.ts";
import { couplingOf } from "../../src/model/coupling.ts";
import { pickLayer } from "../../src/model/layers.ts";
import { splitModel } from "../../src/model/split.ts";
import { traceChannels } from "../../src/surgery/trace.ts";
import { planLinearHead } from "../../src/sweep/linear_head.ts";

/** Every module under src/, path and text. */
function sources(dir = "src"): [string, string][] {
  const out: [string, string][] = [];
  for (const e of Deno.readDirSync(dir)) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory) out.push(...sources(p));
    else if (p.endsWith(".ts")) out.push([p, Deno.readTextFileSync(p)]);
  }
  return out;
}

Deno.test("graph: each layer class is classified once, in graph.ts, and is a class TF.js knows", () => {
  const known = new Set(
    Object.keys(
      (tf.serialization.SerializationMap.getMap() as unknown as { classNameMap: Record<string, unknown> })
        .classNameMap,
    ),
  );
  for (const name of Object.keys(LAYER_CLASSES)) {
    assert.ok(known.has(name), `${name} is not a TF.js layer class`);
  }
  // No other module keeps its own set or list of these classes (the Keras reader's list of the
  // classes it can translate answers another question and is left out).
  const names = Object.keys(LAYER_CLASSES);
  for (const [path, text] of sources()) {
    if (path === "src/model/graph.ts" || path === "src/model/keras/config.ts") continue;
    for (const block of text.matchAll(/(?:new Set\(|=)\s*\[([^\]]*)\]/g)) {
      const listed = names.filter((n) => block[1].includes(`"${n}"`));
      assert.ok(
        listed.length < 2,
        `${path} lists layer classes ${listed.join(", ")}: ask src/model/graph.ts`,
      );
    }
  }
});

Deno.test("graph: the classes the four old lists disagreed on have one answer", () => {
  for (const name of ["SpatialDropout1D", "Dropout", "GaussianNoise"]) {
    assert.deepEqual(layerClass(name), { kind: "element-wise", weights: "none", keepsConstant: true }, name);
  }
  assert.deepEqual(layerClass("PReLU"), {
    kind: "element-wise",
    weights: "per-channel",
    keepsConstant: false,
  });
  assert.equal(layerClass("DepthwiseConv2D").weights, "kernel");
  assert.ok(keepsChannels("DepthwiseConv2D") && keepsChannels("MaxPooling2D") && !keepsChannels("Flatten"));
  assert.equal(layerClass("Flatten").kind, "flattening");
  assert.equal(layerClass("Add").kind, "merge");
  assert.equal(layerClass("Conv2D").kind, "mixing");
  assert.equal(layerClass("Concatenate").kind, "mixing");
  assert.equal(layerClass("NoSuchLayer").kind, "mixing");
  assert.equal(layerClass("SpatialDropout2D").kind, "mixing"); // not a TF.js 4.22 class
  assert.equal(layerClass("toString").kind, "mixing");
});

/** conv1 -> relu1 -> conv2 -> bn2 -> (add with relu1) -> GAP -> dense. */
function residual(): tf.LayersModel {
  const input = tf.input({ shape: [8, 8, 3] });
  const c1 = tf.layers.conv2d({ name: "conv1", filters: 4, kernelSize: 3, padding: "same" }).apply(input);
  const r1 = tf.layers.reLU({ name: "relu1" }).apply(c1) as tf.SymbolicTensor;
  const c2 = tf.layers.conv2d({ name: "conv2", filters: 4, kernelSize: 3, padding: "same" }).apply(r1);
  const bn = tf.layers.batchNormalization({ name: "bn2" }).apply(c2);
  const sum = tf.layers.add({ name: "sum" }).apply([bn as tf.SymbolicTensor, r1]);
  const gap = tf.layers.globalAveragePooling2d({ name: "gap" }).apply(sum);
  const out = tf.layers.dense({ name: "out", units: 10, activation: "softmax" }).apply(gap);
  return tf.model({ inputs: input, outputs: out as tf.SymbolicTensor });
}

Deno.test("graph: the walker reads a branching graph: readers, straight links, the merge", async () => {
  await setupBackend("cpu");
  const model = residual();
  const steps = graphSteps(model);
  assert.deepEqual(steps.map((s) => s.layer.name), ["conv1", "relu1", "conv2", "bn2", "sum", "gap", "out"]);
  const readers = readersOf(model);
  assert.deepEqual(readers.get("relu1")?.map((l) => l.name), ["conv2", "sum"]);
  const link1 = nextInChain(model, steps, model.getLayer("relu1"));
  assert.ok("end" in link1 && link1.end === "branch" && link1.readers.length === 2);
  const link2 = nextInChain(model, steps, model.getLayer("bn2"));
  assert.ok("end" in link2 && link2.end === "joined" && link2.reader.name === "sum");
  const link3 = nextInChain(model, steps, model.getLayer("conv2"));
  assert.ok("next" in link3 && link3.next.name === "bn2");
  assert.deepEqual(nextInChain(model, steps, model.getLayer("out")), { end: "output" });
  // Coupling, surgery and the dense-head planner read the same graph.
  assert.equal(couplingOf(model, pickLayer(model, "conv2"))?.merge, "sum");
  assert.equal(couplingOf(model, pickLayer(model, "conv1"))?.via.join(), "relu1");
  assert.throws(() => traceChannels(model, [{ layer: "conv2", channels: [] }]), /sum \(Add\)/);
  const plan = await planLinearHead(model, pickLayer(model, "conv2"));
  assert.ok(
    "reason" in plan && /sum is applied more than once or takes more than one input/.test(plan.reason),
  );
  model.dispose();
});

Deno.test("graph: the layers after a cut that keep a constant channel are the split's pushdown, the same for surgery's path", async () => {
  await setupBackend("cpu");
  const m = tf.sequential();
  m.add(
    tf.layers.conv2d({ name: "conv", inputShape: [6, 6, 3], filters: 4, kernelSize: 3, activation: "relu" }),
  );
  m.add(tf.layers.batchNormalization({ name: "bn" }));
  m.add(tf.layers.maxPooling2d({ name: "pool", poolSize: 2 }));
  m.add(tf.layers.dropout({ name: "drop", rate: 0.2 }));
  m.add(tf.layers.averagePooling2d({ name: "avg", poolSize: 1 }));
  m.add(tf.layers.flatten({ name: "flat" }));
  m.add(tf.layers.dense({ name: "out", units: 10, activation: "softmax" }));
  const split = splitModel(m, pickLayer(m, "conv"));
  // Average pooling does not keep a constant bit for bit in general: the pushdown stops before it.
  assert.deepEqual(split.pushdown?.layers, ["bn", "pool", "drop"]);
  const trace = traceChannels(m, [{ layer: "conv", channels: [] }]);
  assert.deepEqual(trace.between[0], ["bn", "pool", "drop", "avg", "flat"]);
  const head = await planLinearHead(m, pickLayer(m, "conv"));
  assert.ok("head" in head && head.head.dense.name === "out");
  assert.equal(notOnChannels(m.getLayer("bn")), null);
  m.dispose();
});
