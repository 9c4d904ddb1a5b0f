import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { decodeRecords, IMAGE_BYTES, RECORD_BYTES } from "../../src/data/cifar10.ts";
import { imagesToTensor } from "../../src/data/tensors.ts";
import { CLASS_COLOURS, squareCorner, syntheticCifar } from "../../src/data/synthetic.ts";
import { DEFAULT_PREPROCESSING } from "../../src/types.ts";
import { FIXTURE_RECORDS, writeDataFixtures } from "../../scripts/make_data_fixtures.ts";

Deno.test("syntheticCifar: deterministic, valid records, balanced labels", () => {
  const a = syntheticCifar(250, 7);
  assert.equal(a.length, 250 * RECORD_BYTES);
  assert.deepEqual(syntheticCifar(250, 7), a);
  assert.notDeepEqual(syntheticCifar(250, 8), a);
  const ds = decodeRecords(a, "synthetic");
  const counts = new Array(10).fill(0);
  for (const l of ds.labels) counts[l]++;
  assert.deepEqual(counts, new Array(10).fill(25));
  assert.notDeepEqual([...ds.labels.subarray(0, 10)], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]); // shuffled
  assert.throws(() => syntheticCifar(-1, 0), RangeError);
});

Deno.test("syntheticCifar: each class shows its colour and its bright square", () => {
  const ds = decodeRecords(syntheticCifar(100, 3), "synthetic");
  for (let n = 0; n < ds.count; n++) {
    const label = ds.labels[n];
    const img = ds.images.subarray(n * IMAGE_BYTES, (n + 1) * IMAGE_BYTES);
    const [sr, sc] = squareCorner(label);
    const mean = (inSquare: boolean) => {
      const sum = [0, 0, 0];
      let k = 0;
      for (let y = 0; y < 32; y++) {
        for (let x = 0; x < 32; x++) {
          if ((y >= sr && y < sr + 8 && x >= sc && x < sc + 8) !== inSquare) continue;
          for (let c = 0; c < 3; c++) sum[c] += img[(y * 32 + x) * 3 + c];
          k++;
        }
      }
      return sum.map((s) => s / k);
    };
    const bg = mean(false), sq = mean(true);
    for (let c = 0; c < 3; c++) {
      assert.ok(
        Math.abs(bg[c] - CLASS_COLOURS[label][c]) < 20,
        `image ${n} class ${label} channel ${c}: ${bg[c]}`,
      );
      assert.ok(sq[c] > 220, `image ${n}: square channel ${c} is ${sq[c]}`);
    }
  }
});

Deno.test("syntheticCifar is learnable: a tiny CNN passes 90% test accuracy in 20 steps", async () => {
  await tf.setBackend("cpu");
  const before = tf.memory().numTensors;
  const train = decodeRecords(syntheticCifar(200, 21), "train");
  const test = decodeRecords(syntheticCifar(200, 22), "test");
  const init = (seed: number) => tf.initializers.glorotUniform({ seed });
  const model = tf.sequential({
    layers: [
      tf.layers.averagePooling2d({ inputShape: [32, 32, 3], poolSize: 4 }),
      tf.layers.conv2d({
        filters: 8,
        kernelSize: 3,
        padding: "same",
        activation: "relu",
        kernelInitializer: init(1),
      }),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 10, activation: "softmax", kernelInitializer: init(2) }),
    ],
  });
  const optimizer = tf.train.adam(0.01);
  model.compile({
    optimizer,
    loss: "sparseCategoricalCrossentropy",
    metrics: ["accuracy"],
  });
  const x = imagesToTensor(train, 0, train.count, DEFAULT_PREPROCESSING);
  const y = tf.tensor1d(train.labels, "float32");
  await model.fit(x, y, { batchSize: 20, epochs: 2, shuffle: false, verbose: 0 }); // 2 x 10 = 20 steps
  const xt = imagesToTensor(test, 0, test.count, DEFAULT_PREPROCESSING);
  const predicted = tf.tidy(() => (model.predict(xt) as tf.Tensor).argMax(-1));
  const labels = await predicted.data();
  let correct = 0;
  for (let i = 0; i < test.count; i++) if (labels[i] === test.labels[i]) correct++;
  tf.dispose([x, y, xt, predicted]);
  model.dispose();
  optimizer.dispose();
  const accuracy = correct / test.count;
  assert.ok(accuracy >= 0.9, `test accuracy ${accuracy}`);
  assert.equal(tf.memory().numTensors, before);
});

Deno.test("the committed fixtures/cifar10-tiny is exactly what scripts/make_data_fixtures.ts writes", async () => {
  const dir = await Deno.makeTempDir({ prefix: "prunescope-fixture-" });
  try {
    const names = await writeDataFixtures(dir);
    assert.equal(names.length, 7);
    for (const name of names) {
      const committed = await Deno.readFile(new URL(`../../fixtures/cifar10-tiny/${name}`, import.meta.url));
      assert.deepEqual(await Deno.readFile(`${dir}/${name}`), committed, `${name} differs: rerun the script`);
    }
    assert.equal(FIXTURE_RECORDS * RECORD_BYTES, (await Deno.stat(`${dir}/test_batch.bin`)).size);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
