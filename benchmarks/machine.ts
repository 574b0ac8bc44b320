// Machine types and what a peer process really loaded.
//
// Results of different machine types are kept side by side: a complete run
// writes benchmarks/results/<date>-<machine>.json, where <machine> names the
// CPU model and the kernel path encsec ran (avx512, avx2, ...), and
// BENCHMARKS.md has a section for the newest complete run of every machine
// type found there. The peer reports the shared libraries mapped into it
// (/proc/self/maps); the allocator and BLAS are read from that list here.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { RunMeta, RunResults } from './results';

/** A file-name-safe name of a machine type: CPU model + encsec's kernel path. */
export function machineSlug(cpuModel: string, kernels: string): string {
  const model = cpuModel
    .toLowerCase()
    .replace(/\((r|tm)\)/g, '')
    .replace(/\b(cpu|processor|with radeon graphics)\b/g, ' ')
    .replace(/@.*$/, '')
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '');
  const k = (kernels || 'unknown').toLowerCase().replace(/[^a-z0-9]+/g, '-');
  return `${model || 'cpu'}-${k}`.slice(0, 80);
}

export function machineOf(meta: Pick<RunMeta, 'cpu' | 'encsec'> & { machine?: string }): string {
  return meta.machine ?? machineSlug(meta.cpu.model, meta.encsec.cpuKernels);
}

/** The shared objects of a /proc/PID/maps text (unique, sorted). */
export function parseMaps(text: string): string[] {
  const libs = new Set<string>();
  for (const line of text.split('\n')) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 6) continue;
    const p = fields.slice(5).join(' ');
    if (p.startsWith('/') && /\.so(\.|$)/.test(path.basename(p))) libs.add(p);
  }
  return [...libs].sort();
}

/** The malloc implementation among mapped libraries: jemalloc / tcmalloc / mimalloc (preloaded), else glibc's. */
export function detectAllocator(libs: readonly string[]): { name: 'jemalloc' | 'tcmalloc' | 'mimalloc' | 'glibc'; path: string | null } {
  for (const name of ['jemalloc', 'tcmalloc', 'mimalloc'] as const) {
    const hit = libs.find((p) => path.basename(p).toLowerCase().includes(name));
    if (hit) return { name, path: hit };
  }
  return { name: 'glibc', path: null };
}

/** The BLAS among mapped libraries (MKL, OpenBLAS, BLIS, ATLAS, or a plain libblas: Debian's reference BLAS lives in .../blas/). */
export function detectBlas(libs: readonly string[]): string {
  for (const key of ['mkl', 'openblas', 'blis', 'atlas']) {
    const hit = libs.filter((p) => path.basename(p).toLowerCase().includes(key)).sort();
    if (hit.length) return hit[0];
  }
  const ref = libs.find((p) => path.basename(p).startsWith('libblas.so'));
  if (ref) return ref + (/\/blas\//.test(ref) ? ' (reference BLAS)' : '');
  return 'unknown';
}

/**
 * The newest complete run of every machine type among results files (quick
 * and filtered runs are left out), the given current run first; then the
 * others, newest first.
 */
export function latestPerMachine(runs: readonly RunResults[], current?: RunResults): RunResults[] {
  const best = new Map<string, RunResults>();
  for (const r of runs) {
    if (!r?.meta || r.meta.quick || r.meta.filter) continue;
    const k = machineOf(r.meta);
    const have = best.get(k);
    if (!have || have.meta.date < r.meta.date) best.set(k, r);
  }
  if (current) best.set(machineOf(current.meta), current);
  const others = [...best.values()].filter((r) => r !== current).sort((a, b) => (a.meta.date < b.meta.date ? 1 : -1));
  return current ? [current, ...others] : others;
}

/**
 * Every readable results JSON of the harness in a folder (unreadable ones are
 * reported, not fatal); the HTTP server's load results (server-*.json, read by
 * benchmarks/server/results.ts) are not the harness's and are left out.
 */
export function readResultsDir(dir: string, warn: (s: string) => void = () => {}): RunResults[] {
  if (!fs.existsSync(dir)) return [];
  const out: RunResults[] = [];
  for (const f of fs.readdirSync(dir).filter((x) => x.endsWith('.json') && !x.startsWith('server-')).sort()) {
    try {
      const r = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as RunResults;
      if (r && r.meta && Array.isArray(r.rows)) out.push(r);
      else warn(`${f}: not a results file (no meta/rows)`);
    } catch (e) {
      warn(`${f}: ${(e as Error).message}`);
    }
  }
  return out;
}
