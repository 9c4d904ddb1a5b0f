import assert from "node:assert/strict";
import { estimateEta, formatBytes, formatSeconds, plainLineDue, renderLine } from "../../src/ui/progress.ts";

Deno.test("formatSeconds: seconds, minutes, hours, unknown", () => {
  assert.equal(formatSeconds(0), "0s");
  assert.equal(formatSeconds(7.4), "7s");
  assert.equal(formatSeconds(59.6), "1m00s");
  assert.equal(formatSeconds(65), "1m05s");
  assert.equal(formatSeconds(3599), "59m59s");
  assert.equal(formatSeconds(3600 + 3 * 60 + 4), "1h03m04s");
  assert.equal(formatSeconds(NaN), "--");
  assert.equal(formatSeconds(Infinity), "--");
  assert.equal(formatSeconds(-1), "--");
});

Deno.test("estimateEta: remaining work at the average rate so far", () => {
  assert.equal(estimateEta(25, 100, 10), 30);
  assert.equal(estimateEta(1, 4, 2), 6);
  assert.equal(estimateEta(100, 100, 10), 0);
  assert.equal(estimateEta(0, 100, 10), null); // no rate yet
  assert.equal(estimateEta(5, 100, 0), null);
  assert.equal(estimateEta(5, 0, 3), null); // unknown total
});

Deno.test("formatBytes: decimal units", () => {
  assert.equal(formatBytes(512), "512 B");
  assert.equal(formatBytes(170_052_171), "170.1 MB");
  assert.equal(formatBytes(1_500), "1.5 KB");
});

Deno.test("renderLine: bar, counts, percent, rate, elapsed, eta and info", () => {
  const line = renderLine({
    label: "train",
    done: 50,
    total: 200,
    unit: "steps",
    elapsedS: 10,
    info: "loss 1.23",
  });
  const bar = line.match(/\[([#.]+)\]/)?.[1] ?? "";
  assert.equal(bar.length, 24);
  assert.equal(bar.split("").filter((c) => c === "#").length, 6); // a quarter of 24
  assert.match(line, /^train \[/);
  assert.match(line, / 50\/200 steps /);
  assert.match(line, / 25% /);
  assert.match(line, / 5\.00 steps\/s /);
  assert.match(line, / 10s /);
  assert.match(line, / eta 30s /);
  assert.match(line, /loss 1\.23$/);
  assert.doesNotMatch(line, /[\r\n]/);
});

Deno.test("renderLine: bytes, finished, and unknown totals", () => {
  const dl = renderLine({
    label: "download",
    done: 85_026_085,
    total: 170_052_171,
    unit: "B",
    elapsedS: 8.5,
  });
  assert.match(dl, / 85\.0 MB\/170\.1 MB /);
  assert.match(dl, / 10\.0 MB\/s /);
  assert.match(dl, / eta 9s$/);

  const fin = renderLine({ label: "sweep", done: 64, total: 64, elapsedS: 125 });
  assert.match(fin, /\[#{24}\]/);
  assert.match(fin, / 100% /);
  assert.match(fin, / 2m05s$/);
  assert.doesNotMatch(fin, /eta/);

  const open = renderLine({ label: "read", done: 3, total: 0, elapsedS: 1 });
  assert.doesNotMatch(open, /\[|%|eta/);
  assert.match(open, /^read {2}3 {2}3\.00 it\/s {2}1s$/);
});

Deno.test("plainLineDue: every tenth of the work, or after 30 s of silence", () => {
  assert.equal(plainLineDue(0, 0.05, 1000), false);
  assert.equal(plainLineDue(0, 0.1, 1000), true);
  assert.equal(plainLineDue(0.1, 0.19, 1000), false);
  assert.equal(plainLineDue(0.19, 0.21, 1000), true);
  assert.equal(plainLineDue(0.3, 0.3, 30_000), true);
  assert.equal(plainLineDue(0.3, 0.3, 29_999), false);
  // 0.7 is 6.999... tenths in floating point: still counts as the seventh tenth.
  assert.equal(plainLineDue(0.61, 0.7, 10), true);
});

/**
 * Run a child Deno that drives a Progress with stderr piped (not a terminal). The child does not
 * inherit this process's PRUNESCOPE_NO_PROGRESS (other test files set it to quiet their bars).
 */
async function runChild(total: number, env: Record<string, string> = {}): Promise<string[]> {
  const code = `
    import { Progress } from ${JSON.stringify(new URL("../../src/ui/progress.ts", import.meta.url).href)};
    const bar = new Progress({ label: "work", total: ${total}, unit: "items" });
    for (let i = 0; i < ${total}; i++) bar.tick(1, "step " + i);
    bar.done("finished");
  `;
  const out = await new Deno.Command("deno", {
    args: ["eval", "--quiet", code],
    env: { PRUNESCOPE_NO_PROGRESS: "0", ...env, NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  assert.equal(out.stdout.length, 0, "progress must not write to stdout");
  const text = new TextDecoder().decode(out.stderr);
  return text.split("\n").filter((l) => l !== "");
}

Deno.test("Progress off a terminal: about one plain line per tenth plus a final line", async () => {
  const lines = await runChild(1000);
  assert.ok(
    lines.length >= 2 && lines.length <= 12,
    `expected 2..12 lines, got ${lines.length}:\n${lines.join("\n")}`,
  );
  for (const l of lines) {
    assert.ok(!l.includes("\r") && !l.includes("\x1b"), `control characters in ${JSON.stringify(l)}`);
  }
  const last = lines[lines.length - 1];
  assert.match(last, /^work \[#{24}\] {2}1000\/1000 items {2}100% /);
  assert.match(last, /finished$/);
});

Deno.test("Progress is silent with PRUNESCOPE_NO_PROGRESS=1", async () => {
  const lines = await runChild(50, { PRUNESCOPE_NO_PROGRESS: "1" });
  assert.deepEqual(lines, []);
});
