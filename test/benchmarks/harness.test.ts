// The benchmark harness runs end to end on tiny shapes: rows are timed, the
// RSS probe runs in its own process, peer rows are skipped with a message
// where no PyTorch is found, and the JSON results and the markdown report are
// written. Speed itself is never asserted (targets are judged here only on
// made-up figures). The native program (a g++ build) is left out to keep the
// test fast.
import t, { type Test } from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { cpuInUse, main, mergeInto, parseArgs } from '../../benchmarks/run';
import { peakRssBytes } from '../../benchmarks/rss_probe';
import { evaluateTargets, isMeasured, isMemory, type Measured, type RowResult, type RunMeta, type RunResults } from '../../benchmarks/results';
import { renderMarkdown } from '../../benchmarks/report';
import { buildSuite, FULL_SIZES } from '../../benchmarks/suite';
import { runNativeBench } from '../../benchmarks/native_runner';
import { findPeer, peerRss } from '../../benchmarks/peer_runner';

/** An executable Node script standing in for an external program (the native bench program, a Python). */
function fakeProgram(dir: string, name: string, body: string): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, `#!${process.execPath}\n${body}\n`, { mode: 0o755 });
  return file;
}

function withEnv(t: Test, name: string, value: string): void {
  const saved = process.env[name];
  process.env[name] = value;
  t.teardown(() => {
    if (saved === undefined) delete process.env[name];
    else process.env[name] = saved;
  });
}

t.test('options are checked', async (t) => {
  const o = parseArgs(['--quick', '--filter', 'conv', '--repeats', '3', '--warmup=0', '--no-peer']);
  t.equal(o.quick, true);
  t.equal(o.filterText, 'conv');
  t.equal(o.repeats, 3);
  t.equal(o.warmup, 0);
  t.equal(o.peer, false);
  t.throws(() => parseArgs(['--bogus']), /unknown option "--bogus"/);
  t.throws(() => parseArgs(['--repeats', '0']), /--repeats must be an integer >= 1/);
  t.throws(() => parseArgs(['--filter', '(']), /--filter: invalid regular expression/);
  t.throws(() => parseArgs(['--out']), /--out needs a value/);
  await t.rejects(main(['--filter', 'no-such-row'], () => {}), /matches no row/);
});

t.test('a quick filtered run writes results and a report', async (t) => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'encsec-bench-'));
  t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const out = path.join(tmp, 'results.json');
  const report = path.join(tmp, 'BENCHMARKS.md');
  const log: string[] = [];
  const filter = '^(ntxent|perturb\\.topk|e2e\\.inference\\.cnn-small|memory)';
  // No Python with PyTorch: the peer rows are skipped with the reason.
  withEnv(t, 'ENCSEC_BENCH_PYTHON', path.join(tmp, 'no-such-python'));
  const res = await main(['--quick', '--filter', filter, '--no-native', '--out', out, '--report', report], (s) => log.push(s));
  t.ok(res, 'the run returns its results');
  const r = res as RunResults;
  t.same(
    r.rows.map((x) => x.id),
    ['ntxent.n32.d16', 'perturb.topk.n64.d128', 'e2e.inference.cnn-small', 'memory.rss.cnn-small-step'],
  );
  for (const row of r.rows) {
    if (row.group === 'memory') {
      const m = row.memory?.encsec;
      t.ok(isMemory(m), `RSS probe result: ${JSON.stringify(m)}`);
      if (isMemory(m)) t.ok(m.peakMB >= m.baselineMB && m.baselineMB > 0, 'peak RSS is at least the baseline');
      t.match(row.memory?.peer, { skipped: /no Python with PyTorch found/ });
    } else {
      t.ok(isMeasured(row.encsec), `${row.id} measured: ${JSON.stringify(row.encsec)}`);
      if (isMeasured(row.encsec)) t.ok(row.encsec.medianMs > 0 && row.encsec.value > 0, `${row.id} has a time and a rate`);
      t.match(row.peer, { skipped: /no Python with PyTorch found/ }, 'peer row skipped with the reason');
    }
  }
  t.equal(r.targets.length, 8, 'every target is listed');
  t.ok(r.targets.every((x) => x.met === null), 'targets are not judged on quick shapes');
  t.equal(r.meta.peak, null, 'no peak with --no-native');

  const written = JSON.parse(fs.readFileSync(out, 'utf8')) as RunResults;
  t.same(written.rows.map((x) => x.id), r.rows.map((x) => x.id), 'the JSON file holds the rows');
  const md = fs.readFileSync(report, 'utf8');
  for (const h of ['## Machine and run', '## Targets', '## NT-Xent', '## End to end', '## Resident memory', '## CUDA']) t.match(md, h);
  t.match(md, '`ntxent.n32.d16`');
  t.match(md, /Peer \| not run: no Python with PyTorch found/);
  t.ok(log.some((l) => l.startsWith('[peer] PyTorch rows skipped: no Python with PyTorch found')), 'the console says why the peer rows are skipped');
  t.ok(log.some((l) => l.startsWith('results:')), 'the console names the results file');
});

t.test('peer protocol: results, errors and the BLAS warning reach the report', async (t) => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'encsec-bench-'));
  t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));
  // Answers like benchmarks/peer/torch_bench.py: the torch probe, the RSS mode, and a spec file.
  const python = fakeProgram(
    tmp,
    'fake-python',
    `const a = process.argv.slice(2);
if (a[0] === '-c') { console.log('0.0-fake'); process.exit(0); }
if (a[1] === '--rss') { console.log(JSON.stringify({ baselineMB: 10, peakMB: 20, afterMB: 15 })); process.exit(0); }
const spec = JSON.parse(require('fs').readFileSync(a[1], 'utf8'));
console.log(JSON.stringify({ meta: { torch: '0.0-fake', threads: spec.threads, mkldnn: true, blas: '/x/blas/libblas.so.3 (reference BLAS)', device: spec.device, cuda: null } }));
for (const r of spec.rows) console.log(JSON.stringify(r.op === 'topk' ? { id: r.id, error: 'boom' } : { id: r.id, iters: 1, samples_ms: [1000] }));`,
  );
  withEnv(t, 'ENCSEC_BENCH_PYTHON', python);
  const report = path.join(tmp, 'B.md');
  const res = (await main(['--quick', '--filter', '^(ntxent|perturb\\.topk)', '--no-native', '--out', path.join(tmp, 'r.json'), '--report', report], () => {})) as RunResults;
  const [nt, topk] = res.rows;
  t.ok(isMeasured(nt.peer) && nt.peer.medianMs === 1000, 'the peer time is read');
  t.ok(isMeasured(nt.encsec) && isMeasured(nt.peer) && Math.abs((nt.peer as Measured).value - nt.work / 1e9) < 1e-12, 'the peer rate uses the row work');
  t.same(topk.peer, { error: 'boom' }, 'a failing peer row keeps its error');
  const peerEnv = findPeer(tmp, 2);
  t.notOk('reason' in peerEnv, 'the fake Python passes for one with torch');
  if (!('reason' in peerEnv)) t.same(peerRss(tmp, peerEnv, { arch: 'cnn-small', batch: 8, steps: 1, threads: 2 }), { baselineMB: 10, peakMB: 20, afterMB: 15 });
  t.match(res.meta.peer, { torch: '0.0-fake', blas: /reference BLAS/ });
  t.ok(res.meta.warnings.some((w) => /reference BLAS/.test(w)), 'the reference BLAS is flagged');
  const md = fs.readFileSync(report, 'utf8');
  t.match(md, /\| Warnings \| .*reference BLAS/);
  t.match(md, /error: boom/);
});

t.test('native program protocol', async (t) => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'encsec-bench-'));
  t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));
  // Answers like benchmarks/native/bench_naive.cpp.
  const exe = fakeProgram(
    tmp,
    'fake-bench',
    `let input = '';
process.stdin.on('data', (d) => (input += d));
process.stdin.on('end', () => {
  for (const line of input.split('\\n').filter(Boolean)) {
    const [id, impl, op] = line.split(' ');
    if (id === 'peak') console.log(JSON.stringify({ peak: true, gflops: 100, threads: 2, single_thread_gflops: 50, isa: 'fake' }));
    else if (op === 'bogus') console.log(JSON.stringify({ id, error: 'unknown op bogus' }));
    else console.log(JSON.stringify({ id, impl, iters: 4, samples_ms: [2, 3, 4] }));
  }
});`,
  );
  const seen: string[] = [];
  const res = await runNativeBench(
    exe,
    0.1,
    [
      { id: 'a', impl: 'naive', op: 'conv2d_fwd', warmup: 0, repeats: 3, minSampleMs: 0, args: [1, 1, 4, 4, 1, 3, 1, 1] },
      { id: 'b', impl: 'fast', op: 'bogus', warmup: 0, repeats: 1, minSampleMs: 0, args: [] },
    ],
    (r) => seen.push(r.id),
  );
  t.same(res.peak, { gflops: 100, threads: 2, singleThreadGflops: 50, isa: 'fake' });
  t.same(res.timings, [{ id: 'a', impl: 'naive', iters: 4, samplesMs: [2, 3, 4] }]);
  t.same(res.errors, [{ id: 'b', error: 'unknown op bogus' }]);
  t.same(seen, ['a', 'b']);
});

t.test('targets are judged from the figures', async (t) => {
  const ms = (medianMs: number, value: number): Measured => ({ medianMs, minMs: medianMs, maxMs: medianMs, iters: 1, samplesMs: [medianMs], value });
  const ids = new Set(['e2e.simclr-step.cnn-small', 'e2e.inference.cnn-small', 'e2e.simclr-step.resnet18-cifar', 'ntxent.n256.d128', 'memory.rss.cnn-small-step']);
  const rows: RowResult[] = buildSuite(FULL_SIZES)
    .filter((r) => ids.has(r.id) || (r.deep ?? false))
    .map((r) => ({ ...r }));
  for (const r of rows) {
    if (r.group === 'memory') r.memory = { encsec: { baselineMB: 50, peakMB: 900, afterMB: 800 }, peer: { baselineMB: 240, peakMB: 1200, afterMB: 1100 } };
    else if (r.deep) r.encsec = ms(10, r.id.endsWith('layer3') && r.id.includes('bwd') ? 70 : 90); // one deep row at 70% of a 100 GFLOP/s peak
    else r.encsec = ms(10, 100);
  }
  const peer = (id: string, medianMs: number) => {
    const r = rows.find((x) => x.id === id)!;
    r.peer = ms(medianMs, 1);
  };
  peer('e2e.simclr-step.cnn-small', 13); // 1.3x: met
  peer('e2e.inference.cnn-small', 12); // 1.2x: not met
  peer('e2e.simclr-step.resnet18-cifar', 10); // 1.0x: met
  peer('ntxent.n256.d128', 35); // 3.5x: met
  const meta = {
    quick: false,
    peak: { gflops: 100, threads: 2, singleThreadGflops: 50, isa: 'avx512' },
  } as unknown as RunMeta;
  const targets = evaluateTargets(rows, meta);
  t.same(
    targets.map((x) => x.met),
    [true, false, true, false, true, true, false, true],
  );
  t.match(targets[3].measured, /worst 70\.0% \(conv2d\.bwd\.resnet18\.layer3\); 9 of 10 rows/);
  // Every end-to-end row against 1.2x: 1.3x, 1.2x and 1.0x -> the resnet step misses.
  t.match(targets[6].measured, /worst 1\.00× \(e2e\.simclr-step\.resnet18-cifar\); 2 of 3 rows ≥ 1\.20×; below: e2e\.simclr-step\.resnet18-cifar 1\.00×/);
  // The step's conv work: 256 x 2 x 217.7 MFLOP in 10 ms against a 100 GFLOP/s peak.
  // A faster glibc-malloc peer run counts: 1.3x against jemalloc but 1.1x against glibc misses.
  const withGlibc = rows.map((r) => (r.id === 'e2e.simclr-step.resnet18-cifar' ? { ...r, peer: ms(13, 1) } : r.id === 'e2e.simclr-step.cnn-small' ? { ...r, peerGlibc: ms(11, 1) } : r));
  t.match(evaluateTargets(withGlibc, meta)[6].measured, /worst 1\.10× \(e2e\.simclr-step\.cnn-small\); 2 of 3 rows/);
  const judged = evaluateTargets(withGlibc, meta);
  t.equal(judged[0].met, false, 'the 1.25x step target is judged against the faster (glibc) run too');
  t.match(judged[0].measured, /^1\.10× \(encsec .* vs PyTorch .* on glibc malloc\)$/);
  const stepRow = rows.find((r) => r.id === 'e2e.simclr-step.cnn-small')!;
  // By hand: forward 2·OC·OH·OW·C·9 = 451,584 + 28,901,376 + 28,901,376 + 14,450,688; training 3 × forward − conv1's.
  t.equal(stepRow.convFlops, 256 * 2 * 217_663_488, 'the step counts two views of 217.7 MFLOP');
  t.match(targets[7].measured, /^11144\.4% \(11144\.4 conv GFLOP\/s of 100\.0\)/);
  const slow = rows.map((r) => (r.id === 'e2e.simclr-step.cnn-small' ? { ...r, encsec: ms(1394, 1) } : r));
  t.equal(evaluateTargets(slow, meta)[7].met, false, 'the same work in 1394 ms is 79.9% of the peak: missed');
  t.same(evaluateTargets(rows, { ...meta, quick: true }).map((x) => x.met), [null, null, null, null, null, null, null, null], 'quick runs are not judged');

  const md = renderMarkdown({
    meta: {
      ...meta,
      date: '2000-01-01T00:00:00.000Z',
      host: 'h',
      command: 'npm run bench',
      options: {},
      cpu: { model: 'cpu', logicalCpus: 2, physicalCores: 2 },
      threads: 2,
      peakNote: '',
      node: 'v20',
      encsec: { version: '0', backend: 'cpu', reason: 'r', cpuKernels: 'avx512', cudaStatus: '', cudaDevices: [] },
      nativeProgram: 'p',
      warnings: [],
      peer: { python: 'python3', torch: '1.13', threads: 2, blas: 'openblas', mkldnn: true, ompWaitPolicy: 'default', note: '' },
      cuda: 'none',
      filter: null,
    },
    rows,
    targets,
  });
  t.match(md, /\| SimCLR step, cnn-small, batch 256 \(images\/s\) \| ≥ 1\.25× PyTorch \(the faster of its peer runs\) \| 1\.30× .*\| \*\*yes\*\* \|/);
  t.match(md, /\| Encoder inference, cnn-small, batch 256 \(images\/s\) .*\| \*\*no\*\* \|/);
  t.match(md, /\| `conv2d\.bwd\.resnet18\.layer3` \| .* \| 70\.0% \|/);
  t.match(md, /\| `memory\.rss\.cnn-small-step` \| .* \| 900 \(baseline 50\) \| 1200 \(baseline 240\) \| 0\.75× \|/);

  // --update: one re-measured row replaces its namesake, the rest and the
  // machine facts stay, the targets are judged again and the report says so.
  const base: RunResults = {
    meta: { ...meta, date: '2000-01-01T00:00:00.000Z', command: 'npm run bench', warnings: [], filter: null } as RunMeta,
    rows,
    targets,
  };
  const memRow = rows.find((r) => r.group === 'memory')!;
  const fresh: RunResults = {
    meta: { quick: false, filter: 'memory', date: '2000-01-02T00:00:00.000Z', command: 'npm run bench -- --filter memory', warnings: ['busy'] } as unknown as RunMeta,
    rows: [{ ...memRow, memory: { encsec: { baselineMB: 50, peakMB: 1600, afterMB: 800 } } }],
    targets: [],
  };
  const merged = mergeInto(base, fresh);
  t.equal(merged.rows.length, rows.length, 'no row added or lost');
  t.equal(merged.rows.find((r) => r.group === 'memory')!.memory!.encsec, fresh.rows[0].memory!.encsec, 'the re-measured row replaces the old one');
  t.equal(merged.rows.find((r) => r.id === 'e2e.inference.cnn-small'), rows.find((r) => r.id === 'e2e.inference.cnn-small'), 'other rows are kept');
  t.same(merged.targets.map((x) => x.met), [true, false, true, false, true, false, false, true], 'targets judged again: 1600 MB misses the memory target');
  t.same(merged.meta.updates, [{ date: '2000-01-02T00:00:00.000Z', command: 'npm run bench -- --filter memory', rows: ['memory.rss.cnn-small-step'] }]);
  t.same(merged.meta.warnings, ['(2000-01-02 update) busy']);
  t.equal(merged.meta.peak, meta.peak, "the base run's machine facts stay");
  t.throws(() => mergeInto(base, { ...fresh, rows: [{ ...memRow, id: 'no.such.row' }] }), /no\.such\.row are not in the base results/);
  t.throws(() => mergeInto(base, { ...fresh, meta: { ...fresh.meta, quick: true } }), /--quick run cannot update/);
});

t.test('--update refuses a partial base file', async (t) => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'encsec-bench-'));
  t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const partial = path.join(tmp, 'partial.json');
  fs.writeFileSync(partial, JSON.stringify({ meta: { quick: false, filter: 'conv' }, rows: [] }));
  await t.rejects(main(['--filter', '^ntxent.n256.d128$', '--no-native', '--no-peer', '--repeats', '1', '--warmup', '0', '--update', partial], () => {}), /a partial \(--quick or --filter\) run/);
  const garbage = path.join(tmp, 'garbage.json');
  fs.writeFileSync(garbage, '{"meta"');
  await t.rejects(main(['--filter', '^ntxent.n256.d128$', '--no-native', '--no-peer', '--repeats', '1', '--warmup', '0', '--update', garbage], () => {}), /cannot read it as results JSON/);
});

t.test('peak RSS is this process\'s high-water mark', async (t) => {
  const before = peakRssBytes();
  t.ok(before >= process.memoryUsage().rss * 0.5, `VmHWM ${before} is of the order of the current RSS ${process.memoryUsage().rss}`);
  const big = Buffer.alloc(64 * 2 ** 20, 1); // touched: 64 MiB resident
  t.ok(peakRssBytes() >= big.length, 'the high-water mark covers a 64 MiB buffer');
  t.ok(peakRssBytes() >= before, 'it never decreases');
});

t.test('CPUs in use by other work', async (t) => {
  const u = cpuInUse(200);
  t.ok(u >= 0 && u <= os.cpus().length, `${u} is between 0 and the number of CPUs`);
});
