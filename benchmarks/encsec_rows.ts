// The encsec side of each row. Kernel rows call the N-API binding
// (lib/core/native) directly, so a figure is the kernel plus the allocation of
// its outputs, without autograd bookkeeping; end-to-end rows use the public
// API exactly as `encsec pretrain` does (simclrStep, embedSync).
import { native, type NativeTensorHandle } from '../lib/core/native';
import { Tensor, keep, noGrad } from '../lib/core/tensor';
import { Adam, ProjectionHead, createEncoder, embedSync, projectionDim, type Architecture } from '../lib/nn';
import { simclrStep, SIMCLR_DEFAULTS } from '../lib/ssl/simclr';
import { toTensor } from '../lib/data/tensor';
import type { Dataset } from '../lib/data/dataset';
import type { RowSpec } from './suite';

type Maybe = NativeTensorHandle | null;

export interface Prepared {
  /** One call of the workload. */
  run: () => void;
  /** Frees what prepare() allocated. */
  dispose: () => void;
}

const disposeAll = (hs: readonly Maybe[]): void => {
  for (const h of hs) h?.dispose();
};

/** Seeded uint8 images [n, C, H, W] with some structure (smooth gradients plus noise), as a Dataset. */
export function syntheticDataset(n: number, channels: 1 | 3, side: number, seed = 1): Dataset {
  const per = channels * side * side;
  const images = new Uint8Array(n * per);
  let s = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < channels; c++) {
      for (let y = 0; y < side; y++) {
        for (let x = 0; x < side; x++) {
          s ^= s << 13;
          s >>>= 0;
          s ^= s >>> 17;
          s ^= s << 5;
          s >>>= 0;
          const base = ((x + y + 7 * i + 31 * c) * 255) / (2 * side);
          images[i * per + (c * side + y) * side + x] = Math.min(255, (base + (s & 63)) | 0);
        }
      }
    }
  }
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) labels[i] = i % 10;
  return { name: `synthetic-${channels}x${side}x${side}`, channels, height: side, width: side, numClasses: 10, images, labels };
}

function rand(shape: number[], seed: number, low = -1, high = 1): Tensor {
  return keep(Tensor.rand(shape, { seed, low, high }));
}

function archInput(arch: Architecture): { channels: 1 | 3; side: number } {
  return arch === 'cnn-small' ? { channels: 1, side: 28 } : { channels: 3, side: 32 };
}

/** Allocates the inputs of `row` on the current device and returns its workload. */
export function prepare(row: RowSpec): Prepared {
  const p = row.params;
  const n = (k: string) => Number(p[k]);
  const owned: Tensor[] = [];
  const t = (shape: number[], seed: number, low = -1, high = 1) => {
    const x = rand(shape, seed, low, high);
    owned.push(x);
    return x;
  };
  const done = (run: () => void, extra: () => void = () => {}): Prepared => ({
    run,
    dispose: () => {
      extra();
      owned.forEach((x) => x.dispose());
    },
  });

  switch (row.op) {
    case 'conv2d_fwd':
    case 'conv2d_bwd':
    case 'cbr_fwd':
    case 'cbr_bwd': {
      const [N, C, H, W, OC, K, stride, pad] = ['N', 'C', 'H', 'W', 'OC', 'K', 'stride', 'pad'].map(n);
      const OH = Math.floor((H + 2 * pad - K) / stride) + 1;
      const OW = Math.floor((W + 2 * pad - K) / stride) + 1;
      const x = t([N, C, H, W], 1);
      const bound = 1 / Math.sqrt(C * K * K);
      const w = t([OC, C, K, K], 2, -bound, bound);
      if (row.op === 'conv2d_fwd') return done(() => native.conv2dForward(x.handle, w.handle, null, stride, pad).dispose());
      const dout = t([N, OC, OH, OW], 3);
      if (row.op === 'conv2d_bwd') {
        return done(() => disposeAll(native.conv2dBackward(dout.handle, x.handle, w.handle, stride, pad, true, true, false)));
      }
      const gamma = t([OC], 4, 0.5, 1.5);
      const beta = t([OC], 5, -0.1, 0.1);
      const rm = keep(Tensor.zeros([OC]));
      const rv = keep(Tensor.ones([OC]));
      owned.push(rm, rv);
      const fwd = () => native.convBnReluTrain(x.handle, w.handle, null, gamma.handle, beta.handle, rm.handle, rv.handle, stride, pad, 0.1, 1e-5);
      if (row.op === 'cbr_fwd') return done(() => disposeAll(fwd()));
      const saved = fwd();
      const [out, convOut, sm, si] = saved;
      return done(
        () =>
          disposeAll(
            native.convBnReluBackward(dout.handle, out, convOut, x.handle, w.handle, gamma.handle, sm, si, stride, pad, true, true, false, true, true),
          ),
        () => disposeAll(saved),
      );
    }
    case 'cosine_fwd':
    case 'cosine_bwd': {
      const a = t([n('n'), n('D')], 11);
      const b = t([n('n'), n('D')], 12);
      if (row.op === 'cosine_fwd') return done(() => native.cosineSimilarity(a.handle, b.handle, 1e-8).dispose());
      const dout = t([n('n'), n('n')], 13);
      return done(() => disposeAll(native.cosineSimilarityBackward(dout.handle, a.handle, b.handle, 1e-8, true, true)));
    }
    case 'ntxent': {
      // The SimCLR form: z = cat[z1, z2] of 2N rows, loss and d loss / d z in one call.
      const z = t([2 * n('N'), n('D')], 21);
      return done(() => disposeAll(native.ntXentZ(z.handle, n('tau'), true)));
    }
    case 'noise': {
      const x = t([n('rows'), n('D')], 31);
      let offset = 0;
      return done(() => {
        native.gaussianNoise(x.handle, n('sigma'), 7, offset).dispose();
        offset += n('rows') * n('D');
      });
    }
    case 'topk': {
      const x = t([n('rows'), n('D')], 31);
      return done(() => native.topk(x.handle, n('k')).dispose());
    }
    case 'round': {
      const x = t([n('rows'), n('D')], 31);
      return done(() => native.roundDecimals(x.handle, n('decimals')).dispose());
    }
    case 'simclr_step': {
      const arch = String(p.arch) as Architecture;
      const batch = n('batch');
      const { channels, side } = archInput(arch);
      const ds = syntheticDataset(Math.max(2 * batch, 64), channels, side);
      const encoder = createEncoder(arch, { inChannels: channels, seed: 0 });
      const head = new ProjectionHead(encoder.dim, projectionDim(arch), 0);
      const opt = new Adam([...encoder.parameters(), ...head.parameters()], { lr: SIMCLR_DEFAULTS.lr, weightDecay: SIMCLR_DEFAULTS.weightDecay });
      encoder.train();
      head.train();
      const idx = new Int32Array(batch);
      let step = 0;
      return done(
        () => {
          // A different batch and augmentation every step, as in training.
          const start = (step * batch) % (ds.labels.length - batch + 1);
          for (let i = 0; i < batch; i++) idx[i] = start + i;
          simclrStep(encoder, head, opt, ds, idx, SIMCLR_DEFAULTS.tau, 1000 + step);
          step++;
        },
        () => {
          for (const s of opt.state().tensors.values()) s.dispose();
          noGrad(() => opt.zeroGrad());
          encoder.dispose();
          head.dispose();
        },
      );
    }
    case 'inference': {
      const arch = String(p.arch) as Architecture;
      const batch = n('batch');
      const { channels, side } = archInput(arch);
      const ds = syntheticDataset(batch, channels, side);
      const encoder = createEncoder(arch, { inChannels: channels, seed: 0 }).eval();
      const x = keep(toTensor(ds, Int32Array.from({ length: batch }, (_, i) => i)));
      owned.push(x);
      return done(
        () => embedSync(encoder, x).dispose(),
        () => encoder.dispose(),
      );
    }
    default:
      throw new RangeError(`row ${row.id}: op ${row.op} has no in-process encsec workload`);
  }
}
