/**
 * `deno task fetch-data [--dest DIR] [--url URL]`: download the official CIFAR-10 binary
 * tarball, verify its size and checksums, and extract it atomically into the cache (or DIR).
 */
import { parseFlags } from "../cli/args.ts";
import { checkOutput } from "../cli/out_dir.ts";
import { cachedDataDir, CIFAR10_SIZE, CIFAR10_URL, fetchCifar10 } from "../data/fetch.ts";

const HELP = `usage: deno task fetch-data [--dest DIR] [--url URL]

Download CIFAR-10 (binary version, ${(CIFAR10_SIZE / 1e6).toFixed(0)} MB) from ${CIFAR10_URL},
check its size, SHA-256 and MD5, and extract it into the cache. Does nothing when the data is
already there. A failed download leaves nothing behind.

options:
  --dest DIR   the data folder to create (default: ${cachedDataDir()});
               the cache is $PRUNESCOPE_CACHE, else $XDG_CACHE_HOME/prunescope, else ~/.cache/prunescope
  --url URL    download from a mirror instead (default: $PRUNESCOPE_CIFAR10_URL, else the official URL);
               the file must still match the official checksum unless PRUNESCOPE_CIFAR10_SHA256
               and PRUNESCOPE_CIFAR10_SIZE say otherwise. The task may reach only www.cs.toronto.edu.
  -h, --help   show this help

Other ways to supply the data to any command: --data DIR, or CIFAR10_DIR=DIR.`;

/** Run the fetch-data command. */
export async function run(args: string[]): Promise<void> {
  const values = parseFlags(
    args,
    {
      dest: { type: "string" },
      url: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    "fetch-data",
    "Run",
  );
  if (values.help) {
    console.log(HELP);
    return;
  }
  // Where the data will go, checked before the download (an existing folder is fetchCifar10's to judge).
  const dest = values.dest ?? cachedDataDir();
  const isFolder = await Deno.stat(dest).then((i) => i.isDirectory, () => false);
  if (!isFolder) await checkOutput(dest, "--dest", "folder");
  const started = performance.now();
  const dir = await fetchCifar10({ dest: values.dest, url: values.url });
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  const hint = values.dest === undefined
    ? "Commands find it there by themselves."
    : `Point commands at it with --data ${dir} or CIFAR10_DIR=${dir}.`;
  console.log(`CIFAR-10 is ready in ${dir} (${seconds} s). ${hint}`);
}
