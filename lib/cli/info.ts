// `encsec info`: version, backend in use and why, CPU threads, CUDA devices.
//
// The CUDA runtime answers "CUDA driver version is insufficient for CUDA
// runtime version" both when the NVIDIA driver is too old and when there is
// no driver at all (libcuda.so.1 missing), which misleads on a machine
// without a GPU. explainCudaStatus tells the two apart from what the system
// shows (the kernel module's /proc/driver/nvidia, the libcuda.so.1 library).
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Command } from './command';
import { info } from '../core/backend';
import { parseSafetensors } from '../io/safetensors';

const INSUFFICIENT = 'CUDA driver version is insufficient for CUDA runtime version';

/** What the system shows of an NVIDIA driver. */
export interface DriverProbe {
  /** /proc/driver/nvidia/version's first line, or null when the kernel module is not loaded. */
  kernelModule: string | null;
  /** Whether libcuda.so.1 (the driver's user-space library) can be found. */
  libcuda: boolean;
}

/** Looks for the NVIDIA driver: the kernel module and libcuda.so.1 (ld.so cache, LD_LIBRARY_PATH, usual folders). */
export function probeDriver(): DriverProbe {
  let kernelModule: string | null = null;
  try {
    kernelModule = fs.readFileSync('/proc/driver/nvidia/version', 'utf8').split('\n')[0].trim();
  } catch {
    kernelModule = null;
  }
  let libcuda = false;
  try {
    libcuda = fs.readFileSync('/etc/ld.so.cache').includes('libcuda.so.1');
  } catch {
    libcuda = false;
  }
  const dirs = [...(process.env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean), '/usr/lib/x86_64-linux-gnu', '/usr/lib64', '/usr/lib/wsl/lib'];
  if (!libcuda) libcuda = dirs.some((d) => fs.existsSync(path.join(d, 'libcuda.so.1')));
  return { kernelModule, libcuda };
}

/** The CUDA status with the runtime's ambiguous "insufficient driver" made precise. */
export function explainCudaStatus(status: string, probe: DriverProbe): string {
  if (!status.includes(INSUFFICIENT)) return status;
  if (!probe.kernelModule && !probe.libcuda) {
    return 'no CUDA device: no NVIDIA driver is installed (no /proc/driver/nvidia, no libcuda.so.1); the CUDA runtime reports this as "driver version is insufficient"';
  }
  if (!probe.kernelModule) return `no CUDA device: libcuda.so.1 is installed but the NVIDIA kernel module is not loaded (no /proc/driver/nvidia); the runtime said: ${INSUFFICIENT}`;
  return `no CUDA device: the NVIDIA driver is too old for this build's CUDA runtime (${probe.kernelModule}); update the driver or build with ENCSEC_CUDA=OFF`;
}

/**
 * What a safetensors file holds and whether its encsec digest checked out:
 * `verified: false` is a file without one (from elsewhere, or from an encsec
 * before digests); a file whose digest does not match is an error.
 */
export function describeFile(file: string): Record<string, unknown> {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    throw new Error(`--file ${file}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const parsed = parseSafetensors(buf, file);
  return {
    file: path.resolve(file),
    bytes: buf.length,
    verified: parsed.verified,
    integrity: parsed.verified ? 'sha256 digest present and matching' : 'no encsec digest: the file loads, but corruption cannot be detected',
    format: parsed.metadata.format ?? null,
    tensors: parsed.tensors.size,
    elements: [...parsed.tensors.values()].reduce((s, e) => s + e.shape.reduce((a, b) => a * b, 1), 0),
    metadataKeys: Object.keys(parsed.metadata),
  };
}

export const infoCommand: Command = {
  summary: 'print the version, the backend in use and why, CPU threads and CUDA devices; with --file, what a safetensors file holds and whether its digest checks out',
  options: {
    file: { kind: 'string', help: 'a safetensors file (encoder, checkpoint, key) to describe and verify instead' },
  },
  async run(args) {
    const file = args.string('file');
    if (file !== undefined) return describeFile(file);
    const i = { ...info() } as Record<string, unknown>;
    const probe = probeDriver();
    for (const k of ['reason', 'cudaStatus']) if (typeof i[k] === 'string') i[k] = explainCudaStatus(i[k] as string, probe);
    return i;
  },
};
