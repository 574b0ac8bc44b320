// Functional ops with PyTorch's names, argument order and semantics on
// logical NCHW shapes. Each op: validate (errors name the argument), one
// binding call, and a recorded backward that calls the op's native backward.
import { native, type NativeTensorHandle } from './native';
import { Tensor, recordOp } from './tensor';
import {
  checkInt,
  checkNdim,
  checkNonEmpty,
  checkNumber,
  checkSameDevice,
  checkSameShape,
  checkSeed,
  checkTensor,
  checkObject,
  checkBool,
  checkOptions,
} from './validate';

const wrap = (h: NativeTensorHandle): Tensor => new Tensor(h);
const wrapMaybe = (h: NativeTensorHandle | null): Tensor | null => (h ? new Tensor(h) : null);

function optionsObject(opts: unknown, name: string, allowed?: readonly string[]): Record<string, unknown> {
  if (allowed) return checkOptions(opts, name, allowed);
  return opts === undefined ? {} : checkObject(opts, name);
}

const CONV_KEYS = ['stride', 'padding'] as const;
const BN_KEYS = ['training', 'momentum', 'eps'] as const;
const EPS_KEYS = ['eps'] as const;

// ------------------------------------------------------------------ layers

export interface Conv2dOptions {
  stride?: number;
  padding?: number;
}

function convArgs(x: unknown, weight: unknown, bias: unknown, opts: unknown, allowed: readonly string[] = CONV_KEYS) {
  const xs = checkNdim(x, 4, 'x', '[N, C, H, W]');
  const ws = checkNdim(weight, 4, 'weight', '[OC, C, KH, KW]');
  const o = optionsObject(opts, 'options', allowed);
  const stride = o.stride === undefined ? 1 : checkInt(o.stride, 'stride', { min: 1, max: 64 });
  const padding = o.padding === undefined ? 0 : checkInt(o.padding, 'padding', { min: 0, max: 64 });
  if (ws[1] !== xs[1]) throw new RangeError(`weight has ${ws[1]} input channels but x has ${xs[1]}`);
  if (xs[2] + 2 * padding < ws[2] || xs[3] + 2 * padding < ws[3]) {
    throw new RangeError(`weight's ${ws[2]}x${ws[3]} kernel is larger than x's padded ${xs[2]}x${xs[3]} image`);
  }
  checkSameDevice(x as Tensor, weight as Tensor, 'weight');
  if (bias !== undefined && bias !== null) {
    const bs = checkNdim(bias, 1, 'bias', '[OC]');
    if (bs[0] !== ws[0]) throw new RangeError(`bias has ${bs[0]} entries but weight has ${ws[0]} output channels`);
  }
  // Output spatial size (PyTorch's floor formula).
  const outH = Math.floor((xs[2] + 2 * padding - ws[2]) / stride) + 1;
  const outW = Math.floor((xs[3] + 2 * padding - ws[3]) / stride) + 1;
  return { stride, padding, bias: (bias ?? null) as Tensor | null, outValuesPerChannel: xs[0] * outH * outW };
}

/** 2-D convolution (cross-correlation), zero padding: x [N,C,H,W], weight [OC,C,KH,KW], bias [OC]. */
export function conv2d(x: Tensor, weight: Tensor, bias?: Tensor | null, options?: Conv2dOptions): Tensor {
  const { stride, padding, bias: b } = convArgs(x, weight, bias, options);
  const out = wrap(native.conv2dForward(x.handle, weight.handle, b ? b.handle : null, stride, padding));
  return recordOp(out, 'conv2d', b ? [x, weight, b] : [x, weight], (dout, needs) => {
    const [dx, dw, db] = native.conv2dBackward(dout.handle, x.handle, weight.handle, stride, padding, needs[0], needs[1], !!b && needs[2]);
    return [wrapMaybe(dx), wrapMaybe(dw), wrapMaybe(db)];
  });
}

export interface BatchNormOptions {
  training?: boolean;
  momentum?: number;
  eps?: number;
}

function channelVec(t: unknown, name: string, C: number): Tensor {
  const s = checkNdim(t, 1, name, '[C]');
  if (s[0] !== C) throw new RangeError(`${name} has ${s[0]} entries, expected ${C} (channels)`);
  return t as Tensor;
}

function bnOptions(options: unknown, allowed: readonly string[] = BN_KEYS) {
  const o = optionsObject(options, 'options', allowed);
  return {
    training: o.training === undefined ? false : checkBool(o.training, 'options.training'),
    momentum: o.momentum === undefined ? 0.1 : checkNumber(o.momentum, 'momentum', { min: 0, max: 1 }),
    eps: o.eps === undefined ? 1e-5 : checkNumber(o.eps, 'eps', { gt: 0 }),
  };
}

/**
 * Batch normalisation over (N, H, W) per channel (PyTorch F.batch_norm order:
 * input, running_mean, running_var, weight, bias). Training mode uses batch
 * statistics and updates the running averages in place; eval mode uses them.
 */
export function batchNorm2d(
  x: Tensor,
  runningMean: Tensor,
  runningVar: Tensor,
  weight: Tensor,
  bias: Tensor,
  options?: BatchNormOptions,
): Tensor {
  const xs = checkNdim(x, 4, 'x', '[N, C, H, W]');
  const C = xs[1];
  channelVec(runningMean, 'runningMean', C);
  channelVec(runningVar, 'runningVar', C);
  channelVec(weight, 'weight', C);
  channelVec(bias, 'bias', C);
  const { training, momentum, eps } = bnOptions(options);
  if (!training) {
    const out = wrap(native.batchNorm2dEval(x.handle, weight.handle, bias.handle, runningMean.handle, runningVar.handle, eps));
    // Eval mode is an affine map per channel: y = x*g*invstd + (b - mean*g*invstd).
    return recordOp(out, 'batchNorm2d(eval)', [x], () => {
      throw new TypeError('batchNorm2d in eval mode is not differentiable here: use training mode or noGrad()');
    });
  }
  if (xs[0] * xs[2] * xs[3] < 2) throw new RangeError('batchNorm2d in training mode needs more than one value per channel');
  const [o, saveMean, saveInvstd] = native.batchNorm2dTrain(x.handle, weight.handle, bias.handle, runningMean.handle, runningVar.handle, momentum, eps);
  const out = wrap(o);
  const sm = wrap(saveMean);
  const si = wrap(saveInvstd);
  return recordOp(
    out,
    'batchNorm2d',
    [x, weight, bias],
    (dout, needs) => {
      const [dx, dg, db] = native.batchNorm2dBackward(dout.handle, x.handle, weight.handle, sm.handle, si.handle, needs[0], needs[1], needs[2]);
      return [wrapMaybe(dx), wrapMaybe(dg), wrapMaybe(db)];
    },
    () => {
      sm.dispose();
      si.dispose();
    },
  );
}

export interface ConvBnReluOptions extends Conv2dOptions, BatchNormOptions {}

/**
 * Fused relu(batchNorm2d(conv2d(x, weight, bias))): forward and backward in
 * one native call each, without materialising what the backward can rebuild.
 */
export function convBnRelu(
  x: Tensor,
  weight: Tensor,
  bias: Tensor | null,
  gamma: Tensor,
  beta: Tensor,
  runningMean: Tensor,
  runningVar: Tensor,
  options?: ConvBnReluOptions,
): Tensor {
  const { stride, padding, bias: b, outValuesPerChannel } = convArgs(x, weight, bias, options, [...CONV_KEYS, ...BN_KEYS]);
  const OC = weight.shape[0];
  channelVec(gamma, 'gamma', OC);
  channelVec(beta, 'beta', OC);
  channelVec(runningMean, 'runningMean', OC);
  channelVec(runningVar, 'runningVar', OC);
  const { training, momentum, eps } = bnOptions(options, [...CONV_KEYS, ...BN_KEYS]);
  if (training && outValuesPerChannel < 2) {
    throw new RangeError(`convBnRelu in training mode needs more than one value per channel (the convolution gives ${outValuesPerChannel})`);
  }
  if (!training) {
    const out = wrap(native.convBnReluEval(x.handle, weight.handle, b ? b.handle : null, gamma.handle, beta.handle, runningMean.handle, runningVar.handle, stride, padding, eps));
    return recordOp(out, 'convBnRelu(eval)', [x], () => {
      throw new TypeError('convBnRelu in eval mode is not differentiable here: use training mode or noGrad()');
    });
  }
  const [o, convOut, saveMean, saveInvstd] = native.convBnReluTrain(
    x.handle, weight.handle, b ? b.handle : null, gamma.handle, beta.handle, runningMean.handle, runningVar.handle, stride, padding, momentum, eps,
  );
  const out = wrap(o);
  const co = wrap(convOut);
  const sm = wrap(saveMean);
  const si = wrap(saveInvstd);
  const inputs = b ? [x, weight, gamma, beta, b] : [x, weight, gamma, beta];
  return recordOp(
    out,
    'convBnRelu',
    inputs,
    (dout, needs) => {
      const [dx, dw, db, dg, dbe] = native.convBnReluBackward(
        dout.handle, out.handle, co.handle, x.handle, weight.handle, gamma.handle, sm.handle, si.handle, stride, padding,
        needs[0], needs[1], !!b && needs[4], needs[2], needs[3],
      );
      return [wrapMaybe(dx), wrapMaybe(dw), wrapMaybe(dg), wrapMaybe(dbe), wrapMaybe(db)];
    },
    () => {
      co.dispose();
      sm.dispose();
      si.dispose();
    },
  );
}

export function relu(x: Tensor): Tensor {
  checkTensor(x, 'x');
  const out = wrap(native.relu(x.handle));
  return recordOp(out, 'relu', [x], (dout) => [wrap(native.reluBackward(dout.handle, out.handle))]);
}

/** Max pooling with window and stride kernelSize (PyTorch max_pool2d(x, k)). */
export function maxPool2d(x: Tensor, kernelSize = 2): Tensor {
  const xs = checkNdim(x, 4, 'x', '[N, C, H, W]');
  checkInt(kernelSize, 'kernelSize', { min: 1 });
  if (xs[2] < kernelSize || xs[3] < kernelSize) throw new RangeError(`kernelSize ${kernelSize} is larger than x's ${xs[2]}x${xs[3]} image`);
  const out = wrap(native.maxPool2d(x.handle, kernelSize));
  return recordOp(out, 'maxPool2d', [x], (dout) => [wrap(native.maxPool2dBackward(dout.handle, x.handle, kernelSize))]);
}

/** Mean over H and W: [N,C,H,W] -> [N,C]. */
export function globalAvgPool(x: Tensor): Tensor {
  const xs = checkNdim(x, 4, 'x', '[N, C, H, W]');
  const out = wrap(native.globalAvgPool(x.handle));
  return recordOp(out, 'globalAvgPool', [x], (dout) => [wrap(native.globalAvgPoolBackward(dout.handle, xs[2], xs[3]))]);
}

/** x [B,IC] @ weight[OC,IC]^T + bias [OC] (PyTorch F.linear). */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  const xs = checkNdim(x, 2, 'x', '[B, IC]');
  const ws = checkNdim(weight, 2, 'weight', '[OC, IC]');
  if (ws[1] !== xs[1]) throw new RangeError(`weight has ${ws[1]} input features but x has ${xs[1]}`);
  checkSameDevice(x, weight, 'weight');
  const b = bias ?? null;
  if (b !== null) {
    const bs = checkNdim(b, 1, 'bias', '[OC]');
    if (bs[0] !== ws[0]) throw new RangeError(`bias has ${bs[0]} entries but weight has ${ws[0]} outputs`);
  }
  const out = wrap(native.linear(x.handle, weight.handle, b ? b.handle : null));
  return recordOp(out, 'linear', b ? [x, weight, b] : [x, weight], (dout, needs) => {
    const [dx, dw, db] = native.linearBackward(dout.handle, x.handle, weight.handle, needs[0], needs[1], !!b && needs[2]);
    return [wrapMaybe(dx), wrapMaybe(dw), wrapMaybe(db)];
  });
}

/** a [M,K] @ b [K,N]. */
export function matmul(a: Tensor, b: Tensor): Tensor {
  const as = checkNdim(a, 2, 'a', '[M, K]');
  const bs = checkNdim(b, 2, 'b', '[K, N]');
  if (as[1] !== bs[0]) throw new RangeError(`a has ${as[1]} columns but b has ${bs[0]} rows`);
  checkSameDevice(a, b, 'b');
  const out = wrap(native.matmul(a.handle, b.handle));
  return recordOp(out, 'matmul', [a, b], (dout, needs) => {
    const [da, db] = native.matmulBackward(dout.handle, a.handle, b.handle, needs[0], needs[1]);
    return [wrapMaybe(da), wrapMaybe(db)];
  });
}

// ------------------------------------------------------------ element-wise

function binaryArgs(a: unknown, b: unknown): void {
  checkTensor(a, 'a');
  checkTensor(b, 'b');
  checkSameShape(a, b, 'a', 'b');
  checkSameDevice(a, b, 'b');
}

/** a + b (same shape). */
export function add(a: Tensor, b: Tensor): Tensor {
  binaryArgs(a, b);
  const out = wrap(native.add(a.handle, b.handle));
  return recordOp(out, 'add', [a, b], (dout) => [dout, dout]);
}

/** a - b (same shape). */
export function sub(a: Tensor, b: Tensor): Tensor {
  binaryArgs(a, b);
  const out = wrap(native.sub(a.handle, b.handle));
  return recordOp(out, 'sub', [a, b], (dout, needs) => [dout, needs[1] ? wrap(native.scale(dout.handle, -1)) : null]);
}

/** a * b element-wise (same shape). */
export function mul(a: Tensor, b: Tensor): Tensor {
  binaryArgs(a, b);
  const out = wrap(native.mul(a.handle, b.handle));
  return recordOp(out, 'mul', [a, b], (dout, needs) => {
    const [da, db] = native.mulBackward(dout.handle, a.handle, b.handle, needs[0], needs[1]);
    return [wrapMaybe(da), wrapMaybe(db)];
  });
}

/** s * x. */
export function scale(x: Tensor, s: number): Tensor {
  checkTensor(x, 'x');
  checkNumber(s, 's');
  const out = wrap(native.scale(x.handle, s));
  return recordOp(out, 'scale', [x], (dout) => [wrap(native.scale(dout.handle, s))]);
}

/** Sum of all elements (a one-element tensor of shape []). */
export function sum(x: Tensor): Tensor {
  checkTensor(x, 'x');
  const out = wrap(native.sum(x.handle));
  const shape = x.shape.slice();
  return recordOp(out, 'sum', [x], (dout) => {
    const g = Tensor.full(shape, dout.item());
    return [g];
  });
}

/** Mean of all elements. */
export function mean(x: Tensor): Tensor {
  checkTensor(x, 'x');
  checkNonEmpty(x, 'x');
  const n = x.size;
  const s = native.sum(x.handle);
  const out = wrap(native.scale(s, 1 / n));
  s.dispose();
  const shape = x.shape.slice();
  return recordOp(out, 'mean', [x], (dout) => [Tensor.full(shape, dout.item() / n)]);
}

/** Concatenation along dim 0 (no gradient: a data-assembly helper). */
export function cat0(a: Tensor, b: Tensor): Tensor {
  checkTensor(a, 'a');
  checkTensor(b, 'b');
  if (a.ndim < 1 || a.ndim !== b.ndim || a.shape.some((d, i) => i > 0 && d !== b.shape[i])) {
    throw new RangeError(`cannot concatenate [${a.shape.join(', ')}] and [${b.shape.join(', ')}] along dim 0`);
  }
  checkSameDevice(a, b, 'b');
  if (a.tracksGrad || b.tracksGrad) throw new TypeError('cat0 does not propagate gradients: detach the inputs or use noGrad()');
  return wrap(native.concat0(a.handle, b.handle));
}

// ------------------------------------------------------ similarity, losses

/** Row-wise L2 normalisation of x [R,D]: x / max(||x||, eps) (PyTorch F.normalize, dim=1). */
export function normalize(x: Tensor, options?: { eps?: number }): Tensor {
  checkNdim(x, 2, 'x', '[rows, D]');
  const o = optionsObject(options, 'options', EPS_KEYS);
  const eps = o.eps === undefined ? 1e-12 : checkNumber(o.eps, 'eps', { gt: 0 });
  const [h, normsH] = native.l2Normalize(x.handle, eps);
  const out = wrap(h);
  const norms = wrap(normsH);
  return recordOp(
    out,
    'normalize',
    [x],
    (dout) => [wrap(native.l2NormalizeBackward(dout.handle, x.handle, norms.handle, eps))],
    () => norms.dispose(),
  );
}

/** The full [n, m] matrix of cosines between the rows of a [n,D] and b [m,D]. */
export function cosineSimilarity(a: Tensor, b: Tensor, options?: { eps?: number }): Tensor {
  const as = checkNdim(a, 2, 'a', '[n, D]');
  const bs = checkNdim(b, 2, 'b', '[m, D]');
  if (as[1] !== bs[1]) throw new RangeError(`a has ${as[1]} columns but b has ${bs[1]}`);
  checkSameDevice(a, b, 'b');
  const o = optionsObject(options, 'options', EPS_KEYS);
  const eps = o.eps === undefined ? 1e-8 : checkNumber(o.eps, 'eps', { gt: 0 });
  const out = wrap(native.cosineSimilarity(a.handle, b.handle, eps));
  return recordOp(out, 'cosineSimilarity', [a, b], (dout, needs) => {
    const [da, db] = native.cosineSimilarityBackward(dout.handle, a.handle, b.handle, eps, needs[0], needs[1]);
    return [wrapMaybe(da), wrapMaybe(db)];
  });
}

/** A loss whose fused kernel also produced d loss / d input; backward scales it by the upstream gradient. */
function fusedLoss(name: string, loss: Tensor, inputs: Tensor[], grads: (Tensor | null)[]): Tensor {
  return recordOp(
    loss,
    name,
    inputs,
    (dout, needs) => {
      const s = dout.item();
      return grads.map((g, i) => (g && needs[i] ? (s === 1 ? g.clone() : wrap(native.scale(g.handle, s))) : null));
    },
    () => grads.forEach((g) => g?.dispose()),
  );
}

function checkTau(tau: unknown): number {
  return checkNumber(tau, 'tau', { gt: 0, max: 100 });
}

/**
 * NT-Xent (SimCLR): z is [2N, D]; rows i and i+N are positives, every other
 * row a negative. Mean over the 2N rows of -log softmax of the positive.
 */
export function ntXent(z: Tensor, tau = 0.5): Tensor {
  const zs = checkNdim(z, 2, 'z', '[2N, D]');
  if (zs[0] % 2 !== 0 || zs[0] < 2) throw new RangeError(`z must have an even number of rows (2N), got ${zs[0]}`);
  checkTau(tau);
  const need = z.tracksGrad;
  const [l, dz] = native.ntXentZ(z.handle, tau, need);
  return fusedLoss('ntXent', wrap(l), [z], [wrapMaybe(dz)]);
}

/** NT-Xent over z = cat[s, t] (s, t [N, D]): contrastive stealing's loss, row i of s paired with row i of t. */
export function ntXentCross(s: Tensor, t: Tensor, tau = 0.5): Tensor {
  checkNdim(s, 2, 's', '[N, D]');
  checkNdim(t, 2, 't', '[N, D]');
  checkSameShape(s, t, 's', 't');
  checkSameDevice(s, t, 't');
  checkTau(tau);
  const need = s.tracksGrad || t.tracksGrad;
  const [l, ds, dt] = native.ntXent(s.handle, t.handle, tau, need);
  return fusedLoss('ntXentCross', wrap(l), [s, t], [wrapMaybe(ds), wrapMaybe(dt)]);
}

/** Softmax cross-entropy, mean over the batch: logits [B,C], labels B integers in [0, C). */
export function crossEntropy(logits: Tensor, labels: Int32Array | ArrayLike<number>): Tensor {
  const ls = checkNdim(logits, 2, 'logits', '[B, C]');
  if (labels === null || typeof labels !== 'object' || typeof (labels as ArrayLike<number>).length !== 'number') {
    throw new TypeError('labels must be an Int32Array or an array of integers');
  }
  if (labels.length !== ls[0]) throw new RangeError(`labels has ${labels.length} entries but logits has ${ls[0]} rows`);
  const lab = labels instanceof Int32Array ? labels : new Int32Array(labels.length);
  for (let i = 0; i < labels.length; i++) {
    const v = labels[i];
    if (!Number.isInteger(v) || v < 0 || v >= ls[1]) throw new RangeError(`labels[${i}] must be an integer in [0, ${ls[1]}), got ${v}`);
    if (lab !== labels) lab[i] = v;
  }
  const [l, dl] = native.crossEntropy(logits.handle, lab, logits.tracksGrad);
  return fusedLoss('crossEntropy', wrap(l), [logits], [wrapMaybe(dl)]);
}

/** Mean squared error over all elements. */
export function mseLoss(a: Tensor, b: Tensor): Tensor {
  binaryArgs(a, b);
  checkNonEmpty(a, 'a');
  const [l, da, db] = native.mseLoss(a.handle, b.handle, a.tracksGrad || b.tracksGrad);
  return fusedLoss('mseLoss', wrap(l), [a, b], [wrapMaybe(da), wrapMaybe(db)]);
}

/** mean_i (1 - cos(a_i, b_i)) over the rows of a, b [R, D]. */
export function cosineLoss(a: Tensor, b: Tensor, options?: { eps?: number }): Tensor {
  checkNdim(a, 2, 'a', '[rows, D]');
  checkTensor(b, 'b');
  checkSameShape(a, b, 'a', 'b');
  checkSameDevice(a, b, 'b');
  const o = optionsObject(options, 'options', EPS_KEYS);
  const eps = o.eps === undefined ? 1e-8 : checkNumber(o.eps, 'eps', { gt: 0 });
  const [l, da, db] = native.cosineLoss(a.handle, b.handle, eps, a.tracksGrad || b.tracksGrad);
  return fusedLoss('cosineLoss', wrap(l), [a, b], [wrapMaybe(da), wrapMaybe(db)]);
}

// ------------------------------------------------ feature perturbations (no gradient)

/** x + sigma * N(0, 1), noise from the counter-based RNG: element i uses counter offset + i. */
export function gaussianNoise(x: Tensor, sigma: number, seed: number, offset = 0): Tensor {
  checkTensor(x, 'x');
  checkNumber(sigma, 'sigma', { min: 0 });
  checkSeed(seed, 'seed');
  checkSeed(offset, 'offset');
  return wrap(native.gaussianNoise(x.handle, sigma, seed, offset));
}

/** Keeps the k largest-magnitude entries of each row of x [R, D] (ties: lower index first), zeros the rest. */
export function topkMagnitude(x: Tensor, k: number): Tensor {
  checkNdim(x, 2, 'x', '[rows, D]');
  checkInt(k, 'k', { min: 0 });
  return wrap(native.topk(x.handle, k));
}

/** Rounds to `decimals` decimal places (halves away from zero). */
export function roundDecimals(x: Tensor, decimals: number): Tensor {
  checkTensor(x, 'x');
  checkInt(decimals, 'decimals', { min: 0, max: 8 });
  return wrap(native.roundDecimals(x.handle, decimals));
}

/** True if every element of x is finite. */
export function allFinite(x: Tensor): boolean {
  checkTensor(x, 'x');
  return native.allFinite(x.handle);
}

// ------------------------------------------------------------ rows (dim 0)
// A tensor of any rank is [rows, ...rest] to these ops. They assemble, select
// and weight batches in native memory, so that data need not cross to JS.

function checkRows(x: unknown, name: string): readonly number[] {
  checkTensor(x, name);
  if (x.ndim < 1) throw new RangeError(`${name} must have at least one dimension (rows), got shape []`);
  return x.shape;
}

/** A copy of `indices` as an Int32Array, every entry an integer in [0, n). */
function checkIndices(indices: unknown, n: number, name: string): Int32Array {
  if (indices === null || typeof indices !== 'object' || typeof (indices as ArrayLike<number>).length !== 'number') {
    throw new TypeError(`${name} must be an Int32Array or an array of integers`);
  }
  const src = indices as ArrayLike<number>;
  const out = new Int32Array(src.length);
  for (let i = 0; i < src.length; i++) {
    const v = src[i];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= n) {
      throw new RangeError(`${name}[${i}] must be an integer in [0, ${n}), got ${String(v)}`);
    }
    out[i] = v;
  }
  return out;
}

/**
 * Rows of x [n, ...] picked by indices [m] (PyTorch index_select(x, 0, indices)):
 * [m, ...]. Duplicates allowed. The gradient scatter-adds back into x's rows
 * (in increasing index order, so it is the same on every backend).
 */
export function gatherRows(x: Tensor, indices: Int32Array | ArrayLike<number>): Tensor {
  const xs = checkRows(x, 'x');
  const idx = checkIndices(indices, xs[0], 'indices');
  const n = xs[0];
  const out = wrap(native.gatherRows(x.handle, idx));
  return recordOp(out, 'gatherRows', [x], (dout) => [wrap(native.gatherRowsBackward(dout.handle, idx, n))]);
}

/**
 * Concatenation along dim 0 (torch.cat(tensors, 0)): every tensor [n_k, ...rest]
 * with the same rest, on the same device. Gradients flow back as row slices.
 */
export function concatRows(tensors: readonly Tensor[]): Tensor {
  if (!Array.isArray(tensors)) throw new TypeError('tensors must be an array of tensors');
  if (tensors.length === 0) throw new RangeError('tensors is empty');
  const first = checkRows(tensors[0], 'tensors[0]');
  const rows: number[] = [];
  tensors.forEach((t, k) => {
    const s = checkRows(t, `tensors[${k}]`);
    if (s.length !== first.length || s.some((d, i) => i > 0 && d !== first[i])) {
      throw new RangeError(`tensors[${k}] has shape [${s.join(', ')}], which does not match tensors[0] [${first.join(', ')}] after dim 0`);
    }
    checkSameDevice(tensors[0], t, `tensors[${k}]`);
    rows.push(s[0]);
  });
  const out = wrap(native.concatRows(tensors.map((t) => t.handle)));
  return recordOp(out, 'concatRows', tensors.slice(), (dout, needs) => {
    let at = 0;
    return rows.map((n, k) => {
      const g = needs[k] ? wrap(native.sliceRows(dout.handle, at, at + n)) : null;
      at += n;
      return g;
    });
  });
}

/** Rows [start, end) of x [n, ...] (x[start:end], a copy), 0 <= start <= end <= n. */
export function sliceRows(x: Tensor, start: number, end: number): Tensor {
  const xs = checkRows(x, 'x');
  const n = xs[0];
  checkInt(start, 'start', { min: 0, max: n });
  checkInt(end, 'end', { min: start, max: n });
  const out = wrap(native.sliceRows(x.handle, start, end));
  return recordOp(out, 'sliceRows', [x], (dout) => {
    const idx = new Int32Array(end - start);
    for (let i = 0; i < idx.length; i++) idx[i] = start + i;
    return [wrap(native.gatherRowsBackward(dout.handle, idx, n))];
  });
}

/** Row r of x [n, d] multiplied by s[r] (s [n]). Gradient to x only: s must not track gradients. */
export function scaleRows(x: Tensor, s: Tensor): Tensor {
  const xs = checkNdim(x, 2, 'x', '[n, d]');
  const ss = checkNdim(s, 1, 's', '[n]');
  if (ss[0] !== xs[0]) throw new RangeError(`s has ${ss[0]} entries but x has ${xs[0]} rows`);
  checkSameDevice(x, s, 's');
  if (s.tracksGrad) throw new TypeError('scaleRows does not propagate gradients to s: detach it or use noGrad()');
  const out = wrap(native.scaleRows(x.handle, s.handle));
  return recordOp(out, 'scaleRows', [x], (dout) => [wrap(native.scaleRows(dout.handle, s.handle))]);
}

/**
 * Locality-sensitive hash codes (B4B's coverage): proj [n, families*planes]
 * holds each row's projections on `families` sets of `planes` hyperplanes
 * (family f in columns f*planes .. f*planes+planes-1). Returns [n, families]
 * with out[r, f] = sum_j (proj[r, f*planes + j] >= 0) << j, the bucket
 * LshCoverage.add computes (a zero projection sets its bit, NaN does not).
 * planes <= 16, so the codes are exact. Piecewise constant: no gradient.
 */
export function lshCodes(proj: Tensor, families: number, planes: number): Tensor {
  const ps = checkNdim(proj, 2, 'proj', '[n, families*planes]');
  checkInt(families, 'families', { min: 1, max: 65536 });
  checkInt(planes, 'planes', { min: 1, max: 16 });
  if (ps[1] !== families * planes) {
    throw new RangeError(`proj has ${ps[1]} columns but families*planes = ${families}*${planes} = ${families * planes}`);
  }
  return wrap(native.lshCodes(proj.handle, families, planes));
}
