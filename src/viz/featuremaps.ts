/**
 * Feature-map pictures: the grid of all channels of a layer's (averaged) output, like the lab's
 * 23 x 23 grid of 2 x 2 maps for 512 channels, and one channel enlarged in viridis with a colour bar.
 *
 * Pixels are computed here and encoded with fast-png; anything with text (titles, channel numbers,
 * colour-bar ticks) is an SVG that embeds those pixels 1:1 and is rendered by resvg with the shipped
 * font (render.ts). Scaling follows matplotlib's `imshow`: each map is stretched to its own
 * min..max (or one range for all with `sharedScale`), and a constant map, whose range is empty, is
 * drawn at the bottom of the colour map (black in grey, dark purple in viridis), as imshow does.
 */
import { encode } from "fast-png";
import { interpolateViridis } from "d3-scale-chromatic";
import { Buffer } from "node:buffer";
import { FONT_FAMILY, svgToPng } from "./render.ts";

/** Options for {@link featureMapGridPng}. */
export interface FeatureMapGridOptions {
  /** One value range for all maps instead of each map's own min..max. Default false. */
  sharedScale?: boolean;
  /** Target size in pixels of a map's longer side; maps are enlarged by a whole factor, nearest-neighbour. Default 48. */
  cell?: number;
  /** Pixels between cells and around the grid. Default 2. */
  gap?: number;
  /** Text above the grid. */
  title?: string;
  /** Print each cell's channel number under it. Default false. */
  channelNumbers?: boolean;
}

/** Where things are in a feature-map grid image. */
export interface GridLayout {
  /** Cells per row and per column: ceil(sqrt(C)) each, as in the lab's figure. */
  cols: number;
  rows: number;
  /** Whole-number enlargement of each map. */
  factor: number;
  /** Size in pixels of one enlarged map. */
  cellWidth: number;
  cellHeight: number;
  gap: number;
  /** Height of the title strip at the top (0 without a title) and of the number strip under each cell. */
  titleHeight: number;
  labelHeight: number;
  width: number;
  height: number;
}

/** The colour of gaps and empty cells: a light blue-grey that no grey map value can be mistaken for. */
export const GRID_BACKGROUND: readonly [number, number, number] = [150, 170, 205];

/**
 * The geometry of {@link featureMapGridPng}'s image for C maps of H x W.
 *
 * @example
 * ```ts
 * const g = gridLayout(2, 2, 512); // g.cols === 23, g.rows === 23, g.cellWidth === 48
 * const [x, y] = cellOrigin(g, 30); // top-left pixel of channel 30's map
 * ```
 */
export function gridLayout(h: number, w: number, c: number, opts: FeatureMapGridOptions = {}): GridLayout {
  const n = Math.ceil(Math.sqrt(c));
  const factor = Math.max(1, Math.round((opts.cell ?? 48) / Math.max(h, w)));
  const gap = opts.gap ?? 2;
  const titleHeight = opts.title ? 28 : 0;
  const labelHeight = opts.channelNumbers ? 12 : 0;
  const cellWidth = w * factor;
  const cellHeight = h * factor;
  return {
    cols: n,
    rows: n,
    factor,
    cellWidth,
    cellHeight,
    gap,
    titleHeight,
    labelHeight,
    width: n * cellWidth + (n + 1) * gap,
    height: titleHeight + n * (cellHeight + labelHeight) + (n + 1) * gap,
  };
}

/** Top-left pixel [x, y] of channel `channel`'s map in a grid image (row-major order). */
export function cellOrigin(layout: GridLayout, channel: number): [number, number] {
  const col = channel % layout.cols;
  const row = Math.floor(channel / layout.cols);
  return [
    layout.gap + col * (layout.cellWidth + layout.gap),
    layout.titleHeight + layout.gap + row * (layout.cellHeight + layout.labelHeight + layout.gap),
  ];
}

function checkShape(maps: Float32Array, h: number, w: number, c: number): void {
  for (const [name, v] of [["h", h], ["w", w], ["c", c]] as const) {
    if (!Number.isInteger(v) || v < 1) {
      throw new RangeError(`feature maps: ${name} must be a positive integer, got ${v}`);
    }
  }
  if (maps.length !== h * w * c) {
    throw new RangeError(
      `feature maps: expected ${h} x ${w} x ${c} = ${h * w * c} values, got ${maps.length}`,
    );
  }
}

/** The [min, max] of channel `channel` (or of all channels when channel is -1), finite values only. */
function valueRange(maps: Float32Array, c: number, channel: number): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  const start = channel < 0 ? 0 : channel;
  const step = channel < 0 ? 1 : c;
  for (let i = start; i < maps.length; i += step) {
    const v = maps[i];
    if (!Number.isFinite(v)) continue;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return lo <= hi ? [lo, hi] : [0, 0];
}

/** Position 0..1 of v in [lo, hi]; 0 for an empty range or a non-finite value (imshow's convention). */
function normalise(v: number, lo: number, hi: number): number {
  if (!(hi > lo) || !Number.isFinite(v)) return 0;
  return Math.min(1, Math.max(0, (v - lo) / (hi - lo)));
}

function base64Png(png: Uint8Array): string {
  return `data:image/png;base64,${Buffer.from(png).toString("base64")}`;
}

function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}

/**
 * All C feature maps as one PNG: a ceil(sqrt(C)) x ceil(sqrt(C)) grid in channel order (row-major),
 * each map enlarged nearest-neighbour and drawn in grey (r = g = b) scaled to 0..255 over its own
 * min..max (or over all maps' min..max when `sharedScale`), with {@link GRID_BACKGROUND} gaps
 * between cells and in empty cells. A constant map is black. Without title and channel numbers
 * the PNG is 8-bit RGB; with them it is RGBA (rendered by resvg, map pixels unchanged).
 *
 * @param maps H x W x C values, channels last (a TF.js NHWC output averaged over images).
 *
 * @example
 * ```ts
 * const png = featureMapGridPng(mean, 2, 2, 512, { title: "conv2d_12 mean activations" });
 * await writeFileAtomic("out/featuremaps.png", png);
 * ```
 */
export function featureMapGridPng(
  maps: Float32Array,
  h: number,
  w: number,
  c: number,
  opts: FeatureMapGridOptions = {},
): Uint8Array {
  checkShape(maps, h, w, c);
  const layout = gridLayout(h, w, c, opts);
  const { factor, titleHeight } = layout;
  // The raster holds the grid without the title strip; the SVG path puts the strip on top.
  const width = layout.width;
  const height = layout.height - titleHeight;
  const pixels = new Uint8Array(width * height * 3);
  for (let i = 0; i < pixels.length; i += 3) pixels.set(GRID_BACKGROUND, i);
  const shared = opts.sharedScale ? valueRange(maps, c, -1) : undefined;
  for (let ch = 0; ch < c; ch++) {
    const [lo, hi] = shared ?? valueRange(maps, c, ch);
    const [x0, yTop] = cellOrigin(layout, ch);
    const y0 = yTop - titleHeight;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const grey = Math.round(normalise(maps[(y * w + x) * c + ch], lo, hi) * 255);
        for (let dy = 0; dy < factor; dy++) {
          const row = ((y0 + y * factor + dy) * width + x0 + x * factor) * 3;
          pixels.fill(grey, row, row + 3 * factor);
        }
      }
    }
  }
  const gridPng = encode({ width, height, data: pixels, channels: 3, depth: 8 });
  if (!opts.title && !opts.channelNumbers) return gridPng;

  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" ` +
    `width="${width}" height="${layout.height}" viewBox="0 0 ${width} ${layout.height}">`,
    `<rect width="${width}" height="${layout.height}" fill="white"/>`,
    `<image x="0" y="${titleHeight}" width="${width}" height="${height}" image-rendering="optimizeSpeed" ` +
    `xlink:href="${base64Png(gridPng)}"/>`,
  ];
  if (opts.title) {
    parts.push(
      `<text x="${layout.gap + 2}" y="19" font-family="${FONT_FAMILY}" font-size="14" fill="black">` +
        `${escapeXml(opts.title)}</text>`,
    );
  }
  if (opts.channelNumbers) {
    const size = Math.min(10, Math.max(6, Math.floor(layout.cellWidth / 4)));
    for (let ch = 0; ch < c; ch++) {
      const [x0, y0] = cellOrigin(layout, ch);
      parts.push(
        `<text x="${x0 + layout.cellWidth / 2}" y="${y0 + layout.cellHeight + layout.labelHeight - 2}" ` +
          `text-anchor="middle" font-family="${FONT_FAMILY}" font-size="${size}" fill="#333">${ch}</text>`,
      );
    }
  }
  parts.push("</svg>");
  return svgToPng(parts.join(""), { background: "white" });
}

/** Options for {@link featureMapPng}. */
export interface FeatureMapOptions {
  /** Target size in pixels of the map's longer side (whole-number enlargement). Default 320. */
  size?: number;
  /** Title; default "channel N". */
  title?: string;
  /** Colour range over all channels instead of this channel's own min..max. Default false. */
  sharedScale?: boolean;
  /** An explicit colour range; overrides `sharedScale`. */
  vmin?: number;
  vmax?: number;
}

/** [r, g, b] of matplotlib's viridis at t in 0..1 (256 colours, d3-scale-chromatic's table). */
export function viridis(t: number): [number, number, number] {
  const hex = interpolateViridis(Math.min(1, Math.max(0, t))) as string;
  return [parseInt(hex.slice(1, 3), 16), parseInt(hex.slice(3, 5), 16), parseInt(hex.slice(5, 7), 16)];
}

/**
 * Up to about `count` round tick values covering [lo, hi] (a single tick when lo === hi).
 *
 * @example
 * ```ts
 * niceTicks(0, 1.3, 5); // [0, 0.2, 0.4, 0.6, 0.8, 1, 1.2]
 * ```
 */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const rough = (hi - lo) / count;
  const magnitude = Math.pow(10, Math.floor(Math.log10(rough)));
  // d3's rule: the 1-2-5 multiple of the magnitude closest (geometrically) to the rough step.
  const error = rough / magnitude;
  const step = magnitude *
    (error >= Math.sqrt(50) ? 10 : error >= Math.sqrt(10) ? 5 : error >= Math.sqrt(2) ? 2 : 1);
  const decimals = Math.max(0, -Math.floor(Math.log10(step)));
  const ticks: number[] = [];
  for (let i = Math.ceil(lo / step); i * step <= hi + step * 1e-9; i++) {
    ticks.push(Number((i * step).toFixed(decimals)));
  }
  return ticks;
}

/** A colour-bar label: as many decimals as the tick step needs, a true minus sign (as matplotlib). */
function tickLabel(v: number, ticks: number[]): string {
  const step = ticks.length > 1 ? Math.abs(ticks[1] - ticks[0]) : Math.abs(v) || 1;
  const decimals = Math.max(0, -Math.floor(Math.log10(step)));
  const text = Math.abs(v) >= 1e5 || (v !== 0 && Math.abs(v) < 1e-4)
    ? v.toExponential(2)
    : v.toFixed(Math.min(decimals, 6));
  return text.replace(/^-/, "\u2212");
}

function rgbPng(width: number, height: number, colourAt: (x: number, y: number) => [number, number, number]) {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const [r, g, b] = colourAt(x, y);
      const i = (y * width + x) * 3;
      data[i] = r;
      data[i + 1] = g;
      data[i + 2] = b;
    }
  }
  return encode({ width, height, data, channels: 3, depth: 8 });
}

/** Where the parts of {@link featureMapPng}'s image are, in pixels. */
export interface FeatureMapLayout {
  factor: number;
  mapX: number;
  mapY: number;
  mapWidth: number;
  mapHeight: number;
  barX: number;
  barWidth: number;
  width: number;
  height: number;
}

/** The geometry of {@link featureMapPng}'s image for an H x W map. */
export function featureMapLayout(h: number, w: number, opts: FeatureMapOptions = {}): FeatureMapLayout {
  const factor = Math.max(1, Math.round((opts.size ?? 320) / Math.max(h, w)));
  const mapX = 12;
  const mapY = 36;
  const mapWidth = w * factor;
  const mapHeight = h * factor;
  const barX = mapX + mapWidth + 14;
  const barWidth = 16;
  return {
    factor,
    mapX,
    mapY,
    mapWidth,
    mapHeight,
    barX,
    barWidth,
    width: barX + barWidth + 80,
    height: mapY + mapHeight + 12,
  };
}

/**
 * One channel enlarged (nearest-neighbour) in matplotlib's default viridis colour map, with a
 * colour bar whose tick labels give the values, and the title "channel N". Range: the channel's own
 * min..max by default, all channels' with `sharedScale`, or `vmin`..`vmax`. RGBA PNG.
 *
 * @param maps H x W x C values, channels last.
 *
 * @example
 * ```ts
 * const png = featureMapPng(mean, 2, 2, 512, 7); // "channel 7"
 * ```
 */
export function featureMapPng(
  maps: Float32Array,
  h: number,
  w: number,
  c: number,
  channel: number,
  opts: FeatureMapOptions = {},
): Uint8Array {
  checkShape(maps, h, w, c);
  if (!Number.isInteger(channel) || channel < 0 || channel >= c) {
    throw new RangeError(`feature maps: channel ${channel} is not in 0..${c - 1}`);
  }
  let [lo, hi] = opts.sharedScale ? valueRange(maps, c, -1) : valueRange(maps, c, channel);
  if (opts.vmin !== undefined) lo = opts.vmin;
  if (opts.vmax !== undefined) hi = opts.vmax;
  const L = featureMapLayout(h, w, opts);
  const mapPng = rgbPng(L.mapWidth, L.mapHeight, (x, y) => {
    const v = maps[(Math.floor(y / L.factor) * w + Math.floor(x / L.factor)) * c + channel];
    return viridis(normalise(v, lo, hi));
  });
  // Bar rows run from hi at the top to lo at the bottom, each row the colour of its centre.
  const barPng = rgbPng(
    L.barWidth,
    L.mapHeight,
    (_x, y) => viridis(hi > lo ? 1 - (y + 0.5) / L.mapHeight : 0),
  );
  const ticks = niceTicks(lo, hi);
  const tickY = (v: number) => L.mapY + (hi > lo ? (1 - (v - lo) / (hi - lo)) * L.mapHeight : L.mapHeight);
  const barRight = L.barX + L.barWidth;
  const title = opts.title ?? `channel ${channel}`;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" ` +
    `width="${L.width}" height="${L.height}" viewBox="0 0 ${L.width} ${L.height}">`,
    `<rect width="${L.width}" height="${L.height}" fill="white"/>`,
    `<text x="${L.mapX}" y="24" font-family="${FONT_FAMILY}" font-size="15" fill="black">${
      escapeXml(title)
    }</text>`,
    `<image x="${L.mapX}" y="${L.mapY}" width="${L.mapWidth}" height="${L.mapHeight}" ` +
    `image-rendering="optimizeSpeed" xlink:href="${base64Png(mapPng)}"/>`,
    `<image x="${L.barX}" y="${L.mapY}" width="${L.barWidth}" height="${L.mapHeight}" ` +
    `image-rendering="optimizeSpeed" xlink:href="${base64Png(barPng)}"/>`,
    `<rect x="${L.barX - 0.5}" y="${L.mapY - 0.5}" width="${L.barWidth + 1}" height="${L.mapHeight + 1}" ` +
    `fill="none" stroke="#333" stroke-width="1"/>`,
  ];
  for (const v of ticks) {
    const y = tickY(v);
    parts.push(
      `<line x1="${barRight}" y1="${y}" x2="${barRight + 4}" y2="${y}" stroke="#333" stroke-width="1"/>`,
      `<text x="${barRight + 7}" y="${y + 4}" font-family="${FONT_FAMILY}" font-size="11" fill="black">` +
        `${tickLabel(v, ticks)}</text>`,
    );
  }
  parts.push("</svg>");
  return svgToPng(parts.join(""), { background: "white" });
}
