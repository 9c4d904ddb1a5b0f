/**
 * What an interrupted run (Ctrl-C = SIGINT, or SIGTERM) must undo before it exits: the temporary
 * file an atomic write has in flight, the lock on an output folder, the folders a run created and
 * left empty. Code registers an undo step while it holds such a thing and drops it when done; while
 * any step is registered a signal runs them all (synchronously, newest first), prints one line and
 * exits with 130 (SIGINT) or 143 (SIGTERM). With nothing registered the signal keeps its default.
 */

type Undo = () => void;

const steps = new Set<Undo>();
const SIGNALS = [["SIGINT", 130], ["SIGTERM", 143]] as const;
const listeners = new Map<Deno.Signal, () => void>();

function install(): void {
  for (const [signal, code] of SIGNALS) {
    const listener = () => {
      for (const undo of [...steps].reverse()) {
        try {
          undo();
        } catch { /* best effort: the others still run */ }
      }
      steps.clear();
      console.error(`prunescope: interrupted (${signal}); no partial output was left.`);
      Deno.exit(code);
    };
    try {
      Deno.addSignalListener(signal, listener);
      listeners.set(signal, listener);
    } catch { /* signal not supported on this platform (SIGTERM on Windows) */ }
  }
}

function uninstall(): void {
  for (const [signal, listener] of listeners) Deno.removeSignalListener(signal, listener);
  listeners.clear();
}

/**
 * Run `undo` if the process is interrupted before the returned function is called; calling the
 * returned function forgets `undo` (without running it).
 *
 * @example
 * ```ts
 * const forget = onInterrupt(() => Deno.removeSync(tmp));
 * try { await Deno.writeFile(tmp, bytes); await Deno.rename(tmp, path); } finally { forget(); }
 * ```
 */
export function onInterrupt(undo: Undo): () => void {
  if (steps.size === 0) install();
  steps.add(undo);
  return () => {
    if (steps.delete(undo) && steps.size === 0) uninstall();
  };
}

let lastPause = 0;

/**
 * Give a pending SIGINT/SIGTERM its chance to run. A signal listener runs only when the event
 * loop turns, and a loop that only awaits tensor reads (resolved promises) never lets it; long
 * loops call this once per batch. It waits for one timer turn at most every 50 ms, and only while
 * an undo step is registered (otherwise the signal's default already ends the process at once).
 *
 * @example
 * ```ts
 * for (const batch of batches) { work(batch); await pauseForSignals(); }
 * ```
 */
export function pauseForSignals(): Promise<void> | undefined {
  if (steps.size === 0) return undefined;
  const now = performance.now();
  if (now - lastPause < 50) return undefined;
  lastPause = now;
  return new Promise((resolve) => setTimeout(resolve, 0));
}
