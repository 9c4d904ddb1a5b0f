/**
 * The one-cycle learning-rate schedule (Smith 2018, as PyTorch's OneCycleLR with cosine
 * annealing): from peak/25 up to `peak` over the first 30% of steps, then down to peak/(25*1e4).
 */
export function oneCycle(step: number, totalSteps: number, peak: number, warmup = 0.3): number {
  const initial = peak / 25, final = initial / 1e4;
  const up = Math.max(1, Math.floor(warmup * totalSteps));
  const cos = (from: number, to: number, t: number) => to + (from - to) * (1 + Math.cos(Math.PI * t)) / 2;
  if (step <= up) return cos(initial, peak, step / up);
  return cos(peak, final, Math.min(1, (step - up) / Math.max(1, totalSteps - up)));
}
