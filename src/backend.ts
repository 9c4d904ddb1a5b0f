/**
 * Backend choice and setup. `auto` picks WebGPU when a real (non-fallback) adapter exists,
 * else wasm. Our own kernels for wasm (the gradient kernels it lacks) are registered here.
 */
import * as tf from "@tensorflow/tfjs";
import { UserError } from "./core/errors.ts";

export type BackendName = "auto" | "webgpu" | "wasm" | "cpu";
export const BACKENDS: BackendName[] = ["auto", "webgpu", "wasm", "cpu"];

interface Adapter {
  isFallbackAdapter?: boolean;
  info?: { isFallbackAdapter?: boolean };
}

/**
 * On a machine without a desktop session, Mesa's Vulkan drivers load libwayland, which prints
 * "error: XDG_RUNTIME_DIR is invalid or not set in the environment." (twice) when that variable
 * is unset. It only checks for an absolute path, then finds no display and carries on, so we
 * give it the temp folder before anything touches `navigator.gpu`: our one-line errors stay one line.
 */
function quietWayland(): void {
  try {
    if (Deno.build.os === "linux" && !Deno.env.get("XDG_RUNTIME_DIR")) {
      Deno.env.set("XDG_RUNTIME_DIR", "/tmp");
    }
  } catch {
    // no env permission: the drivers may print their line
  }
}

/** The adapter `navigator.gpu` offers, or null (no WebGPU, no adapter, or the request failed). */
async function gpuAdapter(): Promise<Adapter | null> {
  const gpu = (globalThis.navigator as unknown as { gpu?: { requestAdapter(): Promise<unknown> } })
    .gpu;
  if (!gpu) return null;
  quietWayland();
  try {
    return (await gpu.requestAdapter() as Adapter | null) ?? null;
  } catch {
    return null;
  }
}

/** True when `navigator.gpu` offers an adapter that is not a software fallback. */
export async function hasRealGpu(): Promise<boolean> {
  const adapter = await gpuAdapter();
  return adapter !== null && !(adapter.info?.isFallbackAdapter ?? adapter.isFallbackAdapter ?? false);
}

/**
 * True when `navigator.gpu` offers any adapter, a software fallback (e.g. llvmpipe) included:
 * `--backend webgpu` can run here, if slowly. For tests that check WebGPU's results.
 *
 * @example
 * ```ts
 * Deno.test({ name: "on webgpu", ignore: !(await hasGpuAdapter()), fn: async () => {} });
 * ```
 */
export async function hasGpuAdapter(): Promise<boolean> {
  return (await gpuAdapter()) !== null;
}

/**
 * Make `name` the active TF.js backend and return the name actually in use.
 *
 * @example
 * ```ts
 * const used = await setupBackend("auto"); // "webgpu" on a real GPU, else "wasm"
 * ```
 */
export async function setupBackend(name: BackendName): Promise<Exclude<BackendName, "auto">> {
  if (!BACKENDS.includes(name)) {
    throw new UserError(`unknown backend '${name}': use one of ${BACKENDS.join(", ")}.`);
  }
  let target = name;
  if (target === "auto") target = (await hasRealGpu()) ? "webgpu" : "wasm";
  if (target === "webgpu") {
    quietWayland(); // `--backend webgpu` reaches the drivers without gpuAdapter()
    await import("@tensorflow/tfjs-backend-webgpu");
    // The packed matmul program for every shape: the split-K program adds with atomics, so its
    // sums (and a sweep's counts) could change with batch size and from run to run.
    tf.env().set("WEBGPU_MATMUL_PROGRAM_TYPE", 3);
    if (!(globalThis.navigator as unknown as { gpu?: unknown }).gpu) {
      throw new UserError("--backend webgpu: this Deno has no navigator.gpu; use --backend wasm.");
    }
  } else if (target === "wasm") {
    await import("@tensorflow/tfjs-backend-wasm");
    const { registerWasmGradKernels } = await import("./kernels/wasm_grad.ts");
    registerWasmGradKernels();
  }
  if (tf.getBackend() !== target) {
    const ok = await tf.setBackend(target);
    if (!ok) throw new UserError(`could not start the ${target} backend; try --backend cpu.`);
  }
  await tf.ready();
  const { registerFastGradients } = await import("./kernels/gradients.ts");
  registerFastGradients();
  return target as Exclude<BackendName, "auto">;
}
