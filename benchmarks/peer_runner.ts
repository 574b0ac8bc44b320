// Finds a Python with PyTorch and runs benchmarks/peer/torch_bench.py.
//
// The Python: $ENCSEC_BENCH_PYTHON, else the first of python3,
// /usr/bin/python3, python that imports torch (a pyenv shim may shadow the
// system Python that has it).
//
// BLAS: a PyTorch built against the system's libblas.so.3 (Debian's) uses
// whatever that resolves to, which may be the unoptimised reference BLAS: its
// matrix products run some 20x below an optimised library, which would make
// every matmul-heavy peer row (NT-Xent, cosine, linear layers) meaningless.
// So the peer process gets an optimised libblas.so.3 first on its
// LD_LIBRARY_PATH when one is found: $ENCSEC_BENCH_BLAS_DIR, OpenBLAS/BLIS
// from the system's multiarch directories, or a copy unpacked under
// build-bench/peer-blas/ (see BENCHMARKS.md). Nothing system-wide changes.
// The peer reports the BLAS it really loaded, and the report shows it.
//
// Allocator: PyTorch on glibc's malloc loses much of a training step to
// page faults and returning memory (a SimCLR step 1.37x slower than with
// jemalloc, measured on a 2-core AMD EPYC). A tuned peer runs on jemalloc,
// preloaded (LD_PRELOAD) from $ENCSEC_BENCH_JEMALLOC, the system's
// libjemalloc.so.2 (Debian: libjemalloc2) or a copy unpacked under
// build-bench/peer-blas/, with MALLOC_CONF as Intel's PyTorch launcher sets it
// (unless the environment sets one). The step and job rows also run the peer
// on glibc's malloc (withAllocator(env, 'glibc')), so both figures show.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import * as readline from 'node:readline';

export interface PeerEnv {
  python: string;
  torchVersion: string;
  blasDir: string | null;
  /** The jemalloc preloaded into the peer, or null (glibc's malloc). */
  jemalloc: string | null;
  /** OMP_WAIT_POLICY of the peer process ('default' when unset). */
  ompWaitPolicy: string;
  env: NodeJS.ProcessEnv;
}

export interface PeerMeta {
  torch: string;
  threads: number;
  mkldnn: boolean;
  blas: string;
  device: string;
  cuda: string | null;
  /** Shared objects mapped into the peer (/proc/self/maps); absent from older peers. */
  libs?: string[];
  allocator?: string;
}

/**
 * MALLOC_CONF for jemalloc under PyTorch: Intel's PyTorch launcher setting (keep freed pages, no decay) with
 * jemalloc's background thread off. With decay disabled that thread has nothing to purge, and when PyTorch's
 * threads take every core (the benchmark runs one per core) it preempts a compute thread while OpenMP's partner
 * spins: on a 2-core AMD EPYC the cnn-small SimCLR step took 1987 ms median (1363–3569) with it and 1436 ms
 * (1386–1703) without.
 */
export const JEMALLOC_CONF = 'oversize_threshold:1,background_thread:false,metadata_thp:auto,dirty_decay_ms:9000000000,muzzy_decay_ms:9000000000';

export function findJemalloc(root: string): string | null {
  const candidates: string[] = [];
  if (process.env.ENCSEC_BENCH_JEMALLOC) candidates.push(process.env.ENCSEC_BENCH_JEMALLOC);
  const multiarch = os.arch() === 'x64' ? 'x86_64-linux-gnu' : os.arch() === 'arm64' ? 'aarch64-linux-gnu' : '';
  if (multiarch) {
    candidates.push(path.join('/usr/lib', multiarch, 'libjemalloc.so.2'));
    candidates.push(path.join(root, 'build-bench', 'peer-blas', 'usr', 'lib', multiarch, 'libjemalloc.so.2'));
  }
  candidates.push('/usr/lib/libjemalloc.so.2', '/usr/local/lib/libjemalloc.so.2');
  return candidates.find((f) => fs.existsSync(f)) ?? null;
}

/**
 * The same peer on another allocator: 'jemalloc' preloads env.jemalloc (with
 * JEMALLOC_CONF unless MALLOC_CONF is set), 'glibc' removes the preload.
 */
export function withAllocator(peer: PeerEnv, which: 'jemalloc' | 'glibc'): PeerEnv {
  const env: NodeJS.ProcessEnv = { ...peer.env };
  const others = (env.LD_PRELOAD ?? '').split(/[: ]+/).filter((p) => p && !/jemalloc/.test(path.basename(p)));
  if (which === 'jemalloc' && peer.jemalloc) {
    env.LD_PRELOAD = [peer.jemalloc, ...others].join(':');
    if (!process.env.MALLOC_CONF) env.MALLOC_CONF = JEMALLOC_CONF;
    return { ...peer, env };
  }
  if (others.length) env.LD_PRELOAD = others.join(':');
  else delete env.LD_PRELOAD;
  if (!process.env.MALLOC_CONF) delete env.MALLOC_CONF;
  return { ...peer, jemalloc: null, env };
}

export interface PeerRowRequest {
  id: string;
  op: string;
  params: Record<string, number | string>;
  warmup: number;
  repeats: number;
  minSampleMs: number;
}

export type PeerRowResult =
  | { id: string; iters: number; samplesMs: number[] }
  | { id: string; error: string }
  | { id: string; skipped: string };

function findBlasDir(root: string): string | null {
  const candidates: string[] = [];
  if (process.env.ENCSEC_BENCH_BLAS_DIR) candidates.push(process.env.ENCSEC_BENCH_BLAS_DIR);
  const multiarch = os.arch() === 'x64' ? 'x86_64-linux-gnu' : os.arch() === 'arm64' ? 'aarch64-linux-gnu' : '';
  const flavours = ['openblas-pthread', 'openblas-openmp', 'openblas-serial', 'blis-pthread', 'blis-openmp'];
  if (multiarch) {
    for (const f of flavours) candidates.push(path.join('/usr/lib', multiarch, f));
    for (const f of flavours) candidates.push(path.join(root, 'build-bench', 'peer-blas', 'usr', 'lib', multiarch, f));
  }
  return candidates.find((d) => fs.existsSync(path.join(d, 'libblas.so.3'))) ?? null;
}

/**
 * The Python + torch to use, or the reason there is none. `busy`: the machine
 * has other work running. OpenMP threads then wait for each other passively
 * (OMP_WAIT_POLICY=PASSIVE, unless the caller's environment sets it): with
 * the default spin-waiting, a PyTorch op on 2 threads whose partner thread
 * is descheduled was measured 50x slower on a loaded 2-core machine. On an
 * idle machine PyTorch keeps its default (spinning), its fastest setting.
 */
export function findPeer(root: string, threads: number, busy = false): PeerEnv | { reason: string } {
  const list = process.env.ENCSEC_BENCH_PYTHON ? [process.env.ENCSEC_BENCH_PYTHON] : ['python3', '/usr/bin/python3', 'python'];
  const tried: string[] = [];
  for (const py of list) {
    const r = spawnSync(py, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8', timeout: 120000 });
    if (r.status === 0) {
      const blasDir = os.platform() === 'linux' ? findBlasDir(root) : null;
      const env: NodeJS.ProcessEnv = {
        ...process.env,
        OMP_NUM_THREADS: String(threads),
        MKL_NUM_THREADS: String(threads),
        OPENBLAS_NUM_THREADS: String(threads),
      };
      if (blasDir) env.LD_LIBRARY_PATH = [blasDir, process.env.LD_LIBRARY_PATH].filter(Boolean).join(':');
      if (busy && !process.env.OMP_WAIT_POLICY) env.OMP_WAIT_POLICY = 'PASSIVE';
      const jemalloc = os.platform() === 'linux' ? findJemalloc(root) : null;
      const peer: PeerEnv = { python: py, torchVersion: r.stdout.trim(), blasDir, jemalloc, ompWaitPolicy: env.OMP_WAIT_POLICY ?? 'default', env };
      return withAllocator(peer, jemalloc ? 'jemalloc' : 'glibc');
    }
    tried.push(`${py}: ${r.error ? r.error.message : (r.stderr || '').trim().split('\n').pop()}`);
  }
  return { reason: `no Python with PyTorch found (${tried.join('; ')})` };
}

/** Runs the peer on `rows` (one process); onResult sees each row as it finishes. */
export function runPeer(
  root: string,
  peer: PeerEnv,
  spec: { threads: number; device: 'cpu' | 'cuda'; rows: PeerRowRequest[] },
  onResult: (r: PeerRowResult) => void,
): Promise<{ meta: PeerMeta | null; results: PeerRowResult[] }> {
  return runPeerScript(root, peer, 'torch_bench.py', spec, spec.rows.map((r) => r.id), (r) => onResult(r as unknown as PeerRowResult)) as unknown as Promise<{
    meta: PeerMeta | null;
    results: PeerRowResult[];
  }>;
}

/**
 * Runs a peer script of benchmarks/peer/ on a JSON spec file; it prints a
 * {"meta"} line, then one JSON line per id. Ids without a line get an error.
 */
export function runPeerScript(
  root: string,
  peer: PeerEnv,
  scriptName: string,
  spec: object,
  ids: readonly string[],
  onResult: (r: Record<string, unknown> & { id: string }) => void,
): Promise<{ meta: PeerMeta | null; results: (Record<string, unknown> & { id: string })[] }> {
  const dir = path.join(root, 'build-bench');
  fs.mkdirSync(dir, { recursive: true });
  const specFile = path.join(dir, `peer-spec-${process.pid}.json`);
  fs.writeFileSync(specFile, JSON.stringify(spec));
  const script = path.join(root, 'benchmarks', 'peer', scriptName);
  return new Promise((resolve, reject) => {
    const child = spawn(peer.python, [script, specFile], { env: peer.env, stdio: ['ignore', 'pipe', 'inherit'] });
    let meta: PeerMeta | null = null;
    const results: (Record<string, unknown> & { id: string })[] = [];
    const rl = readline.createInterface({ input: child.stdout });
    rl.on('line', (line) => {
      if (!line.trim()) return;
      let o: Record<string, unknown>;
      try {
        o = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return;
      }
      if (o.meta) {
        meta = o.meta as PeerMeta;
        return;
      }
      const id = String(o.id);
      let r: Record<string, unknown> & { id: string };
      if (typeof o.error === 'string') r = { id, error: o.error };
      else if (typeof o.skipped === 'string') r = { id, skipped: o.skipped };
      else if (Array.isArray(o.samples_ms)) r = { id, iters: Number(o.iters), samplesMs: (o.samples_ms as number[]).map(Number) };
      else r = { ...o, id };
      results.push(r);
      onResult(r);
    });
    child.on('error', (e) => {
      fs.rmSync(specFile, { force: true });
      reject(e);
    });
    child.on('close', (code) => {
      fs.rmSync(specFile, { force: true });
      if (code !== 0 && results.length < ids.length) {
        for (const id of ids) {
          if (!results.some((r) => r.id === id)) {
            const r = { id, error: `peer process exited with code ${code}` };
            results.push(r);
            onResult(r);
          }
        }
      }
      resolve({ meta, results });
    });
  });
}

/** Peak RSS of the PyTorch SimCLR step in a fresh Python process. */
export function peerRss(root: string, peer: PeerEnv, args: { arch: string; batch: number; steps: number; threads: number }) {
  const script = path.join(root, 'benchmarks', 'peer', 'torch_bench.py');
  const r = spawnSync(peer.python, [script, '--rss', JSON.stringify(args)], { env: peer.env, encoding: 'utf8', maxBuffer: 1 << 20 });
  if (r.status !== 0) return { error: (r.stderr || r.error?.message || `exit ${r.status}`).trim().split('\n').slice(-3).join(' ') };
  try {
    return JSON.parse(r.stdout.trim().split('\n').pop() ?? '') as { baselineMB: number; peakMB: number; afterMB: number };
  } catch {
    return { error: `unreadable output: ${r.stdout}` };
  }
}
