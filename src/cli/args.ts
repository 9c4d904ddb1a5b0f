/**
 * Command-line helpers shared by the commands (src/commands/*.ts) and scripts/bench.ts: strict
 * flag parsing, positive numbers, R,G,B triples and the --scale / --mean / --std preprocessing
 * flags. Every bad value is a one-line `UserError` that names the flag.
 */
import { parseArgs, type ParseArgsOptionsConfig } from "node:util";
import { UserError } from "../core/errors.ts";
import { ENGINE_NAMES, type EngineChoice, type EngineName } from "../sweep/engine.ts";
import type { Preprocessing } from "../types.ts";
import { parsePlan, type PlanEntry } from "../surgery/select.ts";

/**
 * Parse `args` against `options` with node:util's `parseArgs` (strict, no positional arguments)
 * and return the values. A parse error (an unknown flag, a missing value) becomes a `UserError`:
 * parseArgs's message, then "`hint` 'deno task `task` --help'." (`hint` "See", or "Run" where a
 * command says so).
 *
 * @example
 * ```ts
 * const values = parseFlags(args, { out: { type: "string", default: "out/sweep" } }, "sweep");
 * // parseFlags(["--nope"], {}, "sweep") throws
 * // UserError("Unknown option '--nope'. ... See 'deno task sweep --help'.")
 * ```
 */
export function parseFlags<O extends ParseArgsOptionsConfig>(
  args: string[],
  options: O,
  task: string,
  hint: "See" | "Run" = "See",
) {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals: false }).values;
  } catch (e) {
    throw new UserError(`${parseErrorLine(e as Error, args)} ${hint} 'deno task ${task} --help'.`);
  }
}

/**
 * parseArgs's message in one line. Its message for a value that starts with '-' (`--limit -5`)
 * spans three lines; it becomes "--limit -5: a value that starts with '-' is written --limit=-5."
 */
function parseErrorLine(e: Error, args: string[]): string {
  const ambiguous = e.message.match(/^Option '(-[^' ]+)[^']*' argument is ambiguous/);
  if (ambiguous) {
    const flag = ambiguous[1];
    const at = args.indexOf(flag);
    const value = at >= 0 ? args[at + 1] : undefined;
    if (value !== undefined) {
      return `${flag} ${value}: a value that starts with '-' is written ${flag}=${value}.`;
    }
  }
  const text = e.message.split("\n").map((l) => l.trim()).filter(Boolean).join(" ");
  return text.endsWith(".") ? text : `${text}.`;
}

/**
 * The integer value of flag `--name`, or `fallback` when the flag is absent (`value` undefined).
 * Anything but a positive integer (or, with `allowZero`, a non-negative one) is a `UserError`.
 *
 * @example
 * ```ts
 * positiveInt("batch", undefined, 256); // 256
 * positiveInt("batch", "64", 256); // 64
 * positiveInt("k", "0", 0, true); // 0
 * positiveInt("batch", "0", 256); // throws UserError("--batch must be a positive integer, got '0'.")
 * ```
 */
export function positiveInt(
  name: string,
  value: string | undefined,
  fallback: number,
  allowZero = false,
): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || (n === 0 && !allowZero)) {
    throw new UserError(
      `--${name} must be a ${allowZero ? "non-negative" : "positive"} integer, got '${value}'.`,
    );
  }
  return n;
}

/**
 * The value of flag `--name` as a finite number > 0, or `fallback` when the flag is absent.
 *
 * @example
 * ```ts
 * positiveNumber("width", "0.25", 1); // 0.25
 * positiveNumber("lr", "-1", 0.1); // throws UserError("--lr must be a positive number, got '-1'.")
 * ```
 */
export function positiveNumber(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) {
    throw new UserError(`--${name} must be a positive number, got '${value}'.`);
  }
  return n;
}

/**
 * Parse the value "R,G,B" of flag `--name` into three finite numbers.
 *
 * @example
 * ```ts
 * triple("mean", "0.49,0.48,0.45"); // [0.49, 0.48, 0.45]
 * triple("std", "1,1"); // throws UserError("--std needs three numbers R,G,B, got '1,1'.")
 * ```
 */
export function triple(name: string, value: string): [number, number, number] {
  const parts = value.split(",").map(Number);
  if (parts.length !== 3 || parts.some((x) => !Number.isFinite(x))) {
    throw new UserError(`--${name} needs three numbers R,G,B, got '${value}'.`);
  }
  return parts as [number, number, number];
}

/**
 * The preprocessing given with --scale X, --mean R,G,B and --std R,G,B (only the flags present),
 * for a model whose metadata has none. (`convert` reads these flags its own, looser way.)
 *
 * @example
 * ```ts
 * parsePreprocessing({ scale: "0.5", std: "2,2,2" }); // { scale: 0.5, std: [2, 2, 2] }
 * parsePreprocessing({}); // {}
 * ```
 */
export function parsePreprocessing(
  values: { scale?: string; mean?: string; std?: string },
): Partial<Preprocessing> {
  const flags: Partial<Preprocessing> = {};
  if (values.scale !== undefined) {
    flags.scale = Number(values.scale);
    if (!Number.isFinite(flags.scale)) {
      throw new UserError(`--scale must be a number, got '${values.scale}'.`);
    }
  }
  if (values.mean !== undefined) flags.mean = triple("mean", values.mean);
  if (values.std !== undefined) flags.std = triple("std", values.std);
  return flags;
}

/**
 * Parse a K list: "0,8,16", "0:64:8" (start:stop:step, stop included) or a mix.
 *
 * @example
 * ```ts
 * parseKList("0,4:12:4"); // [0, 4, 8, 12]
 * ```
 */
export function parseKList(v: string): number[] {
  const ks: number[] = [];
  for (const part of v.split(",")) {
    const range = part.split(":").map(Number);
    if (range.some((x) => !Number.isInteger(x) || x < 0) || range.length > 3) {
      throw new UserError(
        `--k: '${part}' is not a K value or a start:stop:step range of non-negative integers.`,
      );
    }
    if (range.length === 1) ks.push(range[0]);
    else for (let k = range[0]; k <= range[1]; k += range[2] ?? 1) ks.push(k);
  }
  return ks;
}

/**
 * The sweep engine `--engine` names (exact, dense-kernel, algebra, naive; default auto: the
 * fastest exact one, `chooseEngine`). `--naive`, `--algebra` and `--dense-kernel` are kept as
 * aliases: at most one, and not with `--engine`.
 *
 * @example
 * ```ts
 * engineFlag({ engine: "dense-kernel" }); // "dense-kernel"
 * engineFlag({ naive: true }); // "naive"
 * engineFlag({}); // "auto"
 * ```
 */
export function engineFlag(
  values: { engine?: string; naive?: boolean; algebra?: boolean; "dense-kernel"?: boolean },
): EngineChoice {
  const aliases = (["naive", "algebra", "dense-kernel"] as const).filter((e) => values[e]);
  if (aliases.length + (values.engine === undefined ? 0 : 1) > 1) {
    throw new UserError(
      `--${aliases.join(", --")}${values.engine === undefined ? "" : ` and --engine ${values.engine}`} ` +
        `each pick an engine: pass one --engine ${ENGINE_NAMES.join("|")}.`,
    );
  }
  const name = values.engine ?? aliases[0] ?? "auto";
  if (name !== "auto" && !ENGINE_NAMES.includes(name as EngineName)) {
    throw new UserError(`--engine must be auto or one of ${ENGINE_NAMES.join(", ")}, got '${name}'.`);
  }
  return name as EngineChoice;
}

/**
 * The value of `--workers`: a positive integer, or "auto" (the default: `planResources` picks).
 *
 * @example
 * ```ts
 * workersFlag(undefined); // "auto"
 * workersFlag("2"); // 2
 * ```
 */
export function workersFlag(value: string | undefined): number | "auto" {
  if (value === undefined || value === "auto") return "auto";
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) {
    throw new UserError(`--workers must be auto or a positive integer, got '${value}'.`);
  }
  return n;
}

/**
 * Throw a UserError when a --k value is more than `layer`'s channels.
 *
 * @example
 * ```ts
 * checkKValues([0, 8, 200], { name: "conv2", channels: 16 }); // throws "--k 200 is more than ..."
 * ```
 */
export function checkKValues(kValues: number[] | undefined, layer: { name: string; channels: number }): void {
  const bad = kValues?.find((k) => k > layer.channels);
  if (bad !== undefined) {
    throw new UserError(`--k ${bad} is more than the ${layer.channels} channels of ${layer.name}.`);
  }
}

/**
 * What `prune` removes, from its flags: one of --k N, --max-drop P or --plan L:K,... (--plan may
 * add --max-drop for its bare layers); each wrong combination or value is a one-line UserError.
 *
 * @example
 * ```ts
 * pruneChoice({ "max-drop": "1" }); // { k: undefined, maxDrop: 1, plan: undefined }
 * pruneChoice({ k: "4", plan: "conv1:2" }); // throws "give one of --k N, --max-drop P or --plan ..."
 * ```
 */
export function pruneChoice(
  values: { k?: string; "max-drop"?: string; plan?: string; layer?: string },
): { k?: number; maxDrop?: number; plan?: PlanEntry[] } {
  const chosen = [values.k, values["max-drop"], values.plan].filter((v) => v !== undefined).length;
  const planWithDrop = values.plan !== undefined && values["max-drop"] !== undefined &&
    values.k === undefined;
  if (chosen !== 1 && !planWithDrop) {
    throw new UserError(
      `give one of --k N, --max-drop P or --plan LAYER:K,... (--plan may add --max-drop for bare layers); ` +
        `see 'deno task prune --help'.`,
    );
  }
  if (values.plan !== undefined && values.layer !== undefined) {
    throw new UserError(`--plan names its layers itself; drop --layer.`);
  }
  const k = values.k === undefined ? undefined : positiveInt("k", values.k, 0, true);
  let maxDrop: number | undefined;
  if (values["max-drop"] !== undefined) {
    maxDrop = Number(values["max-drop"]);
    if (!Number.isFinite(maxDrop) || maxDrop < 0) {
      throw new UserError(
        `--max-drop must be a non-negative number of percentage points, got '${values["max-drop"]}'.`,
      );
    }
  }
  const plan = values.plan === undefined ? undefined : parsePlan(values.plan);
  if (plan && maxDrop !== undefined && plan.every((e) => e.k !== null)) {
    throw new UserError(`--max-drop has nothing to choose: every --plan entry already has its K.`);
  }
  return { k, maxDrop, plan };
}

/**
 * `sensitivity --stop-below P`: undefined when absent, else P (points), at least 1 (the summary
 * reads each layer's 1-point K off the curves) and with fraction 0 among `fractions` (the curve is
 * measured from K = 0; `--step` lists always start there).
 *
 * @example
 * ```ts
 * stopBelowFlag("5", [0, 0.5]); // 5
 * stopBelowFlag(undefined, [0.5]); // undefined
 * ```
 */
export function stopBelowFlag(
  value: string | undefined,
  fractions: number[] | undefined,
): number | undefined {
  if (value === undefined) return undefined;
  const p = positiveNumber("stop-below", value, 1);
  if (p < 1) {
    throw new UserError(`--stop-below ${p} would end curves before the summary's 1-point K; give 1 or more.`);
  }
  if (fractions && !fractions.includes(0)) {
    throw new UserError(`--stop-below measures from K = 0: add fraction 0 to --fractions.`);
  }
  return p;
}
