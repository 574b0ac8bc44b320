// The HTTP server's load results in BENCHMARKS.md: the soak's resident-memory
// series judged (a step is a cache filling, a steady climb is a leak; the
// sampler's gaps), the section "Serving over HTTP" from a server-*.json (new
// files and older ones without the CPU model, command or analysis), the
// newest file per machine type, and --render-only from stored results.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { analyseSoak, latestServerRuns, readServerResultsDir, type ServerRun } from '../../benchmarks/server/results';
import { renderMarkdown, serverSection } from '../../benchmarks/report';
import { readResultsDir } from '../../benchmarks/machine';
import { main, parseArgs, renderStored } from '../../benchmarks/run';
import type { RunMeta, RunResults } from '../../benchmarks/results';

/** RSS every 5 s for `minutes`: a warm-up climb of 80 MiB over the first 25 s, then `after(t)`. */
function series(minutes: number, after: (t: number) => number): [number, number][] {
  const out: [number, number][] = [];
  for (let i = 1; i * 5 <= minutes * 60; i++) {
    const t = (i * 5) / 60;
    out.push([t, t < 25 / 60 ? 1135 + 16 * i : after(t)]);
  }
  return out;
}

t.test('soak: a step is a cache filling (flat), a steady climb is a leak (growing)', async (t) => {
  // Like the run of 2026-12-01: flat at 1215, one step of 37 MiB at 7.1 min, flat at 1252.
  const step = analyseSoak(
    series(10, (x) => (x < 7.1 ? 1215 : 1252)),
    600,
  )!;
  t.ok(step, 'analysed');
  t.equal(step.samples, 120);
  t.equal(step.start[1], 1151, 'the first sample');
  t.equal(step.afterWarmup[1], 1215, 'the first sample after the warm-up (first 10%)');
  t.equal(step.end[1], 1252);
  t.ok(step.secondHalfSlope > 5, `the plain least-squares slope over the second half is fooled by the step: ${step.secondHalfSlope}`);
  t.ok(Math.abs(step.secondHalfSlopeWithoutStep) < 0.01, `with the step taken out it is ~0: ${step.secondHalfSlopeWithoutStep}`);
  t.match(step.largestStep, { mib: 37 });
  t.ok(step.largestStep!.from < 7.1 && step.largestStep!.to >= 7.1, 'the step is placed in time');
  t.equal(step.flat, true, 'one step under 5% of RSS, no slope: flat');

  // A leak: 3 MiB/min, steadily (30 MiB over the run: over 2% of ~1245 MiB).
  const leak = analyseSoak(
    series(10, (x) => 1215 + 3 * x),
    600,
  )!;
  t.ok(Math.abs(leak.secondHalfSlope - 3) < 1e-9, 'the slope as measured');
  t.ok(Math.abs(leak.secondHalfSlopeWithoutStep - 3) < 0.1, `taking out one of its many small rises leaves the slope: ${leak.secondHalfSlopeWithoutStep}`);
  t.ok(leak.largestStep!.mib < 0.3, 'no big step');
  t.equal(leak.flat, false, 'a steady climb is growing');

  // A leak in chunks (8 MiB a minute): one chunk taken out, the others stay.
  const stairs = analyseSoak(
    series(10, (x) => 1215 + 8 * Math.floor(x)),
    600,
  )!;
  t.ok(stairs.secondHalfSlopeWithoutStep > 4, `a staircase keeps its slope: ${stairs.secondHalfSlopeWithoutStep}`);
  t.equal(stairs.flat, false);

  // One big step (over 5% of RSS) is not waved through.
  const jump = analyseSoak(
    series(10, (x) => (x < 8 ? 1215 : 1415)),
    600,
  )!;
  t.ok(Math.abs(jump.secondHalfSlopeWithoutStep) < 0.01);
  t.equal(jump.flat, false, 'a 200 MiB step is growing');

  // A slow decline is flat.
  t.equal(analyseSoak(series(10, (x) => 1300 - x), 600)!.flat, true);

  t.equal(analyseSoak([[0.1, 1], [0.2, 1]], 600), null, 'fewer than 3 samples: no verdict');
});

t.test('soak: the longest gap between samples (the sampler stalled)', async (t) => {
  const s = series(10, () => 1215).filter(([x]) => x <= 6.65 || x >= 7.03);
  const a = analyseSoak(s, 600)!;
  t.ok(Math.abs(a.largestGap.seconds - 30) < 1e-6, `6.58 → 7.08 min: ${a.largestGap.seconds} s`);
  t.ok(a.largestGap.from < 6.66 && a.largestGap.to > 7.03);
  t.equal(analyseSoak(series(10, () => 1215), 600)!.largestGap.seconds.toFixed(3), '5.000', 'no gap: the interval');
  t.equal(a.flat, true);
});

function serverRun(extra: Partial<ServerRun> = {}, peak1 = 953.7): ServerRun {
  const lr = (rps: number, n: number, p50: number, p99: number) => ({ requestsPerSec: rps, imagesPerSec: rps * n, p50ms: p50, p99ms: p99, non2xx: 0, errors: 0 });
  return {
    kind: 'server-load',
    date: '2026-12-05T10:00:00.000Z',
    host: 'vm',
    cpus: 2,
    cpuModel: 'AMD EPYC 7B13 64-Core Processor',
    machine: 'amd-epyc-7b13-64-core-avx2',
    command: 'node dist/benchmarks/server/load.js --duration 30 --soak 600',
    backend: { version: '0.1.0', backend: 'cpu', reason: 'no CUDA device', cpuThreads: 2, cpuKernels: 'avx2' },
    options: { duration: 30, soak: 600, arch: 'cnn-small', connections: 64, maxDelayMs: 2, defense: 'none', out: null },
    inProcessImagesPerSec: 1000,
    results: {
      '1-image': { ratioToInProcess: peak1 / 1000, target: 0.8, at: { '100%': lr(peak1, 1, 64, 105), '50%': lr(peak1 / 2, 1, 35, 85), '80%': lr(peak1 * 0.8, 1, 37, 96) } },
      '32-image': { ratioToInProcess: 1.1776, target: 0.9, at: { '100%': lr(36.8, 32, 1702, 2188), '50%': lr(18.4, 32, 212, 1664), '80%': lr(29.44, 32, 264, 824) } },
      soak: { seconds: 600, sampleIntervalS: 5, load: lr(752.53, 1, 33, 185), rssMiB: series(10, (x) => (x < 7.1 ? 1215 : 1252)) },
    },
    ...extra,
  };
}

function harnessRun(model: string, kernels: string, date: string): RunResults {
  const meta = {
    date,
    host: 'vm',
    command: 'npm run bench',
    options: {},
    cpu: { model, logicalCpus: 2, physicalCores: 2 },
    threads: 2,
    peak: { gflops: 100, threads: 2, singleThreadGflops: 50, isa: kernels },
    peakNote: '',
    node: 'v20',
    encsec: { version: '0.1.0', backend: 'cpu', reason: '', cpuKernels: kernels, cudaStatus: '', cudaDevices: [] },
    nativeProgram: '',
    warnings: [],
    peer: { absent: 'not run' },
    cuda: 'none',
    quick: false,
    filter: null,
  } as RunMeta;
  return {
    meta,
    rows: [
      {
        id: 'e2e.inference.cnn-small',
        group: 'e2e',
        shape: 'batch 256 (eval mode)',
        op: 'inference',
        params: {},
        metric: 'images/s',
        work: 256,
        onCuda: false,
        encsec: { medianMs: 100, minMs: 100, maxMs: 100, iters: 1, samplesMs: [100], value: 2560 },
      },
    ],
    targets: [],
  } as RunResults;
}

t.test('BENCHMARKS.md: the section "Serving over HTTP"', async (t) => {
  const intel = harnessRun('Intel(R) Xeon(R) Processor', 'avx512', '2026-11-23T14:51:21Z');
  const amd = harnessRun('AMD EPYC 7B13 64-Core Processor', 'avx2', '2026-11-30T00:00:00Z');
  const md = renderMarkdown(intel, [amd], [serverRun()]);
  const at = md.indexOf('## Serving over HTTP (`encsec serve`)');
  t.ok(at > md.indexOf('## AMD EPYC 7B13 64-Core Processor, avx2 kernels'), 'after the machine sections');
  t.ok(md.indexOf('## How the figures are made') > at, 'before the method');
  t.match(md, /section of their own: \[Serving over HTTP \(encsec serve\)\]\(#serving-over-http-encsec-serve\)/, 'the machines paragraph links to it');
  const sec = md.slice(at, md.indexOf('## How the figures are made'));
  t.match(sec, '### HTTP: AMD EPYC 7B13 64-Core Processor, avx2 kernels');
  t.match(sec, '| Command | `node dist/benchmarks/server/load.js --duration 30 --soak 600` |');
  t.match(sec, '| Date | 2026-12-05T10:00:00.000Z |');
  t.match(sec, '| Machine | AMD EPYC 7B13 64-Core Processor: 2 logical CPUs; host vm |');
  t.match(sec, '| In-process | **1000 images/s** (cnn-small, `embedSync` at batch 256) |');
  t.match(sec, '| Harness, same machine type | `e2e.inference.cnn-small`: 2560 images/s (2026-11-30, batch 256 (eval mode)) |', "the harness's in-process row of the same machine type");
  const rows = sec.split('\n').filter((l) => /^\| (1|32)-image \|/.test(l));
  t.same(rows, [
    '| 1-image | 50% of peak | 476.9 | 477 | 47.7% | 35 | 85 | 0 / 0 | — |',
    '| 1-image | 80% of peak | 763.0 | 763 | 76.3% | 37 | 96 | 0 / 0 | — |',
    '| 1-image | 100% of peak (unthrottled) | 953.7 | 954 | 95.4% | 64 | 105 | 0 / 0 | ≥ 80%: **yes** |',
    '| 32-image | 50% of peak | 18.40 | 589 | 58.9% | 212 | 1664 | 0 / 0 | — |',
    '| 32-image | 80% of peak | 29.44 | 942 | 94.2% | 264 | 824 | 0 / 0 | — |',
    '| 32-image | 100% of peak (unthrottled) | 36.80 | 1178 | 117.8% | 1702 | 2188 | 0 / 0 | ≥ 90%: **yes** |',
  ], 'six rows: request size × load, the target judged at the peak');
  t.match(sec, /\*\*Soak\*\*: 600 s at 80% of the 1-image peak, 752\.5 requests\/s served \(p50 33 ms, p99 185 ms, 0 non-2xx, 0 errors\); .* every 5 s, 120 samples\./);
  t.match(sec, '| At the start (0.08 min) | 1151 MiB |');
  t.match(sec, '| After the warm-up (first 1.00 min; sample at 1.00 min) | 1215 MiB |');
  t.match(sec, '| At the end (10.00 min) | 1252 MiB |');
  t.match(sec, /\| Slope over the second half \(5\.00 min – 10\.00 min\) \| \+\d+\.\d\d MiB\/min as measured; \*\*[+−]0\.00 MiB\/min\*\* without its largest rise: [+−]0\.0 MiB over the 10\.00-min run \(limit 25\.0 MiB, 2% of the final RSS\) \|/);
  t.match(sec, /\| Largest rise between two samples after the warm-up \| \+37\.0 MiB, 7\.08 min → 7\.17 min \(limit 62\.6 MiB, 5% of the final RSS\) \|/);
  t.match(sec, '| Longest time between two samples | 5.0 s, 0.00 min → 0.08 min (interval 5 s) |');
  t.match(sec, '| Verdict | **flat** |');
  t.match(sec, /\*\*Flat\*\* when the least-squares slope of RSS over the second half of the run, with that half's largest single rise/, 'the rule in words');
  t.notMatch(sec, 'earlier rule', 'no stored verdict of the earlier rule');

  // load.ts prints the same section for its own run.
  t.equal(`${serverSection([serverRun()], [intel, amd]).join('\n')}\n`, sec);

  const missed = serverSection([serverRun({}, 700)]).join('\n');
  t.match(missed, '| 1-image | 100% of peak (unthrottled) | 700.0 | 700 | 70.0% | 64 | 105 | 0 / 0 | ≥ 80%: **no** |');
  t.notMatch(missed, 'Harness, same machine type', 'no harness run given');

  t.same(serverSection([]), [], 'no server runs: no section');
  t.notMatch(renderMarkdown(intel), 'Serving over HTTP');
});

t.test('an older server file: no CPU model, command or analysis', async (t) => {
  const old = serverRun({ cpuModel: undefined, machine: undefined, command: undefined, date: '2026-12-01T03:59:02.906Z' });
  old.results.soak = { ...old.results.soak!, sampleIntervalS: undefined, trendMiBPerMin: 5.45, fittedGrowthMiB: 54.5, flat: true };
  const sec = serverSection([old]).join('\n');
  t.match(sec, '### HTTP: host vm, 2 CPUs, avx2 kernels (CPU model not recorded)');
  t.match(sec, '| Command | not recorded; the recorded options are those of `node dist/benchmarks/server/load.js --duration 30 --soak 600 --arch cnn-small --connections 64 --max-delay-ms 2 --defense none` |');
  t.match(sec, '| Machine | CPU model not recorded: 2 logical CPUs; host vm |');
  t.match(sec, 'every 5 s, 120 samples', 'the interval of files without one: 5 s');
  t.match(sec, '| Verdict | **flat** |', 'judged again from the stored series');
  t.match(sec, '| Verdict stored by load.ts (earlier rule) | flat: one least-squares trend over the last 90% of the samples, 5.45 MiB/min (fitted growth 54.5 MiB, flat under 5% of the first sample) |');

  const noSoak = serverRun();
  delete noSoak.results.soak;
  t.match(serverSection([noSoak]).join('\n'), 'No soak in this run');

  // The newest file per machine type; a file without a CPU model gives way to a newer one of the same kernels and CPU count.
  const newer = serverRun({ date: '2026-12-06T00:00:00.000Z' });
  const intel = serverRun({ cpuModel: 'Intel(R) Xeon(R) Processor', machine: 'intel-xeon-avx512', backend: { ...old.backend, cpuKernels: 'avx512' }, date: '2026-11-20T00:00:00.000Z' });
  t.same(latestServerRuns([old, serverRun(), newer, intel]).map((r) => r.date), [newer.date, intel.date]);
  t.same(latestServerRuns([old, intel]).map((r) => r.date), [old.date, intel.date], 'kept while nothing newer names its machine');
  t.equal(serverSection([serverRun(), newer]).filter((l) => l.startsWith('### HTTP')).length, 1, 'one machine type, one subsection');
});

t.test('--render-only: BENCHMARKS.md from the stored results, nothing measured', async (t) => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'encsec-render-'));
  t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));
  t.throws(() => renderStored(tmp), /no complete results/);
  fs.writeFileSync(path.join(tmp, '2026-11-23-vm.json'), JSON.stringify(harnessRun('Intel(R) Xeon(R) Processor', 'avx512', '2026-11-23T14:51:21Z')));
  fs.writeFileSync(path.join(tmp, '2026-11-30-amd.json'), JSON.stringify(harnessRun('AMD EPYC 7B13 64-Core Processor', 'avx2', '2026-11-30T00:00:00Z')));
  fs.writeFileSync(path.join(tmp, 'server-2026-12-05-vm.json'), JSON.stringify(serverRun()));
  fs.writeFileSync(path.join(tmp, 'server-broken.json'), '{"kind"');
  const warnings: string[] = [];
  t.equal(readResultsDir(tmp, (w) => warnings.push(w)).length, 2, "the harness's reader leaves server files alone");
  t.same(warnings, []);
  t.equal(readServerResultsDir(tmp, (w) => warnings.push(w)).length, 1);
  t.match(warnings, [/^server-broken\.json: /], 'an unreadable server file is reported');
  const md = renderStored(tmp);
  t.ok(md.indexOf('## AMD EPYC 7B13 64-Core Processor, avx2 kernels') < md.indexOf('## Intel(R) Xeon(R) Processor, avx512 kernels'), 'the newest run first');
  t.match(md, 'Generated by `npm run bench` on 2026-11-30T00:00:00Z.');
  t.match(md, '### HTTP: AMD EPYC 7B13 64-Core Processor, avx2 kernels');
  t.match(md, '| Harness, same machine type | `e2e.inference.cnn-small`: 2560 images/s');

  t.equal(parseArgs(['--render-only']).renderOnly, true);
  t.equal(parseArgs([]).renderOnly, false);
  await t.rejects(main(['--render-only', '--quick'], () => {}), /--render-only measures nothing/);
});
