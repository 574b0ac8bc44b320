// The benchmark rows: one description per workload, shared by the three
// implementations that run it (encsec through the addon, the naive C++ loops
// in benchmarks/native/bench_naive.cpp, and PyTorch in benchmarks/peer/).
// A row says what to run (op + params), how much work one call is (FLOPs,
// bytes or images) and how to show it.

export type Group = 'conv2d' | 'conv-bn-relu' | 'cosine' | 'ntxent' | 'perturb' | 'e2e' | 'job' | 'memory';

/** GFLOP/s, GB/s, images/s, or MB of resident memory (lower is better). */
export type Metric = 'gflops' | 'gbps' | 'images/s' | 'MB';

export type Op =
  | 'conv2d_fwd'
  | 'conv2d_bwd'
  | 'cbr_fwd'
  | 'cbr_bwd'
  | 'cosine_fwd'
  | 'cosine_bwd'
  | 'ntxent'
  | 'noise'
  | 'topk'
  | 'round'
  | 'simclr_step'
  | 'inference'
  | 'rss_step'
  | 'job_pretrain'
  | 'job_steal'
  | 'job_probe';

import { FULL_JOB_SIZES, QUICK_JOB_SIZES, jobRows, type JobSizes } from './jobs';
import { forwardFlopsPerImage, simclrStepFlops } from './flops';

export type Params = Record<string, number | string>;

export interface NaiveSpec {
  params: Params;
  /** Work of one naive call (at the naive shape). */
  work: number;
  /** Shown next to the naive figure, e.g. "N=8". */
  note: string;
}

export interface RowSpec {
  /** Stable name, matched by --filter. */
  id: string;
  group: Group;
  /** Human-readable shape, e.g. "N=256 1→32 28×28 k3 p1". */
  shape: string;
  op: Op;
  params: Params;
  metric: Metric;
  /** Work of one call: FLOPs (gflops), bytes moved (gbps), images (images/s); unused for MB. */
  work: number;
  /** Show % of the measured fp32 peak (convolution rows). */
  percentOfPeak?: boolean;
  /**
   * Convolution FLOPs of one call (end-to-end rows) or of the whole job (job
   * rows), counted by benchmarks/flops.ts: the row's share of the measured
   * peak is these FLOPs over its time.
   */
  convFlops?: number;
  /** Deep conv layer (Cin >= 64): counted in the 75%-of-peak target. */
  deep?: boolean;
  /** Naive twin, where one exists (kernel rows). */
  naive?: NaiveSpec;
  /** Runs on CUDA too when the addon's backend is CUDA. */
  onCuda: boolean;
}

interface ConvLayer {
  net: 'cnn-small' | 'resnet18';
  name: string;
  C: number;
  OC: number;
  HW: number;
}

/** The 3x3, padding-1 layer shapes of the two encoders (lib/nn/encoders.ts). */
export const CONV_LAYERS: readonly ConvLayer[] = [
  { net: 'cnn-small', name: 'conv1', C: 1, OC: 32, HW: 28 },
  { net: 'cnn-small', name: 'conv2', C: 32, OC: 64, HW: 28 },
  { net: 'cnn-small', name: 'conv3', C: 64, OC: 128, HW: 14 },
  { net: 'cnn-small', name: 'conv4', C: 128, OC: 128, HW: 7 },
  { net: 'resnet18', name: 'stem', C: 3, OC: 64, HW: 32 },
  { net: 'resnet18', name: 'layer1', C: 64, OC: 64, HW: 32 },
  { net: 'resnet18', name: 'layer2', C: 128, OC: 128, HW: 16 },
  { net: 'resnet18', name: 'layer3', C: 256, OC: 256, HW: 8 },
];

export interface SuiteSizes {
  convN: number;
  naiveConvN: number;
  simN: number[];
  simD: number[];
  /** The naive cosine / NT-Xent rows use min(N, naiveSimMaxN). */
  naiveSimMaxN: number;
  perturbRows: number;
  perturbD: number;
  stepBatchCnn: number;
  stepBatchResnet: number;
  inferBatchCnn: number;
  inferBatchResnet: number;
  rssBatch: number;
  rssSteps: number;
  /** The real-job rows (benchmarks/jobs.ts). */
  jobs: JobSizes;
}

export const FULL_SIZES: SuiteSizes = {
  convN: 256,
  naiveConvN: 8,
  simN: [256, 512, 1024],
  simD: [128, 512],
  naiveSimMaxN: 256,
  perturbRows: 4096,
  perturbD: 128,
  stepBatchCnn: 256,
  stepBatchResnet: 128,
  inferBatchCnn: 256,
  inferBatchResnet: 256,
  rssBatch: 256,
  rssSteps: 3,
  jobs: FULL_JOB_SIZES,
};

/** --quick: tiny shapes that run in seconds (for the harness's own test). */
export const QUICK_SIZES: SuiteSizes = {
  convN: 2,
  naiveConvN: 1,
  simN: [32],
  simD: [16],
  naiveSimMaxN: 32,
  perturbRows: 64,
  perturbD: 128,
  stepBatchCnn: 8,
  stepBatchResnet: 2,
  inferBatchCnn: 8,
  inferBatchResnet: 2,
  rssBatch: 8,
  rssSteps: 1,
  jobs: QUICK_JOB_SIZES,
};

export const NTXENT_TAU = 0.5;
export const NOISE_SIGMA = 0.1;
export const TOPK_K = 16;
export const ROUND_DECIMALS = 2;

function convFlops(N: number, l: ConvLayer): number {
  // 3x3, stride 1, padding 1: the output has the input's spatial size.
  return 2 * N * l.OC * l.HW * l.HW * l.C * 9;
}

export function buildSuite(sizes: SuiteSizes): RowSpec[] {
  const rows: RowSpec[] = [];
  const conv = (group: 'conv2d' | 'conv-bn-relu', dir: 'fwd' | 'bwd') => {
    for (const l of CONV_LAYERS) {
      const op = `${group === 'conv2d' ? 'conv2d' : 'cbr'}_${dir}` as Op;
      const params = (N: number): Params => ({ N, C: l.C, H: l.HW, W: l.HW, OC: l.OC, K: 3, stride: 1, pad: 1 });
      // Backward computes d input and d weight: two convolutions' worth of FLOPs.
      const mult = dir === 'bwd' ? 2 : 1;
      rows.push({
        id: `${group}.${dir}.${l.net}.${l.name}`,
        group,
        shape: `N=${sizes.convN} ${l.C}→${l.OC} ${l.HW}×${l.HW}`,
        op,
        params: params(sizes.convN),
        metric: 'gflops',
        work: mult * convFlops(sizes.convN, l),
        percentOfPeak: true,
        deep: group === 'conv2d' && l.C >= 64,
        naive: { params: params(sizes.naiveConvN), work: mult * convFlops(sizes.naiveConvN, l), note: `N=${sizes.naiveConvN}` },
        onCuda: true,
      });
    }
  };
  conv('conv2d', 'fwd');
  conv('conv2d', 'bwd');
  conv('conv-bn-relu', 'fwd');
  conv('conv-bn-relu', 'bwd');

  for (const dir of ['fwd', 'bwd'] as const) {
    for (const N of sizes.simN) {
      for (const D of sizes.simD) {
        const nN = Math.min(N, sizes.naiveSimMaxN);
        // Forward: one [N,D]x[D,N] product. Backward: two (d a and d b).
        const flops = (n: number) => (dir === 'fwd' ? 2 : 4) * n * n * D;
        rows.push({
          id: `cosine.${dir}.n${N}.d${D}`,
          group: 'cosine',
          shape: `[${N},${D}] × [${N},${D}] → [${N},${N}]`,
          op: dir === 'fwd' ? 'cosine_fwd' : 'cosine_bwd',
          params: { n: N, D },
          metric: 'gflops',
          work: flops(N),
          naive: { params: { n: nN, D }, work: flops(nN), note: `n=${nN}` },
          onCuda: true,
        });
      }
    }
  }

  for (const N of sizes.simN) {
    for (const D of sizes.simD) {
      const nN = Math.min(N, sizes.naiveSimMaxN);
      // Nominal count: the (2N)x(2N) similarity product and the gradient product.
      const flops = (n: number) => 4 * (2 * n) * (2 * n) * D;
      rows.push({
        id: `ntxent.n${N}.d${D}`,
        group: 'ntxent',
        shape: `z=[2×${N},${D}] fwd+bwd`,
        op: 'ntxent',
        params: { N, D, tau: NTXENT_TAU },
        metric: 'gflops',
        work: flops(N),
        naive: { params: { N: nN, D, tau: NTXENT_TAU }, work: flops(nN), note: `N=${nN}` },
        onCuda: true,
      });
    }
  }

  const R = sizes.perturbRows;
  const D = sizes.perturbD;
  const bytes = 2 * 4 * R * D; // read the input, write the output
  const perturb: [Op, string, Params][] = [
    ['noise', `σ=${NOISE_SIGMA}`, { rows: R, D, sigma: NOISE_SIGMA }],
    ['topk', `k=${TOPK_K}`, { rows: R, D, k: TOPK_K }],
    ['round', `${ROUND_DECIMALS} decimals`, { rows: R, D, decimals: ROUND_DECIMALS }],
  ];
  for (const [op, what, params] of perturb) {
    rows.push({
      id: `perturb.${op}.n${R}.d${D}`,
      group: 'perturb',
      shape: `[${R},${D}] ${what}`,
      op,
      params,
      metric: 'gbps',
      work: bytes,
      naive: { params, work: bytes, note: 'same shape' },
      onCuda: true,
    });
  }

  const e2e = (op: 'simclr_step' | 'inference', arch: 'cnn-small' | 'resnet18-cifar', batch: number, what: string) => {
    rows.push({
      id: `e2e.${op === 'simclr_step' ? 'simclr-step' : 'inference'}.${arch}`,
      group: 'e2e',
      shape: `batch ${batch} ${what}`,
      op,
      params: { arch, batch },
      metric: 'images/s',
      work: batch,
      convFlops: op === 'simclr_step' ? simclrStepFlops(arch, batch) : batch * forwardFlopsPerImage(arch),
      onCuda: true,
    });
  };
  e2e('simclr_step', 'cnn-small', sizes.stepBatchCnn, '(2 views, augmentation, Adam)');
  e2e('simclr_step', 'resnet18-cifar', sizes.stepBatchResnet, '(2 views, augmentation, Adam)');
  e2e('inference', 'cnn-small', sizes.inferBatchCnn, '(eval mode)');
  e2e('inference', 'resnet18-cifar', sizes.inferBatchResnet, '(eval mode)');

  rows.push(...jobRows(sizes.jobs));

  rows.push({
    id: 'memory.rss.cnn-small-step',
    group: 'memory',
    shape: `batch ${sizes.rssBatch}, ${sizes.rssSteps} steps, own process`,
    op: 'rss_step',
    params: { arch: 'cnn-small', batch: sizes.rssBatch, steps: sizes.rssSteps },
    metric: 'MB',
    work: 0,
    onCuda: false,
  });
  return rows;
}

/** Positional parameters of a row for the native program's request line. */
export function nativeArgs(op: Op, p: Params): number[] | null {
  const n = (k: string) => Number(p[k]);
  switch (op) {
    case 'conv2d_fwd':
    case 'conv2d_bwd':
    case 'cbr_fwd':
    case 'cbr_bwd':
      return [n('N'), n('C'), n('H'), n('W'), n('OC'), n('K'), n('stride'), n('pad')];
    case 'cosine_fwd':
    case 'cosine_bwd':
      return [n('n'), n('D')];
    case 'ntxent':
      return [n('N'), n('D'), n('tau')];
    case 'noise':
      return [n('rows'), n('D'), n('sigma')];
    case 'topk':
      return [n('rows'), n('D'), n('k')];
    case 'round':
      return [n('rows'), n('D'), n('decimals')];
    default:
      return null;
  }
}
