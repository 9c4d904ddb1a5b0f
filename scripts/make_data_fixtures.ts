/**
 * Write the tiny synthetic CIFAR-10 fixture to `fixtures/cifar10-tiny/`: data_batch_1..5.bin and
 * test_batch.bin of 200 learnable records each, plus batches.meta.txt. Deterministic (seeded).
 *
 *   deno run --allow-read --allow-write=fixtures scripts/make_data_fixtures.ts [DIR]
 */
import { join } from "node:path";
import { syntheticCifarFiles } from "../src/data/synthetic.ts";
import { writeFileAtomic } from "../src/core/atomic.ts";

/** Records per file in the committed fixture. */
export const FIXTURE_RECORDS = 200;
/** The seed the committed fixture was made with. */
export const FIXTURE_SEED = 2024;

/** Write the fixture files into `dir`; returns the names written. */
export async function writeDataFixtures(dir: string): Promise<string[]> {
  const files = syntheticCifarFiles(FIXTURE_RECORDS, FIXTURE_SEED);
  for (const [name, bytes] of Object.entries(files)) await writeFileAtomic(join(dir, name), bytes);
  return Object.keys(files);
}

if (import.meta.main) {
  const dir = Deno.args[0] ?? "fixtures/cifar10-tiny";
  const names = await writeDataFixtures(dir);
  console.log(`wrote ${names.length} files to ${dir}: ${names.join(", ")}`);
}
