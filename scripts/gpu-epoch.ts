// One SimCLR pre-training epoch with its images/s, for the device check
// (scripts/gpu-check.sh). Fashion-MNIST goes through `encsec pretrain`; this
// script covers what the CLI cannot load: synthetic data of any shape.
//
//   node dist/scripts/gpu-epoch.js --arch resnet18-cifar --synthetic 10240 [--channels 3 --size 32]
//        [--batch 256] [--epochs 1] [--device cpu|cuda] [--data fashion-mnist --limit N]
//
// Progress goes to stderr as JSON lines. Prints one JSON line on stdout: arch, data, images, batch, device, backend, GPU,
// seconds, imagesPerSec (of the last epoch, as SimCLR's history reports it),
// loss, and the whole history.
import { pretrainSimclr } from '../lib/ssl/simclr';
import { info, setDevice } from '../lib/core/backend';
import { loadDataset } from '../lib/data/builtin';
import { createProgress } from '../lib/report/progress';
import type { Dataset } from '../lib/data/dataset';
import type { Architecture } from '../lib/nn/encoders';

interface EpochArgs {
  arch: Architecture;
  synthetic: number | null;
  data: 'fashion-mnist' | 'mnist';
  limit?: number;
  channels: 1 | 3;
  size: number;
  batch: number;
  epochs: number;
  device?: 'cpu' | 'cuda';
  seed: number;
}

function parse(argv: readonly string[]): EpochArgs {
  const a: EpochArgs = { arch: 'cnn-small', synthetic: null, data: 'fashion-mnist', channels: 3, size: 32, batch: 256, epochs: 1, seed: 0 };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = argv[++i];
    if (v === undefined) throw new RangeError(`${k} needs a value`);
    const int = (min: number) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < min) throw new RangeError(`${k} must be an integer >= ${min}, got "${v}"`);
      return n;
    };
    switch (k) {
      case '--arch': a.arch = v as Architecture; break;
      case '--synthetic': a.synthetic = int(2); break;
      case '--data':
        if (v !== 'fashion-mnist' && v !== 'mnist') throw new RangeError(`--data must be fashion-mnist or mnist, got "${v}"`);
        a.data = v;
        break;
      case '--limit': a.limit = int(2); break;
      case '--channels': {
        const c = int(1);
        if (c !== 1 && c !== 3) throw new RangeError('--channels must be 1 or 3');
        a.channels = c;
        break;
      }
      case '--size': a.size = int(8); break;
      case '--batch': a.batch = int(2); break;
      case '--epochs': a.epochs = int(1); break;
      case '--seed': a.seed = int(0); break;
      case '--device':
        if (v !== 'cpu' && v !== 'cuda') throw new RangeError(`--device must be cpu or cuda, got "${v}"`);
        a.device = v;
        break;
      default: throw new RangeError(`unknown option "${k}"`);
    }
  }
  return a;
}

/** Uniform random bytes from a seeded xorshift (no labels needed by SimCLR; all 0). */
export function syntheticDataset(n: number, channels: 1 | 3, size: number, seed = 1): Dataset {
  const images = new Uint8Array(n * channels * size * size);
  let s = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < images.length; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    images[i] = s & 0xff;
  }
  return { name: `synthetic/${channels}x${size}x${size}`, channels, height: size, width: size, numClasses: 1, images, labels: new Int32Array(n) };
}

export function main(argv: readonly string[]): Record<string, unknown> {
  const a = parse(argv);
  if (a.device) setDevice(a.device);
  const data = a.synthetic !== null
    ? syntheticDataset(a.synthetic, a.channels, a.size)
    : loadDataset(a.data, { split: 'train', ...(a.limit ? { limit: a.limit } : {}) });
  const nfo = info();
  const t0 = Date.now();
  // Progress as JSON lines on stderr (every 10 s): a run stopped by a timeout still shows its rate.
  const res = pretrainSimclr(data, { arch: a.arch, epochs: a.epochs, batchSize: a.batch, seed: a.seed, progress: createProgress({ mode: 'json' }) });
  const seconds = (Date.now() - t0) / 1000;
  const last = res.history[res.history.length - 1];
  return {
    arch: a.arch,
    data: data.name,
    images: data.labels.length,
    batch: a.batch,
    epochs: res.epochsDone,
    device: a.device ?? nfo.backend,
    backend: info().backend,
    gpu: nfo.cudaDevices[0]?.name ?? null,
    cpuThreads: nfo.cpuThreads,
    seconds,
    imagesPerSec: last ? last.imagesPerSec : null,
    loss: last ? last.loss : null,
    history: res.history,
  };
}

if (require.main === module) {
  try {
    console.log(JSON.stringify(main(process.argv.slice(2))));
  } catch (e) {
    console.error(`gpu-epoch: ${e instanceof Error ? e.message : String(e)}`);
    process.exitCode = 1;
  }
}
