/**
 * report.html in a real browser: a sweep, a sensitivity and a prune run of the tiny fixture
 * write it, headless Chromium (Debian's `chromium`, which .ci/run installs) opens it from disk,
 * and the DOM it dumps after the page's scripts ran must show every chart drawn with SVG marks,
 * no console error, and the tables (for sweep: the feature maps and the ranking table). A page
 * with a broken chart must report the error (so the check can fail) and still draw its other
 * chart, the per-class heatmap. Skipped, with a message, when there is no `chromium` on PATH.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { main } from "../../main.ts";
import { reportHtml, type ReportRecord } from "../../src/report/page/html.ts";
import { classAccuracyChart } from "../../src/viz/class_charts.ts";

const root = fileURLToPath(new URL("../..", import.meta.url));
const BROWSER = "chromium";

async function browserVersion(): Promise<string | null> {
  try {
    const out = await new Deno.Command(BROWSER, { args: ["--version"], stdout: "piped", stderr: "null" })
      .output();
    return out.success ? new TextDecoder().decode(out.stdout).trim() : null;
  } catch {
    return null;
  }
}

const version = await browserVersion();
// The reason rides in the test names too: `deno test --quiet` hides output printed outside tests.
const SKIPPED = version ? "" : ` [skipped: no '${BROWSER}' on PATH; apt-get install chromium]`;
if (!version) console.error(`report_html_test:${SKIPPED}`);

/** Open `file` in headless Chromium and return the DOM after its scripts ran, and Chromium's stderr. */
async function dumpDom(file: string): Promise<{ dom: string; log: string }> {
  const profile = await Deno.makeTempDir();
  try {
    const out = await new Deno.Command(BROWSER, {
      args: [
        "--headless",
        "--no-sandbox", // tests may run as root, where Chromium's sandbox refuses to start
        "--disable-gpu",
        "--no-first-run",
        `--user-data-dir=${profile}`,
        "--enable-logging=stderr",
        "--v=0",
        // Let the page's timers and promises run (charts render asynchronously) before the dump.
        "--virtual-time-budget=20000",
        "--dump-dom",
        `file://${file}`,
      ],
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(120_000),
    }).output();
    const log = new TextDecoder().decode(out.stderr);
    assert.ok(out.success, `chromium exited ${out.code}:\n${log.slice(-2000)}`);
    return { dom: new TextDecoder().decode(out.stdout), log };
  } finally {
    await Deno.remove(profile, { recursive: true }).catch(() => {});
  }
}

/** The attributes of the status element the page fills in when its charts are drawn. */
function status(dom: string): Record<string, string> {
  const tag = dom.match(/<p id="report-status"([^>]*)>([^<]*)/);
  assert.ok(tag, "no #report-status element");
  const attrs: Record<string, string> = { text: tag[2] };
  for (const [, k, v] of tag[1].matchAll(/data-([\w-]+)="([^"]*)"/g)) attrs[k] = v;
  return attrs;
}

/** The inner HTML of each `<div class="chart" id=...>`, by id. */
function charts(dom: string): Map<string, string> {
  const found = new Map<string, string>();
  const starts = [...dom.matchAll(/<div class="chart" id="([^"]+)"[^>]*>/g)];
  for (const m of starts) {
    const from = m.index! + m[0].length;
    const end = dom.indexOf("</section>", from);
    found.set(m[1], dom.slice(from, end));
  }
  return found;
}

/** Chromium's log lines for uncaught errors (console.error is counted by the page itself). */
function uncaught(log: string): string[] {
  return log.split("\n").filter((l) => /CONSOLE/.test(l) && /Uncaught|Error/.test(l));
}

const TINY = [
  "--model",
  join(root, "fixtures/models/tiny-bn/model.json"),
  "--data",
  join(root, "fixtures/cifar10-tiny"),
];

/** Run a prunescope command in-process, quietly, into a new folder; returns the folder. */
async function runQuiet(args: string[]): Promise<string> {
  const out = await Deno.makeTempDir();
  const log = console.log, err = console.error;
  console.log = () => {};
  console.error = () => {};
  Deno.env.set("PRUNESCOPE_NO_PROGRESS", "1");
  try {
    assert.equal(await main([...args, "--backend", "wasm", "--out", out]), 0, args.join(" "));
  } finally {
    console.log = log;
    console.error = err;
    Deno.env.delete("PRUNESCOPE_NO_PROGRESS");
  }
  return out;
}

/**
 * Open `dir`/report.html in Chromium and check that it loads nothing from elsewhere, that the
 * charts `ids` (exactly those) are drawn as SVG with non-empty marks, and that no error was
 * logged. Returns the DOM and the charts' inner HTML.
 */
async function assertDrawn(dir: string, ids: string[]): Promise<{ dom: string; drawn: Map<string, string> }> {
  const html = await Deno.readTextFile(join(dir, "report.html"));
  assert.ok(
    !/<script[^>]+src=|<link[^>]+href=|https?:\/\/(?!vega\.github\.io\/schema)/.test(
      html.replace(/<script>[\s\S]*?<\/script>/g, ""),
    ),
    "the page must not load anything from elsewhere",
  );
  const { dom, log } = await dumpDom(join(dir, "report.html"));
  const s = status(dom);
  assert.equal(s.state, "done", s.text);
  assert.equal(s["console-errors"], "0", s.text);
  assert.deepEqual(uncaught(log), []);
  const drawn = charts(dom);
  assert.deepEqual([...drawn.keys()], ids);
  assert.equal(s.rendered, String(drawn.size));
  for (const [id, inner] of drawn) {
    assert.match(inner, /<svg[^>]*class="marks"/, `${id}: no SVG`);
    // At least one mark group holding drawn items (paths for lines and cells, text for counts).
    const marks = [...inner.matchAll(/<g class="mark-(\w+) role-mark[^"]*"[^>]*>(<(path|text|g)\b)/g)];
    assert.ok(marks.length > 0, `${id}: no non-empty marks`);
  }
  // The run record is there, with the model's hash.
  assert.match(dom, /<th>model SHA-256<\/th><td><code>[0-9a-f]{64}<\/code>/);
  return { dom, drawn };
}

Deno.test({
  name:
    "sweep's report.html in headless Chromium: every chart drawn with SVG marks, no console error, the table" +
    SKIPPED,
  ignore: !version,
  fn: async () => {
    const out = await runQuiet(["sweep", ...TINY]);
    const { dom, drawn } = await assertDrawn(out, [
      "accuracy",
      "confusion-k0",
      "confusion-k9",
      "class-accuracy",
    ]);
    // The confusion charts have one cell per (true, predicted) pair; the per-class heatmap one
    // per class and K (10 classes, K = 0..16).
    const cells = (id: string) =>
      drawn.get(id)!.match(/<g class="mark-rect role-mark[^>]*>([\s\S]*?)<\/g>/)![1].match(/<path/g)?.length;
    assert.equal(cells("confusion-k0"), 100);
    assert.equal(cells("class-accuracy"), 170);
    // The ranking table: 16 rows under rank, channel, mean_activation; and 16 feature-map tiles.
    const ranking = dom.match(
      /<th>rank<\/th><th>channel<\/th><th>mean_activation<\/th><\/tr><\/thead><tbody>([\s\S]*?)<\/tbody>/,
    );
    assert.ok(ranking, "no ranking table");
    assert.equal(ranking[1].match(/<tr>/g)?.length, 16);
    assert.equal(dom.match(/<figure class="fm/g)?.length, 16);
    // The 9 channels pruned at the 1-point K (K = 9) are framed as such.
    assert.equal(dom.match(/<figure class="fm band-a"/g)?.length, 9);
    await Deno.remove(out, { recursive: true });
  },
});

Deno.test({
  name: "sensitivity's and prune's report.html in headless Chromium: their charts drawn, their tables there" +
    SKIPPED,
  ignore: !version,
  fn: async () => {
    const sens = await runQuiet([
      "sensitivity",
      ...TINY,
      "--limit",
      "60",
      "--fractions",
      "0,0.5,1",
      "--layers",
      "all",
    ]);
    const s = await assertDrawn(sens, ["sensitivity"]);
    assert.match(s.dom, /<th>layername<\/th><th>0<\/th><th>0.5<\/th><th>1<\/th>/);
    const pruned = await runQuiet([
      "prune",
      ...TINY,
      ...[
        "--layer",
        "conv2",
        "--max-drop",
        "2",
        "--latency-runs",
        "1",
        "--finetune-epochs",
        "1",
        "--train-limit",
        "64",
      ],
    ]);
    const p = await assertDrawn(pruned, ["sweep-0", "recovery"]);
    assert.match(p.dom, /<td>conv2<\/td><td>9<\/td><td>16<\/td><td>7<\/td>/);
    assert.match(p.dom, /<td>slim<\/td>/);
    await Deno.remove(sens, { recursive: true });
    await Deno.remove(pruned, { recursive: true });
  },
});

Deno.test({
  name: "report.html in headless Chromium: a chart that cannot be drawn shows as an error" + SKIPPED,
  ignore: !version,
  fn: async () => {
    const record: ReportRecord = {
      title: "broken",
      summary: [],
      charts: [
        {
          id: "fine",
          title: "fine",
          // The per-class heatmap a sweep's report shows.
          spec: classAccuracyChart({
            classes: ["cat", "dog", "ship"],
            images: [10, 10, 10],
            points: [0, 1, 2, 3].map((k) => ({ k, correct: [10 - k, 9, 10 - 2 * k] })),
          }, { title: "per class" }),
        },
        { id: "bad", title: "bad", spec: { data: { values: [] }, mark: "no-such-mark" } },
      ],
      tables: [],
      run: {
        command: "test",
        started: new Date().toISOString(),
        model: { path: "none", sha256: "-" },
        data: { path: "none", images: 0 },
        backend: "none",
        timings: {},
        versions: {},
      },
    };
    const dir = await Deno.makeTempDir();
    const file = join(dir, "report.html");
    await Deno.writeTextFile(file, await reportHtml(record));
    const { dom } = await dumpDom(file);
    const s = status(dom);
    assert.equal(s.state, "error");
    assert.equal(s.rendered, "1");
    assert.match(s.text, /bad: /);
    assert.ok(Number(s["console-errors"]) >= 1);
    const heat = charts(dom).get("fine")!.match(/<g class="mark-rect role-mark[^>]*>([\s\S]*?)<\/g>/);
    assert.equal(heat![1].match(/<path/g)?.length, 12, "one cell per class and K");
    await Deno.remove(dir, { recursive: true });
  },
});
