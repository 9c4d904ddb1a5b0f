/** Chart specs (src/viz/charts.ts) and their rendering to SVG and PNG (src/viz/render.ts). */
import assert from "node:assert/strict";
import { decode } from "fast-png";
import { accuracyChart, recoveryChart, sensitivityChart, trainingCurveChart } from "../../src/viz/charts.ts";
import { FONT_FAMILY, svgToPng, vegaLiteToSvg } from "../../src/viz/render.ts";
import { ihdr } from "../_helpers.ts";

// deno-lint-ignore no-explicit-any
type Json = any;

/** SVG width/height attributes of the root element. */
function svgSize(svg: string): { width: number; height: number } {
  const m = svg.match(/^<svg[^>]*\swidth="(\d+(?:\.\d+)?)"[^>]*\sheight="(\d+(?:\.\d+)?)"/);
  assert.ok(m, "svg has width and height");
  return { width: Number(m[1]), height: Number(m[2]) };
}

/** Pixels (RGBA or RGB, 8-bit) of a PNG as [r,g,b] getter plus size. */
function pixels(png: Uint8Array) {
  const img = decode(png);
  assert.equal(img.depth, 8);
  const ch = img.channels;
  return {
    width: img.width,
    height: img.height,
    rgb(x: number, y: number): [number, number, number] {
      const i = (y * img.width + x) * ch;
      return [img.data[i], img.data[i + 1], img.data[i + 2]];
    },
  };
}

function curve(channels: number, f: (t: number) => number) {
  return Array.from({ length: channels + 1 }, (_, k) => ({ k, accuracy: f(k / channels) }));
}

function layers(spec: Json): Json[] {
  return spec.layer as Json[];
}

Deno.test("accuracyChart: one line, no legend, x over 0..C, y as percent, baseline rule", () => {
  const points = curve(64, (t) => 0.9 - 0.8 * t * t);
  const spec: Json = accuracyChart([{ criterion: "mean", points }], {
    title: "conv: accuracy",
    baseline: 0.9012,
    channels: 64,
  });
  const ls = layers(spec);
  const line = ls.find((l) => l.mark.type === "line");
  assert.ok(line);
  assert.equal(ls.filter((l) => l.mark.type === "area").length, 0, "no band without band data");
  assert.equal(line.data.values.length, 65);
  assert.deepEqual(line.encoding.x.scale.domain, [0, 64]);
  assert.deepEqual(line.encoding.y.scale.domain, [0, 1]);
  assert.equal(line.encoding.y.axis.format, ".0%");
  assert.equal(line.encoding.color.legend, null);
  const rule = ls.find((l) => l.mark.type === "rule");
  assert.equal(rule.encoding.y.datum, 0.9012);
  assert.ok(rule.mark.strokeDash.length > 0, "baseline is dashed");
  const label = ls.find((l) => l.mark.type === "text");
  assert.equal(label.encoding.text.value, "baseline 90.12%");
});

Deno.test("accuracyChart: several series get a legend in their order and a band per seeded series", () => {
  const band = Array.from({ length: 33 }, (_, k) => ({ k, min: 0.5, max: 0.6 }));
  const spec: Json = accuracyChart(
    [
      { criterion: "mean", points: curve(32, (t) => 0.9 - t) },
      { criterion: "random", points: curve(32, (t) => 0.9 - 0.7 * t), band },
      { criterion: "l1", points: curve(32, (t) => 0.9 - 0.5 * t) },
    ],
    { title: "compare", baseline: 0.9, channels: 32, xTitle: "filters removed" },
  );
  const ls = layers(spec);
  const area = ls.find((l) => l.mark.type === "area");
  assert.ok(area, "band layer");
  assert.equal(area.data.values.length, 33);
  assert.ok(area.data.values.every((v: Json) => v.criterion === "random"));
  const line = ls.find((l) => l.mark.type === "line");
  assert.equal(line.data.values.length, 3 * 33);
  assert.deepEqual(line.encoding.color.scale.domain, ["mean", "random", "l1"]);
  assert.notEqual(line.encoding.color.legend, null);
  assert.equal(line.encoding.x.title, "filters removed");
});

Deno.test("vegaLiteToSvg: text is set in DejaVu Sans, axis in percent, baseline labelled", async () => {
  const spec: Json = accuracyChart([{ criterion: "mean", points: curve(16, (t) => 0.93 - 0.8 * t) }], {
    title: "Accuracy vs pruned channels",
    baseline: 0.9341,
    channels: 16,
  });
  spec.config = { font: "Comic Sans MS" }; // the renderer must override a spec's own font
  const svg = await vegaLiteToSvg(spec);
  assert.ok(svg.startsWith("<svg"));
  const texts = svg.match(/<text[^>]*>/g) ?? [];
  assert.ok(texts.length > 10, `expected axis labels and title, got ${texts.length} <text>`);
  const families = new Set([...svg.matchAll(/font-family="([^"]*)"/g)].map((m) => m[1]));
  assert.deepEqual([...families], [FONT_FAMILY]);
  assert.ok(svg.includes(">100%<"), "y axis labelled in percent");
  assert.ok(svg.includes(">baseline 93.41%<"));
  assert.ok(svg.includes(">Accuracy vs pruned channels<"));
});

Deno.test("svgToPng: text renders with the shipped font even for an unknown family, no system fonts", () => {
  const svg = (family: string, text: string) =>
    `<svg xmlns="http://www.w3.org/2000/svg" width="120" height="40"><rect width="120" height="40" fill="white"/>` +
    `<text x="5" y="28" font-family="${family}" font-size="20" fill="black">${text}</text></svg>`;
  const inked = (png: Uint8Array) => {
    const p = pixels(png);
    let n = 0;
    for (let y = 0; y < p.height; y++) for (let x = 0; x < p.width; x++) if (p.rgb(x, y)[0] < 128) n++;
    return n;
  };
  const dejavu = svgToPng(svg(FONT_FAMILY, "Hello"));
  assert.ok(inked(dejavu) > 50, "DejaVu Sans text draws dark pixels");
  // An unavailable family falls back to the default family, the shipped font: same glyphs.
  const fallback = svgToPng(svg("No Such Font", "Hello"));
  assert.deepEqual(decode(fallback).data, decode(dejavu).data);
  assert.equal(inked(svgToPng(svg(FONT_FAMILY, ""))), 0);
  const big = svgToPng(svg(FONT_FAMILY, "Hello"), { scale: 3 });
  assert.deepEqual(ihdr(big), { width: 360, height: 120 });
});

Deno.test("accuracy chart PNG: size from the SVG, and the title draws pixels only in the title region", async () => {
  const series = [{ criterion: "mean", points: curve(32, (t) => 0.93 - 0.8 * t * t) }];
  const render = async (title: string) => {
    const svg = await vegaLiteToSvg(accuracyChart(series, { title, baseline: 0.93, channels: 32 }));
    return { svg, png: svgToPng(svg, { scale: 2 }) };
  };
  const a = await render("Accuracy of the first layer");
  const b = await render("Zzz");
  const size = svgSize(a.svg);
  assert.deepEqual(ihdr(a.png), { width: size.width * 2, height: size.height * 2 });
  assert.deepEqual(svgSize(b.svg), size, "same layout for both titles");
  const pa = pixels(a.png);
  const pb = pixels(b.png);
  assert.equal(pa.width, size.width * 2);
  let differing = 0;
  let lowest = 0;
  for (let y = 0; y < pa.height; y++) {
    for (let x = 0; x < pa.width; x++) {
      if (pa.rgb(x, y).some((v, i) => v !== pb.rgb(x, y)[i])) {
        differing++;
        lowest = Math.max(lowest, y);
      }
    }
  }
  assert.ok(differing > 200, `titles differ in ${differing} pixels`);
  // The plot starts below the title (its translate y); titles must not touch the plot.
  const top = Number(a.svg.match(/transform="translate\(\d+(?:\.\d+)?,(\d+(?:\.\d+)?)\)"/)![1]);
  assert.ok(lowest < top * 2, `title pixels end at y=${lowest}, plot starts at ${top * 2}`);
});

Deno.test("trainingCurveChart: accuracy panel, plus a loss panel only when losses are given", async () => {
  const epochs = Array.from({ length: 5 }, (_, i) => ({
    epoch: i + 1,
    trainAccuracy: 0.5 + i / 10,
    valAccuracy: 0.45 + i / 10,
    trainLoss: 1.5 - i / 5,
    valLoss: 1.6 - i / 6,
  }));
  const withLoss: Json = trainingCurveChart(epochs, { title: "training" });
  assert.equal(withLoss.vconcat.length, 2);
  assert.equal(withLoss.vconcat[0].data.values.length, 10);
  assert.equal(withLoss.vconcat[1].data.values.length, 10);
  const noLoss: Json = trainingCurveChart(
    epochs.map(({ epoch, trainAccuracy, valAccuracy }) => ({ epoch, trainAccuracy, valAccuracy })),
    { title: "training" },
  );
  assert.equal(noLoss.vconcat, undefined);
  assert.equal(noLoss.data.values.length, 10);
  const svg = await vegaLiteToSvg(withLoss);
  assert.ok(svg.includes(">validation<") && svg.includes(">loss<") && svg.includes(">accuracy<"));
});

Deno.test("sensitivityChart: one line per layer in the given order, x as fraction in percent", async () => {
  const names = ["conv2d_1", "conv2d_2", "conv2d_10"];
  const spec: Json = sensitivityChart(
    names.map((layer, l) => ({
      layer,
      points: [0, 0.25, 0.5, 0.75, 1].map((fraction) => ({
        fraction,
        accuracy: 0.9 - fraction * (0.3 + l / 5),
      })),
    })),
    { title: "sensitivity", baseline: 0.9 },
  );
  const line = layers(spec)[0];
  assert.equal(line.data.values.length, 15);
  assert.deepEqual(line.encoding.color.scale.domain, names);
  assert.deepEqual(line.encoding.x.scale.domain, [0, 1]);
  const svg = await vegaLiteToSvg(spec);
  for (const name of names) assert.ok(svg.includes(`>${name}<`), `legend has ${name}`);
  assert.ok(svg.includes(">50%<"));
});

Deno.test("recoveryChart: labelled rules for the accuracy before pruning and right after it", async () => {
  const spec: Json = recoveryChart([1, 2, 3].map((epoch) => ({ epoch, accuracy: 0.88 + epoch / 100 })), {
    title: "recovery",
    before: 0.9341,
    masked: 0.7123,
  });
  const rules = layers(spec).filter((l) => l.mark.type === "rule").map((l) => l.encoding.y.datum);
  assert.deepEqual(rules.sort(), [0.7123, 0.9341]);
  const svg = await vegaLiteToSvg(spec);
  assert.ok(svg.includes(">before pruning 93.41%<"));
  assert.ok(svg.includes(">pruned, not fine-tuned 71.23%<"));
  // compress starts its curve after BatchNorm recalibration, and says so.
  const recal = await vegaLiteToSvg(
    recoveryChart([{ epoch: 1, accuracy: 0.8 }], {
      title: "recovery",
      before: 0.9,
      masked: 0.67,
      start: "pruned, BatchNorm recalibrated",
    }),
  );
  assert.ok(recal.includes(">pruned, BatchNorm recalibrated 67.00%<"));
  assert.ok(!recal.includes("not fine-tuned"));
});
