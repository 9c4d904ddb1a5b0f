/**
 * The backends we can run agree on a fixture sweep: the same ranking (channel means equal to
 * float32 rounding) and the same correct count for every K. cpu and wasm always run; WebGPU
 * whenever this machine offers an adapter, a software one (llvmpipe) included: every read on
 * the sweep path is asynchronous, as WebGPU needs in Deno.
 *
 * WebGPU runs in processes of its own (backends_webgpu_child.ts, and the sweep command), even
 * the adapter check: a `deno test` process that has requested an adapter can crash as it exits
 * (double free or segfault, about one run in ten), and tensors cannot move off WebGPU anyway
 * (the move reads synchronously).
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { type BackendName, setupBackend } from "../src/backend.ts";
import { loadTestSet } from "../src/data/cifar10.ts";
import { loadModel } from "../src/model/load.ts";
import { pickLayer } from "../src/model/layers.ts";
import { splitModel, splitModelAsync } from "../src/model/split.ts";
import { computeLayerOutputs } from "../src/activations/layer_outputs.ts";
import { rankByMean } from "../src/rank/criteria.ts";
import { sweepFast } from "../src/sweep/engines/masked.ts";
import { sweepNaive } from "../src/sweep/engines/naive.ts";
import type { Ranking } from "../src/types.ts";
import { fixture } from "./_helpers.ts";

const child = fileURLToPath(new URL("./backends_webgpu_child.ts", import.meta.url));

type Backend = Exclude<BackendName, "auto">;

/** `deno run` with read and env permissions (and `extra`); the exit code, stdout and stderr. */
async function denoRun(args: string[], extra: string[] = []) {
  const r = await new Deno.Command("deno", {
    args: ["run", "--quiet", "--allow-read", "--allow-env", ...extra, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: r.code, stdout: text(r.stdout), stderr: text(r.stderr) };
}

/** Whether WebGPU has an adapter here (hasGpuAdapter, asked in a process of its own). */
const gpu = await denoRun([child, "probe"]).then((r) => r.code === 0, () => false);

/** Images of the naive sweeps on WebGPU (a software adapter runs the whole model slowly). */
const NAIVE_IMAGES = 32;

/**
 * On `backend`, from a freshly loaded model and the first `opts.images` test images (default
 * all 200): the mean ranking, the split's constants and the fast sweep's counts at every K under
 * `opts.ranking` (default: its own); with `opts.naive`, the literal method's counts too.
 */
async function sweepOn(
  backend: Backend,
  name: string,
  opts: { ranking?: Ranking; images?: number; naive?: boolean } = {},
) {
  await setupBackend(backend);
  const { model, preprocessing } = await loadModel(fixture(`models/${name}/model.json`));
  try {
    const ds = await loadTestSet(fixture("cifar10-tiny"), opts.images);
    const layer = pickLayer(model);
    const split = await splitModelAsync(model, layer);
    const out = await computeLayerOutputs(split, ds, preprocessing);
    const own = rankByMean(out);
    const used = opts.ranking ?? own;
    const fast = (await sweepFast(split, out, ds.labels, used)).map((p) => p.correct);
    const naive = opts.naive
      ? (await sweepNaive(model, layer, ds, preprocessing, used)).map((p) => p.correct)
      : undefined;
    const fill = split.pushdown ? Array.from(split.pushdown.fill) : null;
    return { own, channels: layer.channels, activationOfZero: split.activationOfZero, fill, fast, naive };
  } finally {
    model.dispose();
  }
}

/** Channel means (or BatchNorm constants) equal to float32 rounding. */
function assertClose(got: ArrayLike<number>, want: ArrayLike<number>, what: string) {
  assert.equal(got.length, want.length, what);
  for (let i = 0; i < want.length; i++) {
    assert.ok(Math.abs(got[i] - want[i]) <= 1e-5 * Math.max(1, Math.abs(want[i])), `${what} ${i}`);
  }
}

for (const name of ["tiny-bn", "tiny-nobn"]) {
  Deno.test(`backends: cpu and wasm agree on the ${name} sweep`, async () => {
    const wasm = await sweepOn("wasm", name);
    const cpu = await sweepOn("cpu", name, { ranking: wasm.own });
    assertClose(cpu.own.scores, wasm.own.scores, "channel mean");
    assert.deepEqual(cpu.own.order, wasm.own.order);
    assert.deepEqual(cpu.fast, wasm.fast, "cpu vs wasm");
  });
}

Deno.test("backends: splitModel and splitModelAsync give the same split, bit for bit", async () => {
  await setupBackend("wasm");
  const { model } = await loadModel(fixture("models/tiny-bn/model.json"));
  const layer = pickLayer(model);
  const sync = splitModel(model, layer);
  const async = await splitModelAsync(model, layer);
  assert.equal(async.activationOfZero, sync.activationOfZero);
  assert.ok(sync.pushdown && async.pushdown, "tiny-bn has BatchNorm after the cut: a pushdown");
  assert.deepEqual(async.pushdown.layers, sync.pushdown.layers);
  assert.deepEqual(Array.from(async.pushdown.fill), Array.from(sync.pushdown.fill));
  assert.deepEqual(async.suffixLayers, sync.suffixLayers);
  assert.equal(async.suffixElementsPerImage, sync.suffixElementsPerImage);
  model.dispose();
});

interface WebGpuRun {
  order: number[];
  scores: number[];
  channels: number;
  activationOfZero: number;
  fill: number[] | null;
  fast: number[];
  fastFew: number[];
  naiveFew: number[];
  syncRefused: boolean;
}

Deno.test({
  name: "backends: webgpu (any adapter) agrees with wasm at every K on tiny-bn and tiny-nobn, fast and naive",
  ignore: !gpu,
  fn: async () => {
    const r = await denoRun([child, String(NAIVE_IMAGES)]);
    assert.equal(r.code, 0, r.stderr);
    const line = r.stdout.trim().split("\n").findLast((l) => l.startsWith("{"));
    assert.ok(line, `no result from the WebGPU process: ${r.stdout}\n${r.stderr}`);
    const runs = JSON.parse(line) as Record<string, WebGpuRun>;
    for (const name of ["tiny-bn", "tiny-nobn"]) {
      const gpu = runs[name];
      const wasm = await sweepOn("wasm", name);
      const wasmFew = await sweepOn("wasm", name, { ranking: wasm.own, images: NAIVE_IMAGES, naive: true });
      // The rankings agree: channel means equal to float32 rounding, hence the same order here.
      assertClose(gpu.scores, wasm.own.scores, `${name}: channel mean`);
      assert.deepEqual(gpu.order, wasm.own.order, `${name}: ranking`);
      // activation(0) is exact; what BatchNorm makes of it (the pushdown's fill) agrees to
      // rounding: each backend computes BatchNorm its own way (cpu and wasm differ in the last bit).
      assert.equal(gpu.activationOfZero, wasm.activationOfZero);
      assert.equal(gpu.fill === null, wasm.fill === null, `${name}: pushdown on one backend only`);
      if (gpu.fill && wasm.fill) assertClose(gpu.fill, wasm.fill, `${name}: fill`);
      // Under the same ranking every K scores the same number of images, fast and naive.
      assert.equal(gpu.fast.length, wasm.channels + 1, "every K, 0..C");
      assert.deepEqual(gpu.fast, wasm.fast, `${name}: webgpu vs wasm, fast, all images`);
      assert.deepEqual(wasmFew.naive, wasmFew.fast, `${name}: wasm naive vs fast`);
      assert.deepEqual(gpu.naiveFew, wasmFew.naive, `${name}: webgpu vs wasm, naive`);
      assert.deepEqual(gpu.fastFew, gpu.naiveFew, `${name}: webgpu fast vs naive`);
      assert.ok(gpu.syncRefused, `${name}: the synchronous split is refused on WebGPU`);
    }
  },
});

Deno.test({
  name: "backends: the sweep command runs end to end with --backend webgpu (wasm's counts, same ranking)",
  ignore: !gpu,
  fn: async () => {
    const out = await Deno.makeTempDir({ prefix: "prunescope-webgpu-" });
    try {
      const main = fileURLToPath(new URL("../main.ts", import.meta.url));
      const model = fixture("models/tiny-bn/model.json");
      const r = await denoRun(
        [
          main,
          "sweep",
          "--model",
          model,
          "--data",
          fixture("cifar10-tiny"),
          "--backend",
          "webgpu",
          "--out",
          out,
        ],
        [`--allow-write=${out}`],
      );
      assert.equal(r.code, 0, r.stderr);
      const json = JSON.parse(await Deno.readTextFile(`${out}/sweep.json`));
      assert.equal(json.backend, "webgpu");
      const wasm = await sweepOn("wasm", "tiny-bn");
      assert.deepEqual(json.series[0].order, wasm.own.order);
      assert.deepEqual(json.results.map((p: { correct: number }) => p.correct), wasm.fast);
    } finally {
      await Deno.remove(out, { recursive: true });
    }
  },
});
