/**
 * `deno task bench` on tiny cases: one JSON object per case with the documented fields, counts
 * equal to the single-process sweepFast and to the naive method, the same counts with two
 * workers and with the algebra, the residual case (a ResNet-20 group), one clear line for bad options.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const TINY = [
  "--model",
  "fixtures/models/tiny-bn/model.json",
  "--data",
  "fixtures/cifar10-tiny",
  "--limit",
  "40",
];

/** Run `deno task <task> ...args`: the exit code, each stdout line parsed as JSON, and stderr. */
async function bench(
  args: string[],
  task = "bench",
): Promise<{ code: number; results: Record<string, unknown>[]; stderr: string }> {
  const { code, stdout, stderr } = await new Deno.Command("deno", {
    args: ["task", "--quiet", task, ...args],
    cwd: root,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(stdout).trim();
  const results = text ? text.split("\n").map((line) => JSON.parse(line)) : [];
  return { code, results, stderr: new TextDecoder().decode(stderr) };
}

Deno.test("bench: all three cases on a tiny model print valid JSON with the documented fields", async () => {
  const { code, results, stderr } = await bench([
    ...TINY,
    "--case",
    "all",
    "--width",
    "0.0625",
    "--k-subset",
    "0,8,16",
    "--naive-images",
    "40",
    "--backend",
    "wasm",
    "--verify",
  ]);
  assert.equal(code, 0, stderr);
  assert.deepEqual(results.map((r) => r.case), ["a", "b", "c"]);
  for (const r of results) {
    for (const key of ["model", "layer", "channels", "images", "kValues", "backend", "workers", "seconds"]) {
      assert.ok(key in r, `${r.case}: ${key} missing`);
    }
    const s = r.seconds as Record<string, number>;
    for (const key of ["setup", "load", "prefix", "sweep", "total"]) {
      assert.ok(s[key] >= 0, `${r.case}: seconds.${key}`);
    }
    assert.ok(Math.abs(s.total - (s.load + s.prefix + s.sweep)) < 0.01);
    const mem = r.peakMemoryBytes as Record<string, number>;
    assert.ok(mem.rss > 0 && mem.tf > 0);
    assert.equal(r.images, 40);
    assert.equal(r.backend, "wasm");
    const rows = r.rows as Record<string, number>;
    assert.ok(rows.evaluated > 0 && rows.evaluated <= rows.inputChanged && rows.inputChanged <= rows.plain);
    assert.equal(rows.plain, 40 * (r.kValues as number));
    const correct = r.correct as number[];
    assert.equal(correct.length, r.kValues);
    assert.equal(correct[0], Math.round((r.accuracy as { k0: number }).k0 * 40));
    // The single-process sweepFast gives every count the bench got.
    assert.deepEqual((r.verify as { equal: boolean }).equal, true, JSON.stringify(r.verify));
  }
  const [a, b, c] = results;
  assert.deepEqual([a.layer, a.channels, a.kValues], ["conv2", 16, 17]);
  assert.deepEqual([b.layer, b.channels, b.kValues], ["block5_conv3", 32, 33]);
  assert.equal(a.naive, null);
  const naive = c.naive as Record<string, unknown>;
  assert.deepEqual(naive.kValues, [0, 8, 16]);
  assert.equal(naive.images, 40);
  // The naive method's counts on the subset are the fast sweep's.
  assert.equal(naive.matchesFast, true);
  assert.ok((naive.projectedSecondsAllK as number) > (naive.seconds as number));
  assert.ok((c.ratio as number) > 0 && (c.ratioCpu as number) > 0);
  assert.ok((naive.projectedCpuSecondsAllK as number) > (naive.cpuSeconds as number));
  assert.equal(c.countsDigest, a.countsDigest);
  assert.ok((b.ratio as number) > 0);
});

Deno.test("bench: two workers (K split) and the algebra give the single worker's counts", async () => {
  const one = await bench([...TINY, "--case", "a", "--backend", "wasm"]);
  const two = await bench([
    ...TINY,
    "--case",
    "a",
    "--backend",
    "wasm",
    "--workers",
    "2",
    "--split",
    "k",
    "--engine",
    "algebra",
  ]);
  assert.equal(one.code, 0, one.stderr);
  assert.equal(two.code, 0, two.stderr);
  assert.equal(two.results[0].workers, 2);
  assert.equal(two.results[0].split, "k");
  assert.equal(two.results[0].countsDigest, one.results[0].countsDigest);
  const kernel = await bench([
    ...TINY,
    "--case",
    "b",
    "--width",
    "0.25",
    "--backend",
    "wasm",
    "--workers",
    "2",
    "--engine",
    "dense-kernel",
  ]);
  const plain = await bench([
    ...TINY,
    "--case",
    "b",
    "--width",
    "0.25",
    "--backend",
    "wasm",
    "--engine",
    "exact",
  ]);
  assert.equal(kernel.code, 0, kernel.stderr);
  assert.equal(kernel.results[0].engine, "change-only + dense kernel (exact)");
  assert.deepEqual(kernel.results[0].correct, plain.results[0].correct);
  const both = await bench([...TINY, "--case", "a", "--algebra", "--dense-kernel"]);
  assert.equal(both.code, 1);
  assert.match(both.stderr, /each pick an engine: pass one --engine/);
});

Deno.test("bench: a bad option is one clear line and exit code 1", async () => {
  const { code, results, stderr } = await bench(["--case", "z"]);
  assert.equal(code, 1);
  assert.equal(results.length, 0);
  assert.equal(stderr.trim().split("\n").length, 1, stderr);
  assert.match(stderr, /--case must be a, b, c, r or all/);
});

Deno.test("bench: the residual case sweeps ResNet-20's last group, fast and naive to the same counts", async () => {
  const args = ["--case", "r", "--data", "fixtures/cifar10-tiny", "--limit", "12", "--k-subset", "0,32,64"];
  const { code, results, stderr } = await bench([...args, "--backend", "wasm"]);
  assert.equal(code, 0, stderr);
  assert.equal(results.length, 1);
  const [r] = results;
  assert.equal(r.case, "r");
  assert.equal(r.layer, "stage3_block1_conv2+stage3_block1_proj+stage3_block2_conv2+stage3_block3_conv2");
  assert.equal(r.channels, 64);
  const naive = r.naive as Record<string, unknown>;
  assert.deepEqual(naive.kValues, [0, 32, 64]);
  assert.equal(naive.matchesFast, true);
  assert.ok((r.ratio as number) > 0);
});

Deno.test("bench-kernel: one JSON object, the kernel's floats equal tf.fused.matMul's, rates counted from the work", async () => {
  const { code, results, stderr } = await bench(
    ["--rows", "9", "--runs", "1", "--zeros", "0.25"],
    "bench-kernel",
  );
  assert.equal(code, 0, stderr);
  assert.equal(results.length, 1);
  const r = results[0] as {
    rows: number;
    sameFloats: boolean;
    kernel: { seconds: number; macsRun: number; gflopsRun: number };
  };
  assert.equal(r.rows, 9);
  assert.equal(r.sameFloats, true);
  // 9 rows run as 3 blocks of 4 over the inputs non-zero in the block (a block's rows share their
  // zeros): never more than dense, about 3/4 of it here.
  const dense = 12 * 4096 * 1024;
  assert.ok(r.kernel.macsRun <= dense && r.kernel.macsRun >= 0.6 * dense, String(r.kernel.macsRun));
  assert.ok(Math.abs(r.kernel.gflopsRun - (2 * r.kernel.macsRun) / r.kernel.seconds / 1e9) < 1e-6);
  const bad = await bench(["--zeros", "1"], "bench-kernel");
  const err = bad.stderr.trim();
  assert.equal(bad.code, 1);
  assert.match(err, /^prunescope bench-kernel: --zeros must be a fraction in \[0, 1\)/);
  assert.equal(err.split("\n").length, 1, err);
});
