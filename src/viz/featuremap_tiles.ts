/**
 * One small PNG per channel of a layer's averaged feature maps, for report.html's ranked grid
 * (the page lays them out and labels them). Each tile is `featureMapGridPng` of that channel
 * alone, with no gap: grey, on the channel's own min..max, as in featuremaps.png.
 */
import { featureMapGridPng } from "./featuremaps.ts";

/**
 * The grey PNG of every channel of `maps` (H x W x C, channels last), indexed by channel.
 *
 * @example
 * ```ts
 * const tiles = featureMapTiles(maps, 2, 2, 128); // tiles[c] is channel c's map, 32 x 32 pixels
 * ```
 */
export function featureMapTiles(
  maps: Float32Array,
  h: number,
  w: number,
  c: number,
  cell = 32,
): Uint8Array[] {
  if (maps.length !== h * w * c) {
    throw new RangeError(`feature maps: ${maps.length} values, not ${h} x ${w} x ${c}`);
  }
  return Array.from({ length: c }, (_, ch) => {
    const one = new Float32Array(h * w);
    for (let i = 0; i < h * w; i++) one[i] = maps[i * c + ch];
    return featureMapGridPng(one, h, w, 1, { cell, gap: 0 });
  });
}
