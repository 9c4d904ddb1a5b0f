/**
 * `deno task inspect`: print a model's layers, output shapes and parameter counts as Keras's
 * `model.summary()` does, marking the conv layers that can be pruned and the last one (the
 * default `--layer`); `--json` for the same as data.
 *
 * @example
 * ```sh
 * deno task inspect --model fixtures/models/tiny-bn/model.json
 * deno task inspect --model model.json --json | jq '.convLayers[-1].name'
 * ```
 */
import { setupBackend } from "../backend.ts";
import { DEFAULT_MODEL } from "../cli/session.ts";
import { parseFlags } from "../cli/args.ts";
import { loadModel } from "../model/load.ts";
import { convLayers } from "../model/layers.ts";
import { channelGroups } from "../model/coupling.ts";
import { UserError } from "../core/errors.ts";
import { formatSummary, modelSummary } from "../model/summary.ts";
import type { Preprocessing } from "../types.ts";

/** The shipped model, used when no --model is given (the same default as `sweep`). */

const HELP = `deno task inspect [--model PATH] [--json]

Print a model's layers, output shapes and parameters (like Keras's model.summary()), marking the
Conv2D layers that 'sweep --layer' can prune and the last one, the default.

Options:
  --model PATH   TF.js model.json, Keras .h5 or .keras   (default: the shipped model)
  --config PATH  Keras model.to_json() file, for a weights-only .h5
  --json         print the summary as JSON instead of a table
  -h, --help     this text`;

/** The preprocessing in words, e.g. "x/255" or "(x*0.00392 - mean) / std, mean 0.49,0.48,0.45 ...". */
export function describePreprocessing(p: Preprocessing): string {
  const plain = p.mean.every((m) => m === 0) && p.std.every((s) => s === 1);
  const scale = Math.abs(p.scale - 1 / 255) < 1e-12 ? "x/255" : p.scale === 1 ? "x" : `x*${p.scale}`;
  return plain ? scale : `(${scale} - mean) / std, mean ${p.mean.join(",")}, std ${p.std.join(",")}`;
}

/** Run `inspect` with command-line `args`. */
export async function run(args: string[]): Promise<void> {
  const values = parseFlags(
    args,
    {
      model: { type: "string" },
      config: { type: "string" },
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
    "inspect",
    "Run",
  );
  if (values.help) {
    console.log(HELP);
    return;
  }
  // Loading only reads weights; wasm avoids the cpu backend's Node.js banner.
  await setupBackend("wasm");
  const path = values.model ?? DEFAULT_MODEL;
  const loaded = await loadModel(path, { config: values.config });
  const summary = modelSummary(loaded.model);
  const convs = convLayers(loaded.model);
  // The coupled channel groups (each swept and pruned as one), or why they cannot be told.
  let groups: { members: string[]; merges: string[] }[] = [];
  let groupError: string | undefined;
  try {
    groups = channelGroups(loaded.model).map((g) => ({
      members: g.members.map((m) => m.name),
      merges: g.merges,
    }));
  } catch (e) {
    if (!(e instanceof UserError)) throw e;
    groupError = e.message;
  }
  if (values.json) {
    console.log(JSON.stringify(
      {
        model: path,
        format: loaded.format,
        name: summary.name,
        input: loaded.model.inputs[0].shape,
        output: loaded.model.outputs[0].shape,
        preprocessing: loaded.preprocessing,
        preprocessingSource: loaded.preprocessingSource,
        layers: summary.rows,
        totalParams: summary.totalParams,
        trainableParams: summary.trainableParams,
        nonTrainableParams: summary.totalParams - summary.trainableParams,
        convLayers: convs,
        defaultLayer: convs.length > 0 ? convs[convs.length - 1].name : null,
        groups,
        ...(groupError ? { groupError } : {}),
      },
      null,
      2,
    ));
    return;
  }
  console.log(formatSummary(summary));
  console.log(
    `Input preprocessing: ${describePreprocessing(loaded.preprocessing)} (${loaded.preprocessingSource})`,
  );
  console.log(
    convs.length > 0
      ? `Conv2D layers (prunable): ${convs.map((c) => `${c.name} [${c.channels} ch]`).join(", ")}; ` +
        `default --layer: ${convs[convs.length - 1].name}`
      : "This model has no Conv2D layer to prune.",
  );
  for (const g of groups) {
    console.log(
      `Coupled channel group (pruned as one, via ${g.merges.join(", ")}): ${g.members.join(" + ")}`,
    );
  }
  if (groupError) console.log(`Coupled channel groups: ${groupError}`);
}
