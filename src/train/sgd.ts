/**
 * SGD with Nesterov momentum and coupled weight decay, written out so the learning rate can
 * change every step and the momentum buffers can be checkpointed:
 *   g <- grad + wd * w;  v <- mu * v + g;  w <- w - lr * (g + mu * v)
 */
import * as tf from "@tensorflow/tfjs";

export class NesterovSgd {
  readonly buffers: tf.Variable[];

  constructor(
    readonly vars: tf.Variable[],
    readonly momentum = 0.9,
    readonly weightDecay = 5e-4,
  ) {
    this.buffers = vars.map((v) => tf.variable(tf.zerosLike(v), false));
  }

  /** Apply one update with learning rate `lr`; `grads` are keyed by variable name. */
  step(grads: tf.NamedTensorMap, lr: number): void {
    tf.tidy(() => {
      const mu = tf.scalar(this.momentum), wd = tf.scalar(this.weightDecay), rate = tf.scalar(lr);
      this.vars.forEach((w, i) => {
        const g = grads[w.name].add(w.mul(wd));
        const v = this.buffers[i].mul(mu).add(g);
        this.buffers[i].assign(v);
        w.assign(w.sub(g.add(v.mul(mu)).mul(rate)));
      });
    });
  }

  /** The momentum buffers, concatenated in variable order (for checkpoints). */
  async state(): Promise<Float32Array> {
    const parts = await Promise.all(this.buffers.map((b) => b.data() as Promise<Float32Array>));
    const out = new Float32Array(parts.reduce((s, p) => s + p.length, 0));
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }

  /** Restore buffers saved by `state()`. */
  load(state: Float32Array): void {
    let at = 0;
    for (const b of this.buffers) {
      b.assign(tf.tensor(state.subarray(at, at + b.size), b.shape));
      at += b.size;
    }
    if (at !== state.length) throw new Error(`optimizer state has ${state.length} values, expected ${at}`);
  }

  dispose(): void {
    for (const b of this.buffers) b.dispose();
  }
}
