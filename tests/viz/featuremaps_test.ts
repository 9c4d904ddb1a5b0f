/** Feature-map pictures (src/viz/featuremaps.ts): grid geometry, per-map and shared scaling, viridis view. */
import assert from "node:assert/strict";
import { decode } from "fast-png";
import {
  cellOrigin,
  featureMapGridPng,
  featureMapLayout,
  featureMapPng,
  GRID_BACKGROUND,
  gridLayout,
  niceTicks,
} from "../../src/viz/featuremaps.ts";
import { ihdr } from "../_helpers.ts";

function image(png: Uint8Array) {
  const img = decode(png);
  assert.equal(img.depth, 8);
  return {
    width: img.width,
    height: img.height,
    channels: img.channels,
    rgb(x: number, y: number): [number, number, number] {
      const i = (y * img.width + x) * img.channels;
      return [img.data[i], img.data[i + 1], img.data[i + 2]];
    },
  };
}

/** A deterministic H x W x C map (channels last) with varied ranges; `constant` channels hold one value. */
function synthetic(h: number, w: number, c: number, constant: Map<number, number> = new Map()): Float32Array {
  const maps = new Float32Array(h * w * c);
  let seed = 12345;
  const rand = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  for (let i = 0; i < maps.length; i++) {
    const ch = i % c;
    maps[i] = constant.has(ch) ? constant.get(ch)! : (ch + 1) * (rand() - 0.3) + ch * 0.5;
  }
  return maps;
}

function channelValues(maps: Float32Array, c: number, ch: number): number[] {
  const out: number[] = [];
  for (let i = ch; i < maps.length; i += c) out.push(maps[i]);
  return out;
}

Deno.test("grid: 512 maps of 2x2 make a 23x23 grid, PNG header and decoded size agree", () => {
  const maps = synthetic(2, 2, 512);
  const png = featureMapGridPng(maps, 2, 2, 512);
  const layout = gridLayout(2, 2, 512);
  assert.equal(layout.cols, 23); // ceil(sqrt(512)) = 23, as in the lab's figure
  assert.equal(layout.rows, 23);
  // default cell 48 px -> 2x2 maps enlarged 24 times; gaps of 2 around and between cells
  assert.equal(layout.factor, 24);
  const expected = { width: 23 * 48 + 24 * 2, height: 23 * 48 + 24 * 2 };
  assert.deepEqual(ihdr(png), expected);
  const img = image(png);
  assert.equal(img.width, expected.width);
  assert.equal(img.height, expected.height);
  assert.deepEqual(cellOrigin(layout, 0), [2, 2]);
  assert.deepEqual(cellOrigin(layout, 24), [2 + 50, 2 + 50]);
  // gaps and the 17 empty cells after channel 511 show the background colour
  assert.deepEqual(img.rgb(0, 0), [...GRID_BACKGROUND]);
  assert.deepEqual(img.rgb(50, 10), [...GRID_BACKGROUND]);
  const [ex, ey] = cellOrigin(layout, 520);
  assert.deepEqual(img.rgb(ex + 10, ey + 10), [...GRID_BACKGROUND]);
});

Deno.test("grid: each map scaled to its own min..max (min -> 0, max -> 255), nearest-neighbour blocks", () => {
  const h = 3;
  const w = 4;
  const c = 10;
  const maps = synthetic(h, w, c, new Map([[4, 2.5]]));
  const png = featureMapGridPng(maps, h, w, c, { cell: 16 });
  const layout = gridLayout(h, w, c, { cell: 16 });
  assert.equal(layout.factor, 4);
  const img = image(png);
  for (let ch = 0; ch < c; ch++) {
    const values = channelValues(maps, c, ch);
    const lo = Math.min(...values);
    const hi = Math.max(...values);
    const [x0, y0] = cellOrigin(layout, ch);
    const seen = new Set<number>();
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const v = maps[(y * w + x) * c + ch];
        const expected = hi > lo ? Math.round(((v - lo) / (hi - lo)) * 255) : 0;
        for (let dy = 0; dy < layout.factor; dy++) {
          for (let dx = 0; dx < layout.factor; dx++) {
            const [r, g, b] = img.rgb(x0 + x * layout.factor + dx, y0 + y * layout.factor + dy);
            assert.equal(r, g);
            assert.equal(g, b);
            assert.equal(r, expected, `channel ${ch} pixel (${x},${y})`);
          }
        }
        seen.add(img.rgb(x0 + x * layout.factor, y0 + y * layout.factor)[0]);
      }
    }
    if (ch === 4) assert.deepEqual([...seen], [0], "a constant map is drawn black");
    else {
      assert.ok(seen.has(0) && seen.has(255), `channel ${ch} spans 0..255`);
    }
  }
});

Deno.test("grid: sharedScale uses one range for all maps and gives a different picture", () => {
  const h = 2;
  const w = 2;
  const c = 9;
  const maps = synthetic(h, w, c);
  const own = image(featureMapGridPng(maps, h, w, c));
  const shared = image(featureMapGridPng(maps, h, w, c, { sharedScale: true }));
  assert.equal(own.width, shared.width);
  const layout = gridLayout(h, w, c);
  const all = [...maps];
  const lo = Math.min(...all);
  const hi = Math.max(...all);
  let differing = 0;
  let globalMin = 0;
  let globalMax = 0;
  for (let ch = 0; ch < c; ch++) {
    const [x0, y0] = cellOrigin(layout, ch);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const v = maps[(y * w + x) * c + ch];
        const px = [x0 + x * layout.factor, y0 + y * layout.factor] as const;
        const g = shared.rgb(...px)[0];
        assert.equal(g, Math.round(((v - lo) / (hi - lo)) * 255));
        if (g === 0) globalMin++;
        if (g === 255) globalMax++;
        if (g !== own.rgb(...px)[0]) differing++;
      }
    }
  }
  assert.equal(globalMin, 1, "only the global minimum is black");
  assert.equal(globalMax, 1, "only the global maximum is white");
  assert.ok(differing > 10, `${differing} pixels differ from per-map scaling`);
});

Deno.test("grid: a title and channel numbers add text but leave the map pixels unchanged", () => {
  const maps = synthetic(4, 4, 16);
  const plain = image(featureMapGridPng(maps, 4, 4, 16));
  const titled = image(
    featureMapGridPng(maps, 4, 4, 16, { title: "conv2d_5 mean activation", channelNumbers: true }),
  );
  const lp = gridLayout(4, 4, 16);
  const lt = gridLayout(4, 4, 16, { title: "x", channelNumbers: true });
  assert.equal(titled.width, lp.width);
  assert.equal(titled.height, lt.height);
  assert.ok(lt.height > lp.height);
  for (let ch = 0; ch < 16; ch++) {
    const [px, py] = cellOrigin(lp, ch);
    const [tx, ty] = cellOrigin(lt, ch);
    for (let y = 0; y < lp.cellHeight; y += 3) {
      for (let x = 0; x < lp.cellWidth; x += 3) {
        assert.deepEqual(titled.rgb(tx + x, ty + y), plain.rgb(px + x, py + y), `channel ${ch} at ${x},${y}`);
      }
    }
  }
  let titleInk = 0;
  for (let y = 0; y < lt.titleHeight; y++) {
    for (let x = 0; x < titled.width; x++) if (titled.rgb(x, y)[0] < 100) titleInk++;
  }
  assert.ok(titleInk > 100, `title draws dark pixels (${titleInk})`);
  // the number strip under channel 0 has text in it
  const [x0, y0] = cellOrigin(lt, 0);
  let numberInk = 0;
  for (let y = y0 + lt.cellHeight; y < y0 + lt.cellHeight + lt.labelHeight; y++) {
    for (let x = x0; x < x0 + lt.cellWidth; x++) if (titled.rgb(x, y)[0] < 100) numberInk++;
  }
  assert.ok(numberInk > 3, "channel number drawn");
});

Deno.test("grid: wrong sizes are refused", () => {
  assert.throws(() => featureMapGridPng(new Float32Array(7), 2, 2, 2), RangeError);
  assert.throws(() => featureMapGridPng(new Float32Array(0), 0, 2, 2), RangeError);
});

Deno.test("single map: viridis ends at the map's min and max, colour bar, title text", () => {
  const h = 2;
  const w = 2;
  const c = 3;
  const maps = new Float32Array([
    // (y, x) = (0,0): channels 0..2
    0,
    5,
    -1,
    // (0,1)
    1,
    5,
    3,
    // (1,0)
    2,
    5,
    1,
    // (1,1)
    3,
    5,
    2,
  ]);
  const png = featureMapPng(maps, h, w, c, 2);
  const L = featureMapLayout(h, w);
  assert.deepEqual(ihdr(png), { width: L.width, height: L.height });
  const img = image(png);
  const at = (x: number, y: number) =>
    img.rgb(L.mapX + x * L.factor + L.factor / 2, L.mapY + y * L.factor + L.factor / 2);
  // matplotlib's viridis runs from #440154 (lowest) to #fde725 (highest)
  assert.deepEqual(at(0, 0), [0x44, 0x01, 0x54], "min (-1) is viridis' first colour");
  assert.deepEqual(at(1, 0), [0xfd, 0xe7, 0x25], "max (3) is viridis' last colour");
  const mid = at(0, 1); // value 1: halfway, viridis' teal middle (#21918c)
  assert.ok(
    Math.abs(mid[0] - 0x21) < 12 && Math.abs(mid[1] - 0x91) < 12 && Math.abs(mid[2] - 0x8c) < 12,
    `${mid}`,
  );
  // colour bar: yellow at the top, purple at the bottom
  const barTop = img.rgb(L.barX + L.barWidth / 2, L.mapY + 1);
  const barBottom = img.rgb(L.barX + L.barWidth / 2, L.mapY + L.mapHeight - 2);
  assert.ok(barTop[0] > 230 && barTop[1] > 200 && barTop[2] < 80, `bar top ${barTop}`);
  assert.ok(barBottom[0] < 80 && barBottom[1] < 20 && barBottom[2] > 70, `bar bottom ${barBottom}`);
  // tick labels to the right of the bar and the title above the map are text (dark pixels)
  let tickInk = 0;
  for (let y = L.mapY; y < L.mapY + L.mapHeight; y++) {
    for (let x = L.barX + L.barWidth + 6; x < L.width; x++) if (img.rgb(x, y)[0] < 100) tickInk++;
  }
  assert.ok(tickInk > 50, `tick labels drawn (${tickInk})`);
  let titleInk = 0;
  for (let y = 0; y < L.mapY - 4; y++) {
    for (let x = 0; x < L.width; x++) if (img.rgb(x, y)[0] < 100) titleInk++;
  }
  assert.ok(titleInk > 50, `title drawn (${titleInk})`);
  // a different channel with a different title changes the title strip
  const other = image(featureMapPng(maps, h, w, c, 0));
  let titleDiff = 0;
  for (let y = 0; y < L.mapY - 4; y++) {
    for (let x = 0; x < L.width; x++) if (other.rgb(x, y)[0] !== img.rgb(x, y)[0]) titleDiff++;
  }
  assert.ok(titleDiff > 0, "'channel 0' and 'channel 2' titles differ");
  // constant channel 1: drawn at the bottom of the colour map, as imshow does
  const constant = image(featureMapPng(maps, h, w, c, 1));
  assert.deepEqual(constant.rgb(L.mapX + 5, L.mapY + 5), [0x44, 0x01, 0x54]);
  assert.throws(() => featureMapPng(maps, h, w, c, 3), RangeError);
});

Deno.test("single map: sharedScale and vmin/vmax change the colours", () => {
  const maps = new Float32Array([0, 10, 1, 10, 2, 10, 3, 10]); // 2x2x2: channel 0 in 0..3, channel 1 = 10
  const L = featureMapLayout(2, 2);
  const centre = (png: Uint8Array) => image(png).rgb(L.mapX + L.factor + L.factor / 2, L.mapY + L.factor + 1);
  // value 3 at (1,1): the channel's max on its own scale, low on the shared 0..10 scale
  assert.deepEqual(centre(featureMapPng(maps, 2, 2, 2, 0)), [0xfd, 0xe7, 0x25]);
  const shared = centre(featureMapPng(maps, 2, 2, 2, 0, { sharedScale: true }));
  assert.ok(shared[0] < 100 && shared[2] > 100, `shared scale puts 3 of 0..10 in the purple-blue: ${shared}`);
  assert.deepEqual(centre(featureMapPng(maps, 2, 2, 2, 0, { vmin: -10, vmax: 3 })), [0xfd, 0xe7, 0x25]);
});

Deno.test("niceTicks: round steps covering the range", () => {
  assert.deepEqual(niceTicks(0, 1.3, 5), [0, 0.2, 0.4, 0.6, 0.8, 1, 1.2]);
  assert.deepEqual(niceTicks(-1.37, 1.62, 5), [-1, -0.5, 0, 0.5, 1, 1.5]);
  assert.deepEqual(niceTicks(2, 2), [2]);
  const t = niceTicks(0.000123, 0.000456);
  assert.ok(t.length >= 3 && t[0] >= 0.000123 && t[t.length - 1] <= 0.000456, `${t}`);
});
