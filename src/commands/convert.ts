/**
 * `convert`: write a model as a TF.js LayersModel (model.json + weights.bin), or, when --out ends
 * in .h5, as a Keras 2 HDF5 file. Loading goes through loadModel, so the same CIFAR-10 checks apply.
 *
 * @example
 * ```sh
 * deno task convert --model cifar10_model.keras --out out/cifar10-tfjs
 * deno task convert --model weights.h5 --config model.json --out out/vgg-tfjs --scale 1/255
 * ```
 */
import { UserError } from "../core/errors.ts";
import { parseFlags } from "../cli/args.ts";
import { checkOutput, claimOutDir } from "../cli/out_dir.ts";
import { setupBackend } from "../backend.ts";
import { loadModel } from "../model/load.ts";
import { fileSaver } from "../model/tfjs_io.ts";
import { writeFileAtomic } from "../core/atomic.ts";
import type { Preprocessing } from "../types.ts";

const USAGE = `usage: deno task convert --model FILE --out DIR [options]

Convert a Keras model (.h5 Keras 2 / Keras 3 legacy, or .keras) to a TF.js LayersModel
(DIR/model.json + DIR/weights.bin), loadable with tf.loadLayersModel. With --out FILE.h5,
write a Keras 2 HDF5 file instead (from any model prunescope reads, a TF.js model.json too).

options:
  --model FILE     the model: .h5, .hdf5, .keras or a TF.js model.json
  --config FILE    the architecture (model.to_json()) for a weights-only .h5
  --out DIR|FILE   where to write (the task may only write under out/)
  --scale S        record the input preprocessing x' = (x*S - mean)/std in the metadata
  --mean A,B,C     (S may be a fraction such as 1/255); recorded only when given or when the
  --std A,B,C      model settles it itself (a Rescaling layer right after its input)
  -h, --help       show this help`;

/** Run `convert` with command-line `args`. */
export async function run(args: string[]): Promise<void> {
  const values = parseFlags(
    args,
    {
      model: { type: "string" },
      config: { type: "string" },
      out: { type: "string" },
      scale: { type: "string" },
      mean: { type: "string" },
      std: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    "convert",
    "Run",
  );
  if (values.help) {
    console.log(USAGE);
    return;
  }
  if (!values.model) throw new UserError("--model FILE is required. Run 'deno task convert --help'.");
  if (!values.out) throw new UserError("--out DIR is required. Run 'deno task convert --help'.");
  const flags = preprocessingFlags(values);
  // Fail before the (possibly slow) load when the output cannot be written.
  const toH5 = values.out.toLowerCase().endsWith(".h5") || values.out.toLowerCase().endsWith(".hdf5");
  await checkOutput(values.out, "--out", toH5 ? "file" : "folder");
  await using _claim = toH5 ? null : await claimOutDir(values.out, "--out", "convert");
  // Conversion only copies weights; wasm is exact and avoids the CPU backend's Node.js banner.
  await setupBackend("wasm");
  const loaded = await loadModel(values.model, { config: values.config, preprocessing: flags });
  const { model } = loaded;
  const params = model.countParams().toLocaleString("en-US");
  if (toH5) {
    const { writeKerasH5 } = await import("../model/keras/h5_writer.ts");
    await writeFileAtomic(values.out, await writeKerasH5(model));
    console.log(
      `wrote ${values.out}: Keras 2 HDF5, ${model.layers.length} layers, ${params} parameters ` +
        `(a Keras file cannot record the preprocessing; the model expects ${
          describe(loaded.preprocessing)
        }).`,
    );
    return;
  }
  const known = loaded.preprocessingSource !== "default";
  const metadata: Record<string, unknown> = { ...loaded.metadata };
  if (known) {
    const own = (metadata.prunescope ?? {}) as Record<string, unknown>;
    metadata.prunescope = { ...own, preprocessing: loaded.preprocessing };
  }
  await model.save(fileSaver(values.out, metadata));
  console.log(
    `wrote ${values.out}/model.json + weights.bin: ${model.layers.length} layers, ${params} parameters; ` +
      (known
        ? `preprocessing recorded: ${describe(loaded.preprocessing)} (from ${loaded.preprocessingSource}).`
        : `preprocessing not recorded (the file does not say; commands will use --scale/--mean/--std, default x/255).`),
  );
}

/** Preprocessing given with --scale / --mean / --std, if any. */
function preprocessingFlags(values: { scale?: string; mean?: string; std?: string }): Partial<Preprocessing> {
  const out: Partial<Preprocessing> = {};
  if (values.scale !== undefined) out.scale = parseNumber(values.scale, "--scale");
  if (values.mean !== undefined) out.mean = parseTriple(values.mean, "--mean");
  if (values.std !== undefined) {
    out.std = parseTriple(values.std, "--std");
    if (out.std.some((s) => s === 0)) throw new UserError("--std must not contain 0.");
  }
  return out;
}

function parseNumber(text: string, flag: string): number {
  const m = text.trim().match(/^([^/]+)\/([^/]+)$/);
  const v = m ? Number(m[1]) / Number(m[2]) : Number(text);
  if (!Number.isFinite(v) || text.trim() === "") {
    throw new UserError(`${flag} ${text} is not a number (e.g. 0.0039 or 1/255).`);
  }
  return v;
}

function parseTriple(text: string, flag: string): [number, number, number] {
  const parts = text.split(",").map((p) => parseNumber(p, flag));
  if (parts.length === 1) return [parts[0], parts[0], parts[0]];
  if (parts.length !== 3) {
    throw new UserError(`${flag} takes one number or three (R,G,B), not ${JSON.stringify(text)}.`);
  }
  return parts as [number, number, number];
}

function describe(p: Preprocessing): string {
  const scale = p.scale === 1 ? "x" : Math.abs(p.scale - 1 / 255) < 1e-12 ? "x/255" : `x*${p.scale}`;
  const plain = p.mean.every((m) => m === 0) && p.std.every((s) => s === 1);
  return plain ? scale : `(${scale} - [${p.mean.join(", ")}]) / [${p.std.join(", ")}]`;
}
