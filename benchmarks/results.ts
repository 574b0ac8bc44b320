// The shape of a benchmark run's results (benchmarks/results/*.json) and the
// derived figures: throughput, % of peak, ratios, targets.
import type { Metric, RowSpec } from './suite';
import type { JobReport } from './jobs';
import { rate, summarize, type Timing } from './timing';

/** A timed measurement: per-call times and the throughput at the median. */
export interface Measured {
  medianMs: number;
  minMs: number;
  maxMs: number;
  iters: number;
  samplesMs: number[];
  /** GFLOP/s, GB/s or images/s at the median time. */
  value: number;
}

export interface Failed {
  error: string;
}

export interface Skipped {
  skipped: string;
}

export type Outcome = Measured | Failed | Skipped;

export interface MemoryFigure {
  baselineMB: number;
  peakMB: number;
  afterMB: number;
}

export type MemoryOutcome = MemoryFigure | Failed | Skipped;

export interface NaiveOutcome {
  note: string;
  params: Record<string, number | string>;
  naive: Outcome;
  /** The fast kernel at the naive shape, in the same native program (same-shape speed-up). */
  fast: Outcome;
}

export interface RowResult extends RowSpec {
  encsec?: Outcome;
  naiveResult?: NaiveOutcome;
  peer?: Outcome;
  cuda?: Outcome;
  cudaPeer?: Outcome;
  memory?: { encsec: MemoryOutcome; peer?: MemoryOutcome };
  /** The peer on glibc's malloc (end-to-end and job rows), beside `peer` on jemalloc. */
  peerGlibc?: Outcome;
  /** Job rows: what each run reported (images, job and loop seconds, phases), per implementation. */
  jobRuns?: { encsec?: JobReport[]; peer?: JobReport[]; peerGlibc?: JobReport[] };
}

export interface Target {
  name: string;
  required: string;
  measured: string;
  /** true / false, or null when it could not be evaluated (with the reason in `measured`). */
  met: boolean | null;
}

export interface RunMeta {
  date: string;
  host: string;
  command: string;
  options: Record<string, unknown>;
  cpu: { model: string; logicalCpus: number; physicalCores: number | null };
  threads: number;
  peak: { gflops: number; threads: number; singleThreadGflops: number; isa: string } | null;
  peakNote: string;
  node: string;
  encsec: { version: string; backend: string; reason: string; cpuKernels: string; cudaStatus: string; cudaDevices: string[] };
  nativeProgram: string;
  /** Conditions that make figures doubtful (stale addon, reference BLAS, ...). */
  warnings: string[];
  peer:
    | {
        python: string;
        torch: string;
        threads: number;
        blas: string;
        mkldnn: boolean;
        ompWaitPolicy: string;
        note: string;
        /** The allocator of the tuned peer, as read from its /proc/self/maps (e.g. "jemalloc (/usr/lib/...)"), and its MALLOC_CONF. */
        allocator?: string;
        mallocConf?: string;
        /** The second, glibc-malloc peer run of the step and job rows: "run", or why not. */
        glibc?: string;
      }
    | { absent: string };
  /** Machine type (CPU model + kernel path), the key of the per-machine sections; derived from cpu and encsec when absent. */
  machine?: string;
  cuda: string;
  quick: boolean;
  filter: string | null;
  /** Rows re-measured later by `--update` runs, oldest first. */
  updates?: { date: string; command: string; rows: string[] }[];
}

export interface RunResults {
  meta: RunMeta;
  rows: RowResult[];
  targets: Target[];
}

export function isMeasured(o: unknown): o is Measured {
  return !!o && typeof o === 'object' && typeof (o as Measured).medianMs === 'number';
}

export function isMemory(o: unknown): o is MemoryFigure {
  return !!o && typeof o === 'object' && typeof (o as MemoryFigure).peakMB === 'number';
}

export function measured(t: Timing, metric: Metric, work: number): Measured {
  const value = metric === 'MB' ? 0 : rate(metric, work, t.medianMs);
  return { medianMs: t.medianMs, minMs: t.minMs, maxMs: t.maxMs, iters: t.iters, samplesMs: t.samplesMs, value };
}

export function measuredFromSamples(samplesMs: number[], iters: number, metric: Metric, work: number): Measured {
  return measured(summarize(samplesMs, iters), metric, work);
}

/** Throughput ratio a/b (> 1: a is faster); null when either is missing. */
export function speedRatio(a: Outcome | undefined, b: Outcome | undefined): number | null {
  if (!isMeasured(a) || !isMeasured(b)) return null;
  return b.medianMs / a.medianMs;
}

/** encsec throughput over naive throughput (the naive ran at its own, smaller, shape). */
export function naiveSpeedup(r: RowResult): number | null {
  const n = r.naiveResult?.naive;
  if (!isMeasured(r.encsec) || !isMeasured(n) || n.value <= 0) return null;
  return r.encsec.value / n.value;
}

export function percentOfPeak(o: Outcome | undefined, peakGflops: number | null | undefined): number | null {
  if (!isMeasured(o) || !peakGflops) return null;
  return (100 * o.value) / peakGflops;
}

/** Convolution GFLOP/s of a row with a FLOP count (end-to-end, jobs): its conv FLOPs over its median time. */
export function convGflops(r: Pick<RowSpec, 'convFlops'>, o: Outcome | undefined): number | null {
  if (!isMeasured(o) || !r.convFlops || !(o.medianMs > 0)) return null;
  return r.convFlops / (o.medianMs / 1000) / 1e9;
}

/** The share of the measured fp32 peak of a row's convolution work, in %. */
export function convPercentOfPeak(r: Pick<RowSpec, 'convFlops'>, o: Outcome | undefined, peakGflops: number | null | undefined): number | null {
  const g = convGflops(r, o);
  return g === null || !peakGflops ? null : (100 * g) / peakGflops;
}

const fmtX = (x: number) => `${x.toFixed(2)}×`;

/**
 * encsec's speed over the faster of the row's two peer runs (jemalloc, and
 * glibc's malloc where the row has one): on some machines PyTorch is faster
 * on glibc, and a ratio met only against the slower configuration would not
 * be met against PyTorch.
 */
export function bestPeerRatio(r: RowResult): number | null {
  const a = speedRatio(r.encsec, r.peer), b = speedRatio(r.encsec, r.peerGlibc);
  return a === null ? b : b === null ? a : Math.min(a, b);
}

/** Evaluates the project's speed and memory targets from a run's rows (ratios against the faster peer run). */
export function evaluateTargets(rows: RowResult[], meta: RunMeta): Target[] {
  const byId = new Map(rows.map((r) => [r.id, r]));
  const targets: Target[] = [];
  const quick = meta.quick ? ' (quick shapes: not evaluated)' : '';
  const ratioTarget = (name: string, id: string, min: number) => {
    const r = byId.get(id);
    let measuredText: string;
    let met: boolean | null = null;
    if (!r) measuredText = `not measured (row ${id} not run)`;
    else {
      const x = bestPeerRatio(r);
      if (x === null) {
        const why = !isMeasured(r.encsec) ? 'encsec figure missing' : 'PyTorch figure missing';
        measuredText = `not measured (${why})`;
      } else {
        const glibcFaster = isMeasured(r.peerGlibc) && (!isMeasured(r.peer) || r.peerGlibc.medianMs < r.peer.medianMs);
        const peer = (glibcFaster ? r.peerGlibc : r.peer) as Measured;
        measuredText = `${fmtX(x)} (encsec ${fmtValue(r.metric, (r.encsec as Measured).value)} vs PyTorch ${fmtValue(r.metric, peer.value)}${glibcFaster ? ' on glibc malloc' : ''})`;
        met = meta.quick ? null : x >= min;
      }
    }
    targets.push({ name, required: `≥ ${min.toFixed(2)}× PyTorch (the faster of its peer runs)`, measured: measuredText + (met === null && r && quick ? quick : ''), met });
  };
  ratioTarget('SimCLR step, cnn-small, batch 256 (images/s)', 'e2e.simclr-step.cnn-small', 1.25);
  ratioTarget('Encoder inference, cnn-small, batch 256 (images/s)', 'e2e.inference.cnn-small', 1.25);
  ratioTarget('SimCLR step, resnet18-cifar, batch 128 (images/s)', 'e2e.simclr-step.resnet18-cifar', 1.0);

  const deep = rows.filter((r) => r.deep);
  const peak = meta.peak?.gflops ?? null;
  {
    let measuredText: string;
    let met: boolean | null = null;
    const pcts = deep.map((r) => ({ r, p: percentOfPeak(r.encsec, peak) }));
    if (!peak) measuredText = 'not measured (no peak figure)';
    else if (deep.length === 0) measuredText = 'not measured (no deep conv2d rows run)';
    else if (pcts.some((x) => x.p === null)) measuredText = `not measured (missing: ${pcts.filter((x) => x.p === null).map((x) => x.r.id).join(', ')})`;
    else {
      const worst = pcts.reduce((a, b) => ((a.p as number) <= (b.p as number) ? a : b));
      const fails = pcts.filter((x) => (x.p as number) < 75);
      measuredText = `worst ${(worst.p as number).toFixed(1)}% (${worst.r.id}); ${pcts.length - fails.length} of ${pcts.length} rows ≥ 75%`;
      if (fails.length) measuredText += `; below: ${fails.map((x) => `${x.r.id} ${(x.p as number).toFixed(1)}%`).join(', ')}`;
      met = meta.quick ? null : fails.length === 0;
    }
    targets.push({ name: 'conv2d forward and backward, deep layers (Cin ≥ 64)', required: '≥ 75% of measured fp32 peak, every row', measured: measuredText + (met === null && deep.length && peak ? quick : ''), met });
  }
  ratioTarget('NT-Xent forward+backward, N=256, D=128', 'ntxent.n256.d128', 3.0);
  {
    const r = byId.get('memory.rss.cnn-small-step');
    let measuredText: string;
    let met: boolean | null = null;
    const m = r?.memory?.encsec;
    if (!r) measuredText = 'not measured (row memory.rss.cnn-small-step not run)';
    else if (!isMemory(m)) measuredText = `not measured (${m && 'error' in m ? m.error : 'no figure'})`;
    else {
      measuredText = `${m.peakMB.toFixed(0)} MB peak RSS (${r.shape})`;
      met = meta.quick ? null : m.peakMB < 1500;
    }
    targets.push({ name: 'Resident memory, cnn-small SimCLR step, batch 256', required: '< 1.5 GB (1500 MB) peak RSS', measured: measuredText + (met === null && isMemory(m) ? quick : ''), met });
  }
  // Issue #18: the jobs users wait for, against the tuned (jemalloc) peer of
  // the same run, and the training step's share of the machine's limit.
  {
    const rowsE2e = rows.filter((r) => r.group === 'e2e' || r.group === 'job');
    const ratios = rowsE2e.map((r) => ({ r, x: bestPeerRatio(r) }));
    let measuredText: string;
    let met: boolean | null = null;
    if (rowsE2e.length === 0) measuredText = 'not measured (no end-to-end or job rows run)';
    else if (ratios.some((x) => x.x === null)) measuredText = `not measured (missing: ${ratios.filter((x) => x.x === null).map((x) => x.r.id).join(', ')})`;
    else {
      const worst = ratios.reduce((a, b) => ((a.x as number) <= (b.x as number) ? a : b));
      const fails = ratios.filter((x) => (x.x as number) < 1.2);
      measuredText = `worst ${fmtX(worst.x as number)} (${worst.r.id}); ${ratios.length - fails.length} of ${ratios.length} rows ≥ 1.20×`;
      if (fails.length) measuredText += `; below: ${fails.map((x) => `${x.r.id} ${fmtX(x.x as number)}`).join(', ')}`;
      met = meta.quick ? null : fails.length === 0;
    }
    targets.push({ name: 'End-to-end and real-job rows (steps, inference, pre-training epoch, steals, probe)', required: '≥ 1.20× PyTorch, every row, against the faster of its jemalloc and glibc runs', measured: measuredText + (met === null && rowsE2e.length && quick ? quick : ''), met });
  }
  {
    const r = byId.get('e2e.simclr-step.cnn-small');
    const peak = meta.peak?.gflops ?? null;
    const p = r ? convPercentOfPeak(r, r.encsec, peak) : null;
    let measuredText: string;
    let met: boolean | null = null;
    if (!r) measuredText = 'not measured (row e2e.simclr-step.cnn-small not run)';
    else if (p === null) measuredText = 'not measured (no time or no peak figure)';
    else {
      measuredText = `${p.toFixed(1)}% (${(convGflops(r, r.encsec) as number).toFixed(1)} conv GFLOP/s of ${(peak as number).toFixed(1)})`;
      met = meta.quick ? null : p >= 80;
    }
    targets.push({ name: 'SimCLR step, cnn-small, batch 256: convolution work', required: '≥ 80% of measured fp32 peak', measured: measuredText + (met === null && p !== null ? quick : ''), met });
  }
  return targets;
}

export function fmtValue(metric: Metric, v: number): string {
  switch (metric) {
    case 'gflops':
      return `${v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)} GFLOP/s`;
    case 'gbps':
      return `${v >= 10 ? v.toFixed(1) : v.toFixed(2)} GB/s`;
    case 'images/s':
      return `${v >= 100 ? v.toFixed(0) : v.toFixed(1)} images/s`;
    case 'MB':
      return `${v.toFixed(0)} MB`;
  }
}
