// Backend selection and machine facts (`encsec info`).
import { native, type NativeInfo } from './native';
import { checkInt, checkOneOf } from './validate';

/** Version, backend in use and why, CPU threads, CUDA devices. */
export function info(): NativeInfo {
  return native.info();
}

/**
 * Where new tensors are created: "cpu" or "cuda". Asking for "cuda" where it
 * is not usable throws an Error that says why (e.g. "no CUDA device: ...").
 */
export function setDevice(device: 'cpu' | 'cuda'): void {
  native.setDevice(checkOneOf(device, 'device', ['cpu', 'cuda'] as const));
}

/** Number of CPU threads for the kernels (default: all cores, or ENCSEC_THREADS). */
export function setThreads(n: number): void {
  native.setThreads(checkInt(n, 'threads', { min: 1, max: 256 }));
}

/**
 * Hands the allocator's cached free blocks (host and device) back to the
 * system. Useful between jobs whose tensor sizes differ (e.g. the cells of an
 * experiment grid), whose cached blocks would not be reused.
 */
export function clearCache(): void {
  native.clearCache();
}

/** Bytes held in the allocator's cache of freed blocks. */
export function cacheBytes(): number {
  return native.cacheBytes();
}
