/**
 * A progress bar for long work (download, prefix pass, sweep, training), written to stderr.
 *
 * On a terminal it redraws one line in place (`\r`) at most ~10 times a second. When stderr is
 * not a terminal (CI, a log file) it prints a plain line at most every ~10% of the work or every
 * 30 s, plus a final line, so logs stay short. `PRUNESCOPE_NO_PROGRESS=1` silences it.
 *
 * @example
 * ```ts
 * const bar = new Progress({ label: "sweep", total: 512, unit: "K" });
 * for (let k = 0; k < 512; k++) bar.tick(1, `acc ${acc.toFixed(3)}`);
 * bar.done();
 * ```
 */

/** What one line of progress shows. */
export interface ProgressSnapshot {
  label: string;
  done: number;
  total: number;
  /** "B" formats counts as bytes (KB, MB, ...); any other unit is appended to the counts. */
  unit?: string;
  elapsedS: number;
  info?: string;
}

/** Minimum time between two in-place redraws on a terminal. */
export const TTY_REDRAW_MS = 100;
/** A plain (non-terminal) line is printed when the work crosses each tenth... */
export const PLAIN_STEP_FRACTION = 0.1;
/** ...or when this long has passed since the last plain line. */
export const PLAIN_MAX_SILENCE_MS = 30_000;

const BAR_WIDTH = 24;

/**
 * Seconds as a short duration: "7s", "1m05s", "2h03m04s"; "--" when unknown.
 *
 * @example
 * ```ts
 * formatSeconds(65); // "1m05s"
 * ```
 */
export function formatSeconds(s: number): string {
  if (!Number.isFinite(s) || s < 0) return "--";
  const total = Math.round(s);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const sec = total % 60;
  const pad = (n: number) => String(n).padStart(2, "0");
  if (h > 0) return `${h}h${pad(m)}m${pad(sec)}s`;
  if (m > 0) return `${m}m${pad(sec)}s`;
  return `${sec}s`;
}

/**
 * Seconds left at the average rate so far, or null when it cannot be estimated yet
 * (nothing done, no time elapsed, or no known total).
 *
 * @example
 * ```ts
 * estimateEta(25, 100, 10); // 30: a quarter took 10 s, three quarters take 30 s
 * ```
 */
export function estimateEta(done: number, total: number, elapsedS: number): number | null {
  if (!(total > 0) || !(done > 0) || !(elapsedS > 0)) return null;
  if (done >= total) return 0;
  return ((total - done) * elapsedS) / done;
}

/** A byte count with a binary-free decimal unit: "512 B", "45.2 MB". */
export function formatBytes(n: number): string {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let v = n;
  let i = 0;
  while (Math.abs(v) >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return i === 0 ? `${Math.round(v)} B` : `${v.toFixed(1)} ${units[i]}`;
}

function formatCount(n: number): string {
  return Number.isInteger(n) ? String(n) : n.toFixed(1);
}

function formatRate(perSecond: number, unit: string | undefined): string {
  if (unit === "B") return `${formatBytes(perSecond)}/s`;
  const v = perSecond >= 100
    ? perSecond.toFixed(0)
    : perSecond >= 10
    ? perSecond.toFixed(1)
    : perSecond.toFixed(2);
  return `${v} ${unit ?? "it"}/s`;
}

/**
 * Render one progress line (no `\r`, no newline).
 *
 * @example
 * ```ts
 * renderLine({ label: "train", done: 50, total: 200, unit: "steps", elapsedS: 10, info: "loss 1.23" });
 * // "train [######..................] 50/200 steps  25%  5.00 steps/s  10s  eta 30s  loss 1.23"
 * ```
 */
export function renderLine(s: ProgressSnapshot): string {
  const known = s.total > 0 && Number.isFinite(s.total);
  const fraction = known ? Math.min(1, Math.max(0, s.done / s.total)) : 0;
  const filled = Math.round(fraction * BAR_WIDTH);
  const bar = known ? ` [${"#".repeat(filled)}${".".repeat(BAR_WIDTH - filled)}]` : "";
  const parts: string[] = [`${s.label}${bar}`];
  const unitSuffix = s.unit && s.unit !== "B" ? ` ${s.unit}` : "";
  if (s.unit === "B") {
    parts.push(known ? `${formatBytes(s.done)}/${formatBytes(s.total)}` : formatBytes(s.done));
  } else {
    parts.push(
      known
        ? `${formatCount(s.done)}/${formatCount(s.total)}${unitSuffix}`
        : `${formatCount(s.done)}${unitSuffix}`,
    );
  }
  if (known) parts.push(`${Math.floor(fraction * 100)}%`);
  if (s.elapsedS > 0 && s.done > 0) parts.push(formatRate(s.done / s.elapsedS, s.unit));
  parts.push(formatSeconds(s.elapsedS));
  const eta = estimateEta(s.done, s.total, s.elapsedS);
  if (eta !== null && s.done < s.total) parts.push(`eta ${formatSeconds(eta)}`);
  if (s.info) parts.push(s.info);
  return parts.join("  ");
}

/**
 * Whether a plain (non-terminal) line is due: the work crossed into a new tenth since the last
 * printed line, or `PLAIN_MAX_SILENCE_MS` passed since it.
 *
 * @example
 * ```ts
 * plainLineDue(0.05, 0.12, 1_000); // true: crossed 10%
 * plainLineDue(0.12, 0.15, 1_000); // false
 * ```
 */
export function plainLineDue(lastFraction: number, fraction: number, msSinceLast: number): boolean {
  if (msSinceLast >= PLAIN_MAX_SILENCE_MS) return true;
  const step = (f: number) => Math.floor(f / PLAIN_STEP_FRACTION + 1e-9);
  return step(fraction) > step(lastFraction);
}

/** True when `PRUNESCOPE_NO_PROGRESS` asks for silence (any value but "", "0", "false"). */
function silenced(): boolean {
  try {
    const v = Deno.env.get("PRUNESCOPE_NO_PROGRESS");
    return v !== undefined && v !== "" && v !== "0" && v.toLowerCase() !== "false";
  } catch {
    return false; // no --allow-env: keep the bar
  }
}

function stderrIsTerminal(): boolean {
  try {
    return Deno.stderr.isTerminal();
  } catch {
    return false;
  }
}

function terminalColumns(): number {
  try {
    const cols = Deno.consoleSize().columns;
    return cols >= 20 ? cols : 200; // some pseudo-terminals report 0
  } catch {
    return 200;
  }
}

/**
 * A progress bar on stderr. `tick(n)` adds work done, `set(done)` sets it, `done()` prints the
 * final line; `info` is free text shown at the end of the line (e.g. "loss 1.23 acc 0.45").
 *
 * @example
 * ```ts
 * const bar = new Progress({ label: "download", total: 170_052_171, unit: "B" });
 * bar.tick(chunk.length);
 * bar.done("verified");
 * ```
 */
export class Progress {
  readonly label: string;
  readonly total: number;
  readonly unit?: string;
  #done = 0;
  #info?: string;
  #start = performance.now();
  #lastDrawMs = -Infinity;
  #lastPlainMs: number;
  #lastPlainFraction = 0;
  #lastPlainKey = "";
  #finished = false;
  #silent = silenced();
  #tty = stderrIsTerminal();
  #encoder = new TextEncoder();

  constructor(opts: { label: string; total: number; unit?: string; stream?: "stderr" }) {
    this.label = opts.label;
    this.total = opts.total;
    this.unit = opts.unit;
    this.#lastPlainMs = this.#start;
  }

  /** Add `n` (default 1) to the work done; `info` replaces the info text when given. */
  tick(n = 1, info?: string): void {
    this.set(this.#done + n, info);
  }

  /** Set the work done to `done`; `info` replaces the info text when given. */
  set(done: number, info?: string): void {
    if (this.#finished) return;
    this.#done = done;
    if (info !== undefined) this.#info = info;
    this.#maybeDraw(false);
  }

  /** Print the final line and stop; later calls do nothing. */
  done(info?: string): void {
    if (this.#finished) return;
    if (info !== undefined) this.#info = info;
    this.#maybeDraw(true);
    this.#finished = true;
  }

  #snapshot(now: number): ProgressSnapshot {
    return {
      label: this.label,
      done: this.#done,
      total: this.total,
      unit: this.unit,
      elapsedS: (now - this.#start) / 1000,
      info: this.#info,
    };
  }

  #maybeDraw(final: boolean): void {
    if (this.#silent) return;
    const now = performance.now();
    if (this.#tty) {
      if (!final && now - this.#lastDrawMs < TTY_REDRAW_MS) return;
      this.#lastDrawMs = now;
      let line = renderLine(this.#snapshot(now));
      const cols = terminalColumns();
      if (!final && line.length > cols - 1) line = line.slice(0, cols - 1); // a wrapped line breaks \r
      this.#write(`\r${line}\x1b[K${final ? "\n" : ""}`);
      return;
    }
    const fraction = this.total > 0 ? this.#done / this.total : 0;
    if (!final && !plainLineDue(this.#lastPlainFraction, fraction, now - this.#lastPlainMs)) return;
    // The final line would repeat the last one: same count, same info.
    if (final && this.#lastPlainKey === `${this.#done}\0${this.#info}`) return;
    this.#lastPlainMs = now;
    this.#lastPlainFraction = fraction;
    this.#lastPlainKey = `${this.#done}\0${this.#info}`;
    this.#write(`${renderLine(this.#snapshot(now))}\n`);
  }

  #write(text: string): void {
    try {
      const bytes = this.#encoder.encode(text);
      let off = 0;
      while (off < bytes.length) off += Deno.stderr.writeSync(bytes.subarray(off));
    } catch {
      this.#silent = true; // stderr closed: progress is not worth failing the work for
    }
  }
}
