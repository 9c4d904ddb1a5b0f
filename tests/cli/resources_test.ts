/**
 * The defaults a command picks (src/cli/resources.ts, src/cli/args.ts, src/sweep/engine.ts
 * `chooseEngine`): workers from the cores, capped by memory, images and units; the batch from the
 * budget and the model's activations; the engine flag and its aliases; the engine auto picks (the
 * dense kernel only for a big Dense head; its counts equal the exact engine's: engine_test.ts).
 */
import assert from "node:assert/strict";
import { setupBackend } from "../../src/backend.ts";
import { engineFlag, workersFlag } from "../../src/cli/args.ts";
import { activationBytesPerImage, MIN_IMAGES_PER_WORKER, planResources } from "../../src/cli/resources.ts";
import { loadModel } from "../../src/model/load.ts";
import { pickLayer } from "../../src/model/layers.ts";
import { splitModelAsync } from "../../src/model/split.ts";
import { buildVgg } from "../../src/model/vgg.ts";
import { loadTestSet } from "../../src/data/cifar10.ts";
import { chooseEngine, DENSE_KERNEL_MIN_WEIGHTS } from "../../src/sweep/engine.ts";
import { DEFAULT_MEMORY_BUDGET } from "../../src/sweep/kvalues.ts";
import { DEFAULT_PREPROCESSING } from "../../src/types.ts";
import { fixture, oneLineUserError } from "../_helpers.ts";

const GiB = 2 ** 30;

Deno.test("planResources: workers = cores, capped by memory, images, units; 1 on WebGPU; flags win", async () => {
  await setupBackend("cpu");
  const model = buildVgg({ width: 0.0625, seed: 1 });
  const base = { workers: "auto" as const, images: 10_000, model, backend: "wasm" };
  const roomy = { cores: 4, availableBytes: 64 * GiB };
  assert.equal(planResources({ ...base, machine: roomy }).workers, 4);
  assert.equal(planResources({ ...base, machine: { cores: 4, availableBytes: 1 * GiB } }).workers, 1);
  assert.equal(planResources({ ...base, machine: { cores: 4, availableBytes: null } }).workers, 4);
  assert.equal(planResources({ ...base, images: 2 * MIN_IMAGES_PER_WORKER, machine: roomy }).workers, 2);
  assert.equal(planResources({ ...base, images: 50, machine: roomy }).workers, 1);
  assert.equal(planResources({ ...base, units: 3, machine: roomy }).workers, 3);
  assert.equal(planResources({ ...base, backend: "webgpu", machine: roomy }).workers, 1);
  const flagged = planResources({ ...base, workers: 3, batch: 64, machine: roomy });
  assert.deepEqual([flagged.workers, flagged.batch, flagged.why.workers, flagged.why.batch], [
    3,
    64,
    "flag",
    "flag",
  ]);
  assert.match(planResources({ ...base, machine: roomy }).why.workers, /^auto: 4 cores, memory for \d+/);
  model.dispose();
});

Deno.test("planResources: the batch is the power of two whose activations fit the budget, 16 to 1024", async () => {
  await setupBackend("cpu");
  const { model } = await loadModel(fixture("models/default/model.json"));
  const perImage = activationBytesPerImage(model);
  // Every layer's output of the 32x32x3 -> 10 VGG: at least the first conv's 32 x 32 x 16 floats.
  assert.ok(perImage >= 4 * 32 * 32 * 16, `${perImage}`);
  const plan = planResources({
    workers: 1,
    images: 10_000,
    model,
    backend: "wasm",
    machine: { cores: 2, availableBytes: 64 * GiB },
  });
  assert.equal(plan.memoryBudgetBytes, DEFAULT_MEMORY_BUDGET);
  assert.ok(
    plan.batch * perImage <= plan.memoryBudgetBytes && 2 * plan.batch * perImage > plan.memoryBudgetBytes,
  );
  assert.equal(Math.log2(plan.batch) % 1, 0);
  // Short of memory: a smaller budget, a smaller batch, never under 16.
  const short = planResources({
    workers: 1,
    images: 10_000,
    model,
    backend: "wasm",
    machine: { cores: 2, availableBytes: 96 * 2 ** 20 },
  });
  assert.ok(short.memoryBudgetBytes < DEFAULT_MEMORY_BUDGET);
  assert.ok(short.batch < plan.batch && short.batch >= 16, `${short.batch}`);
  model.dispose();
});

Deno.test("engineFlag and workersFlag: --engine names, the old flags as aliases, one line for a clash", () => {
  assert.equal(engineFlag({}), "auto");
  assert.equal(engineFlag({ engine: "exact" }), "exact");
  assert.equal(engineFlag({ naive: true }), "naive");
  assert.equal(engineFlag({ "dense-kernel": true }), "dense-kernel");
  assert.throws(() => engineFlag({ engine: "fast" }), oneLineUserError(/--engine must be auto or one of/));
  assert.throws(
    () => engineFlag({ naive: true, algebra: true }),
    oneLineUserError(/--naive, --algebra each pick an engine: pass one --engine/),
  );
  assert.throws(() => engineFlag({ engine: "exact", naive: true }), oneLineUserError(/--engine exact/));
  assert.equal(workersFlag(undefined), "auto");
  assert.equal(workersFlag("auto"), "auto");
  assert.equal(workersFlag("3"), 3);
  assert.throws(() => workersFlag("0"), oneLineUserError(/--workers must be auto or a positive integer/));
});

Deno.test("chooseEngine: dense-kernel after a big enough Dense head, exact elsewhere and on WebGPU, a named engine as is", async () => {
  await setupBackend("wasm");
  const model = buildVgg({ width: 0.0625, seed: 2 });
  const data = await loadTestSet(fixture("cifar10-tiny"), 8);
  const task = async (name?: string) => {
    const layer = pickLayer(model, name);
    return { model, layer, split: await splitModelAsync(model, layer), data, prep: DEFAULT_PREPROCESSING };
  };
  const last = await task();
  // This VGG's head (32 -> 256 -> 64 -> 32 -> 10 at width 1/16) is small: exact, unless the bar is lowered.
  const small = await chooseEngine("auto", last, { backend: "wasm", workers: 2 });
  assert.equal(small.name, "exact");
  assert.ok(DENSE_KERNEL_MIN_WEIGHTS > 2 ** 20);
  assert.match(small.why, /^auto: the Dense head after block5_conv3 \(0\.\d\d M weights\) is too small/);
  const big = await chooseEngine("auto", last, { backend: "wasm", workers: 2, minKernelWeights: 1000 });
  assert.equal(big.name, "dense-kernel");
  assert.match(big.why, /runs on the kernel/);
  const gpu = { backend: "webgpu", workers: 1, minKernelWeights: 1000 };
  assert.equal((await chooseEngine("auto", last, gpu)).name, "exact");
  assert.deepEqual(await chooseEngine("algebra", last, { backend: "wasm", workers: 1 }), {
    name: "algebra",
    why: "flag",
  });
  const early = await chooseEngine("auto", await task("block1_conv1"), { backend: "wasm", workers: 1 });
  assert.equal(early.name, "exact");
  assert.match(early.why, /^auto: no dense kernel here \(does not apply after block1_conv1/);
  model.dispose();
});
