/**
 * `deno task fetch-data [--dest DIR] [--url URL]`: download the official CIFAR-10 binary
 * tarball, verify its size and checksums, and extract it atomically into the cache (or DIR).
 */
import { join } from "node:path";
import { UserError } from "../core/errors.ts";
import { parseFlags } from "../cli/args.ts";
import { checkOutput } from "../cli/out_dir.ts";
import {
  cachedDataDir,
  cacheDir,
  CIFAR10_SIZE,
  CIFAR10_URL,
  DATASET_NAMES,
  fetchCifar10,
  fetchDataset,
  REMOTE_DATASETS,
} from "../data/fetch.ts";

const HELP = `usage: deno task fetch-data [--dataset NAME] [--dest DIR] [--url URL]

Download CIFAR-10 (binary version, ${(CIFAR10_SIZE / 1e6).toFixed(0)} MB) from ${CIFAR10_URL},
check its size, SHA-256 and MD5, and extract it into the cache. Does nothing when the data is
already there. A failed download leaves nothing behind.

options:
  --dataset NAME  ${DATASET_NAMES.join(" | ")} (default cifar10): CIFAR-100 binary,
               or the four IDX .gz files of Fashion-MNIST / MNIST from their official hosts, each
               checked against its published MD5, into <cache>/<name>
  --dest DIR   the data folder to create (default: ${cachedDataDir()});
               the cache is $PRUNESCOPE_CACHE, else $XDG_CACHE_HOME/prunescope, else ~/.cache/prunescope
  --url URL    download from a mirror instead (default: $PRUNESCOPE_CIFAR10_URL, else the official URL);
               the file must still match the official checksum unless PRUNESCOPE_CIFAR10_SHA256
               and PRUNESCOPE_CIFAR10_SIZE say otherwise. The task may reach only the official hosts.
  -h, --help   show this help

Other ways to supply the data to any command: --data DIR, or CIFAR10_DIR=DIR.`;

/** Run the fetch-data command. */
export async function run(args: string[]): Promise<void> {
  const values = parseFlags(
    args,
    {
      dest: { type: "string" },
      url: { type: "string" },
      dataset: { type: "string", default: "cifar10" },
      help: { type: "boolean", short: "h" },
    },
    "fetch-data",
    "Run",
  );
  if (values.help) {
    console.log(HELP);
    return;
  }
  const dataset = values.dataset ?? "cifar10";
  if (!DATASET_NAMES.includes(dataset)) {
    throw new UserError(`--dataset takes ${DATASET_NAMES.join(", ")}, not '${dataset}'.`);
  }
  if (dataset !== "cifar10" && values.url !== undefined) {
    throw new UserError(
      `--url is for CIFAR-10 mirrors; --dataset ${dataset} downloads from its official host.`,
    );
  }
  // Where the data will go, checked before the download (an existing folder is the fetcher's to judge).
  const dest = values.dest ??
    (dataset === "cifar10" ? cachedDataDir() : join(cacheDir(), REMOTE_DATASETS[dataset].folder));
  const isFolder = await Deno.stat(dest).then((i) => i.isDirectory, () => false);
  if (!isFolder) await checkOutput(dest, "--dest", "folder");
  const started = performance.now();
  const dir = dataset === "cifar10"
    ? await fetchCifar10({ dest: values.dest, url: values.url })
    : await fetchDataset(dataset, { dest: values.dest });
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  const hint = dataset !== "cifar10"
    ? `Point commands at it with --data ${dir}.`
    : values.dest === undefined
    ? "Commands find it there by themselves."
    : `Point commands at it with --data ${dir} or CIFAR10_DIR=${dir}.`;
  console.log(`${dataset === "cifar10" ? "CIFAR-10" : dataset} is ready in ${dir} (${seconds} s). ${hint}`);
}
