// The server load benchmark's results (benchmarks/results/server-*.json,
// written by benchmarks/server/load.ts): their shape, the machine type they
// were measured on, the newest one per machine type, and the analysis of the
// soak's resident-memory series. Pure functions of the stored JSON, so that
// files written before a field existed still render (BENCHMARKS.md).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { machineSlug } from '../machine';

/** One autocannon run: the rate served and its latency. */
export interface LoadResult {
  requestsPerSec: number;
  imagesPerSec: number;
  p50ms: number;
  p99ms: number;
  non2xx: number;
  errors: number;
}

/** One request size: the unthrottled peak ('100%') and the runs at 50% and 80% of its request rate. */
export interface SizeResult {
  ratioToInProcess: number;
  /** The required share of the in-process rate at the peak (0.8 for 1-image, 0.9 for 32-image requests). */
  target: number;
  at: Record<string, LoadResult>;
}

/** Resident memory of the server under a steady load: [minutes since the soak began, MiB] every few seconds. */
export interface SoakResult {
  seconds: number;
  /** The sampling interval asked for (absent in files before it was recorded: 5 s). */
  sampleIntervalS?: number;
  load: LoadResult;
  rssMiB: [number, number][];
  /** Written by load.ts since the analysis below; older files hold the single least-squares trend instead. */
  analysis?: SoakAnalysis;
  trendMiBPerMin?: number;
  fittedGrowthMiB?: number;
  flat?: boolean;
}

export interface ServerOptions {
  duration: number;
  soak: number;
  arch: string;
  connections: number;
  maxDelayMs: number;
  defense: string;
  out: string | null;
}

export interface ServerRun {
  kind: 'server-load';
  date: string;
  host: string;
  cpus: number;
  /** os.cpus()[0].model (absent in files written before it was recorded). */
  cpuModel?: string;
  /** machineSlug(cpuModel, kernels), as the harness's results name machine types (absent in older files). */
  machine?: string;
  /** The command line that produced the file (absent in older files). */
  command?: string;
  /** lib/core/backend info() at the time of the run. */
  backend: { version: string; backend: string; reason: string; cpuThreads: number; cpuKernels: string };
  options: ServerOptions;
  inProcessImagesPerSec: number;
  results: { '1-image'?: SizeResult; '32-image'?: SizeResult; soak?: SoakResult; [k: string]: unknown };
}

export function isServerRun(x: unknown): x is ServerRun {
  const r = x as Partial<ServerRun> | null;
  return !!r && r.kind === 'server-load' && typeof r.inProcessImagesPerSec === 'number' && !!r.results && !!r.options;
}

/** The machine type of a server run; null when the file does not name the CPU model (written before it was recorded). */
export function serverMachineOf(r: ServerRun): string | null {
  if (r.machine) return r.machine;
  return r.cpuModel ? machineSlug(r.cpuModel, r.backend?.cpuKernels ?? '') : null;
}

/**
 * The newest server run of every machine type, newest first. A file without
 * a CPU model cannot name its machine type: it is kept unless a newer file
 * with a CPU model has the same kernel path and CPU count (the same machine,
 * measured again with the model recorded).
 */
export function latestServerRuns(runs: readonly ServerRun[]): ServerRun[] {
  const best = new Map<string, ServerRun>();
  const unnamed = (r: ServerRun) => `?${r.backend?.cpuKernels ?? ''}/${r.cpus}`;
  for (const r of runs) {
    const k = serverMachineOf(r) ?? unnamed(r);
    const have = best.get(k);
    if (!have || have.date < r.date) best.set(k, r);
  }
  const named = [...best.values()].filter((r) => serverMachineOf(r) !== null);
  return [...best.values()]
    .filter((r) => serverMachineOf(r) !== null || !named.some((n) => n.date > r.date && n.backend?.cpuKernels === r.backend?.cpuKernels && n.cpus === r.cpus))
    .sort((a, b) => (a.date < b.date ? 1 : -1));
}

/** Is this file in a results folder a server run's (load.ts names them server-*.json)? */
export function isServerFile(name: string): boolean {
  return /^server-.*\.json$/.test(name);
}

/** Every server results JSON (server-*.json) in a folder; unreadable ones are reported, not fatal. */
export function readServerResultsDir(dir: string, warn: (s: string) => void = () => {}): ServerRun[] {
  if (!fs.existsSync(dir)) return [];
  const out: ServerRun[] = [];
  for (const f of fs.readdirSync(dir).filter(isServerFile).sort()) {
    try {
      const r = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as unknown;
      if (isServerRun(r)) out.push(r);
      else warn(`${f}: not a server load results file (no kind "server-load")`);
    } catch (e) {
      warn(`${f}: ${(e as Error).message}`);
    }
  }
  return out;
}

// ---- the soak

/** The share of the run at its start that is warm-up (allocator caches, the JIT, the plan). */
export const WARMUP_SHARE = 0.1;
/** Flat: the second half's slope (its largest step taken out), over the whole run, grows RSS by less than this share of the final RSS... */
export const FLAT_GROWTH_SHARE = 0.02;
/** ...and no single rise between two samples after warm-up exceeds this share of the final RSS. */
export const MAX_STEP_SHARE = 0.05;
/** The sampling interval of files that do not record it. */
export const DEFAULT_SAMPLE_INTERVAL_S = 5;

export interface SoakAnalysis {
  samples: number;
  /** The run's length (minutes). */
  minutes: number;
  /** [minutes, MiB] of the first sample, the first sample after warm-up, the last sample. */
  start: [number, number];
  afterWarmup: [number, number];
  end: [number, number];
  /** Where the warm-up ends (minutes): WARMUP_SHARE of the run. */
  warmupMinutes: number;
  /** Least-squares slope (MiB/min) over the samples of the run's second half, as measured. */
  secondHalfSlope: number;
  /** The same with the largest rise inside the second half taken out (the later samples shifted down by it). */
  secondHalfSlopeWithoutStep: number;
  /** From, to (minutes) of the second half's samples. */
  secondHalf: [number, number];
  /** The largest rise between two consecutive samples after warm-up: MiB, and the minutes of the two samples. */
  largestStep: { mib: number; from: number; to: number } | null;
  /** The longest time between two consecutive samples (and before the first): seconds, from, to (minutes). */
  largestGap: { seconds: number; from: number; to: number };
  sampleIntervalS: number;
  /** Growth that the second-half slope (step taken out) projects over the whole run, MiB. */
  projectedGrowthMiB: number;
  flat: boolean;
}

/** Least-squares slope of y over x (0 when x does not vary). */
export function lsSlope(xs: readonly number[], ys: readonly number[]): number {
  const n = xs.length;
  if (n < 2) return 0;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i] - mx) * (ys[i] - my);
    den += (xs[i] - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

/**
 * The resident-memory series of a soak, judged. A leak climbs steadily; a
 * cache that fills once is a step. So the slope that decides is fitted to the
 * second half of the run only (after the warm-up's climb) and with that
 * half's largest single rise taken out: a step leaves it near zero, a leak
 * does not (one of its many small rises gone changes little). Flat when that
 * slope, over the whole run, would grow RSS by less than FLAT_GROWTH_SHARE of
 * the final RSS and no single rise after warm-up is above MAX_STEP_SHARE of
 * it. Null with fewer than 3 samples.
 */
export function analyseSoak(rssMiB: readonly [number, number][], seconds: number, sampleIntervalS = DEFAULT_SAMPLE_INTERVAL_S): SoakAnalysis | null {
  const s = rssMiB.filter((p) => Number.isFinite(p[0]) && Number.isFinite(p[1]));
  if (s.length < 3) return null;
  const minutes = Math.max(seconds / 60, s[s.length - 1][0]);
  const warmupMinutes = WARMUP_SHARE * minutes;
  const afterWarmup = s.find((p) => p[0] >= warmupMinutes) ?? s[s.length - 1];
  const end = s[s.length - 1];

  let half = s.filter((p) => p[0] >= minutes / 2);
  if (half.length < 2) half = s.slice(-2);
  const xs = half.map((p) => p[0]);
  const ys = half.map((p) => p[1]);
  const secondHalfSlope = lsSlope(xs, ys);
  let at = -1;
  for (let i = 1; i < ys.length; i++) if (ys[i] - ys[i - 1] > 0 && (at < 0 || ys[i] - ys[i - 1] > ys[at] - ys[at - 1])) at = i;
  const stepped = at < 0 ? ys : ys.map((y, i) => (i >= at ? y - (ys[at] - ys[at - 1]) : y));
  const secondHalfSlopeWithoutStep = lsSlope(xs, stepped);

  let largestStep: SoakAnalysis['largestStep'] = null;
  for (let i = 1; i < s.length; i++) {
    if (s[i - 1][0] < warmupMinutes) continue;
    const d = s[i][1] - s[i - 1][1];
    if (d > 0 && (!largestStep || d > largestStep.mib)) largestStep = { mib: d, from: s[i - 1][0], to: s[i][0] };
  }
  let largestGap = { seconds: s[0][0] * 60, from: 0, to: s[0][0] };
  for (let i = 1; i < s.length; i++) {
    const g = (s[i][0] - s[i - 1][0]) * 60;
    if (g > largestGap.seconds + 1e-3) largestGap = { seconds: g, from: s[i - 1][0], to: s[i][0] };
  }

  const projectedGrowthMiB = secondHalfSlopeWithoutStep * minutes;
  const flat = projectedGrowthMiB < FLAT_GROWTH_SHARE * end[1] && (largestStep?.mib ?? 0) <= MAX_STEP_SHARE * end[1];
  return {
    samples: s.length,
    minutes,
    start: s[0],
    afterWarmup,
    end,
    warmupMinutes,
    secondHalfSlope,
    secondHalfSlopeWithoutStep,
    secondHalf: [xs[0], xs[xs.length - 1]],
    largestStep,
    largestGap,
    sampleIntervalS,
    projectedGrowthMiB,
    flat,
  };
}

/** The verdict rule, in words (printed beside every soak). */
export function soakRule(): string {
  return (
    `**Flat** when the least-squares slope of RSS over the second half of the run, with that half's largest single rise between two samples taken out, ` +
    `times the run's length is under ${FLAT_GROWTH_SHARE * 100}% of the final RSS, and no single rise between two samples after the warm-up ` +
    `(the first ${WARMUP_SHARE * 100}% of the run) exceeds ${MAX_STEP_SHARE * 100}% of the final RSS. ` +
    'A leak climbs steadily, so taking out one rise leaves its slope; a cache that fills once is one step, which leaves none. ' +
    'The slope as measured (with the step) is shown too. A sampling gap well over the interval means the load generator\'s own process stalled ' +
    '(the sampler shares its event loop with autocannon), not the server.'
  );
}
