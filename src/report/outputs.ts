/**
 * The files a run leaves behind: CSV tables, JSON records and charts (SVG + PNG). Every file is
 * written whole or not at all through `writeFileAtomic`.
 */
import { writeFileAtomic } from "../core/atomic.ts";
import { svgToPng, vegaLiteToSvg } from "../viz/render.ts";

/** One CSV cell: a string, a number, or null for an empty cell. */
export type CsvCell = string | number | null;

function csvField(cell: CsvCell): string {
  if (cell === null) return "";
  // String(number) is the shortest text that reads back as the same double: full precision.
  const text = typeof cell === "number" ? String(cell) : cell;
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/**
 * A CSV document (RFC 4180 quoting: fields with a comma, quote or line break are quoted and
 * quotes doubled) with "\n" line endings, including after the last row. Numbers are written in
 * full precision (`String(n)`, so 0.1 + 0.2 stays 0.30000000000000004), null as an empty field.
 * Throws when a row's length differs from the header's.
 *
 * @example
 * ```ts
 * toCsv(["k", "accuracy"], [[0, 0.9341], [1, null]]); // "k,accuracy\n0,0.9341\n1,\n"
 * ```
 */
export function toCsv(header: string[], rows: CsvCell[][]): string {
  const lines = [header.map(csvField).join(",")];
  rows.forEach((row, i) => {
    if (row.length !== header.length) {
      throw new RangeError(`CSV row ${i} has ${row.length} fields, the header has ${header.length}`);
    }
    lines.push(row.map(csvField).join(","));
  });
  return lines.join("\n") + "\n";
}

/**
 * Write a CSV file atomically (see {@link toCsv}), creating its folder.
 *
 * @example
 * ```ts
 * await writeCsv("out/sweep.csv", ["k", "accuracy"], result.results.map((p) => [p.k, p.accuracy]));
 * ```
 */
export async function writeCsv(path: string, header: string[], rows: CsvCell[][]): Promise<void> {
  await writeFileAtomic(path, toCsv(header, rows));
}

/** Typed arrays (e.g. `Ranking.scores`) become plain JSON arrays instead of index-keyed objects. */
function jsonReplacer(_key: string, value: unknown): unknown {
  if (ArrayBuffer.isView(value) && !(value instanceof DataView)) {
    return Array.from(
      value as unknown as ArrayLike<number | bigint>,
      (v) => typeof v === "bigint" ? Number(v) : v,
    );
  }
  return value;
}

/**
 * Write `value` as JSON, 2-space indented with a trailing newline, atomically. Typed arrays are
 * written as arrays; as in JSON.stringify, NaN and Infinity become null.
 *
 * @example
 * ```ts
 * await writeJson("out/sweep.json", sweepResult);
 * ```
 */
export async function writeJson(path: string, value: unknown): Promise<void> {
  const text = JSON.stringify(value, jsonReplacer, 2);
  if (text === undefined) throw new TypeError(`writeJson: ${typeof value} cannot be written as JSON`);
  await writeFileAtomic(path, text + "\n");
}

/** Options for {@link writeChart}. */
export interface ChartFileOptions {
  /** PNG pixels per SVG unit. Default 2 (sharp on high-density screens and in documents). */
  scale?: number;
}

/**
 * Render a vega-lite spec and write `basePath.svg` and `basePath.png` (text in the shipped font).
 *
 * @example
 * ```ts
 * const files = await writeChart("out/conv2d_12_accuracy", accuracyChart(series, opts));
 * // files.svg === "out/conv2d_12_accuracy.svg", files.png === "out/conv2d_12_accuracy.png"
 * ```
 */
export async function writeChart(
  basePath: string,
  spec: object,
  opts: ChartFileOptions = {},
): Promise<{ svg: string; png: string }> {
  const svg = await vegaLiteToSvg(spec);
  const png = svgToPng(svg, { scale: opts.scale ?? 2 });
  const paths = { svg: `${basePath}.svg`, png: `${basePath}.png` };
  await writeFileAtomic(paths.svg, svg);
  await writeFileAtomic(paths.png, png);
  return paths;
}
