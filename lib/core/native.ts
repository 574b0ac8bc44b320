// The native addon, typed in one place. Everything in lib/ reaches the
// kernels through `native`; nothing else loads the .node file.
import * as path from 'node:path';
import * as fs from 'node:fs';

/** A tensor's storage in native (host or device) memory. */
export interface NativeTensorHandle {
  readonly shape: number[];
  readonly device: 'cpu' | 'cuda' | 'disposed';
  readonly disposed: boolean;
  toArray(): Float32Array;
  copyFrom(src: NativeTensorHandle): void;
  dispose(): void;
  reshape(shape: number[]): NativeTensorHandle;
}

type H = NativeTensorHandle;
type Maybe = H | null;

/** One step of an inference plan (see bindings/infer.cpp). */
export interface PlanStep {
  op: 'conv' | 'convBnRelu' | 'bn' | 'relu' | 'maxpool' | 'gap' | 'linear' | 'add';
  in: number;
  in2?: number;
  out: number;
  weight?: H;
  bias?: H | null;
  gamma?: H;
  beta?: H;
  runningMean?: H;
  runningVar?: H;
  stride?: number;
  padding?: number;
  kernelSize?: number;
  eps?: number;
}

export interface NativeInfo {
  version: string;
  backend: 'cpu' | 'cuda';
  reason: string;
  cudaBuild: string;
  cudaStatus: string;
  cpuThreads: number;
  cudaDevices: { index: number; name: string; memoryBytes: number }[];
  cpuKernels: string;
}

export interface NativeBinding {
  NativeTensor: new (shape: number[], data?: Float32Array) => H;
  setDevice(device: 'cpu' | 'cuda'): void;
  info(): NativeInfo;
  setThreads(n: number): void;
  clearCache(): void;
  cacheBytes(): number;
  synchronize(): void;

  conv2dForward(x: H, w: H, b: Maybe, stride: number, padding: number): H;
  conv2dBackward(dout: H, x: H, w: H, stride: number, padding: number, needDx: boolean, needDw: boolean, needDb: boolean): [Maybe, Maybe, Maybe];
  batchNorm2dTrain(x: H, gamma: H, beta: H, runningMean: H, runningVar: H, momentum: number, eps: number): [H, H, H];
  batchNorm2dEval(x: H, gamma: H, beta: H, runningMean: H, runningVar: H, eps: number): H;
  batchNorm2dBackward(dout: H, x: H, gamma: H, saveMean: H, saveInvstd: H, needDx: boolean, needDgamma: boolean, needDbeta: boolean): [Maybe, Maybe, Maybe];
  convBnReluTrain(x: H, w: H, b: Maybe, gamma: H, beta: H, runningMean: H, runningVar: H, stride: number, padding: number, momentum: number, eps: number): [H, H, H, H];
  convBnReluEval(x: H, w: H, b: Maybe, gamma: H, beta: H, runningMean: H, runningVar: H, stride: number, padding: number, eps: number): H;
  convBnReluBackward(dout: H, out: H, convOut: H, x: H, w: H, gamma: H, saveMean: H, saveInvstd: H, stride: number, padding: number,
    needDx: boolean, needDw: boolean, needDb: boolean, needDgamma: boolean, needDbeta: boolean): [Maybe, Maybe, Maybe, Maybe, Maybe];
  relu(x: H): H;
  reluBackward(dout: H, out: H): H;
  maxPool2d(x: H, kernelSize: number): H;
  maxPool2dBackward(dout: H, x: H, kernelSize: number): H;
  globalAvgPool(x: H): H;
  globalAvgPoolBackward(dout: H, height: number, width: number): H;
  linear(x: H, w: H, b: Maybe): H;
  linearBackward(dout: H, x: H, w: H, needDx: boolean, needDw: boolean, needDb: boolean): [Maybe, Maybe, Maybe];
  matmul(a: H, b: H): H;
  matmulBackward(dout: H, a: H, b: H, needDa: boolean, needDb: boolean): [Maybe, Maybe];

  add(a: H, b: H): H;
  sub(a: H, b: H): H;
  mul(a: H, b: H): H;
  mulBackward(dout: H, a: H, b: H, needDa: boolean, needDb: boolean): [Maybe, Maybe];
  scale(x: H, factor: number): H;
  axpyInPlace(a: H, factor: number, b: H): void;
  fillInPlace(x: H, value: number): void;
  sum(x: H): H;
  addChannelBias(x: H, bias: H): H;
  concat0(a: H, b: H): H;
  allFinite(x: H): boolean;
  l2Normalize(x: H, eps: number): [H, H];
  l2NormalizeBackward(dout: H, x: H, norms: H, eps: number): H;
  cosineSimilarity(a: H, b: H, eps: number): H;
  cosineSimilarityBackward(dout: H, a: H, b: H, eps: number, needDa: boolean, needDb: boolean): [Maybe, Maybe];
  cosineLoss(a: H, b: H, eps: number, needGrad: boolean): [H, Maybe, Maybe];
  ntXent(s: H, t: H, tau: number, needGrad: boolean): [H, Maybe, Maybe];
  ntXentZ(z: H, tau: number, needGrad: boolean): [H, Maybe];
  crossEntropy(logits: H, labels: Int32Array, needGrad: boolean): [H, Maybe];
  mseLoss(a: H, b: H, needGrad: boolean): [H, Maybe, Maybe];

  sgdUpdate(param: H, momentumBuf: H, grad: H, lr: number, momentum: number, weightDecay: number, nesterov: boolean, firstStep: boolean): void;
  adamUpdate(param: H, m: H, v: H, grad: H, lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, decoupled: boolean, step: number): void;
  gaussianNoise(x: H, sigma: number, seed: number, offset: number): H;
  topk(x: H, k: number): H;
  roundDecimals(x: H, decimals: number): H;
  randUniformInPlace(x: H, low: number, high: number, seed: number, offset: number): void;
  randNormalInPlace(x: H, mean: number, std: number, seed: number, offset: number): void;

  gatherRows(x: H, indices: Int32Array): H;
  gatherRowsBackward(dout: H, indices: Int32Array, rows: number): H;
  concatRows(tensors: H[]): H;
  sliceRows(x: H, start: number, end: number): H;
  scaleRows(x: H, s: H): H;
  lshCodes(proj: H, families: number, planes: number): H;

  runPlan(plan: PlanStep[], x: H, registers: number): H;
  runPlanAsync(plan: PlanStep[], x: H, registers: number): Promise<H>;

  imagesToTensor(images: Uint8Array, indices: Int32Array, channels: number, height: number, width: number, mean: number, std: number): H;
  augment(images: Uint8Array, indices: Int32Array, params: Float32Array, channels: number, height: number, width: number,
    outHeight: number, outWidth: number, mean: number, std: number): H;
  augmentNaive(images: Uint8Array, indices: Int32Array, params: Float32Array, channels: number, height: number, width: number,
    outHeight: number, outWidth: number, mean: number, std: number): H;
  readonly augmentParamCount: number;
}

function findAddon(): string {
  // dist/lib/core/native.js and lib/core/native.ts both sit three levels below the package root.
  const roots = [path.resolve(__dirname, '..', '..'), path.resolve(__dirname, '..', '..', '..')];
  const tried: string[] = [];
  for (const root of roots) {
    for (const rel of ['build/Release/encsec.node', 'build/Debug/encsec.node']) {
      const p = path.join(root, rel);
      tried.push(p);
      if (fs.existsSync(p)) return p;
    }
  }
  throw new Error(`encsec: native addon not found (run \`npm install\` to build it); looked in:\n  ${tried.join('\n  ')}`);
}

// eslint-disable-next-line @typescript-eslint/no-require-imports
export const native: NativeBinding = require(findAddon()) as NativeBinding;
