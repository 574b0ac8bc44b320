// The server under load (issue 16's acceptance numbers), all on loopback:
//
//   1. reference: the library's in-process batched inference at batch 256
//      (embedSync in a loop), images/s;
//   2. `encsec serve` in a child process, autocannon (programmatic) with 64
//      connections sending 1-image requests, then 32-image requests,
//      unthrottled: the peak images/s, and its ratio to the reference
//      (targets: >= 80% for 1-image, >= 90% for 32-image requests);
//   3. latency p50/p99 at 50%, 80% and 100% of each peak request rate;
//   4. with --soak S: S seconds at 80% of the 1-image peak, sampling the
//      server's resident memory every 5 s: it must be flat (no growth
//      trend); benchmarks/server/results.ts (analyseSoak) says what that is:
//      the second half's slope with its largest single rise taken out, the
//      largest rise, the longest gap between samples.
//
// Usage (after `npx tsc -p tsconfig.json`):
//   node dist/benchmarks/server/load.js [--duration 20] [--soak 600] [--arch cnn-small]
//        [--connections 64] [--max-delay-ms 2] [--defense none] [--out FILE]
// Prints one JSON object (and writes it to --out, default
// benchmarks/results/server-<date>-<host>.json) and, on stderr, the section
// BENCHMARKS.md shows for it (benchmarks/report.ts: serverSection; BENCHMARKS.md
// takes the newest server-*.json of each machine type: `npm run bench --
// --render-only` renders it again without measuring).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import autocannon from 'autocannon';
import { Tensor } from '../../lib/core/tensor';
import { info } from '../../lib/core/backend';
import { createEncoder, ARCHITECTURES, type Architecture } from '../../lib/nn/encoders';
import { embedSync } from '../../lib/nn/module';
import { saveEncoder } from '../../lib/io/checkpoint';
import { writeFileAtomic } from '../../lib/io/atomic';
import { KeyStore, openServerDb } from '../../lib/server';
import { machineSlug } from '../machine';
import { serverSection } from '../report';
import { analyseSoak, DEFAULT_SAMPLE_INTERVAL_S, type LoadResult, type ServerOptions, type ServerRun, type SizeResult, type SoakResult } from './results';

interface Options extends ServerOptions {
  arch: Architecture;
}

function parse(argv: string[]): Options {
  const o: Options = { duration: 20, soak: 0, arch: 'cnn-small', connections: 64, maxDelayMs: 2, defense: 'none', out: null };
  for (let i = 0; i < argv.length; i++) {
    const [name, value] = [argv[i], argv[i + 1]];
    const num = () => {
      const v = Number(value);
      if (!Number.isFinite(v) || v < 0) throw new Error(`${name} needs a non-negative number, got ${value}`);
      i++;
      return v;
    };
    if (name === '--duration') o.duration = Math.max(1, num());
    else if (name === '--soak') o.soak = num();
    else if (name === '--connections') o.connections = Math.max(1, Math.round(num()));
    else if (name === '--max-delay-ms') o.maxDelayMs = num();
    else if (name === '--arch') {
      if (!(ARCHITECTURES as readonly string[]).includes(value)) throw new Error(`--arch must be one of ${ARCHITECTURES.join(', ')}`);
      o.arch = value as Architecture;
      i++;
    } else if (name === '--defense') {
      o.defense = value;
      i++;
    } else if (name === '--out') {
      o.out = value;
      i++;
    } else throw new Error(`unknown option ${name} (see the header of benchmarks/server/load.ts)`);
  }
  return o;
}

const log = (s: string) => process.stderr.write(s + '\n');

/** The library's own batched inference: images/s at batch 256 for `seconds`. */
function inProcess(arch: Architecture, channels: number, size: number, seconds: number): number {
  const enc = createEncoder(arch, { inChannels: channels, seed: 0 }).eval();
  const x = Tensor.randn([256, channels, size, size], { seed: 1 });
  embedSync(enc, x).dispose(); // compile the plan, warm the caches
  let images = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < seconds * 1000) {
    embedSync(enc, x).dispose();
    images += 256;
  }
  const rate = images / ((performance.now() - t0) / 1000);
  x.dispose();
  enc.dispose();
  return rate;
}

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

async function startServer(encoderFile: string, dbFile: string, size: number, maxDelayMs: number): Promise<{ child: ChildProcess; url: string }> {
  const bin = path.join(__dirname, '..', '..', '..', 'bin', 'encsec.js');
  const child = spawn(process.execPath, [bin, 'serve', '--encoder', encoderFile, '--db', dbFile, '--port', '0', '--image-size', String(size), '--max-delay-ms', String(maxDelayMs)], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  return new Promise((resolve, reject) => {
    let err = '';
    child.stderr!.on('data', (b: Buffer) => {
      err += b.toString();
      const line = err.split('\n').find((l) => l.includes('"listening"'));
      if (line) resolve({ child, url: JSON.parse(line).url });
    });
    child.on('exit', (code) => reject(new Error(`encsec serve exited with ${code}: ${err}`)));
  });
}

async function load(url: string, key: string, n: number, channels: number, size: number, connections: number, seconds: number, overallRate?: number): Promise<LoadResult> {
  const x = new Float32Array(n * channels * size * size);
  for (let i = 0; i < x.length; i++) x[i] = Math.sin(i * 0.37);
  const r = await autocannon({
    url: url + '/v1/embed',
    method: 'POST',
    connections,
    duration: seconds,
    ...(overallRate ? { overallRate: Math.max(1, Math.round(overallRate)) } : {}),
    headers: {
      authorization: `Bearer ${key}`,
      'content-type': 'application/octet-stream',
      accept: 'application/octet-stream',
      'x-encsec-shape': `${n},${channels},${size},${size}`,
      'x-encsec-dtype': 'float32',
    },
    body: Buffer.from(x.buffer),
  });
  return { requestsPerSec: r.requests.average, imagesPerSec: r.requests.average * n, p50ms: r.latency.p50, p99ms: r.latency.p99, non2xx: r.non2xx, errors: r.errors };
}

async function main(): Promise<void> {
  const o = parse(process.argv.slice(2));
  const channels = o.arch === 'cnn-small' ? 1 : 3;
  const size = channels === 1 ? 28 : 32;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'encsec-load-'));
  const encoderFile = path.join(dir, 'encoder.safetensors');
  const dbFile = path.join(dir, 'serve.sqlite');
  const enc = createEncoder(o.arch, { inChannels: channels, seed: 0 });
  saveEncoder(encoderFile, enc);
  enc.dispose();
  const db = openServerDb(dbFile);
  const { key } = new KeyStore(db).add({ defense: o.defense, label: 'load generator' });
  db.close();

  log(`reference: in-process batched inference, batch 256, ${o.duration} s`);
  const reference = inProcess(o.arch, channels, size, o.duration);
  log(`  ${reference.toFixed(0)} images/s`);

  const { child, url } = await startServer(encoderFile, dbFile, size, o.maxDelayMs);
  const results: ServerRun['results'] = {};
  try {
    await load(url, key, 1, channels, size, o.connections, 2); // warm-up
    for (const n of [1, 32]) {
      log(`${o.connections} connections x ${n}-image requests, unthrottled, ${o.duration} s`);
      const peak = await load(url, key, n, channels, size, o.connections, o.duration);
      log(`  ${peak.imagesPerSec.toFixed(0)} images/s (${((100 * peak.imagesPerSec) / reference).toFixed(1)}% of in-process), p50 ${peak.p50ms} ms, p99 ${peak.p99ms} ms`);
      const at: Record<string, LoadResult> = { '100%': peak };
      for (const frac of [0.5, 0.8]) {
        log(`  at ${frac * 100}% of the peak rate`);
        at[`${frac * 100}%`] = await load(url, key, n, channels, size, o.connections, o.duration, peak.requestsPerSec * frac);
      }
      const bySize: SizeResult = { ratioToInProcess: peak.imagesPerSec / reference, target: n === 1 ? 0.8 : 0.9, at };
      results[n === 1 ? '1-image' : '32-image'] = bySize;
    }
    if (o.soak > 0) {
      const rate = results['1-image']!.at['100%'].requestsPerSec * 0.8;
      const interval = DEFAULT_SAMPLE_INTERVAL_S;
      log(`soak: ${o.soak} s at 80% of the 1-image peak (${rate.toFixed(0)} req/s), server RSS every ${interval} s`);
      // The sampler shares this process's event loop with autocannon: a gap
      // between samples well over the interval means this process stalled.
      const samples: [number, number][] = [];
      const t0 = Date.now();
      const timer = setInterval(() => samples.push([(Date.now() - t0) / 60000, rssMiB(child.pid!)]), interval * 1000);
      const soak = await load(url, key, 1, channels, size, o.connections, o.soak, rate);
      clearInterval(timer);
      const analysis = analyseSoak(samples, o.soak, interval);
      if (!analysis) throw new Error(`--soak needs at least ${3 * interval} s to sample a trend`);
      const result: SoakResult = { seconds: o.soak, sampleIntervalS: interval, load: soak, rssMiB: samples, analysis, flat: analysis.flat };
      results.soak = result;
      log(
        `  RSS ${analysis.start[1].toFixed(0)} -> ${analysis.afterWarmup[1].toFixed(0)} (warm) -> ${analysis.end[1].toFixed(0)} MiB; second-half slope ${analysis.secondHalfSlope.toFixed(3)} MiB/min, ` +
          `${analysis.secondHalfSlopeWithoutStep.toFixed(3)} without its largest rise; largest rise ${(analysis.largestStep?.mib ?? 0).toFixed(1)} MiB; ` +
          `longest sampling gap ${analysis.largestGap.seconds.toFixed(1)} s: ${analysis.flat ? 'flat' : 'GROWING'}`,
      );
    }
  } finally {
    child.kill('SIGTERM');
  }
  const backend = info();
  const cpuModel = os.cpus()[0]?.model?.trim() || 'unknown';
  const quote = (a: string) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);
  const command = ['node', path.relative(process.cwd(), process.argv[1]) || process.argv[1], ...process.argv.slice(2)].map(quote).join(' ');
  const out: ServerRun = {
    kind: 'server-load',
    date: new Date().toISOString(),
    host: os.hostname(),
    cpus: os.cpus().length,
    cpuModel,
    machine: machineSlug(cpuModel, backend.cpuKernels),
    command,
    backend,
    options: o,
    inProcessImagesPerSec: reference,
    results,
  };
  const file = o.out ?? path.join(__dirname, '..', '..', '..', 'benchmarks', 'results', `server-${new Date().toISOString().slice(0, 10)}-${os.hostname()}.json`);
  writeFileAtomic(file, JSON.stringify(out, null, 2) + '\n');
  log(`wrote ${file}`);
  log('\n' + serverSection([out]).join('\n'));
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((e) => {
  process.stderr.write(`load: ${(e as Error).message}\n`);
  process.exitCode = 1;
});
