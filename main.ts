/**
 * prunescope: which channels of this CNN can I cut, and what does it cost in accuracy?
 *
 * The single entry point: `deno run main.ts <command> [options]`. Each command lives in
 * `src/commands/<name>.ts` and exports `run(args)`; this file only dispatches and turns a
 * `UserError` into one clear line and a non-zero exit.
 */
import { UserError } from "./src/core/errors.ts";

interface Command {
  summary: string;
  load: () => Promise<{ run(args: string[]): Promise<void> }>;
}

const COMMANDS: Record<string, Command> = {
  sweep: {
    summary: "rank a conv layer's channels, prune K = 0..C, chart accuracy against K",
    load: () => import("./src/commands/sweep.ts"),
  },
  inspect: {
    summary: "print a model's layers, output shapes and parameters (like model.summary())",
    load: () => import("./src/commands/inspect.ts"),
  },
  "fetch-data": {
    summary: "download CIFAR-10 (official binary tarball, checksum verified) into the cache",
    load: () => import("./src/commands/fetch_data.ts"),
  },
  train: {
    summary: "train the lab's VGG-16-style network on CIFAR-10",
    load: () => import("./src/commands/train.ts"),
  },
  convert: {
    summary: "convert a Keras .h5/.keras model to a TF.js LayersModel",
    load: () => import("./src/commands/convert.ts"),
  },
  sensitivity: {
    summary: "prune each conv layer alone and chart accuracy against the fraction pruned",
    load: () => import("./src/commands/sensitivity.ts"),
  },
  prune: {
    summary: "physically remove pruned channels and export the smaller model",
    load: () => import("./src/commands/prune.ts"),
  },
  compress: {
    summary: "compress to a budget: K per layer from measured sensitivity, removed, fine-tuned, charted",
    load: () => import("./src/commands/compress.ts"),
  },
};

function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length));
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return [
    "prunescope: which channels of this CNN can I cut, and what does it cost in accuracy?",
    "",
    "usage: deno task <command> [options]      (or: deno run <permissions> main.ts <command> [options])",
    "",
    "commands:",
    ...lines,
    "",
    "Run 'deno task <command> --help' for a command's options.",
  ].join("\n");
}

/** Run one command line; returns the process exit code. */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === "--help" || name === "-h" || name === "help") {
    console.log(usage());
    return name ? 0 : 2;
  }
  const command = COMMANDS[name];
  if (!command) {
    console.error(`prunescope: unknown command '${name}'. Commands: ${Object.keys(COMMANDS).join(", ")}.`);
    return 2;
  }
  try {
    const mod = await command.load();
    await mod.run(rest);
    return 0;
  } catch (e) {
    if (e instanceof UserError) {
      console.error(`prunescope ${name}: ${e.message}`);
      return 1;
    }
    if (e instanceof Deno.errors.PermissionDenied || e instanceof Deno.errors.NotCapable) {
      console.error(
        `prunescope ${name}: permission denied (${e.message}). The tasks grant writes only under out/ ` +
          `and the data cache; pick an --out inside out/ or run main.ts with the permission you need.`,
      );
      return 1;
    }
    throw e;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
