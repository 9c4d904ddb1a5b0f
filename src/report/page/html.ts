/**
 * report.html: one self-contained page for a run. It opens from disk with no network: the
 * charts are vega-lite specs rendered in the page by the vega and vega-lite browser bundles
 * (the pinned npm packages, inlined), so they have tooltips; pictures are PNG data URIs.
 *
 * The page is built from a {@link ReportRecord}, plain numbers and strings: writers never touch
 * tensors. When the charts are drawn the page sets `#report-status` to
 * `data-state="done"` (or `"error"`, with the messages) and counts console errors in
 * `data-console-errors`, so a headless browser can check it (tests/report_html_test.ts).
 */
import { Buffer } from "node:buffer";
import { writeFileAtomic } from "../../core/atomic.ts";
import type { CsvCell } from "../outputs.ts";

/** A chart of the page: a vega-lite spec, drawn into its own block. */
export interface ReportChart {
  /** Unique among the page's charts; letters, digits, `-` and `_`. */
  id: string;
  /** The heading above it. */
  title: string;
  /** A line under the heading. */
  caption?: string;
  spec: object;
}

/** A table of the page. */
export interface ReportTable {
  title: string;
  caption?: string;
  /** Shown folded (a `<details>` the reader opens), e.g. the numbers of a chart above. */
  folded?: boolean;
  header: string[];
  rows: CsvCell[][];
}

/** One channel's averaged feature map. */
export interface FeatureMapTile {
  channel: number;
  /** Position in the ranking (0 = pruned first). */
  rank: number;
  /** The ranking's score of the channel. */
  score: number;
  /** A small PNG of the map. */
  png: Uint8Array;
}

/** The feature maps in ranking order, with the channels pruned at some tolerance bands marked. */
export interface ReportFeatureMaps {
  title: string;
  /** Tiles in rank order. */
  tiles: FeatureMapTile[];
  /** Score name, e.g. "mean activation". */
  scoreName: string;
  /** The largest K within `points` of the baseline: ranks below K are pruned there. Ascending by points. */
  bands: { points: number; k: number }[];
}

/** The facts of a run: what ran, on what, how long. */
export interface RunRecord {
  /** The command line as typed (or reconstructed). */
  command: string;
  /** ISO time the run started. */
  started: string;
  model: { path: string; format?: string; sha256: string; files?: { path: string; sha256: string }[] };
  data: { path: string; images: number };
  /** The held-out data that ranked and chose (--calib, --calib-split), when given. */
  calib?: { source: string; images: number };
  layer?: string;
  backend: string;
  engine?: string;
  workers?: number;
  /** Seconds by phase. */
  timings: Record<string, number>;
  /** Library and runtime versions by name. */
  versions: Record<string, string>;
}

/** Everything report.html shows, in page order. */
export interface ReportRecord {
  title: string;
  /** Lines of the run's summary (what the terminal printed). */
  summary: string[];
  charts: ReportChart[];
  featureMaps?: ReportFeatureMaps;
  tables: ReportTable[];
  run: RunRecord;
}

/** The vega and vega-lite browser bundles (UMD, defining `vega` and `vegaLite`), as pinned in deno.json. */
async function runtimeScripts(): Promise<string[]> {
  const files = [
    new URL("vega.min.js", import.meta.resolve("vega")),
    new URL("vega-lite.min.js", import.meta.resolve("vega-lite")),
  ];
  return await Promise.all(files.map(async (url) => {
    try {
      return await Deno.readTextFile(url);
    } catch (e) {
      throw new Error(`the vega runtime for report.html is missing: ${url.href} (${(e as Error).message})`);
    }
  }));
}

/** Text as HTML (element content or a quoted attribute). */
export function escapeHtml(text: string): string {
  return text.replace(/[<>&"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}

/** A script element's content: nothing inside can close the element early. */
function scriptSafe(code: string): string {
  return code.replace(/<\/(script)/gi, "<\\/$1").replace(/<!--/g, "<\\!--");
}

function cell(value: CsvCell): string {
  if (value === null) return "";
  if (typeof value === "number") {
    return Number.isInteger(value) ? String(value) : String(Number(value.toPrecision(6)));
  }
  return escapeHtml(value);
}

function tableHtml(t: ReportTable, index: number): string {
  const head = t.header.map((h) => `<th>${escapeHtml(h)}</th>`).join("");
  const body = t.rows.map((r) => `<tr>${r.map((v) => `<td>${cell(v)}</td>`).join("")}</tr>`).join("\n");
  const table = (t.caption ? `<p class="caption">${escapeHtml(t.caption)}</p>` : "") +
    `<div class="scroll"><table><thead><tr>${head}</tr></thead><tbody>\n${body}\n</tbody></table></div>`;
  return t.folded
    ? `<details class="table" id="table-${index}"><summary>${escapeHtml(t.title)}</summary>${table}</details>`
    : `<section class="table" id="table-${index}"><h2>${escapeHtml(t.title)}</h2>${table}</section>`;
}

const BAND_CLASSES = ["band-a", "band-b", "band-c"];

function featureMapsHtml(f: ReportFeatureMaps): string {
  const bands = f.bands.slice(0, BAND_CLASSES.length);
  const bandOf = (rank: number) => bands.findIndex((b) => rank < b.k);
  const legend = bands.map((b, i) =>
    `<span class="swatch ${BAND_CLASSES[i]}"></span> pruned within ${b.points} point${
      b.points === 1 ? "" : "s"
    } (K = ${b.k})`
  ).join(" &nbsp; ");
  const tiles = f.tiles.map((t) => {
    const band = bandOf(t.rank);
    const cls = band >= 0 ? ` ${BAND_CLASSES[band]}` : "";
    const tip = `channel ${t.channel}, rank ${t.rank}, ${f.scoreName} ${t.score.toPrecision(4)}`;
    return `<figure class="fm${cls}" title="${
      escapeHtml(tip)
    }"><img alt="channel ${t.channel}" src="data:image/png;base64,${
      Buffer.from(t.png).toString("base64")
    }"><figcaption>${t.rank}: ch ${t.channel}</figcaption></figure>`;
  }).join("");
  return `<section id="featuremaps"><h2>${escapeHtml(f.title)}</h2>` +
    `<p class="caption">In ranking order (rank: channel), each map on its own grey range. ${legend}</p>` +
    `<div class="fm-grid">${tiles}</div></section>`;
}

function runHtml(r: RunRecord): string {
  const rows: [string, string][] = [
    ["command", r.command],
    ["started", r.started],
    ["model", `${r.model.path}${r.model.format ? ` (${r.model.format})` : ""}`],
    ["model SHA-256", r.model.sha256],
    ...(r.model.files ?? []).map((f): [string, string] => [`  ${f.path}`, f.sha256]),
    ["data", `${r.data.path} (${r.data.images} images)`],
    ...(r.calib
      ? [
        ["held-out data (ranks, chooses)", `${r.calib.source} (${r.calib.images} images)`] as [
          string,
          string,
        ],
      ]
      : []),
    ...(r.layer ? [["layer", r.layer] as [string, string]] : []),
    ["backend", r.backend],
    ...(r.engine ? [["engine", r.engine] as [string, string]] : []),
    ...(r.workers ? [["workers", String(r.workers)] as [string, string]] : []),
    ["timings", Object.entries(r.timings).map(([k, v]) => `${k} ${v.toFixed(2)} s`).join(", ")],
    ["versions", Object.entries(r.versions).map(([k, v]) => `${k} ${v}`).join(", ")],
  ];
  return `<section id="run"><h2>Run record</h2><table class="run">${
    rows.map(([k, v]) => `<tr><th>${escapeHtml(k)}</th><td><code>${escapeHtml(v)}</code></td></tr>`).join("")
  }</table></section>`;
}

const STYLE = `
body { font-family: "DejaVu Sans", Verdana, sans-serif; margin: 24px auto; max-width: 1200px; color: #222; padding: 0 16px; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; border-bottom: 1px solid #ddd; }
.caption, #summary { color: #555; font-size: 13px; }
.chart-block { display: inline-block; vertical-align: top; margin-right: 24px; }
details.table { margin-top: 10px; font-size: 14px; } details.table summary { cursor: pointer; }
#summary { white-space: pre-wrap; font-family: monospace; background: #f6f6f6; padding: 8px; }
.scroll { max-height: 360px; overflow: auto; border: 1px solid #ddd; display: inline-block; }
table { border-collapse: collapse; font-size: 12px; }
th, td { padding: 2px 8px; text-align: right; border-bottom: 1px solid #eee; }
thead th { position: sticky; top: 0; background: #f0f0f0; }
table.run th { text-align: left; vertical-align: top; } table.run td { text-align: left; word-break: break-all; }
.fm-grid { display: flex; flex-wrap: wrap; gap: 3px; }
.fm { margin: 0; padding: 2px; border: 2px solid transparent; text-align: center; }
.fm img { width: 40px; height: 40px; image-rendering: pixelated; display: block; }
.fm figcaption { font-size: 8px; color: #444; white-space: nowrap; }
.swatch { display: inline-block; width: 10px; height: 10px; border: 2px solid; vertical-align: middle; }
.band-a { border-color: #d62728; } .band-b { border-color: #ff7f0e; } .band-c { border-color: #e6c300; }
#report-status { color: #888; font-size: 11px; }
`;

/** Runs first: counts console errors and uncaught errors, for the page's status line. */
const ERROR_HOOK = `
window.__reportErrors = [];
(function () {
  var original = console.error;
  console.error = function () {
    window.__reportErrors.push(Array.prototype.map.call(arguments, String).join(" "));
    return original.apply(console, arguments);
  };
  window.addEventListener("error", function (e) { window.__reportErrors.push(String(e.message)); });
  window.addEventListener("unhandledrejection", function (e) { window.__reportErrors.push(String(e.reason)); });
})();
`;

/** Draws every chart, then writes the status element. */
const RENDER = `
(async function () {
  var status = document.getElementById("report-status");
  var charts = JSON.parse(document.getElementById("report-charts").textContent);
  var done = 0, failed = [];
  for (var i = 0; i < charts.length; i++) {
    var c = charts[i];
    try {
      var view = new vega.View(vega.parse(vegaLite.compile(c.spec).spec), {
        renderer: "svg", container: document.getElementById(c.id), hover: true,
      });
      await view.runAsync();
      done++;
    } catch (e) {
      failed.push(c.id + ": " + (e && e.message ? e.message : e));
      console.error("chart " + c.id + " failed: " + (e && e.message ? e.message : e));
    }
  }
  status.dataset.rendered = String(done);
  status.dataset.consoleErrors = String(window.__reportErrors.length);
  status.dataset.state = failed.length ? "error" : "done";
  status.textContent = failed.length
    ? "chart errors: " + failed.join("; ")
    : done + " charts drawn with vega " + vega.version + ", vega-lite " + vegaLite.version;
})();
`;

/**
 * The report as one HTML string (about 0.8 MB: the vega runtime is inlined).
 *
 * @example
 * ```ts
 * const html = await reportHtml({ title: "sweep", summary: [], charts: [], tables: [], run });
 * ```
 */
export async function reportHtml(record: ReportRecord): Promise<string> {
  const ids = new Set<string>();
  for (const c of record.charts) {
    if (!/^[A-Za-z][\w-]*$/.test(c.id) || ids.has(c.id)) {
      throw new Error(`report: bad or repeated chart id '${c.id}'`);
    }
    ids.add(c.id);
  }
  const [vegaJs, vegaLiteJs] = await runtimeScripts();
  const charts = record.charts.map((c) =>
    `<section class="chart-block"><h2>${escapeHtml(c.title)}</h2>` +
    (c.caption ? `<p class="caption">${escapeHtml(c.caption)}</p>` : "") +
    `<div class="chart" id="${c.id}"></div></section>`
  ).join("\n");
  // JSON inside a script element: "<" escaped so that no "</script>" can occur.
  const chartJson = JSON.stringify(record.charts.map((c) => ({ id: c.id, spec: c.spec }))).replace(
    /</g,
    "\\u003c",
  );
  return [
    "<!DOCTYPE html>",
    `<html lang="en"><head><meta charset="utf-8">`,
    `<meta name="viewport" content="width=device-width, initial-scale=1">`,
    `<title>${escapeHtml(record.title)}</title>`,
    `<style>${STYLE}</style>`,
    `<script>${ERROR_HOOK}</script>`,
    `</head><body>`,
    `<h1>${escapeHtml(record.title)}</h1>`,
    `<p id="report-status" data-state="pending">drawing charts…</p>`,
    `<div id="summary">${escapeHtml(record.summary.join("\n"))}</div>`,
    charts,
    record.featureMaps ? featureMapsHtml(record.featureMaps) : "",
    ...record.tables.map(tableHtml),
    runHtml(record.run),
    `<script id="report-charts" type="application/json">${chartJson}</script>`,
    `<script>${scriptSafe(vegaJs)}</script>`,
    `<script>${scriptSafe(vegaLiteJs)}</script>`,
    `<script>${RENDER}</script>`,
    `</body></html>`,
    "",
  ].join("\n");
}

/**
 * Write report.html for `record` atomically (see {@link reportHtml}).
 *
 * @example
 * ```ts
 * await writeReport("out/sweep/report.html", record);
 * ```
 */
export async function writeReport(path: string, record: ReportRecord): Promise<void> {
  await writeFileAtomic(path, await reportHtml(record));
}
