/**
 * The opening every command that runs a model shares: the backend, then the model (with the
 * preprocessing its metadata or the flags give), then, once the command has checked its options
 * against the model, the data folder and the test set, each opened once; and one stopwatch for
 * the command's phases.
 */
import { fileURLToPath } from "node:url";
import { type BackendName, setupBackend } from "../backend.ts";
import { type LoadedModel, loadModel } from "../model/load.ts";
import { loadTestSet, loadTrainSet } from "../data/cifar10.ts";
import { resolveDataDir } from "../data/fetch.ts";
import type { Dataset, Preprocessing } from "../types.ts";

/** The model commands use when no --model is given: the one `deno task train` made for this repo. */
export const DEFAULT_MODEL = fileURLToPath(
  new URL("../../fixtures/models/default/model.json", import.meta.url),
);

/** Wall-clock seconds of a command's phases, in the order they ran. */
export class Stopwatch {
  /** Seconds per phase. */
  readonly timings: Record<string, number> = {};
  private t0 = performance.now();

  /** Start timing the next phase now (what ran since the last lap is not counted). */
  restart(): void {
    this.t0 = performance.now();
  }

  /** End phase `name`: the seconds since the last lap (or restart), and start the next. */
  lap(name: string): void {
    const now = performance.now();
    this.timings[name] = (now - this.t0) / 1000;
    this.t0 = now;
  }

  /** Add `total`, the sum of the phases so far. */
  total(): void {
    this.timings.total = Object.values(this.timings).reduce((s, x) => s + x, 0);
  }
}

/** A command's backend and model, and its data once asked for. */
export interface Session {
  /** The backend in use (what `--backend auto` chose). */
  backend: Exclude<BackendName, "auto">;
  /** The model file (--model, or `DEFAULT_MODEL`). */
  modelPath: string;
  loaded: LoadedModel;
  prep: Preprocessing;
  /** The CIFAR-10 folder: --data, else CIFAR10_DIR, else the cache (fetched when missing); resolved once. */
  dataDir(): Promise<string>;
  /** The first `limit` test images. */
  testSet(limit?: number): Promise<Dataset>;
  /** The first `limit` training images (loaded once per limit). */
  trainSet(limit?: number): Promise<Dataset>;
}

/** What a command's flags say about the session. */
export interface SessionFlags {
  backend?: string;
  model?: string;
  config?: string;
  data?: string;
}

/**
 * Set up the backend and load the model; the data is opened on first use.
 *
 * @example
 * ```ts
 * const s = await openSession(values, parsePreprocessing(values));
 * const layer = pickLayer(s.loaded.model, values.layer); // checks before any data is read
 * const test = await s.testSet(limit);
 * ```
 */
export async function openSession(
  flags: SessionFlags,
  preprocessing: Partial<Preprocessing>,
): Promise<Session> {
  const backend = await setupBackend((flags.backend ?? "auto") as BackendName);
  const modelPath = flags.model ?? DEFAULT_MODEL;
  const loaded = await loadModel(modelPath, { preprocessing, config: flags.config });
  let dir: Promise<string> | undefined;
  const trains = new Map<number, Promise<Dataset>>();
  const dataDir = () => (dir ??= resolveDataDir({ data: flags.data, fetch: true }));
  return {
    backend,
    modelPath,
    loaded,
    prep: loaded.preprocessing,
    dataDir,
    testSet: async (limit = Infinity) => loadTestSet(await dataDir(), limit),
    trainSet(limit = Infinity) {
      if (!trains.has(limit)) trains.set(limit, dataDir().then((d) => loadTrainSet(d, limit)));
      return trains.get(limit)!;
    },
  };
}
