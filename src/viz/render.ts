/**
 * Chart rendering: vega-lite spec -> SVG (vega, no browser) -> PNG (resvg). Text is always set in
 * the DejaVu Sans the project ships in fixtures/fonts, never in a system font, so a PNG made on a
 * machine with no fonts installed still has its titles, axes and labels.
 */
import { initWasm, Resvg } from "@resvg/resvg-wasm";
import * as vega from "vega";
import { compile, type TopLevelSpec } from "vega-lite";

/** The one font family every chart and image uses. */
export const FONT_FAMILY = "DejaVu Sans";

/** The shipped font, next to the code (also inside a `deno compile` binary built with `--include fixtures/fonts`). */
export const FONT_URL = new URL("../../fixtures/fonts/DejaVuSans.ttf", import.meta.url);

// resvg as WebAssembly (the same resvg 2.6.2 as @resvg/resvg-js, whose native addon would need
// --allow-ffi and --allow-sys). Fonts are passed as bytes read through Deno's file API, so this also
// works inside a `deno compile` binary, whose embedded files only Deno itself can read.
await initWasm(Deno.readFile(new URL(import.meta.resolve("@resvg/resvg-wasm/index_bg.wasm"))));

let fontBytes: Uint8Array | undefined;

function shippedFont(): Uint8Array {
  if (fontBytes) return fontBytes;
  try {
    return (fontBytes = Deno.readFileSync(FONT_URL));
  } catch (e) {
    throw new Error(`the shipped font is missing: ${FONT_URL.href} (${(e as Error).message})`);
  }
}

/** Options for {@link svgToPng}. */
export interface PngOptions {
  /** Pixels per SVG unit (2 = twice the SVG's width and height). Default 1. */
  scale?: number;
  /** Background behind transparent parts, a CSS colour; default none (transparent stays transparent). */
  background?: string;
}

/**
 * Rasterise an SVG to PNG bytes with resvg, using only the shipped DejaVu Sans (never system fonts:
 * the WebAssembly build cannot see them). Any font-family the SVG names is drawn in DejaVu Sans.
 *
 * @example
 * ```ts
 * const png = svgToPng('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>', { scale: 2 });
 * ```
 */
export function svgToPng(svg: string, opts: PngOptions = {}): Uint8Array {
  const scale = opts.scale ?? 1;
  if (!(scale > 0) || !Number.isFinite(scale)) throw new RangeError(`svgToPng: bad scale ${scale}`);
  const resvg = new Resvg(svg, {
    font: {
      fontBuffers: [shippedFont()],
      defaultFontFamily: FONT_FAMILY,
      sansSerifFamily: FONT_FAMILY,
      serifFamily: FONT_FAMILY,
      monospaceFamily: FONT_FAMILY,
    },
    fitTo: scale === 1 ? { mode: "original" } : { mode: "zoom", value: scale },
    background: opts.background,
  });
  try {
    const image = resvg.render();
    try {
      return image.asPng();
    } finally {
      image.free();
    }
  } finally {
    resvg.free();
  }
}

/**
 * Compile a vega-lite spec and render it to an SVG string with vega's headless ("none") renderer.
 * Every text mark, title, axis and legend is set in {@link FONT_FAMILY}, overriding the spec.
 *
 * @example
 * ```ts
 * const svg = await vegaLiteToSvg({ mark: "point", data: { values: [{ x: 1 }] }, encoding: { x: { field: "x", type: "quantitative" } } });
 * ```
 */
export async function vegaLiteToSvg(spec: object): Promise<string> {
  const topLevel = spec as TopLevelSpec & { config?: Record<string, unknown> };
  const withFont = {
    ...topLevel,
    config: { ...(topLevel.config ?? {}), font: FONT_FAMILY },
  } as TopLevelSpec;
  const vgSpec = compile(withFont).spec;
  const view = new vega.View(vega.parse(vgSpec), { renderer: "none" });
  try {
    const svg = await view.toSVG();
    // Belt and braces: any font-family vega wrote (e.g. from a mark's own `font`) becomes ours.
    return svg.replace(/font-family="[^"]*"/g, `font-family="${FONT_FAMILY}"`);
  } finally {
    view.finalize();
  }
}
