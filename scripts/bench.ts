/**
 * `deno task bench`: how long the sweep takes at the lab's scale, as one JSON object per case on
 * stdout (progress on stderr).
 *
 *   a  the default model (or --model), every K, the test set (10,000 images, or --limit);
 *   b  the full-size lab VGG (--width 1.0, untrained weights: the work is the same), every K;
 *   c  --naive on the model of (a) for a subset of K (--k-subset), projected to every K, and
 *      the ratio to the fast sweep;
 *   r  residual (not in `all`): ResNet-20 (--resnet PATH, else the layout built in memory with
 *      seeded random weights), its last conv's channel group, fast and --naive as in (c).
 *
 * The fast sweep is the engine --engine names (default auto: the dense kernel where it applies,
 * else the change-only engine, src/sweep/engines/change_only.ts; both exact, the counts of
 * sweepFast), on --workers workers (default auto; src/sweep/engines/pool.ts), or the Dense-layer
 * algebra (--engine algebra; src/sweep/linear_head.ts; not bit-exact), all opened by
 * src/sweep/engine.ts; the workers and the prefix batch as src/cli/resources.ts plans them.
 * --verify also runs the single-process sweepFast and reports whether every count is equal.
 *
 * Fields: case, model, layer, channels, images, kValues (how many), backend, workers, split,
 * engine (in words), engineName, batch, chosen (why each of engine, workers, batch), seconds {setup, load, prefix, sweep, total} (wall clock; total = load + prefix + sweep),
 * cpuSeconds (the same phases in process CPU time: what a free machine's wall clock would be
 * with one worker), rows {evaluated, inputChanged, plain} (suffix rows run; (image, K) pairs whose
 * layer output changed from the previous K; the N x K a plain sweep runs),
 * peakMemoryBytes {rss (Deno.memoryUsage().rss sampled), rssHighWater (getrusage maxrss: the
 * process's peak so far), tf (largest tf.memory().numBytes, main thread and workers)}, accuracy {k0, kC},
 * countsDigest, naive {kValues, images, seconds, projectedSecondsAllK, cpuSeconds,
 * projectedCpuSecondsAllK, matchesFast} or null, ratio (naive projected / fast prefix+sweep, wall
 * clock) and ratioCpu (the same in CPU time) or null, verify or null.
 *
 * @example
 * ```sh
 * deno task bench --case a --model fixtures/models/default/model.json --workers 2
 * deno task bench --case b --limit 200   # a quick look at the full-size model
 * ```
 */
import process from "node:process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import * as tf from "@tensorflow/tfjs";
import { type BackendName, setupBackend } from "../src/backend.ts";
import { UserError } from "../src/core/errors.ts";
import { engineFlag, parseFlags, positiveInt, positiveNumber, workersFlag } from "../src/cli/args.ts";
import { planResources } from "../src/cli/resources.ts";
import { loadTestSet, sliceDataset } from "../src/data/cifar10.ts";
import { loadModel } from "../src/model/load.ts";
import { type LayerRef, pickLayer } from "../src/model/layers.ts";
import { channelGroup, groupName } from "../src/model/coupling.ts";
import { buildResnet20 } from "../src/model/resnet.ts";
import { type SplitModel, splitModelAsync } from "../src/model/split.ts";
import { buildVgg } from "../src/model/vgg.ts";
import type { LayerOutputs } from "../src/activations/layer_outputs.ts";
import { rankByMean } from "../src/rank/criteria.ts";
import { sweepFast } from "../src/sweep/engines/masked.ts";
import { resolveKValues } from "../src/sweep/kvalues.ts";
import { sweepNaive } from "../src/sweep/engines/naive.ts";
import { changeCounts, sweepIncremental } from "../src/sweep/engines/change_only.ts";
import { engineRows } from "../src/sweep/linear_head.ts";
import type { SweepSplit } from "../src/sweep/engines/pool.ts";
import { chooseEngine, type EngineChoice, openEngine } from "../src/sweep/engine.ts";
import { Progress } from "../src/ui/progress.ts";
import { type Dataset, DEFAULT_PREPROCESSING, type Preprocessing, type SweepPoint } from "../src/types.ts";

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));
const DEFAULT_MODEL = here("../fixtures/models/default/model.json");
const SHARED_DATA = here("../../shared/cifar10");
const TINY_DATA = here("../fixtures/cifar10-tiny");

const HELP = `deno task bench [options]

Times the sweep at the lab's scale and prints one JSON object per case.

Options:
  --case C          a | b | c | r | all (r, residual, is not in all)   (default all)
  --resnet PATH     case r's model (default: ResNet-20 built in memory, seeded random weights)
  --model PATH      model of cases a and c: model.json, .h5, .keras, or vgg:WIDTH for an
                    untrained VGG built in memory            (default fixtures/models/default)
  --width W         width of case b's VGG                              (default 1.0)
  --data DIR        CIFAR-10 folder       (default ../shared/cifar10 if present, else the tiny fixture)
  --limit N         use the first N test images                        (default all)
  --backend B       auto | webgpu | wasm | cpu                         (default auto)
  --workers N|auto  worker threads; 1 runs in this process
                    (default auto: the cores, capped by memory, 1024 images a worker at least)
  --split S         images | k: how workers share the sweep            (default images)
  --engine E        the fast run's engine: auto | exact | dense-kernel | algebra (default auto:
                    dense-kernel after a Dense head of 2 M weights or more, else exact; case c
                    always runs naive)
                    dense-kernel: the Dense head on the sparse kernel (exact: the plain path's
                    counts, bit for bit; wasm and cpu); algebra: update the first Dense layer per
                    K instead of recomputing it (not bit-exact). --algebra, --dense-kernel: aliases
  --plain-tail      with --engine algebra: run the Dense layers after the first with TF.js, not
                    with the sparse kernel (src/kernels/sparse_dense.ts; on wasm and cpu by default)
  --k-subset LIST   K values for the naive method, e.g. 0,32,64 or 0:128:32 (default 5 spread over 0..C)
  --naive-images N  images the naive method runs on (default: case c all, case b 200)
  --verify          also run the single-process sweepFast and compare every count
  --budget MIB      memory budget of one suffix call, MiB              (default 256)
  -h, --help        this text`;

interface Options {
  cases: ("a" | "b" | "c" | "r")[];
  model: string;
  resnet: string;
  width: number;
  data: string;
  limit: number;
  backend: BackendName;
  workers: number | "auto";
  split: SweepSplit;
  /** --engine (naive is refused: case c runs it). */
  engine: Exclude<EngineChoice, "naive">;
  plainTail: boolean;
  kSubset?: number[];
  naiveImages?: number;
  verify: boolean;
  budget: number;
}

/** Parse "0,8,16" or "0:64:8" (stop included). */
function parseKs(v: string): number[] {
  const ks: number[] = [];
  for (const part of v.split(",")) {
    const r = part.split(":").map(Number);
    if (r.length > 3 || r.some((x) => !Number.isInteger(x) || x < 0) || (r.length === 3 && r[2] <= 0)) {
      throw new UserError(`--k-subset: '${part}' is not a K value or a start:stop:step range.`);
    }
    if (r.length === 1) ks.push(r[0]);
    else for (let k = r[0]; k <= r[1]; k += r[2] ?? 1) ks.push(k);
  }
  return ks;
}

function parseOptions(args: string[]): Options | null {
  const values = parseFlags(args, {
    case: { type: "string", default: "all" },
    model: { type: "string" },
    resnet: { type: "string" },
    width: { type: "string" },
    data: { type: "string" },
    limit: { type: "string" },
    backend: { type: "string", default: "auto" },
    workers: { type: "string" },
    split: { type: "string", default: "images" },
    engine: { type: "string" },
    algebra: { type: "boolean", default: false },
    "plain-tail": { type: "boolean", default: false },
    "dense-kernel": { type: "boolean", default: false },
    "k-subset": { type: "string" },
    "naive-images": { type: "string" },
    verify: { type: "boolean", default: false },
    budget: { type: "string" },
    help: { type: "boolean", short: "h", default: false },
  }, "bench");
  if (values.help) {
    console.log(HELP);
    return null;
  }
  const c = values.case!;
  const engine = engineFlag(values);
  if (engine === "naive") {
    throw new UserError("--engine naive: case c runs the naive method; give the fast run another engine.");
  }
  if (!["a", "b", "c", "r", "all"].includes(c)) {
    throw new UserError(`--case must be a, b, c, r or all, got '${c}'.`);
  }
  if (values.split !== "images" && values.split !== "k") {
    throw new UserError(`--split must be images or k, got '${values.split}'.`);
  }
  return {
    cases: c === "all" ? ["a", "b", "c"] : [c as "a" | "b" | "c" | "r"],
    model: values.model ?? DEFAULT_MODEL,
    resnet: values.resnet ?? RESNET,
    width: positiveNumber("width", values.width, 1),
    data: values.data ?? (existsSync(SHARED_DATA) ? SHARED_DATA : TINY_DATA),
    limit: positiveInt("limit", values.limit, Infinity),
    backend: values.backend as BackendName,
    workers: workersFlag(values.workers),
    split: values.split,
    engine,
    plainTail: values["plain-tail"]!,
    kSubset: values["k-subset"] === undefined ? undefined : parseKs(values["k-subset"]),
    naiveImages: values["naive-images"] === undefined
      ? undefined
      : positiveInt("naive-images", values["naive-images"], 1),
    verify: values.verify!,
    budget: positiveNumber("budget", values.budget, 256) * 2 ** 20,
  };
}

/** Process CPU seconds (user + system, every thread: the workers too). */
function cpuSeconds(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
}

/** The process's peak resident set so far (getrusage's maxrss), or null where unknown. */
function rssHighWater(): number | null {
  const kb = process.resourceUsage?.().maxRSS;
  return typeof kb === "number" && kb > 0 ? kb * 1024 : null;
}

/** Samples RSS and tf.memory() every 100 ms (and on demand) until stopped. */
class MemorySampler {
  rss = 0;
  tf = 0;
  private timer: ReturnType<typeof setInterval>;
  constructor() {
    this.sample();
    this.timer = setInterval(() => this.sample(), 100);
  }
  sample(): void {
    this.rss = Math.max(this.rss, Deno.memoryUsage().rss);
    this.tf = Math.max(this.tf, tf.memory().numBytes);
  }
  stop(): void {
    this.sample();
    clearInterval(this.timer);
  }
}

/** Wall and CPU seconds of named phases. */
class Clock {
  wall: Record<string, number> = {};
  cpu: Record<string, number> = {};
  async time<T>(name: string, f: () => Promise<T>): Promise<T> {
    const w0 = performance.now(), c0 = cpuSeconds();
    try {
      return await f();
    } finally {
      this.wall[name] = round((performance.now() - w0) / 1000);
      this.cpu[name] = round(cpuSeconds() - c0);
    }
  }
  totals(): void {
    for (const t of [this.wall, this.cpu]) t.total = round((t.load ?? 0) + (t.prefix ?? 0) + (t.sweep ?? 0));
  }
}

const round = (x: number, digits = 3) => Number.isFinite(x) ? Number(x.toFixed(digits)) : x;

async function digest(points: SweepPoint[]): Promise<string> {
  const bytes = new TextEncoder().encode(points.map((p) => `${p.k}:${p.correct}`).join(","));
  const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(hash.slice(0, 8), (b) => b.toString(16).padStart(2, "0")).join("");
}

interface LoadedCaseModel {
  model: tf.LayersModel;
  prep: Preprocessing;
  label: string;
}

/** Case r's default: the ResNet-20 layout built in memory. */
const RESNET = "resnet20";

async function loadCaseModel(spec: string): Promise<LoadedCaseModel> {
  if (spec === RESNET) {
    const model = buildResnet20({ seed: 1 });
    return { model, prep: DEFAULT_PREPROCESSING, label: "ResNet-20, seeded random weights" };
  }
  const vgg = /^vgg:([0-9.]+)$/.exec(spec);
  if (vgg) {
    const width = Number(vgg[1]);
    if (!(width > 0)) throw new UserError(`--model ${spec}: the width must be a positive number.`);
    return {
      model: buildVgg({ width, seed: 1 }),
      prep: DEFAULT_PREPROCESSING,
      label: `untrained VGG, width ${width}`,
    };
  }
  if (spec === DEFAULT_MODEL && !existsSync(spec)) {
    throw new UserError(
      `the default model ${spec} does not exist yet: pass --model PATH (or --model vgg:0.25 for an untrained one).`,
    );
  }
  const loaded = await loadModel(spec);
  return { model: loaded.model, prep: loaded.preprocessing, label: spec };
}

/** What a fast run measured. */
interface FastRun {
  result: Record<string, unknown>;
  model: LoadedCaseModel;
  test: Dataset;
  outputs: LayerOutputs;
  points: SweepPoint[];
  seconds: Record<string, number>;
  /** The swept layer (a group's first member) and the group's other members. */
  layer: LayerRef;
  members: string[];
}

/** Load, prefix pass, ranking and fast sweep of one model, timed. */
async function fastRun(
  name: string,
  spec: string,
  test: Dataset,
  opts: Options,
  backend: string,
): Promise<FastRun> {
  const clock = new Clock();
  const memory = new MemorySampler();
  const loaded = await clock.time("load", () => loadCaseModel(spec));
  // The last conv, with its channel group when it is coupled (a residual model's last stage).
  const group = channelGroup(loaded.model, pickLayer(loaded.model));
  const layer = group ? group.members[0] : pickLayer(loaded.model);
  const members = group ? group.members.slice(1).map((m) => m.name) : [];
  const split = await splitModelAsync(loaded.model, layer, members);
  const ks = resolveKValues(undefined, layer.channels);
  const task = { model: loaded.model, layer, split, data: test, prep: loaded.prep };
  const plan = planResources({ workers: opts.workers, images: test.count, model: loaded.model, backend });
  const workers = plan.workers;
  const chosen = await chooseEngine(opts.engine, task, { backend, workers });
  const engine = chosen.name;
  const sparseTail = opts.plainTail ? false : undefined;
  // Opened here, before the prefix pass, so that an engine that does not apply fails at once;
  // with --workers its pool starts here.
  const open = () =>
    openEngine(engine, task, {
      workers,
      backend: backend as BackendName,
      sparseTail,
      split: opts.split,
      memoryBudgetBytes: opts.budget,
    });
  const sweeper = workers > 1 ? await clock.time("poolStart", open) : await open();
  try {
    console.error(
      `bench ${name}: ${loaded.label}, layer ${layer.name} (${
        layer.outputShape.join("x")
      }), ${test.count} images, ` +
        `${ks.length} K values, ${backend}, ${workers} worker(s) (${plan.why.workers}), engine ${engine} (${chosen.why}), batch ${plan.batch} (${plan.why.batch})`,
    );
    const prefixBar = new Progress({ label: `${name} prefix`, total: test.count, unit: "img" });
    const outputs = await clock.time(
      "prefix",
      () => sweeper.layerOutputs({ batch: plan.batch, onProgress: (n) => prefixBar.set(n) }),
    );
    prefixBar.done();
    const ranking = rankByMean(outputs);
    const sweepBar = new Progress({ label: `${name} sweep`, total: ks.length, unit: "K" });
    const points = await clock.time("sweep", () =>
      sweeper.sweep(outputs, ranking, {
        onProgress: (done, total) => {
          memory.sample();
          sweepBar.set(Math.floor((done / total) * ks.length));
        },
      }));
    sweepBar.done();
    clock.totals();
    memory.stop();
    const rowsRun = sweeper.lastSweepRows;
    const changed = changeCounts(outputs, split.activationOfZero, ranking.order, ks).reduce(
      (a, b) => a + b,
      0,
    );
    const result: Record<string, unknown> = {
      case: name,
      model: loaded.label,
      layer: group ? groupName(group) : layer.name,
      channels: layer.channels,
      images: test.count,
      kValues: ks.length,
      backend,
      workers,
      split: workers > 1 ? opts.split : null,
      engine: sweeper.description,
      engineName: engine,
      batch: plan.batch,
      chosen: { engine: chosen.why, workers: plan.why.workers, batch: plan.why.batch },
      seconds: clock.wall,
      cpuSeconds: clock.cpu,
      rows: { evaluated: rowsRun, inputChanged: changed, plain: test.count * ks.length },
      peakMemoryBytes: {
        rss: memory.rss,
        rssHighWater: rssHighWater(),
        tf: Math.max(memory.tf, sweeper.workerPeakBytes),
      },
      accuracy: { k0: points[0].accuracy, kC: points[points.length - 1].accuracy },
      countsDigest: await digest(points),
      correct: points.map((p) => p.correct),
      naive: null,
      ratio: null,
      ratioCpu: null,
      verify: null,
    };
    if (opts.verify) {
      result.verify = await verify(split, outputs, test.labels, ranking, points, loaded.model, {
        ...opts,
        engine,
      });
    }
    return { result, model: loaded, test, outputs, points, seconds: clock.wall, layer, members };
  } finally {
    sweeper.close();
    memory.stop();
  }
}

/** Compare the run's counts with the single-process sweepFast; with the algebra, also count differing predictions. */
async function verify(
  split: SplitModel,
  outputs: LayerOutputs,
  labels: Uint8Array,
  ranking: ReturnType<typeof rankByMean>,
  points: SweepPoint[],
  model: tf.LayersModel,
  opts: { engine: string; plainTail: boolean },
): Promise<Record<string, unknown>> {
  const t0 = performance.now();
  const reference = await sweepFast(split, outputs, labels, ranking);
  const differing = reference.filter((p, j) => p.correct !== points[j].correct);
  const report: Record<string, unknown> = {
    against: "sweepFast (one process)",
    equal: differing.length === 0,
    kValuesDiffering: differing.length,
    maxCountDifference: Math.max(0, ...reference.map((p, j) => Math.abs(p.correct - points[j].correct))),
    seconds: round((performance.now() - t0) / 1000),
  };
  if (opts.engine === "algebra") {
    // Per (image, K) predictions of the exact rows and of the algebra rows.
    const ks = reference.length;
    const record =
      (into: Int8Array) => (images: Int32Array, steps: Int32Array, predicted: Int32Array, m: number) => {
        for (let r = 0; r < m; r++) into[images[r] * ks + steps[r]] = predicted[r] + 1;
      };
    const exact = new Int8Array(outputs.count * ks), algebra = new Int8Array(outputs.count * ks);
    await sweepIncremental(split, outputs, labels, ranking, { onRows: record(exact) });
    await sweepIncremental(split, outputs, labels, ranking, {
      rows: await engineRows(model, split, "algebra", { sparseTail: opts.plainTail ? false : undefined }),
      onRows: record(algebra),
    });
    let images = 0, pairs = 0;
    for (let i = 0; i < outputs.count; i++) {
      let e = 0, a = 0, differs = false;
      for (let j = 0; j < ks; j++) {
        e = exact[i * ks + j] || e; // carried forward where the image's input did not change
        a = algebra[i * ks + j] || a;
        if (e !== a) {
          pairs++;
          differs = true;
        }
      }
      if (differs) images++;
    }
    report.algebra = { imagesWithADifferentPrediction: images, imageKPairsDiffering: pairs };
  }
  return report;
}

/** The naive method on `images` images and `kValues`, projected to every K and every image. */
async function naiveRun(run: FastRun, kValues: number[], images: number): Promise<Record<string, unknown>> {
  const { model, prep } = run.model;
  const { layer, members } = run;
  const ds = sliceDataset(run.test, 0, images);
  const ranking = rankByMean(run.outputs);
  const bar = new Progress({ label: `naive`, total: kValues.length, unit: "K" });
  const t0 = performance.now(), c0 = cpuSeconds();
  const points = await sweepNaive(model, layer, ds, prep, ranking, {
    kValues,
    members,
    onProgress: (k) => bar.set(k),
  });
  bar.done();
  const seconds = (performance.now() - t0) / 1000, cpu = cpuSeconds() - c0;
  // Per K and per image, times every K and every image of the case.
  const scale = ((layer.channels + 1) / points.length) * (run.test.count / ds.count);
  const fast = new Map(run.points.map((p) => [p.k, p.correct]));
  return {
    kValues: points.map((p) => p.k),
    images: ds.count,
    seconds: round(seconds),
    projectedSecondsAllK: round(seconds * scale, 1),
    cpuSeconds: round(cpu),
    projectedCpuSecondsAllK: round(cpu * scale, 1),
    // On the same images the fast sweep's counts must be the naive ones (only comparable on all images).
    matchesFast: ds.count === run.test.count ? points.every((p) => fast.get(p.k) === p.correct) : null,
  };
}

/** The naive method's K values: --k-subset (checked against the layer), else `fallback`. */
function naiveKs(opts: Options, run: FastRun, fallback: number[]): number[] {
  const channels = run.points.length - 1;
  const bad = (opts.kSubset ?? []).find((k) => k > channels);
  if (bad !== undefined) {
    throw new UserError(
      `--k-subset ${bad} is more than the ${channels} channels of case ${run.result.case}.`,
    );
  }
  return opts.kSubset ?? fallback;
}

function spread(channels: number): number[] {
  return [...new Set([0, 1, 2, 3, 4].map((i) => Math.round((i * channels) / 4)))];
}

async function main(args: string[]): Promise<void> {
  const opts = parseOptions(args);
  if (!opts) return;
  const setup0 = performance.now();
  const backend = await setupBackend(opts.backend);
  const setupSeconds = round((performance.now() - setup0) / 1000);
  const test = await loadTestSet(opts.data, opts.limit);
  let runA: FastRun | null = null;
  for (const name of opts.cases) {
    if (name === "a") {
      runA = await fastRun("a", opts.model, test, opts, backend);
      print(runA.result, setupSeconds);
    } else if (name === "b") {
      const run = await fastRun("b", `vgg:${opts.width}`, test, opts, backend);
      const images = Math.min(test.count, opts.naiveImages ?? 200);
      run.result.naive = await naiveRun(run, naiveKs(opts, run, [0]), images);
      Object.assign(run.result, ratios(run.result.naive as Record<string, number>, run));
      print(run.result, setupSeconds);
      run.outputs.data = new Float32Array(0);
    } else if (name === "r") {
      const run = await fastRun("r", opts.resnet, test, opts, backend);
      const ks = naiveKs(opts, run, spread(run.points.length - 1));
      run.result.naive = await naiveRun(run, ks, Math.min(test.count, opts.naiveImages ?? Infinity));
      Object.assign(run.result, ratios(run.result.naive as Record<string, number>, run));
      print(run.result, setupSeconds);
    } else {
      const run = runA ?? await fastRun("c", opts.model, test, opts, backend);
      const ks = naiveKs(opts, run, spread(run.points.length - 1));
      const naive = await naiveRun(run, ks, Math.min(test.count, opts.naiveImages ?? Infinity));
      const result = {
        ...run.result,
        case: "c",
        naive,
        ...ratios(naive as Record<string, number>, run),
      };
      print(result, setupSeconds);
    }
  }
}

/** Naive projected seconds over the fast sweep's prefix + sweep seconds: wall clock, and CPU time (steadier on a busy machine). */
function ratios(naive: Record<string, number>, run: FastRun): { ratio: number; ratioCpu: number } {
  const cpu = run.result.cpuSeconds as Record<string, number>;
  return {
    ratio: round(naive.projectedSecondsAllK / (run.seconds.prefix + run.seconds.sweep), 1),
    ratioCpu: round(naive.projectedCpuSecondsAllK / (cpu.prefix + cpu.sweep), 1),
  };
}

function print(result: Record<string, unknown>, setupSeconds: number): void {
  const seconds = { setup: setupSeconds, ...(result.seconds as Record<string, number>) };
  console.log(JSON.stringify({ ...result, seconds }));
}

if (import.meta.main) {
  try {
    await main(Deno.args);
  } catch (e) {
    if (e instanceof UserError) {
      console.error(`bench: ${e.message}`);
      Deno.exit(1);
    }
    throw e;
  }
  Deno.exit(0);
}
