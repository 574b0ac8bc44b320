// The CUDA rows of the benchmark suite alone, for a short device check
// (scripts/gpu-check.sh): encsec on the GPU through the addon, then PyTorch on
// the same GPU (benchmarks/peer/torch_bench.py, cuDNN). `npm run bench` runs
// the same rows only after every CPU phase, too long for a lease of minutes.
//
//   node dist/benchmarks/gpu-bench.js [--quick] [--filter RE] [--repeats N]
//        [--warmup N] [--min-sample-ms N] [--no-peer] --out FILE
//     writes FILE (rewritten after every row, so a run stopped early keeps
//     what it measured): {"gpuBench": 1, "meta": {...}, "rows": [{id, ..., cuda, cudaPeer}]}
//
//   node dist/benchmarks/gpu-bench.js --merge FILE --into RESULTS.json [--report BENCHMARKS.md]
//     copies the cuda / cudaPeer figures of FILE into a complete run's results
//     (benchmarks/results/*.json; rows matched by id, their CPU figures kept),
//     records the merge in meta.updates and meta.cuda, and rewrites the report
//     from it. Nothing is merged from a --quick run or from rows without figures.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { native } from '../lib/core/native';
import { info, setDevice } from '../lib/core/backend';
import { writeFileAtomic } from '../lib/io/atomic';
import { buildSuite, FULL_SIZES, QUICK_SIZES, type RowSpec } from './suite';
import { timeIt, type TimingOptions } from './timing';
import { prepare } from './encsec_rows';
import { findPeer, runPeer } from './peer_runner';
import { evaluateTargets, fmtValue, isMeasured, measured, measuredFromSamples, type Outcome, type RowResult, type RunResults } from './results';
import { renderMarkdown } from './report';
import { repoRoot } from './run';

interface GpuBenchOptions {
  quick: boolean;
  filter: RegExp | null;
  repeats?: number;
  warmup?: number;
  minSampleMs?: number;
  peer: boolean;
  out?: string;
  merge?: string;
  into?: string;
  report?: string;
}

export interface GpuBenchFile {
  gpuBench: 1;
  meta: {
    date: string;
    host: string;
    command: string;
    quick: boolean;
    filter: string | null;
    node: string;
    gpu: string;
    encsec: { version: string; backend: string; reason: string; cudaBuild: string; cudaStatus: string };
    timing: { warmup: number | null; repeats: number | null; minSampleMs: number | null };
    peer: string;
    /** Set once the run has finished (absent: stopped early). */
    finished?: string;
  };
  rows: Array<RowSpec & { cuda?: Outcome; cudaPeer?: Outcome }>;
}

function parse(argv: readonly string[]): GpuBenchOptions {
  const o: GpuBenchOptions = { quick: false, filter: null, peer: true };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      const v = argv[++i];
      if (v === undefined) throw new RangeError(`${a} needs a value`);
      return v;
    };
    const int = (min: number) => {
      const v = Number(val());
      if (!Number.isInteger(v) || v < min) throw new RangeError(`${a} must be an integer >= ${min}`);
      return v;
    };
    switch (a) {
      case '--quick': o.quick = true; break;
      case '--no-peer': o.peer = false; break;
      case '--filter': o.filter = new RegExp(val()); break;
      case '--repeats': o.repeats = int(1); break;
      case '--warmup': o.warmup = int(0); break;
      case '--min-sample-ms': o.minSampleMs = int(0); break;
      case '--out': o.out = val(); break;
      case '--merge': o.merge = val(); break;
      case '--into': o.into = val(); break;
      case '--report': o.report = val(); break;
      default: throw new RangeError(`unknown option "${a}"`);
    }
  }
  return o;
}

/** The harness's timing rule (benchmarks/run.ts timingFor), with the overrides given. */
function timingFor(row: RowSpec, o: GpuBenchOptions): TimingOptions {
  const e2e = row.group === 'e2e';
  if (o.quick) return { warmup: o.warmup ?? 1, repeats: o.repeats ?? 1, minSampleMs: e2e ? 0 : (o.minSampleMs ?? 0) };
  return { warmup: o.warmup ?? 2, repeats: o.repeats ?? (e2e ? 5 : 7), minSampleMs: e2e ? 0 : (o.minSampleMs ?? 50) };
}

function describe(o: Outcome | undefined, row: RowSpec): string {
  if (!o) return '—';
  if (isMeasured(o)) return `${o.medianMs.toFixed(3)} ms  ${fmtValue(row.metric, o.value)}`;
  return 'error' in o ? `error: ${o.error}` : `skipped: ${o.skipped}`;
}

async function runBench(o: GpuBenchOptions, argv: readonly string[], log: (s: string) => void): Promise<GpuBenchFile> {
  if (!o.out) throw new RangeError('--out FILE is required');
  const out = path.resolve(o.out);
  const root = repoRoot();
  const nfo = info();
  const rows = buildSuite(o.quick ? QUICK_SIZES : FULL_SIZES).filter((r) => r.onCuda && (!o.filter || o.filter.test(r.id)));
  const dev = nfo.cudaDevices[0];
  const file: GpuBenchFile = {
    gpuBench: 1,
    meta: {
      date: new Date().toISOString(),
      host: os.hostname(),
      command: `node dist/benchmarks/gpu-bench.js ${argv.join(' ')}`.trim(),
      quick: o.quick,
      filter: o.filter ? o.filter.source : null,
      node: process.version,
      gpu: dev ? `${dev.name} (${(dev.memoryBytes / 2 ** 30).toFixed(0)} GiB)` : `none: ${nfo.reason}`,
      encsec: { version: nfo.version, backend: nfo.backend, reason: nfo.reason, cudaBuild: nfo.cudaBuild, cudaStatus: nfo.cudaStatus },
      timing: { warmup: o.warmup ?? null, repeats: o.repeats ?? null, minSampleMs: o.minSampleMs ?? null },
      peer: 'not run',
    },
    rows: rows.map((r) => ({ ...r })),
  };
  const save = () => writeFileAtomic(out, `${JSON.stringify(file, null, 1)}\n`);
  save();
  log(`gpu-bench: ${rows.length} CUDA rows${o.quick ? ' (quick shapes)' : ''}; GPU: ${file.meta.gpu}`);

  // ---- encsec on the GPU
  if (!dev) {
    for (const r of file.rows) r.cuda = { skipped: `no GPU: ${nfo.reason}` };
    log(`[encsec cuda] no GPU: skipped (${nfo.reason})`);
  } else {
    setDevice('cuda');
    try {
      for (const r of file.rows) {
        try {
          const w = prepare(r);
          try {
            r.cuda = measured(timeIt(w.run, { ...timingFor(r, o), sync: () => native.synchronize() }), r.metric, r.work);
          } finally {
            w.dispose();
            native.clearCache();
          }
        } catch (e) {
          r.cuda = { error: e instanceof Error ? e.message : String(e) };
        }
        log(`  [encsec cuda] ${r.id.padEnd(44)} ${r.shape.padEnd(26)} ${describe(r.cuda, r)}`);
        save();
      }
    } finally {
      setDevice('cpu');
    }
  }

  // ---- PyTorch on the GPU (cuDNN)
  if (!o.peer) {
    file.meta.peer = 'skipped (--no-peer)';
  } else {
    const peer = findPeer(root, nfo.cpuThreads, false);
    if ('reason' in peer) {
      file.meta.peer = `none: ${peer.reason}`;
      for (const r of file.rows) r.cudaPeer = { skipped: peer.reason };
      log(`[peer cuda] skipped: ${peer.reason}`);
    } else {
      log(`[peer cuda] PyTorch ${peer.torchVersion} (${peer.python}) ...`);
      const res = await runPeer(
        root,
        peer,
        { threads: nfo.cpuThreads, device: 'cuda', rows: file.rows.map((r) => ({ id: r.id, op: r.op, params: r.params, ...timingFor(r, o) })) },
        (x) => {
          const r = file.rows.find((y) => y.id === x.id);
          if (!r) return;
          r.cudaPeer = 'error' in x ? { error: x.error } : 'skipped' in x ? { skipped: x.skipped } : measuredFromSamples(x.samplesMs, x.iters, r.metric, r.work);
          log(`  [peer cuda]   ${r.id.padEnd(44)} ${r.shape.padEnd(26)} ${describe(r.cudaPeer, r)}`);
          save();
        },
      );
      const m = res.meta as (typeof res.meta & { cudnn?: unknown }) | null;
      file.meta.peer = m ? `PyTorch ${m.torch} on ${m.cuda ?? 'no CUDA device'}${m.cudnn ? `; ${JSON.stringify(m.cudnn)}` : ''}` : `PyTorch ${peer.torchVersion}`;
    }
  }
  file.meta.finished = new Date().toISOString();
  save();
  const ok = (k: 'cuda' | 'cudaPeer') => file.rows.filter((r) => isMeasured(r[k])).length;
  log(`gpu-bench: encsec measured ${ok('cuda')}/${rows.length}, PyTorch measured ${ok('cudaPeer')}/${rows.length}; wrote ${out}`);
  return file;
}

/** Copies the CUDA figures of a gpu-bench file into a complete run's results. */
export function mergeCuda(base: RunResults, dev: GpuBenchFile): { results: RunResults; merged: string[] } {
  if (dev.gpuBench !== 1 || !Array.isArray(dev.rows)) throw new Error('--merge: not a gpu-bench results file');
  if (dev.meta.quick) throw new Error('--merge: a --quick run has other shapes than a complete run; measure without --quick');
  if (base.meta.quick || base.meta.filter) throw new Error('--into: a partial (--quick or --filter) run; merge into a complete run');
  const merged: string[] = [];
  const rows: RowResult[] = base.rows.map((r) => {
    const d = dev.rows.find((x) => x.id === r.id);
    if (!d || !(isMeasured(d.cuda) || isMeasured(d.cudaPeer))) return r;
    if (d.shape !== r.shape) throw new Error(`--merge: row ${r.id} has shape "${d.shape}" on the GPU but "${r.shape}" in the base results`);
    merged.push(r.id);
    return { ...r, cuda: d.cuda, cudaPeer: d.cudaPeer };
  });
  const meta = {
    ...base.meta,
    cuda: `${dev.meta.gpu}, measured ${dev.meta.date.slice(0, 10)} on ${dev.meta.host} (${dev.meta.command}); peer: ${dev.meta.peer}`,
    updates: [...(base.meta.updates ?? []), { date: dev.meta.date, command: dev.meta.command, rows: merged }],
  };
  return { results: { meta, rows, targets: evaluateTargets(rows, meta) }, merged };
}

export async function main(argv: readonly string[], log: (s: string) => void = (s) => console.log(s)): Promise<void> {
  const o = parse(argv);
  if (o.merge) {
    if (!o.into) throw new RangeError('--merge FILE needs --into RESULTS.json');
    const dev = JSON.parse(fs.readFileSync(o.merge, 'utf8')) as GpuBenchFile;
    const base = JSON.parse(fs.readFileSync(o.into, 'utf8')) as RunResults;
    const { results, merged } = mergeCuda(base, dev);
    if (merged.length === 0) throw new Error(`--merge: ${o.merge} has no measured CUDA row to merge`);
    writeFileAtomic(o.into, `${JSON.stringify(results, null, 1)}\n`);
    log(`merged the CUDA figures of ${merged.length} rows into ${o.into}`);
    if (o.report) {
      writeFileAtomic(o.report, renderMarkdown(results));
      log(`report: ${o.report}`);
    }
    return;
  }
  await runBench(o, argv, log);
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((e: unknown) => {
    console.error(`gpu-bench: ${e instanceof Error ? e.message : String(e)}`);
    process.exitCode = 1;
  });
}
