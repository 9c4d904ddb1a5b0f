/**
 * The mask ops: pruned channels hold `fill` everywhere, every other value keeps its exact bits;
 * the stacked device version, the stacked host version and the single-mask op agree bit for bit.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { setupBackend } from "../../src/backend.ts";
import { mulberry32 } from "../../src/core/random.ts";
import { maskChannels, maskChannelsStacked, maskStackInto } from "../../src/sweep/mask.ts";

/** Values with awkward bits: negatives, -0, tiny and huge magnitudes. */
function awkwardValues(length: number, seed: number): Float32Array {
  const rand = mulberry32(seed);
  const v = new Float32Array(length);
  for (let i = 0; i < length; i++) {
    const r = rand();
    v[i] = r < 0.05
      ? -0
      : r < 0.1
      ? 1e-40 * (rand() - 0.5)
      : r < 0.15
      ? 1e30 * (rand() - 0.5)
      : (rand() - 0.5) * 7;
  }
  return v;
}

const bits = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);

for (const backend of ["cpu", "wasm"] as const) {
  Deno.test(`maskChannels (${backend}): pruned channels equal fill, others bit-identical`, async () => {
    await setupBackend(backend);
    const [n, h, w, c] = [3, 4, 5, 6];
    const src = awkwardValues(n * h * w * c, 9);
    const pruned = [true, false, false, true, false, true];
    for (const fill of [0, 0.5, -1.25]) {
      const before = tf.memory().numTensors;
      const y = tf.tensor4d(src, [n, h, w, c]);
      const masked = maskChannels(y, pruned, fill);
      const got = masked.dataSync() as Float32Array;
      tf.dispose([y, masked]);
      assert.equal(tf.memory().numTensors, before);
      const gotBits = bits(got), srcBits = bits(src);
      for (let i = 0; i < got.length; i++) {
        if (pruned[i % c]) assert.equal(got[i], fill, `value ${i} (channel ${i % c}) not filled`);
        else assert.equal(gotBits[i], srcBits[i], `value ${i} (channel ${i % c}) changed bits`);
      }
    }
    // A Uint8Array mask works the same, and a wrong-length mask is an error.
    const y = tf.tensor4d(src, [n, h, w, c]);
    const a = maskChannels(y, Uint8Array.from(pruned, Number), 0.5);
    const b = maskChannels(y, pruned, 0.5);
    assert.deepEqual(bits(a.dataSync() as Float32Array), bits(b.dataSync() as Float32Array));
    assert.throws(() => maskChannels(y, [true], 0));
    tf.dispose([y, a, b]);
  });

  Deno.test(`maskChannelsStacked (${backend}): host and device stacks equal maskChannels per block`, async () => {
    await setupBackend(backend);
    const [n, h, w, c, m] = [2, 3, 3, 5, 4];
    const src = awkwardValues(n * h * w * c, 3);
    const rand = mulberry32(5);
    const masks = Uint8Array.from({ length: m * c }, () => rand() < 0.5 ? 1 : 0);
    masks.fill(0, 0, c); // block 0: nothing pruned
    masks.fill(1, (m - 1) * c); // last block: everything pruned
    const fill = 0.5;
    const before = tf.memory().numTensors;
    const y = tf.tensor4d(src, [n, h, w, c]);
    const device = maskChannelsStacked(y, masks, m, fill, "device");
    const host = maskChannelsStacked(y, masks, m, fill, "host");
    assert.deepEqual(device.shape, [m * n, h, w, c]);
    assert.deepEqual(host.shape, [m * n, h, w, c]);
    const deviceBits = bits(device.dataSync() as Float32Array);
    assert.deepEqual(bits(host.dataSync() as Float32Array), deviceBits);
    const into = maskStackInto(new Float32Array(m * src.length), src, c, masks, m, fill);
    assert.deepEqual(bits(into), deviceBits);
    const block = n * h * w * c;
    for (let j = 0; j < m; j++) {
      const single = maskChannels(y, masks.subarray(j * c, (j + 1) * c), fill);
      assert.deepEqual(
        bits(single.dataSync() as Float32Array),
        deviceBits.subarray(j * block, (j + 1) * block),
      );
      single.dispose();
    }
    assert.deepEqual(deviceBits.subarray(0, block), bits(src)); // block 0 is the input itself
    assert.ok((device.dataSync() as Float32Array).subarray((m - 1) * block).every((v) => v === fill));
    tf.dispose([y, device, host]);
    assert.equal(tf.memory().numTensors, before);
  });
}

Deno.test("per-channel fill values: host and device stacks agree, each pruned channel gets its own value", async () => {
  await setupBackend("wasm");
  const [n, h, w, c, m] = [2, 2, 3, 4, 3];
  const src = awkwardValues(n * h * w * c, 11);
  const masks = Uint8Array.from([0, 0, 0, 0, 1, 0, 1, 0, 1, 1, 1, 1]);
  const fill = Float32Array.from([0.25, -3, 1e-3, 7]);
  const y = tf.tensor4d(src, [n, h, w, c]);
  const device = maskChannelsStacked(y, masks, m, fill, "device");
  const host = maskStackInto(new Float32Array(m * src.length), src, c, masks, m, fill);
  const got = device.dataSync() as Float32Array;
  assert.deepEqual(bits(host), bits(got));
  const block = src.length;
  for (let j = 0; j < m; j++) {
    for (let i = 0; i < block; i++) {
      const ch = i % c;
      const want = masks[j * c + ch] ? fill[ch] : src[i];
      assert.equal(
        new Uint32Array(Float32Array.of(got[j * block + i]).buffer)[0],
        new Uint32Array(Float32Array.of(want).buffer)[0],
      );
    }
  }
  assert.throws(() =>
    maskStackInto(new Float32Array(m * src.length), src, c, masks, m, Float32Array.of(1, 2))
  );
  tf.dispose([y, device]);
});

Deno.test("maskStackInto: checks its sizes", () => {
  const src = new Float32Array(12);
  assert.throws(() => maskStackInto(new Float32Array(12), src, 5, new Uint8Array(5), 1, 0)); // 12 % 5
  assert.throws(() => maskStackInto(new Float32Array(12), src, 3, new Uint8Array(6), 2, 0)); // dst too small
  assert.throws(() => maskStackInto(new Float32Array(24), src, 3, new Uint8Array(5), 2, 0)); // masks
});
