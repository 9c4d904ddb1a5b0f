/**
 * Output folders: checked before the work, locked while a run writes, and left as found when a
 * run fails. (The bad-input corpus runs the refusals through every command; here the lock itself.)
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { checkOutput, claimOutDir, LOCK_NAME } from "../src/cli/out_dir.ts";
import { UserError } from "../src/core/errors.ts";
import { fixture, mainProcess } from "./_helpers.ts";

async function names(dir: string): Promise<string[]> {
  return (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();
}

Deno.test("claimOutDir: a second claim on the same folder is refused in one line; released, it is free", async () => {
  const dir = await Deno.makeTempDir();
  const out = join(dir, "a", "b");
  await checkOutput(out, "--out", "folder");
  const first = await claimOutDir(out, "--out", "sweep");
  assert.deepEqual(await names(out), [LOCK_NAME]);
  const lock = JSON.parse(await Deno.readTextFile(join(out, LOCK_NAME)));
  assert.equal(lock.pid, Deno.pid);
  assert.equal(lock.command, "sweep");
  await assert.rejects(claimOutDir(out, "--out", "prune"), (e: Error) => {
    assert.ok(e instanceof UserError);
    assert.match(e.message, /--out .*b is in use by another prunescope run \(sweep, pid \d+, started /);
    assert.ok(!e.message.includes("\n"));
    return true;
  });
  assert.deepEqual(await names(out), [LOCK_NAME], "the refused claim leaves the first one's lock alone");
  await first.release();
  // Nothing was written: the folders the claim made are gone again.
  assert.deepEqual(await names(dir), []);
  const second = await claimOutDir(out, "--out", "prune");
  await Deno.writeTextFile(join(out, "result.csv"), "k\n0\n");
  await second.release();
  assert.deepEqual(await names(out), ["result.csv"], "a folder with results stays; the lock goes");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("claimOutDir: a lock left by a run that is gone is taken over", async () => {
  const dir = await Deno.makeTempDir();
  // The lock file of a run that is gone: no process holds its OS lock any more.
  const stale = { pid: 2 ** 30, command: "sweep", started: "2020-01-01T00:00:00.000Z" };
  await Deno.writeTextFile(join(dir, LOCK_NAME), JSON.stringify(stale));
  const claim = await claimOutDir(dir, "--out", "sweep");
  assert.equal(JSON.parse(await Deno.readTextFile(join(dir, LOCK_NAME))).pid, Deno.pid);
  await claim.release();
  assert.deepEqual(await names(dir), [], "the folder existed before, so it stays; the lock goes");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("checkOutput: the wrong kind, a file on the way, and a folder where a file name is wanted", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(join(dir, "f"), "x");
  await assert.rejects(checkOutput(join(dir, "f"), "--out", "folder"), /exists and is a file, not a folder/);
  await assert.rejects(checkOutput(join(dir, "f", "g", "h"), "--out", "folder"), /is a file, not a folder/);
  await assert.rejects(checkOutput(dir, "--out", "file"), /is a folder, not a file name/);
  await checkOutput(join(dir, "f"), "--out", "file"); // an existing file is overwritten whole: fine
  await checkOutput(join(dir, "new", "deeper"), "--out", "folder");
  assert.deepEqual(await names(dir), ["f"], "checking writes nothing");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("chanceLevelWarning: 10.10% on 10,000 images warns and names the causes; 81% does not", async () => {
  const { chanceLevelWarning } = await import("../src/sweep/summary.ts");
  const w = chanceLevelWarning(0.101, 10000)!;
  assert.match(w, /^warning: the baseline accuracy \(K = 0\) is 10\.10% on 10000 images, chance level/);
  assert.match(w, /preprocessing .* class order/);
  assert.equal(chanceLevelWarning(0.8128, 10000), null);
  assert.equal(chanceLevelWarning(0.13, 10000), null, "3 points above chance on 10,000 images is signal");
  assert.notEqual(chanceLevelWarning(0.13, 100), null, "on 100 images it is not");
  assert.equal(chanceLevelWarning(NaN, 100), null, "no K = 0 point: nothing to judge");
});

Deno.test("two sweep processes into one --out: the second stops at once, naming the first", async () => {
  const dir = await Deno.makeTempDir();
  const out = join(dir, "out");
  const sweep = () =>
    mainProcess([
      "sweep",
      "--model",
      fixture("models/default/model.json"),
      "--data",
      fixture("cifar10-tiny"),
      "--out",
      out,
      "--backend",
      "wasm",
      "--naive",
    ], { write: dir, stdout: "null" });
  const first = sweep().spawn();
  // Wait for the first run's description line: by then it holds the lock.
  const reader = first.stderr.getReader();
  let text = "";
  while (!/^sweep: /m.test(text)) {
    const { value, done } = await reader.read();
    if (done) break;
    text += new TextDecoder().decode(value);
  }
  const second = await sweep().output();
  const err = new TextDecoder().decode(second.stderr).trimEnd();
  first.kill("SIGINT");
  await reader.cancel();
  await first.status;
  assert.equal(second.code, 1, err);
  assert.equal(err.split("\n").length, 1, err);
  assert.match(
    err,
    /^prunescope sweep: --out .* is in use by another prunescope run \(sweep, pid \d+, started /,
  );
  await Deno.remove(dir, { recursive: true });
});
