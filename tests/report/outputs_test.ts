/** Output writers (src/report/outputs.ts): CSV quoting, JSON layout, chart files, atomic writes. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { decode } from "fast-png";
import { toCsv, writeChart, writeCsv, writeJson } from "../../src/report/outputs.ts";
import { accuracyChart } from "../../src/viz/charts.ts";
import { listDir } from "../_helpers.ts";

/** A small RFC 4180 reader, written from the RFC, to check that what toCsv writes reads back. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = "";
  let i = 0;
  let quoted = false;
  while (i < text.length) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        field += '"';
        i += 2;
        continue;
      }
      if (ch === '"') quoted = false;
      else field += ch;
      i++;
      continue;
    }
    if (ch === '"') quoted = true;
    else if (ch === ",") {
      row.push(field);
      field = "";
    } else if (ch === "\n") {
      row.push(field);
      rows.push(row);
      row = [];
      field = "";
    } else field += ch;
    i++;
  }
  assert.equal(field, "", "document ends with a newline");
  assert.equal(row.length, 0);
  return rows;
}

Deno.test("toCsv: RFC 4180 quoting, \\n endings, null empty", () => {
  const csv = toCsv(["k", "criterion", "note"], [
    [0, "mean", null],
    [1, "a,b", 'say "hi"'],
    [2, "two\nlines", "cr\rhere"],
    [3, " spaced ", ""],
  ]);
  assert.equal(
    csv,
    'k,criterion,note\n0,mean,\n1,"a,b","say ""hi"""\n2,"two\nlines","cr\rhere"\n3, spaced ,\n',
  );
  assert.deepEqual(parseCsv(csv), [
    ["k", "criterion", "note"],
    ["0", "mean", ""],
    ["1", "a,b", 'say "hi"'],
    ["2", "two\nlines", "cr\rhere"],
    ["3", " spaced ", ""],
  ]);
  assert.ok(!csv.includes("\r\n"));
  assert.equal(toCsv(['he said "x"'], []), '"he said ""x"""\n');
});

Deno.test("toCsv: numbers in full precision read back to the same double", () => {
  const values = [0.1 + 0.2, 1 / 3, 0.9341, 1e-7, 123456789.123456789, -0, 2 ** 53 + 2, Math.PI];
  const csv = toCsv(["v"], values.map((v) => [v]));
  const read = parseCsv(csv).slice(1).map((r) => Number(r[0]));
  assert.deepEqual(read, values.map((v) => (Object.is(v, -0) ? 0 : v)));
  assert.ok(csv.includes("0.30000000000000004"));
});

Deno.test("toCsv: a row with the wrong number of fields is refused", () => {
  assert.throws(() => toCsv(["a", "b"], [[1]]), RangeError);
});

Deno.test("writeCsv / writeJson: content, 2-space JSON with newline, typed arrays as arrays, no .tmp left", async () => {
  const dir = await Deno.makeTempDir({ prefix: "prunescope_outputs_" });
  try {
    const csvPath = join(dir, "nested", "sweep.csv");
    const rows = [[0, 0.93, null], [1, 0.92, 7]];
    await writeCsv(csvPath, ["k", "accuracy", "channel"], rows);
    assert.equal(await Deno.readTextFile(csvPath), toCsv(["k", "accuracy", "channel"], rows));

    const jsonPath = join(dir, "nested", "ranking.json");
    const value = {
      criterion: "mean",
      order: [2, 0, 1],
      scores: new Float64Array([0.5, 0.25, 0.125]),
      nan: NaN,
    };
    await writeJson(jsonPath, value);
    const text = await Deno.readTextFile(jsonPath);
    assert.ok(text.endsWith("}\n") && !text.endsWith("\n\n"));
    assert.ok(text.startsWith('{\n  "criterion": "mean",\n  "order": [\n    2,'));
    assert.deepEqual(JSON.parse(text), {
      criterion: "mean",
      order: [2, 0, 1],
      scores: [0.5, 0.25, 0.125],
      nan: null,
    });
    assert.deepEqual(await listDir(join(dir, "nested")), ["ranking.json", "sweep.csv"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("failed writes leave no partial or temporary file, and keep what was there", async () => {
  const dir = await Deno.makeTempDir({ prefix: "prunescope_outputs_" });
  try {
    // The target is a directory: the final rename fails after the temporary file was written.
    const blocked = join(dir, "blocked.csv");
    await Deno.mkdir(blocked);
    await assert.rejects(writeCsv(blocked, ["a"], [[1]]));
    assert.deepEqual(await listDir(dir), ["blocked.csv"]);
    assert.ok((await Deno.stat(blocked)).isDirectory);

    // A value JSON cannot hold fails before anything is written; an old file stays as it was.
    const kept = join(dir, "kept.json");
    await writeJson(kept, { version: 1 });
    await assert.rejects(writeJson(kept, { big: 10n }), TypeError);
    assert.deepEqual(JSON.parse(await Deno.readTextFile(kept)), { version: 1 });
    await assert.rejects(writeJson(join(dir, "undefined.json"), undefined), TypeError);
    assert.deepEqual(await listDir(dir), ["blocked.csv", "kept.json"]);

    // A chart that vega-lite cannot compile writes neither file.
    await assert.rejects(writeChart(join(dir, "bad"), { mark: "no-such-mark" }));
    assert.deepEqual(await listDir(dir), ["blocked.csv", "kept.json"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writeChart: writes basePath.svg and basePath.png, PNG at twice the SVG size by default", async () => {
  const dir = await Deno.makeTempDir({ prefix: "prunescope_outputs_" });
  try {
    const spec = accuracyChart(
      [{ criterion: "mean", points: [0, 4, 8].map((k) => ({ k, accuracy: 0.9 - k / 10 })) }],
      { title: "t", baseline: 0.9, channels: 8 },
    );
    const base = join(dir, "charts", "acc");
    const paths = await writeChart(base, spec);
    assert.deepEqual(paths, { svg: `${base}.svg`, png: `${base}.png` });
    const svg = await Deno.readTextFile(paths.svg);
    assert.ok(svg.startsWith("<svg") && svg.includes('font-family="DejaVu Sans"'));
    const m = svg.match(/^<svg[^>]*\swidth="(\d+)"[^>]*\sheight="(\d+)"/)!;
    const png = decode(await Deno.readFile(paths.png));
    assert.equal(png.width, 2 * Number(m[1]));
    assert.equal(png.height, 2 * Number(m[2]));
    const one = await writeChart(join(dir, "charts", "acc1x"), spec, { scale: 1 });
    assert.equal(decode(await Deno.readFile(one.png)).width, Number(m[1]));
    assert.deepEqual(await listDir(join(dir, "charts")), ["acc.png", "acc.svg", "acc1x.png", "acc1x.svg"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
