// Machine types and peer environment: the machine slug, the reading of a
// peer's /proc/self/maps (allocator, BLAS), the jemalloc / glibc variants of
// the peer's environment, and BENCHMARKS.md's per-machine sections (one run
// per machine type, the current one first, none overwritten).
import t from 'tap';
import { detectAllocator, detectBlas, latestPerMachine, machineSlug, parseMaps } from '../../benchmarks/machine';
import { withAllocator, JEMALLOC_CONF, type PeerEnv } from '../../benchmarks/peer_runner';
import { renderMarkdown } from '../../benchmarks/report';
import type { RunMeta, RunResults } from '../../benchmarks/results';

const MAPS = `55d0c0a00000-55d0c0a2b000 r--p 00000000 08:01 123 /usr/bin/python3.11
7f1a2c000000-7f1a2c021000 r--p 00000000 08:01 456 /usr/lib/x86_64-linux-gnu/libjemalloc.so.2
7f1a2d000000-7f1a2d400000 r-xp 00000000 08:01 789 /usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblasp-r0.3.21.so
7f1a2d400000-7f1a2d500000 r-xp 00000000 08:01 790 /usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3
7f1a2e000000-7f1a2e100000 r-xp 00000000 08:01 791 /usr/lib/python3/dist-packages/torch/lib/libtorch_cpu.so
7f1a2f000000-7f1a2f021000 rw-p 00000000 00:00 0
7ffd1c000000-7ffd1c021000 rw-p 00000000 00:00 0 [stack]
`;

t.test('a peer\'s maps: libraries, allocator, BLAS', async (t) => {
  const libs = parseMaps(MAPS);
  t.equal(libs.length, 4, 'shared objects only, each once');
  t.same(detectAllocator(libs), { name: 'jemalloc', path: '/usr/lib/x86_64-linux-gnu/libjemalloc.so.2' });
  t.same(detectAllocator(libs.filter((l) => !/jemalloc/.test(l))), { name: 'glibc', path: null });
  t.same(detectAllocator(['/usr/lib/libtcmalloc_minimal.so.4']).name, 'tcmalloc');
  t.match(detectBlas(libs), /libopenblasp-r0\.3\.21\.so$/);
  t.equal(detectBlas(['/usr/lib/x86_64-linux-gnu/blas/libblas.so.3']), '/usr/lib/x86_64-linux-gnu/blas/libblas.so.3 (reference BLAS)');
  t.equal(detectBlas([]), 'unknown');
});

t.test('the peer environment on jemalloc and on glibc', async (t) => {
  const saved = process.env.MALLOC_CONF;
  delete process.env.MALLOC_CONF;
  t.teardown(() => {
    if (saved !== undefined) process.env.MALLOC_CONF = saved;
  });
  const base: PeerEnv = { python: 'py', torchVersion: '2', blasDir: null, jemalloc: '/x/libjemalloc.so.2', ompWaitPolicy: 'default', env: { LD_PRELOAD: '/y/libfoo.so' } };
  const je = withAllocator(base, 'jemalloc');
  t.equal(je.env.LD_PRELOAD, '/x/libjemalloc.so.2:/y/libfoo.so', 'jemalloc first, other preloads kept');
  t.equal(je.env.MALLOC_CONF, JEMALLOC_CONF);
  const gl = withAllocator(je, 'glibc');
  t.equal(gl.env.LD_PRELOAD, '/y/libfoo.so');
  t.equal(gl.env.MALLOC_CONF, undefined);
  t.equal(gl.jemalloc, null);
  t.equal(withAllocator({ ...base, jemalloc: null, env: {} }, 'jemalloc').env.LD_PRELOAD, undefined, 'no jemalloc: nothing preloaded');
});

t.test('machine slugs', async (t) => {
  t.equal(machineSlug('Intel(R) Xeon(R) Processor', 'avx512'), 'intel-xeon-avx512');
  t.equal(machineSlug('AMD EPYC 7B13 64-Core Processor', 'avx2'), 'amd-epyc-7b13-64-core-avx2');
  t.equal(machineSlug('Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz', 'avx2'), 'intel-core-i7-8700-avx2');
});

function run(model: string, kernels: string, date: string, peak: number, extra: Partial<RunMeta> = {}): RunResults {
  const meta = {
    date,
    host: 'vm',
    command: 'npm run bench',
    options: {},
    cpu: { model, logicalCpus: 2, physicalCores: 2 },
    threads: 2,
    peak: { gflops: peak, threads: 2, singleThreadGflops: peak / 2, isa: kernels },
    peakNote: '',
    node: 'v20',
    encsec: { version: '0.1.0', backend: 'cpu', reason: '', cpuKernels: kernels, cudaStatus: '', cudaDevices: [] },
    nativeProgram: '',
    warnings: [],
    peer: { absent: 'not run' },
    cuda: 'none',
    quick: false,
    filter: null,
    ...extra,
  } as RunMeta;
  return {
    meta,
    rows: [
      {
        id: 'job.probe.cnn-small',
        group: 'job',
        shape: 'embed 60000 TRAIN + 10000 TEST, probe 100 epochs',
        op: 'job_probe',
        params: {},
        metric: 'images/s',
        work: 70000,
        convFlops: 5.089e12,
        onCuda: false,
        encsec: { medianMs: 50000, minMs: 50000, maxMs: 50000, iters: 1, samplesMs: [50000], value: 1400 },
        peer: { medianMs: 60000, minMs: 60000, maxMs: 60000, iters: 1, samplesMs: [60000], value: 1166 },
        peerGlibc: { medianMs: 75000, minMs: 75000, maxMs: 75000, iters: 1, samplesMs: [75000], value: 933 },
      },
    ],
    targets: [],
  };
}

t.test('BENCHMARKS.md: a section per machine type, newest run of each', async (t) => {
  const intel = run('Intel(R) Xeon(R) Processor', 'avx512', '2026-11-23T14:51:21Z', 448.3);
  const intelOld = run('Intel(R) Xeon(R) Processor', 'avx512', '2026-11-01T00:00:00Z', 400);
  const amdQuick = run('AMD EPYC', 'avx2', '2026-12-02T00:00:00Z', 10, { quick: true });
  const amd = run('AMD EPYC', 'avx2', '2026-12-01T00:00:00Z', 115.2);
  const picked = latestPerMachine([intelOld, intel, amdQuick], amd);
  t.same(picked.map((r) => r.meta.date), [amd.meta.date, intel.meta.date], 'the current run first, then the newest complete run of each other machine; quick runs never');
  const md = renderMarkdown(amd, picked.slice(1));
  t.match(md, /## Machines[\s\S]*\| \[amd-epyc-avx2\]\(#amd-epyc-avx2-kernels\) \| AMD EPYC: 2 logical CPUs, 2 physical cores \| avx2 \| 115\.2 GFLOP\/s \(2 threads\)/);
  t.match(md, /\| \[intel-xeon-avx512\]\(#intelr-xeonr-processor-avx512-kernels\) \|/);
  const amdAt = md.indexOf('## AMD EPYC, avx2 kernels');
  const intelAt = md.indexOf('## Intel(R) Xeon(R) Processor, avx512 kernels');
  t.ok(amdAt > 0 && intelAt > amdAt, 'both sections, this run first');
  t.ok(md.indexOf('## How the figures are made') > intelAt, 'the method once, at the end');
  // The job table: seconds, conv GFLOP/s and % of each machine's own peak, both PyTorch figures.
  // 5089 GFLOP in 50 s = 101.8 GFLOP/s: 88.4% of 115.2 (AMD) and 22.7% of 448.3 (Intel).
  t.match(md.slice(amdAt, intelAt), /\| `job\.probe\.cnn-small` \| .* \| 50\.00 \| 101\.8 \| 88\.4% \| 60\.00 \| 73\.6% \| 1\.20× \| 75\.00 \| 1\.50× \| 5089 \|/);
  t.match(md.slice(intelAt), /\| `job\.probe\.cnn-small` \| .* \| 50\.00 \| 101\.8 \| 22\.7% \|/);
  t.equal(renderMarkdown(amd, [run('AMD EPYC', 'avx2', '2026-10-01T00:00:00Z', 100)]).match(/## AMD EPYC, avx2 kernels/g)?.length, 1, 'the same machine type is never shown twice');
});
