// The benchmark harness: `npm run bench [-- options]`.
//
// Runs every row of benchmarks/suite.ts with encsec (in this process, through
// the addon), with the naive reference loops and the machine's fp32 peak (the
// native program benchmarks/native/bench_naive.cpp, built on demand), and with
// PyTorch (benchmarks/peer/, when a Python with torch is found); then the CUDA
// rows when the addon's backend is CUDA. Each phase runs in turn, never two at
// once. Results go to benchmarks/results/<date>-<host>.json and BENCHMARKS.md.
// `--render-only` writes BENCHMARKS.md again from benchmarks/results/ alone
// (with the HTTP server's load runs, server-*.json), measuring nothing.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { native } from '../lib/core/native';
import { info, setDevice } from '../lib/core/backend';
import { writeFileAtomic } from '../lib/io/atomic';
import { buildSuite, FULL_SIZES, QUICK_SIZES, nativeArgs, type RowSpec } from './suite';
import { timeIt, type TimingOptions } from './timing';
import { prepare } from './encsec_rows';
import { addonTime, buildNativeBench, newestNativeSource, runNativeBench, type NativeRequest, type PeakResult } from './native_runner';
import { findPeer, peerRss, runPeer, runPeerScript, withAllocator, type PeerEnv, type PeerMeta, type PeerRowResult } from './peer_runner';
import { checkJobReport, jobFigureSeconds, parseImages, peerJobSpec, runEncsecJob, writeJobData, type JobReport } from './jobs';
import { detectAllocator, detectBlas, latestPerMachine, machineSlug, readResultsDir } from './machine';
import {
  evaluateTargets,
  fmtValue,
  isMeasured,
  isMemory,
  measured,
  measuredFromSamples,
  naiveSpeedup,
  percentOfPeak,
  speedRatio,
  type MemoryOutcome,
  type Outcome,
  type RowResult,
  type RunMeta,
  type RunResults,
} from './results';
import { renderMarkdown } from './report';
import { readServerResultsDir } from './server/results';

export const USAGE = `Usage: npm run bench [-- options]   (node dist/benchmarks/run.js [options])

Kernel, end-to-end and memory benchmarks of encsec, next to the naive
reference kernels and PyTorch. A complete run writes
benchmarks/results/<date>-<host>.json and BENCHMARKS.md.

Options:
  --filter REGEX     run only the rows whose id matches (e.g. conv, ntxent, e2e)
  --repeats N        timed samples per row (default 7; 5 for end-to-end rows)
  --warmup N         untimed warm-up calls per row (default 2)
  --min-sample-ms N  minimum duration of one kernel sample (default 50)
  --quick            tiny shapes, 1 warm-up, 1 repeat: checks that everything runs
  --no-peer          skip the PyTorch rows
  --no-naive         skip the naive kernels (the peak is still measured)
  --no-native        skip the native program: no naive rows, no peak figure
  --no-cuda          skip the CUDA rows
  --no-jobs          skip the real-job rows (job.*: pre-training epoch, steals, probe)
  --no-glibc         skip the second peer pass on glibc's malloc (step and job rows)
  --images N|F       time the pre-training epoch on N images (or the fraction F
                     of its 60000, e.g. 0.25), rounded down to whole batches of
                     256, and extrapolate to the epoch (default: the whole epoch)
  --steal-epochs N   surrogate epochs of the steal rows (default 2)
  --job-repeats N    runs of each job per implementation (default 1; the median shows)
  --out FILE         results JSON (default benchmarks/results/<date>-<host>.json;
                     build-bench/bench-quick.json or bench-partial.json for a
                     --quick or --filter run)
  --update FILE      merge this run's rows into the complete results FILE (a
                     benchmarks/results/*.json), keeping its other rows and
                     its machine facts, and rewrite BENCHMARKS.md from it; the
                     report lists the re-measured rows with date and command
  --report FILE      markdown report (default BENCHMARKS.md for a complete run;
                     none for --quick or --filter runs unless given)
  --render-only      measure nothing: write BENCHMARKS.md (or --report FILE)
                     again from benchmarks/results/: the newest complete run
                     of each machine type and the newest server-*.json (HTTP
                     server load, benchmarks/server/load.ts) of each
  --list             print the row ids and exit
  --help             this text`;

export interface BenchOptions {
  filter: RegExp | null;
  filterText: string | null;
  repeats?: number;
  warmup?: number;
  minSampleMs?: number;
  quick: boolean;
  peer: boolean;
  naive: boolean;
  native: boolean;
  cuda: boolean;
  jobs: boolean;
  glibc: boolean;
  /** --images, already resolved to an image count of the pre-training epoch. */
  images?: number;
  stealEpochs?: number;
  jobRepeats?: number;
  out?: string;
  report?: string;
  /** Complete results file to merge this run into (--update). */
  update?: string;
  /** --render-only: write the report from the stored results, measure nothing. */
  renderOnly: boolean;
  list: boolean;
  help: boolean;
}

export function parseArgs(argv: readonly string[]): BenchOptions {
  const o: BenchOptions = { filter: null, filterText: null, quick: false, peer: true, naive: true, native: true, cuda: true, jobs: true, glibc: true, renderOnly: false, list: false, help: false };
  const value = (i: number, name: string): string => {
    const v = argv[i + 1];
    if (v === undefined || v.startsWith('--')) throw new RangeError(`${name} needs a value`);
    return v;
  };
  const count = (v: string, name: string, min: number): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new RangeError(`${name} must be an integer >= ${min}, got "${v}"`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const eq = a.indexOf('=');
    const [name, inline] = a.startsWith('--') && eq > 0 ? [a.slice(0, eq), a.slice(eq + 1)] : [a, undefined];
    const take = () => {
      if (inline !== undefined) return inline;
      const v = value(i, name);
      i++;
      return v;
    };
    switch (name) {
      case '--filter': {
        const f = take();
        try {
          o.filter = new RegExp(f);
        } catch (e) {
          throw new RangeError(`--filter: invalid regular expression "${f}": ${(e as Error).message}`);
        }
        o.filterText = f;
        break;
      }
      case '--repeats':
        o.repeats = count(take(), name, 1);
        break;
      case '--warmup':
        o.warmup = count(take(), name, 0);
        break;
      case '--min-sample-ms':
        o.minSampleMs = count(take(), name, 0);
        break;
      case '--out':
        o.out = take();
        break;
      case '--report':
        o.report = take();
        break;
      case '--update':
        o.update = take();
        break;
      case '--quick':
        o.quick = true;
        break;
      case '--no-peer':
        o.peer = false;
        break;
      case '--no-naive':
        o.naive = false;
        break;
      case '--no-native':
        o.native = false;
        o.naive = false;
        break;
      case '--no-cuda':
        o.cuda = false;
        break;
      case '--no-jobs':
        o.jobs = false;
        break;
      case '--no-glibc':
        o.glibc = false;
        break;
      case '--images':
        o.images = parseImages(take());
        break;
      case '--steal-epochs':
        o.stealEpochs = count(take(), name, 1);
        break;
      case '--job-repeats':
        o.jobRepeats = count(take(), name, 1);
        break;
      case '--render-only':
        o.renderOnly = true;
        break;
      case '--list':
        o.list = true;
        break;
      case '--help':
      case '-h':
        o.help = true;
        break;
      default:
        throw new RangeError(`unknown option "${a}" (see --help)`);
    }
  }
  return o;
}

/**
 * CPUs in use (0 .. number of CPUs) over `ms` milliseconds while this process
 * sleeps: what other work is running now. (The 1-minute load average is not
 * used: it still reads above 1 minutes after a long job has ended.)
 */
export function cpuInUse(ms: number): number {
  const total = () => os.cpus().reduce((a, c) => ({ busy: a.busy + c.times.user + c.times.nice + c.times.sys + c.times.irq, all: a.all + c.times.user + c.times.nice + c.times.sys + c.times.irq + c.times.idle }), { busy: 0, all: 0 });
  const a = total();
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
  const b = total();
  const all = b.all - a.all;
  return all > 0 ? (os.cpus().length * (b.busy - a.busy)) / all : 0;
}

/** The package root: the nearest ancestor of this file with encsec's package.json. */
export function repoRoot(): string {
  let dir = __dirname;
  for (;;) {
    const pkg = path.join(dir, 'package.json');
    if (fs.existsSync(pkg)) {
      try {
        if ((JSON.parse(fs.readFileSync(pkg, 'utf8')) as { name?: string }).name === 'encsec') return dir;
      } catch {
        // not ours; keep looking
      }
    }
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`cannot find encsec's package.json above ${__dirname}`);
    dir = up;
  }
}

function timingFor(row: RowSpec, o: BenchOptions): TimingOptions {
  const e2e = row.group === 'e2e';
  if (o.quick) return { warmup: o.warmup ?? 1, repeats: o.repeats ?? 1, minSampleMs: e2e ? 0 : (o.minSampleMs ?? 0) };
  return { warmup: o.warmup ?? 2, repeats: o.repeats ?? (e2e ? 5 : 7), minSampleMs: e2e ? 0 : (o.minSampleMs ?? 50) };
}

function naiveTimingFor(row: RowSpec, o: BenchOptions): TimingOptions {
  const t = timingFor(row, o);
  // The naive loops take up to seconds per call: few samples, the calibration call warms up.
  return { warmup: 0, repeats: Math.min(t.repeats, 3), minSampleMs: t.minSampleMs };
}

function cpuFacts(): RunMeta['cpu'] {
  const logicalCpus = os.cpus().length;
  let model = os.cpus()[0]?.model?.trim() || 'unknown';
  let physicalCores: number | null = null;
  try {
    const text = fs.readFileSync('/proc/cpuinfo', 'utf8');
    const m = /^model name\s*:\s*(.+)$/m.exec(text);
    if (m) model = m[1].trim();
    const cores = new Set<string>();
    for (const block of text.split(/\n\s*\n/)) {
      const phys = /^physical id\s*:\s*(\d+)/m.exec(block);
      const core = /^core id\s*:\s*(\d+)/m.exec(block);
      if (phys && core) cores.add(`${phys[1]}:${core[1]}`);
    }
    if (cores.size) physicalCores = cores.size;
  } catch {
    // not Linux: os.cpus() is all there is
  }
  return { model, logicalCpus, physicalCores };
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function describe(o: Outcome | undefined, metric: RowSpec['metric']): string {
  if (!o) return '—';
  if (isMeasured(o)) return `${o.medianMs.toFixed(3)} ms  ${fmtValue(metric, o.value)}`;
  return 'error' in o ? `error: ${o.error}` : `skipped: ${o.skipped}`;
}

function pad(s: string, n: number): string {
  return s.length >= n ? s : s + ' '.repeat(n - s.length);
}

/** Runs one row's encsec workload on the current device. */
function runEncsecRow(row: RowSpec, o: BenchOptions, sync?: () => void): Outcome {
  try {
    const w = prepare(row);
    try {
      return measured(timeIt(w.run, { ...timingFor(row, o), sync }), row.metric, row.work);
    } finally {
      w.dispose();
      // Give the allocator's cached blocks back between rows: one row's buffers must not inflate the next's footprint.
      native.clearCache();
    }
  } catch (e) {
    return { error: errorText(e) };
  }
}

function rssProbe(row: RowSpec): MemoryOutcome {
  const script = path.join(__dirname, `rss_probe${path.extname(__filename)}`);
  const r = spawnSync(process.execPath, [...process.execArgv, script, JSON.stringify(row.params)], {
    encoding: 'utf8',
    env: { ...process.env, ENCSEC_DEVICE: 'cpu' },
    maxBuffer: 1 << 20,
  });
  const last = (r.stdout || '').trim().split('\n').pop() ?? '';
  try {
    const j = JSON.parse(last) as MemoryOutcome;
    if (isMemory(j) || 'error' in j) return j;
  } catch {
    // fall through
  }
  return { error: `RSS probe failed (exit ${r.status}): ${(r.stderr || r.error?.message || last).trim().split('\n').slice(-3).join(' ')}` };
}

function peerOutcome(r: PeerRowResult | undefined, row: RowSpec): Outcome {
  if (!r) return { error: 'no result from the peer' };
  if ('error' in r) return { error: r.error };
  if ('skipped' in r) return { skipped: r.skipped };
  return measuredFromSamples(r.samplesMs, r.iters, row.metric, row.work);
}

/**
 * The native program: the machine's fp32 peak, then each naive row (and the
 * fast kernel at the same small shape). Fills row.naiveResult.
 */
async function nativePhase(
  root: string,
  rows: RowResult[],
  o: BenchOptions,
  log: (s: string) => void,
): Promise<{ peak: PeakResult | null; peakNote: string; nativeProgram: string }> {
  if (!o.native) {
    log('[native] skipped (--no-native): no naive rows, no peak figure');
    return { peak: null, peakNote: 'skipped (--no-native)', nativeProgram: 'not run (--no-native)' };
  }
  const naiveRows = o.naive ? rows.filter((r) => r.naive) : [];
  try {
    const build = await buildNativeBench(root, log);
    const requests: NativeRequest[] = [];
    for (const r of naiveRows) {
      const args = nativeArgs(r.op, r.naive!.params);
      if (!args) continue;
      const nt = naiveTimingFor(r, o);
      const ft = timingFor(r, o);
      requests.push({ id: r.id, impl: 'naive', op: r.op, warmup: nt.warmup, repeats: nt.repeats, minSampleMs: nt.minSampleMs, args });
      requests.push({ id: r.id, impl: 'fast', op: r.op, warmup: ft.warmup, repeats: ft.repeats, minSampleMs: ft.minSampleMs, args });
    }
    log(`[native] measuring the fp32 peak${requests.length ? ` and ${naiveRows.length} naive rows` : ''} ...`);
    const byId = new Map(rows.map((r) => [r.id, r]));
    const res = await runNativeBench(build.exe, o.quick ? 0.05 : 0.5, requests, (t) => {
      if ('error' in t) log(`  [native] ${t.id}: error: ${t.error}`);
      else if (t.impl === 'naive') {
        const r = byId.get(t.id)!;
        const m = measuredFromSamples(t.samplesMs, t.iters, r.metric, r.naive!.work);
        log(`  [naive] ${pad(t.id, 40)} ${pad(r.naive!.note, 10)} ${describe(m, r.metric)}`);
      }
    });
    const peak = res.peak;
    if (peak) log(`  peak: ${peak.gflops.toFixed(1)} GFLOP/s on ${peak.threads} threads (${peak.singleThreadGflops.toFixed(1)} on one; ${peak.isa})`);
    for (const r of naiveRows) {
      const get = (impl: 'fast' | 'naive'): Outcome => {
        const t = res.timings.find((x) => x.id === r.id && x.impl === impl);
        if (t) return measuredFromSamples(t.samplesMs, t.iters, r.metric, r.naive!.work);
        const e = res.errors.find((x) => x.id === r.id);
        return { error: e ? e.error : 'no result from the native program' };
      };
      r.naiveResult = { note: r.naive!.note, params: r.naive!.params, naive: get('naive'), fast: get('fast') };
    }
    return { peak, peakNote: peak ? '' : 'the native program reported no peak', nativeProgram: build.how };
  } catch (e) {
    const note = `native program unavailable: ${errorText(e).split('\n')[0]}`;
    log(`[native] ${errorText(e)}`);
    for (const r of naiveRows) r.naiveResult = { note: r.naive!.note, params: r.naive!.params, naive: { error: note }, fast: { error: note } };
    return { peak: null, peakNote: note, nativeProgram: 'not built' };
  }
}

const isJob = (r: RowSpec): boolean => r.group === 'job';

function jobOutcome(row: RowSpec, runs: JobReport[]): Outcome {
  return measuredFromSamples(
    runs.map((x) => 1000 * jobFigureSeconds(row, x)),
    1,
    row.metric,
    row.work,
  );
}

/**
 * The real jobs: each job by encsec in a fresh process, then (when a peer is
 * given) the PyTorch peer on jemalloc and again on glibc's malloc, each a
 * fresh Python process over the jobs. Fills encsec, peer, peerGlibc and
 * jobRuns of each row; returns the tuned peer's meta line.
 */
async function jobsPhase(root: string, rows: RowResult[], o: BenchOptions, peer: PeerEnv | null, threads: number, log: (s: string) => void): Promise<PeerMeta | null> {
  if (!o.jobs) {
    for (const r of rows) {
      r.encsec = { skipped: '--no-jobs' };
      r.peer = { skipped: '--no-jobs' };
    }
    log('[jobs] skipped (--no-jobs)');
    return null;
  }
  const repeats = o.jobRepeats ?? 1;
  const tmp = path.join(root, 'build-bench', `jobs-${process.pid}`);
  let meta: PeerMeta | null = null;
  try {
    let files: ReturnType<typeof writeJobData>['files'];
    try {
      files = writeJobData(path.join(tmp, 'data')).files;
    } catch (e) {
      const why = `Fashion-MNIST unavailable: ${errorText(e)}`;
      for (const r of rows) r.encsec = r.peer = { error: why };
      log(`[jobs] ${why}`);
      return null;
    }
    log(`[jobs] encsec: ${rows.length} jobs, ${repeats} run${repeats > 1 ? 's' : ''} each ...`);
    for (const r of rows) {
      const runs: JobReport[] = [];
      try {
        for (let i = 0; i < repeats; i++) runs.push(await runEncsecJob(r, path.join(tmp, 'encsec')));
        r.encsec = jobOutcome(r, runs);
        r.jobRuns = { ...r.jobRuns, encsec: runs };
      } catch (e) {
        r.encsec = { error: errorText(e) };
      }
      log(`  ${pad(r.id, 40)} ${isMeasured(r.encsec) ? `${(r.encsec.medianMs / 1000).toFixed(2)} s` : describe(r.encsec, r.metric)}`);
    }
    if (!peer) return null;
    const passes: ['peer' | 'peerGlibc', PeerEnv][] = [['peer', peer]];
    if (peer.jemalloc && o.glibc) passes.push(['peerGlibc', withAllocator(peer, 'glibc')]);
    const jobs = rows.map((r) => peerJobSpec(r, path.join(tmp, 'data')));
    for (const [field, env] of passes) {
      log(`[jobs] PyTorch on ${field === 'peer' && env.jemalloc ? 'jemalloc' : 'glibc malloc'} ...`);
      const runs = new Map<string, JobReport[]>();
      const errors = new Map<string, string>();
      for (let i = 0; i < repeats; i++) {
        const res = await runPeerScript(root, env, 'torch_jobs.py', { threads, data: files.data, tmp: path.join(tmp, 'peer'), jobs }, jobs.map((j) => j.id), () => {});
        if (field === 'peer' && !meta) meta = res.meta;
        for (const x of res.results) {
          if (typeof x.error === 'string') errors.set(x.id, x.error);
          else {
            try {
              runs.set(x.id, [...(runs.get(x.id) ?? []), checkJobReport(x)]);
            } catch (e) {
              errors.set(x.id, errorText(e));
            }
          }
        }
      }
      for (const r of rows) {
        const got = runs.get(r.id);
        r[field] = got?.length ? jobOutcome(r, got) : { error: errors.get(r.id) ?? 'no result from the peer' };
        if (got?.length) r.jobRuns = { ...r.jobRuns, [field]: got };
        log(`  [peer${field === 'peerGlibc' ? ', glibc' : ''}] ${pad(r.id, 40)} ${isMeasured(r[field]) ? `${((r[field] as { medianMs: number }).medianMs / 1000).toFixed(2)} s` : describe(r[field], r.metric)}`);
      }
    }
    return meta;
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

export async function main(argv: readonly string[], log: (s: string) => void = (s) => console.log(s)): Promise<RunResults | null> {
  const o = parseArgs(argv);
  if (o.help) {
    log(USAGE);
    return null;
  }
  const root = repoRoot();
  if (o.renderOnly) {
    if (o.filter || o.quick || o.update || o.out || o.list) throw new RangeError('--render-only measures nothing: of the other options it takes --report FILE only');
    const resultsDir = path.join(root, 'benchmarks', 'results');
    const report = path.resolve(o.report ?? path.join(root, 'BENCHMARKS.md'));
    writeFileAtomic(report, renderStored(resultsDir, (w) => log(`WARNING: ${resultsDir}/${w}`)));
    log(`report:  ${report} (rendered from ${resultsDir}, nothing measured)`);
    return null;
  }
  const base = o.quick ? QUICK_SIZES : FULL_SIZES;
  const all = buildSuite({
    ...base,
    jobs: { ...base.jobs, pretrainImages: o.images ?? base.jobs.pretrainImages, stealEpochs: o.stealEpochs ?? base.jobs.stealEpochs },
  });
  const specs = o.filter ? all.filter((r) => o.filter!.test(r.id)) : all;
  if (o.list) {
    for (const r of specs) log(`${pad(r.id, 44)} ${r.shape}`);
    return null;
  }
  if (specs.length === 0) throw new RangeError(`--filter ${o.filterText} matches no row (see --list)`);
  // Read the file to update first: a bad one fails before minutes of measuring.
  const updateBase = o.update ? readResults(path.resolve(o.update)) : null;

  const started = new Date();
  const nfo = info();
  const threads = nfo.cpuThreads;
  const initialBackend = nfo.backend;
  if (initialBackend === 'cuda') setDevice('cpu');
  const rows: RowResult[] = specs.map((s) => ({ ...s }));
  const quote = (a: string) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);
  const command = `npm run bench${argv.length ? ` -- ${argv.map(quote).join(' ')}` : ''}`;
  log(`encsec benchmarks: ${rows.length} rows${o.quick ? ' (quick shapes)' : ''}, ${threads} CPU threads`);
  const warnings: string[] = [];
  const warn = (w: string) => {
    warnings.push(w);
    log(`WARNING: ${w}`);
  };
  const used = cpuInUse(1000);
  const busy = used > 0.25 * os.cpus().length;
  if (busy) {
    warn(`the machine is busy (other work used ${used.toFixed(2)} of ${os.cpus().length} CPUs over the second before the run): timings are unreliable, multi-threaded PyTorch (OpenMP) especially`);
  }
  if (addonTime(root) > 0 && addonTime(root) < newestNativeSource(root)) {
    warn('the addon (build/Release/encsec.node) is older than the native sources: the encsec rows measure the old build (rebuild: npm run build:native)');
  }

  // ---- 1. native program: peak, naive rows (and the fast kernels at the naive shapes)
  const { peak, peakNote, nativeProgram } = await nativePhase(root, rows, o, log);
  const cores = cpuFacts().physicalCores ?? os.cpus().length;
  if (peak && peak.threads <= cores && peak.gflops < 0.7 * peak.threads * peak.singleThreadGflops) {
    warn(`the measured peak (${peak.gflops.toFixed(1)} GFLOP/s on ${peak.threads} threads) is below 70% of ${peak.threads} × the one-thread rate (${peak.singleThreadGflops.toFixed(1)}): other work was probably running, and % of peak is then overstated`);
  }

  // ---- 2. encsec on the CPU
  log(`[encsec] CPU rows ...`);
  for (const r of rows) {
    if (isJob(r)) continue; // the job phase runs them, after the peer's rows
    if (r.op === 'rss_step') {
      r.memory = { encsec: rssProbe(r) };
      const m = r.memory.encsec;
      log(`  ${pad(r.id, 40)} ${isMemory(m) ? `peak RSS ${m.peakMB.toFixed(0)} MB (baseline ${m.baselineMB.toFixed(0)} MB)` : 'error' in m ? `error: ${m.error}` : 'skipped'}`);
      continue;
    }
    r.encsec = runEncsecRow(r, o);
    const p = r.percentOfPeak ? percentOfPeak(r.encsec, peak?.gflops) : null;
    log(`  ${pad(r.id, 40)} ${pad(r.shape, 26)} ${describe(r.encsec, r.metric)}${p !== null ? ` (${p.toFixed(1)}% of peak)` : ''}`);
  }

  // ---- 3. PyTorch
  let peerMeta: RunMeta['peer'] = { absent: 'not run' };
  let peerEnv: ReturnType<typeof findPeer> | null = null;
  const skipPeer = (why: string) => {
    peerMeta = { absent: why };
    log(`[peer] PyTorch rows skipped: ${why}`);
    for (const r of rows) {
      if (r.memory) r.memory.peer = { skipped: why };
      else r.peer = { skipped: why };
    }
  };
  const encsecJobsOnly = async (why: string) => {
    const jr = rows.filter(isJob);
    if (jr.length) await jobsPhase(root, jr, o, null, threads, log);
    for (const r of jr) r.peer = { skipped: why };
  };
  if (!o.peer) {
    skipPeer('--no-peer');
    await encsecJobsOnly('--no-peer');
  } else {
    peerEnv = findPeer(root, threads, busy);
    if ('reason' in peerEnv) {
      skipPeer(peerEnv.reason);
      await encsecJobsOnly(peerEnv.reason);
    } else {
      const env = peerEnv;
      log(`[peer] PyTorch ${env.torchVersion} (${env.python}) ...`);
      const timed = rows.filter((r) => r.op !== 'rss_step' && !isJob(r));
      let meta: PeerMeta | null = null;
      if (timed.length) {
        const res = await runPeer(
          root,
          env,
          { threads, device: 'cpu', rows: timed.map((r) => ({ id: r.id, op: r.op, params: r.params, ...timingFor(r, o) })) },
          () => {},
        );
        meta = res.meta;
        for (const r of timed) r.peer = peerOutcome(res.results.find((x) => x.id === r.id), r);
      }
      // The step rows again on glibc's malloc, so that both figures show.
      const stepRows = timed.filter((r) => r.group === 'e2e');
      if (stepRows.length && env.jemalloc && o.glibc) {
        log('[peer] end-to-end rows again on glibc malloc ...');
        const res = await runPeer(
          root,
          withAllocator(env, 'glibc'),
          { threads, device: 'cpu', rows: stepRows.map((r) => ({ id: r.id, op: r.op, params: r.params, ...timingFor(r, o) })) },
          () => {},
        );
        for (const r of stepRows) r.peerGlibc = peerOutcome(res.results.find((x) => x.id === r.id), r);
      }
      for (const r of rows.filter((x) => x.op === 'rss_step')) {
        const m = peerRss(root, env, { arch: String(r.params.arch), batch: Number(r.params.batch), steps: Number(r.params.steps), threads });
        r.memory = { encsec: r.memory!.encsec, peer: m };
        log(`  [peer] ${pad(r.id, 40)} ${isMemory(m) ? `peak RSS ${m.peakMB.toFixed(0)} MB (baseline ${m.baselineMB.toFixed(0)} MB)` : `error: ${m.error}`}`);
      }
      // ---- 3b. the real jobs: encsec, then the peer (jemalloc, then glibc)
      const jobRowsHere = rows.filter(isJob);
      if (jobRowsHere.length) {
        const jm = await jobsPhase(root, jobRowsHere, o, env, threads, log);
        meta = meta ?? jm;
      }
      const libs = meta?.libs ?? [];
      const blas = meta?.blas ?? (libs.length ? detectBlas(libs) : env.blasDir ? `${env.blasDir} (LD_LIBRARY_PATH)` : 'system libblas.so.3');
      const allocator = meta?.allocator ?? (libs.length ? detectAllocator(libs).name : 'not reported');
      if (!env.jemalloc) warn("no jemalloc found for the PyTorch peer: it runs on glibc's malloc, below its best (install Debian's libjemalloc2, or set ENCSEC_BENCH_JEMALLOC)");
      if (!/openblas|mkl|blis/i.test(blas)) warn(`PyTorch's BLAS is ${blas}, not an optimised one (install Debian's libopenblas0-pthread)`);
      const reference = /reference BLAS/.test(blas);
      peerMeta = {
        python: env.python,
        torch: meta?.torch ?? env.torchVersion,
        threads: meta?.threads ?? threads,
        blas,
        mkldnn: meta?.mkldnn ?? false,
        ompWaitPolicy: env.ompWaitPolicy,
        allocator,
        mallocConf: env.env.MALLOC_CONF ?? '',
        glibc: !env.jemalloc ? 'not run: the tuned peer already runs on glibc (no jemalloc)' : o.glibc ? 'run' : 'not run (--no-glibc)',
        note: reference
          ? 'WARNING: the reference (unoptimised) BLAS: matmul-heavy peer rows are far below PyTorch\'s best (see "PyTorch\'s BLAS" below)'
          : '',
      };
      if (reference) warn(`PyTorch runs on the reference BLAS (${blas}): its matmul-heavy rows are far below its best (see BENCHMARKS.md, "PyTorch's BLAS")`);
    }
  }

  // ---- 4. CUDA
  let cudaNote: string;
  if (initialBackend !== 'cuda') {
    cudaNote = `none: the addon's backend is ${initialBackend} (${nfo.reason})`;
    log(`[cuda] no GPU figures: ${nfo.reason}`);
  } else if (!o.cuda) {
    cudaNote = 'skipped (--no-cuda)';
  } else {
    const dev = nfo.cudaDevices[0];
    cudaNote = dev ? `${dev.name} (${(dev.memoryBytes / 2 ** 30).toFixed(0)} GiB)` : 'CUDA device';
    setDevice('cuda');
    log(`[cuda] ${cudaNote} ...`);
    const cudaRows = rows.filter((r) => r.onCuda);
    try {
      for (const r of cudaRows) {
        r.cuda = runEncsecRow(r, o, () => native.synchronize());
        log(`  ${pad(r.id, 40)} ${pad(r.shape, 26)} ${describe(r.cuda, r.metric)}`);
      }
    } finally {
      setDevice('cpu');
    }
    if (peerEnv && !('reason' in peerEnv) && cudaRows.length) {
      const res = await runPeer(
        root,
        peerEnv,
        { threads, device: 'cuda', rows: cudaRows.map((r) => ({ id: r.id, op: r.op, params: r.params, ...timingFor(r, o) })) },
        () => {},
      );
      for (const r of cudaRows) r.cudaPeer = peerOutcome(res.results.find((x) => x.id === r.id), r);
    }
  }
  if (initialBackend === 'cuda') setDevice('cuda');

  // ---- 5. results
  const host = os.hostname().replace(/[^A-Za-z0-9._-]/g, '_') || 'host';
  const date = started.toISOString().slice(0, 10);
  const cpu = cpuFacts();
  const machine = machineSlug(cpu.model, nfo.cpuKernels);
  const meta: RunMeta = {
    date: started.toISOString(),
    host,
    machine,
    command,
    options: { ...o, filter: o.filterText },
    cpu,
    threads,
    peak,
    peakNote,
    node: process.version,
    encsec: {
      version: nfo.version,
      backend: nfo.backend,
      reason: nfo.reason,
      cpuKernels: nfo.cpuKernels,
      cudaStatus: nfo.cudaStatus,
      cudaDevices: nfo.cudaDevices.map((d) => d.name),
    },
    nativeProgram,
    warnings,
    peer: peerMeta,
    cuda: cudaNote,
    quick: o.quick,
    filter: o.filterText,
  };
  let results: RunResults = { meta, rows, targets: evaluateTargets(rows, meta) };
  if (updateBase) {
    results = mergeInto(updateBase, results);
    log(`[update] ${rows.length} row(s) merged into ${o.update}`);
  }

  // Partial runs must not overwrite a complete run's files.
  const complete = (!o.quick && !o.filter) || !!o.update;
  const defaultOut = complete
    ? path.join(root, 'benchmarks', 'results', `${date}-${machine}.json`)
    : path.join(root, 'build-bench', o.quick ? 'bench-quick.json' : 'bench-partial.json');
  const out = path.resolve(o.out ?? o.update ?? defaultOut);
  writeFileAtomic(out, `${JSON.stringify(results, null, 1)}\n`);
  const report = o.report ? path.resolve(o.report) : complete ? path.join(root, 'BENCHMARKS.md') : null;
  if (report) {
    // Every other machine type keeps its section: the newest complete run of each in benchmarks/results/.
    const resultsDir = path.join(root, 'benchmarks', 'results');
    const warnDir = (w: string) => log(`WARNING: ${resultsDir}/${w}`);
    const others = latestPerMachine(readResultsDir(resultsDir, warnDir), results).slice(1);
    writeFileAtomic(report, renderMarkdown(results, others, readServerResultsDir(resultsDir, warnDir)));
  }

  log('');
  log(summary(results));
  log('');
  const shown = (f: string) => {
    const rel = path.relative(process.cwd(), f);
    return rel && !rel.startsWith('..') ? rel : f;
  };
  log(`results: ${shown(out)}`);
  log(report ? `report:  ${shown(report)}` : 'report:  not written (a --quick or --filter run is partial; pass --report FILE to write one)');
  return results;
}

/**
 * BENCHMARKS.md from stored results alone (--render-only): the newest complete
 * run of every machine type in `dir` (the newest of them first, as a run puts
 * itself first) and the newest HTTP server load run of each machine type.
 */
export function renderStored(dir: string, warn: (s: string) => void = () => {}): string {
  // Targets are derived from the rows: judged again with the current rules.
  const runs = latestPerMachine(readResultsDir(dir, warn)).map((r) => ({ ...r, targets: evaluateTargets(r.rows, r.meta) }));
  if (runs.length === 0) throw new Error(`no complete results in ${dir} to render (a complete run writes one: npm run bench)`);
  return renderMarkdown(runs[0], runs.slice(1), readServerResultsDir(dir, warn));
}

function readResults(file: string): RunResults {
  let r: RunResults;
  try {
    r = JSON.parse(fs.readFileSync(file, 'utf8')) as RunResults;
  } catch (e) {
    throw new Error(`--update ${file}: cannot read it as results JSON: ${(e as Error).message}`);
  }
  if (!r || !r.meta || !Array.isArray(r.rows)) throw new Error(`--update ${file}: not a benchmarks results file (no meta/rows)`);
  if (r.meta.quick || r.meta.filter) throw new Error(`--update ${file}: a partial (--quick or --filter) run; update a complete run's file`);
  return r;
}

/**
 * A complete run with some rows re-measured: `fresh` rows replace the rows of
 * `base` with the same id; the machine facts stay base's, and the update is
 * recorded so the report can say which rows are newer.
 */
export function mergeInto(base: RunResults, fresh: RunResults): RunResults {
  if (fresh.meta.quick) throw new Error('--update: a --quick run cannot update a complete run (different shapes)');
  const byId = new Map(fresh.rows.map((r) => [r.id, r]));
  const unknown = fresh.rows.filter((r) => !base.rows.some((b) => b.id === r.id)).map((r) => r.id);
  if (unknown.length) throw new Error(`--update: row(s) ${unknown.join(', ')} are not in the base results`);
  const rows = base.rows.map((r) => byId.get(r.id) ?? r);
  const meta: RunMeta = {
    ...base.meta,
    warnings: [...base.meta.warnings, ...fresh.meta.warnings.map((w) => `(${fresh.meta.date.slice(0, 10)} update) ${w}`)],
    updates: [...(base.meta.updates ?? []), { date: fresh.meta.date, command: fresh.meta.command, rows: fresh.rows.map((r) => r.id) }],
  };
  return { meta, rows, targets: evaluateTargets(rows, meta) };
}

/** The console summary: one line per row, then the targets. */
export function summary(res: RunResults): string {
  const peak = res.meta.peak?.gflops ?? null;
  const lines: string[] = [];
  lines.push(`${pad('row', 40)} ${pad('encsec', 22)} ${pad('% peak', 7)} ${pad('vs naive', 9)} vs PyTorch`);
  for (const r of res.rows) {
    if (r.group === 'memory') {
      const a = r.memory?.encsec;
      const b = r.memory?.peer;
      lines.push(`${pad(r.id, 40)} ${pad(isMemory(a) ? `${a.peakMB.toFixed(0)} MB peak RSS` : 'error', 22)} ${pad('', 7)} ${pad('', 9)} ${isMemory(b) ? `PyTorch ${b.peakMB.toFixed(0)} MB` : '—'}`);
      continue;
    }
    const v = isMeasured(r.encsec) ? fmtValue(r.metric, r.encsec.value) : 'error';
    const p = r.percentOfPeak ? percentOfPeak(r.encsec, peak) : null;
    const n = naiveSpeedup(r);
    const x = speedRatio(r.encsec, r.peer);
    lines.push(`${pad(r.id, 40)} ${pad(v, 22)} ${pad(p === null ? '' : `${p.toFixed(1)}%`, 7)} ${pad(n === null ? '—' : `${n.toFixed(1)}×`, 9)} ${x === null ? '—' : `${x.toFixed(2)}×`}`);
  }
  lines.push('', 'targets:');
  for (const t of res.targets) lines.push(`  [${t.met === null ? ' ? ' : t.met ? 'met' : 'NOT'}] ${t.name}: ${t.required}; ${t.measured}`);
  return lines.join('\n');
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((e: unknown) => {
    console.error(`bench: ${errorText(e)}`);
    process.exitCode = 1;
  });
}
