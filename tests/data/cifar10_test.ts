import assert from "node:assert/strict";
import { join } from "node:path";
import {
  CLASS_NAMES,
  concatDatasets,
  decodeRecords,
  IMAGE_BYTES,
  loadTestSet,
  loadTrainSet,
  RECORD_BYTES,
  sliceDataset,
  TEST_FILE,
  TRAIN_FILES,
} from "../../src/data/cifar10.ts";
import { syntheticCifar } from "../../src/data/synthetic.ts";
import { oneLineUserError, rejectsUserError, withTempDir } from "../_helpers.ts";

const FIXTURE = new URL("../../fixtures/cifar10-tiny/", import.meta.url).pathname;
const SHARED = new URL("../../../shared/cifar10/", import.meta.url).pathname;
const hasShared = (() => {
  try {
    return Deno.statSync(join(SHARED, TEST_FILE)).isFile;
  } catch {
    return false;
  }
})();

/** One hand-made record: label, then constant R, G, B planes with one marked pixel. */
function handRecord(label: number, r: number, g: number, b: number): Uint8Array {
  const rec = new Uint8Array(RECORD_BYTES);
  rec[0] = label;
  rec.fill(r, 1, 1025);
  rec.fill(g, 1025, 2049);
  rec.fill(b, 2049, 3073);
  rec[1 + 33] = 255; // red of pixel (row 1, col 1)
  return rec;
}

function classCounts(labels: Uint8Array): number[] {
  const counts = new Array(10).fill(0);
  for (const l of labels) counts[l]++;
  return counts;
}

function throwsUserError(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, oneLineUserError(pattern));
}

Deno.test("decodeRecords: planar RGB records become HWC images with their labels", () => {
  const bytes = new Uint8Array(2 * RECORD_BYTES);
  bytes.set(handRecord(3, 10, 20, 30), 0);
  bytes.set(handRecord(9, 40, 50, 60), RECORD_BYTES);
  const ds = decodeRecords(bytes, "hand");
  assert.equal(ds.count, 2);
  assert.deepEqual([...ds.labels], [3, 9]);
  assert.equal(ds.images.length, 2 * IMAGE_BYTES);
  // pixel 0 of image 0 is (10, 20, 30); of image 1 (40, 50, 60)
  assert.deepEqual([...ds.images.subarray(0, 3)], [10, 20, 30]);
  assert.deepEqual([...ds.images.subarray(IMAGE_BYTES, IMAGE_BYTES + 3)], [40, 50, 60]);
  // pixel (1, 1) = index 33 in HWC: red 255, green and blue untouched
  assert.deepEqual([...ds.images.subarray(33 * 3, 33 * 3 + 3)], [255, 20, 30]);
  assert.equal(ds.source, "hand");

  const limited = decodeRecords(bytes, "hand", 1);
  assert.equal(limited.count, 1);
  assert.deepEqual([...limited.labels], [3]);
});

Deno.test("decodeRecords: truncated, empty and wrong-format bytes give one-line UserErrors", () => {
  const good = syntheticCifar(3, 1);
  throwsUserError(
    () => decodeRecords(good.subarray(0, good.length - 100), "cut.bin"),
    /cut\.bin has 9119 bytes, not a whole number of 3,073-byte CIFAR-10 records/,
  );
  throwsUserError(() => decodeRecords(new Uint8Array(0), "empty.bin"), /empty\.bin has 0 bytes/);
  // CIFAR-100 records have two label bytes (3,074 bytes each): not CIFAR-10.
  throwsUserError(
    () => decodeRecords(new Uint8Array(10 * 3074), "cifar100.bin"),
    /cifar100\.bin has 30740 bytes/,
  );
});

Deno.test("decodeRecords: a label outside 0..9 gives a UserError naming the record", () => {
  const bytes = syntheticCifar(5, 2);
  bytes[3 * RECORD_BYTES] = 10;
  throwsUserError(() => decodeRecords(bytes, "bad.bin"), /bad\.bin: record 3 has label 10, outside 0\.\.9/);
});

Deno.test("loadTestSet / loadTrainSet read the tiny fixture", async () => {
  const test = await loadTestSet(FIXTURE);
  assert.equal(test.count, 200);
  assert.deepEqual(classCounts(test.labels), new Array(10).fill(20));
  const head = await loadTestSet(FIXTURE, 50);
  assert.equal(head.count, 50);
  assert.deepEqual(head.images, test.images.subarray(0, 50 * IMAGE_BYTES));

  const train = await loadTrainSet(FIXTURE);
  assert.equal(train.count, 1000);
  assert.deepEqual(classCounts(train.labels), new Array(10).fill(100));
  // batches follow each other in order: image 200 is the first of data_batch_2
  const second = decodeRecords(await Deno.readFile(join(FIXTURE, TRAIN_FILES[1])), "b2");
  assert.deepEqual(
    train.images.subarray(200 * IMAGE_BYTES, 201 * IMAGE_BYTES),
    second.images.subarray(0, IMAGE_BYTES),
  );
  assert.equal(train.labels[200], second.labels[0]);

  const part = await loadTrainSet(FIXTURE, 250); // all of batch 1 and 50 of batch 2
  assert.equal(part.count, 250);
  assert.deepEqual(part.labels, train.labels.subarray(0, 250));

  const meta = (await Deno.readTextFile(join(FIXTURE, "batches.meta.txt"))).trim().split("\n");
  assert.deepEqual(meta, CLASS_NAMES);
});

Deno.test("sliceDataset and concatDatasets keep images and labels together", async () => {
  const test = await loadTestSet(FIXTURE);
  const a = sliceDataset(test, 0, 120);
  const b = sliceDataset(test, 120, 500); // clipped at the end
  assert.equal(b.count, 80);
  const joined = concatDatasets([a, b], "joined");
  assert.equal(joined.count, 200);
  assert.deepEqual(joined.images, test.images);
  assert.deepEqual(joined.labels, test.labels);
});

Deno.test("loaders: missing, truncated and corrupt files give one-line UserErrors", async () => {
  await withTempDir(async (dir) => {
    await rejectsUserError(
      () => loadTestSet(dir),
      /CIFAR-10 file missing: .*test_batch\.bin\. Pass --data DIR, set CIFAR10_DIR, or run 'deno task fetch-data'/,
    );
    await rejectsUserError(() => loadTestSet(join(dir, "no-such-folder")), /CIFAR-10 file missing/);

    const good = syntheticCifar(4, 3);
    await Deno.writeFile(join(dir, TEST_FILE), good.subarray(0, 2 * RECORD_BYTES + 7));
    await rejectsUserError(() => loadTestSet(dir), /test_batch\.bin has 6153 bytes, not a whole number/);

    await Deno.writeFile(join(dir, TEST_FILE), new Uint8Array(0));
    await rejectsUserError(() => loadTestSet(dir), /test_batch\.bin has 0 bytes/);

    const badLabel = good.slice();
    badLabel[RECORD_BYTES] = 200;
    await Deno.writeFile(join(dir, TEST_FILE), badLabel);
    await rejectsUserError(() => loadTestSet(dir), /record 1 has label 200/);

    // Train set: batch 1 fine, batch 2 missing.
    await Deno.writeFile(join(dir, TRAIN_FILES[0]), good);
    await rejectsUserError(() => loadTrainSet(dir), /CIFAR-10 file missing: .*data_batch_2\.bin/);
    assert.equal((await loadTrainSet(dir, 4)).count, 4); // the limit is met by batch 1 alone
  });
});

Deno.test({
  name: "the real CIFAR-10 in ../shared/cifar10: record and class counts",
  ignore: !hasShared,
  fn: async () => {
    const test = await loadTestSet(SHARED);
    assert.equal(test.count, 10000);
    assert.deepEqual(classCounts(test.labels), new Array(10).fill(1000));
    const train = await loadTrainSet(SHARED);
    assert.equal(train.count, 50000);
    assert.deepEqual(classCounts(train.labels), new Array(10).fill(5000));
    // data_batch_1 is in the official order: its first labels are known.
    assert.deepEqual([...train.labels.subarray(0, 10)], [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]);
    // Mean red of the test set is about 126 (SOURCE.md: 125.99).
    let red = 0;
    for (let i = 0; i < test.images.length; i += 3) red += test.images[i];
    assert.ok(Math.abs(red / (test.count * 1024) - 126) < 0.5);
  },
});
