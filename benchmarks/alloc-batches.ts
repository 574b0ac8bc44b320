// Host memory of a server's inference under varying batch sizes. The HTTP
// server's dynamic batcher (lib/server/batcher.ts) runs batches of every size
// from 1 to maxBatch, and every size that leaves blocks in the host
// allocator's cache (native/alloc.cpp) that the next sizes cannot use grows
// the process: this runs the server's native step (lib/server/app.ts:
// Tensor.from, embedAsync, toArray, dispose) on seeded random batch sizes and
// prints the resident memory and the allocator's cached bytes as it goes.
//
//   node dist/benchmarks/alloc-batches.js [--arch cnn-small] [--batches 2000]
//        [--max-batch 256] [--every 200] [--seed 0] [--threads N]
//
// One line per `--every` batches: batches run, distinct batch sizes seen so
// far, RSS and cache (MiB = 2^20 bytes), images/s over those batches; then a
// JSON summary line. Run it in a process of its own (the RSS is the process's).
import { cacheBytes, info, setThreads } from '../lib/core/backend';
import { Tensor } from '../lib/core/tensor';
import { Prng } from '../lib/data/prng';
import { ARCHITECTURES, createEncoder, type Architecture } from '../lib/nn/encoders';
import { embedAsync } from '../lib/nn/module';

interface Options {
  arch: Architecture;
  batches: number;
  maxBatch: number;
  every: number;
  seed: number;
  threads: number | null;
}

function parseArgs(argv: readonly string[]): Options {
  const o: Options = { arch: 'cnn-small', batches: 2000, maxBatch: 256, every: 200, seed: 0, threads: null };
  const int = (flag: string, v: string | undefined, min: number): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new RangeError(`${flag} must be an integer >= ${min}, got ${v}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = argv[i + 1];
    switch (a) {
      case '--arch':
        if (!(ARCHITECTURES as readonly string[]).includes(v ?? '')) throw new RangeError(`--arch must be one of ${ARCHITECTURES.join(', ')}, got ${v}`);
        o.arch = v as Architecture;
        break;
      case '--batches': o.batches = int(a, v, 1); break;
      case '--max-batch': o.maxBatch = int(a, v, 1); break;
      case '--every': o.every = int(a, v, 1); break;
      case '--seed': o.seed = int(a, v, 0); break;
      case '--threads': o.threads = int(a, v, 1); break;
      default: throw new RangeError(`unknown option ${a}`);
    }
    i++;
  }
  return o;
}

const MiB = 1 << 20;

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  if (o.threads !== null) setThreads(o.threads);
  const encoder = createEncoder(o.arch, { seed: o.seed });
  const [c, side] = o.arch === 'cnn-small' ? [1, 28] : [3, 32];
  const per = c * side * side;
  const rng = new Prng(o.seed, 1);
  // Every batch takes its images from one seeded pool (the values do not
  // change the work or the allocations, only the sizes do).
  const pool = new Float32Array(o.maxBatch * per);
  for (let i = 0; i < pool.length; i++) pool[i] = rng.uniform(-1, 1);

  const ni = info();
  process.stdout.write(`# ${o.arch}, ${o.batches} batches of 1..${o.maxBatch} images (seed ${o.seed}); ${ni.backend}, ${ni.cpuThreads} threads, cpu kernels ${ni.cpuKernels}; ENCSEC_HOST_CACHE_MB=${process.env.ENCSEC_HOST_CACHE_MB ?? '(default)'}\n`);
  process.stdout.write('batches  sizes  rss_MiB  cache_MiB  images/s\n');
  const samples: Array<{ batches: number; sizes: number; rssMiB: number; cacheMiB: number; imagesPerSec: number }> = [];
  const seen = new Set<number>();
  let images = 0, totalImages = 0;
  const t0 = process.hrtime.bigint();
  let tWindow = t0;
  for (let b = 1; b <= o.batches; b++) {
    const n = 1 + rng.int(o.maxBatch);
    seen.add(n);
    // The server's run() (lib/server/app.ts).
    const t = Tensor.from(pool.subarray(0, n * per), [n, c, side, side]);
    try {
      const out = await embedAsync(encoder, t);
      try {
        out.toArray();
      } finally {
        out.dispose();
      }
    } finally {
      t.dispose();
    }
    images += n;
    totalImages += n;
    if (b % o.every === 0 || b === o.batches) {
      const now = process.hrtime.bigint();
      const s = {
        batches: b,
        sizes: seen.size,
        rssMiB: process.memoryUsage().rss / MiB,
        cacheMiB: cacheBytes() / MiB,
        imagesPerSec: images / (Number(now - tWindow) / 1e9),
      };
      samples.push(s);
      process.stdout.write(`${String(b).padStart(7)}  ${String(s.sizes).padStart(5)}  ${s.rssMiB.toFixed(0).padStart(7)}  ${s.cacheMiB.toFixed(0).padStart(9)}  ${s.imagesPerSec.toFixed(0).padStart(8)}\n`);
      images = 0;
      tWindow = now;
    }
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  encoder.dispose();
  process.stdout.write(`${JSON.stringify({ arch: o.arch, batches: o.batches, maxBatch: o.maxBatch, seed: o.seed, images: totalImages, seconds, imagesPerSec: totalImages / seconds, samples })}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
  process.exitCode = 1;
});
