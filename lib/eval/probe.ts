// Evaluation of frozen embeddings: the linear probe and the kNN monitor.
//
// Linear probe protocol: embeddings of TRAIN and TEST without augmentation,
// standardised with TRAIN statistics, softmax regression trained full-batch
// (Adam, lr 1e-2, 100 epochs) on TRAIN, accuracy on TEST.
import { Tensor, noGrad, tidy, keep } from '../core/tensor';
import * as ops from '../core/ops';
import { Adam } from '../nn/optim';
import { checkAllocation, checkInt, checkNumber, checkObject, checkOptions, checkSeed, describe } from '../core/validate';

export interface Embeddings {
  /** Row-major [n, dim]. */
  data: Float32Array;
  n: number;
  dim: number;
  labels: Int32Array;
}

function checkEmbeddings(e: Embeddings, name: string): void {
  checkObject(e, name);
  if (!(e.data instanceof Float32Array)) throw new TypeError(`${name}.data must be a Float32Array, got ${describe(e.data)}`);
  checkInt(e.n, `${name}.n`, { min: 1 });
  checkInt(e.dim, `${name}.dim`, { min: 1 });
  if (e.data.length !== e.n * e.dim) throw new RangeError(`${name}.data has ${e.data.length} values, expected n*dim = ${e.n * e.dim}`);
  if (!(e.labels instanceof Int32Array) || e.labels.length !== e.n) throw new RangeError(`${name}.labels must be an Int32Array of length n`);
  for (let i = 0; i < e.data.length; i++) if (!Number.isFinite(e.data[i])) throw new RangeError(`${name}.data[${i}] is not finite`);
}

/** Every label of e in [0, numClasses). */
function checkLabelRange(e: Embeddings, name: string, numClasses: number): void {
  for (let i = 0; i < e.n; i++) {
    if (e.labels[i] < 0 || e.labels[i] >= numClasses) throw new RangeError(`${name}.labels[${i}] = ${e.labels[i]} is outside [0, ${numClasses}) (numClasses ${numClasses})`);
  }
}

const PROBE_KEYS = ['numClasses', 'epochs', 'lr', 'seed'] as const;

/** Per-feature mean and standard deviation of train (population std, floored at 1e-6). */
export function featureStats(train: Embeddings): { mean: Float64Array; std: Float64Array } {
  checkEmbeddings(train, 'train');
  const { n, dim, data } = train;
  const mean = new Float64Array(dim);
  const std = new Float64Array(dim);
  for (let i = 0; i < n; i++) for (let k = 0; k < dim; k++) mean[k] += data[i * dim + k];
  for (let k = 0; k < dim; k++) mean[k] /= n;
  for (let i = 0; i < n; i++) for (let k = 0; k < dim; k++) std[k] += (data[i * dim + k] - mean[k]) ** 2;
  for (let k = 0; k < dim; k++) std[k] = Math.max(Math.sqrt(std[k] / n), 1e-6);
  return { mean, std };
}

export function standardize(e: Embeddings, stats: { mean: Float64Array; std: Float64Array }): Float32Array {
  checkEmbeddings(e, 'e');
  checkStats(stats, 'stats', e.dim);
  const out = new Float32Array(e.data.length);
  for (let i = 0; i < e.n; i++) for (let k = 0; k < e.dim; k++) out[i * e.dim + k] = (e.data[i * e.dim + k] - stats.mean[k]) / stats.std[k];
  return out;
}

export interface LinearProbeOptions {
  numClasses: number;
  epochs?: number;
  lr?: number;
  seed?: number;
}

export interface LinearProbe {
  weight: Float32Array;
  bias: Float32Array;
  stats: { mean: Float64Array; std: Float64Array };
  numClasses: number;
  dim: number;
  /** Final training loss. */
  trainLoss: number;
}

/** Trains the softmax-regression probe full-batch on standardised train embeddings. */
export function trainLinearProbe(train: Embeddings, options: LinearProbeOptions): LinearProbe {
  checkEmbeddings(train, 'train');
  if (options === undefined) throw new TypeError('options.numClasses is required');
  checkOptions(options, 'options', PROBE_KEYS);
  const C = checkInt(options.numClasses, 'numClasses', { min: 2, max: 1e6 });
  const epochs = checkInt(options.epochs ?? 100, 'epochs', { min: 1 });
  const lr = checkNumber(options.lr ?? 1e-2, 'lr', { gt: 0 });
  const seed = checkSeed(options.seed ?? 0);
  checkLabelRange(train, 'train', C);
  const stats = featureStats(train);
  const x = keep(Tensor.from(standardize(train, stats), [train.n, train.dim]));
  // Small random init (seeded) rather than zeros, as nn.Linear would.
  const bound = 1 / Math.sqrt(train.dim);
  const w = keep(Tensor.rand([C, train.dim], { seed, low: -bound, high: bound }).requiresGrad_());
  const b = keep(Tensor.zeros([C]).requiresGrad_());
  const opt = new Adam([w, b], { lr });
  let lastLoss = NaN;
  try {
    for (let e = 0; e < epochs; e++) {
      lastLoss = tidy(() => {
        opt.zeroGrad();
        const loss = ops.crossEntropy(ops.linear(x, w, b), train.labels);
        loss.backward();
        opt.step();
        return loss.item();
      });
    }
    return { weight: w.toArray(), bias: b.toArray(), stats, numClasses: C, dim: train.dim, trainLoss: lastLoss };
  } finally {
    opt.zeroGrad();
    x.dispose();
    w.dispose();
    b.dispose();
    for (const t of opt.state().tensors.values()) t.dispose();
  }
}

/** Class predictions of a probe for embeddings e. */
export function probePredict(probe: LinearProbe, e: Embeddings): Int32Array {
  checkObject(probe, 'probe');
  checkInt(probe.numClasses, 'probe.numClasses', { min: 2, max: 1e6 });
  checkInt(probe.dim, 'probe.dim', { min: 1 });
  if (!(probe.weight instanceof Float32Array) || probe.weight.length !== probe.numClasses * probe.dim) {
    throw new TypeError(`probe.weight must be a Float32Array of numClasses * dim = ${probe.numClasses * probe.dim} values`);
  }
  if (!(probe.bias instanceof Float32Array) || probe.bias.length !== probe.numClasses) throw new TypeError(`probe.bias must be a Float32Array of numClasses = ${probe.numClasses} values`);
  checkStats(probe.stats, 'probe.stats', probe.dim);
  checkEmbeddings(e, 'embeddings');
  if (e.dim !== probe.dim) throw new RangeError(`embeddings have dim ${e.dim}, the probe expects ${probe.dim}`);
  const logits = noGrad(() =>
    tidy(() => {
      const x = Tensor.from(standardize(e, probe.stats), [e.n, e.dim]);
      return ops.linear(x, Tensor.from(probe.weight, [probe.numClasses, probe.dim]), Tensor.from(probe.bias, [probe.numClasses])).toArray();
    }),
  );
  const pred = new Int32Array(e.n);
  for (let i = 0; i < e.n; i++) {
    let best = 0;
    for (let c = 1; c < probe.numClasses; c++) if (logits[i * probe.numClasses + c] > logits[i * probe.numClasses + best]) best = c;
    pred[i] = best;
  }
  return pred;
}

export function accuracy(pred: Int32Array, labels: Int32Array): number {
  if (!(pred instanceof Int32Array)) throw new TypeError(`pred must be an Int32Array, got ${describe(pred)}`);
  if (!(labels instanceof Int32Array)) throw new TypeError(`labels must be an Int32Array, got ${describe(labels)}`);
  if (pred.length !== labels.length || pred.length === 0) throw new RangeError('pred and labels must have the same non-zero length');
  let ok = 0;
  for (let i = 0; i < pred.length; i++) if (pred[i] === labels[i]) ok++;
  return ok / pred.length;
}

/** Fraction of positions where two prediction vectors agree. */
export function agreement(a: Int32Array, b: Int32Array): number {
  if (!(a instanceof Int32Array)) throw new TypeError(`a must be an Int32Array, got ${describe(a)}`);
  if (!(b instanceof Int32Array)) throw new TypeError(`b must be an Int32Array, got ${describe(b)}`);
  if (a.length !== b.length || a.length === 0) throw new RangeError('a and b must have the same non-zero length');
  return accuracy(a, b);
}

export interface ProbeResult {
  accuracy: number;
  trainAccuracy: number;
  predictions: Int32Array;
  probe: LinearProbe;
}

/** The whole protocol: train on train, report accuracy on test. */
export function linearProbe(train: Embeddings, test: Embeddings, options: LinearProbeOptions): ProbeResult {
  checkEmbeddings(train, 'train');
  checkEmbeddings(test, 'test');
  if (train.dim !== test.dim) throw new RangeError(`train has dim ${train.dim} but test has dim ${test.dim}`);
  if (options === undefined) throw new TypeError('options.numClasses is required');
  checkOptions(options, 'options', PROBE_KEYS);
  checkLabelRange(test, 'test', checkInt(options.numClasses, 'numClasses', { min: 2, max: 1e6 }));
  const probe = trainLinearProbe(train, options);
  const predictions = probePredict(probe, test);
  return {
    accuracy: accuracy(predictions, test.labels),
    trainAccuracy: accuracy(probePredict(probe, train), train.labels),
    predictions,
    probe,
  };
}

/**
 * kNN monitor (k=200, cosine): each test embedding votes among its k most
 * cosine-similar train embeddings, weighted by exp(sim / 0.1) (the weighting
 * of the InstDisc/SimCLR monitors). Returns test accuracy.
 */
export function knnAccuracy(train: Embeddings, test: Embeddings, options: { numClasses: number; k?: number; temperature?: number }): number {
  checkEmbeddings(train, 'train');
  checkEmbeddings(test, 'test');
  if (train.dim !== test.dim) throw new RangeError(`train has dim ${train.dim} but test has dim ${test.dim}`);
  if (options === undefined) throw new TypeError('options.numClasses is required');
  checkOptions(options, 'options', ['numClasses', 'k', 'temperature']);
  const C = checkInt(options.numClasses, 'numClasses', { min: 2, max: 1e6 });
  checkLabelRange(train, 'train', C);
  checkLabelRange(test, 'test', C);
  const k = Math.min(checkInt(options.k ?? 200, 'k', { min: 1 }), train.n);
  const temp = checkNumber(options.temperature ?? 0.1, 'temperature', { gt: 0 });
  checkAllocation(Math.min(512, test.n) * train.n, 4, `the similarity block (${Math.min(512, test.n)} x ${train.n})`);
  const chunk = 512;
  let correct = 0;
  const trainT = Tensor.from(train.data, [train.n, train.dim]);
  try {
    for (let s = 0; s < test.n; s += chunk) {
      const m = Math.min(chunk, test.n - s);
      const sims = noGrad(() =>
        tidy(() => ops.cosineSimilarity(Tensor.from(test.data.subarray(s * test.dim, (s + m) * test.dim), [m, test.dim]), trainT).toArray()),
      );
      const idx = new Int32Array(train.n);
      for (let i = 0; i < m; i++) {
        const row = sims.subarray(i * train.n, (i + 1) * train.n);
        for (let j = 0; j < train.n; j++) idx[j] = j;
        selectTopK(idx, row, k);
        const votes = new Float64Array(C);
        for (let j = 0; j < k; j++) votes[train.labels[idx[j]]] += Math.exp(row[idx[j]] / temp);
        let best = 0;
        for (let c = 1; c < C; c++) if (votes[c] > votes[best]) best = c;
        if (best === test.labels[s + i]) correct++;
      }
    }
  } finally {
    trainT.dispose();
  }
  return correct / test.n;
}

function checkStats(stats: unknown, name: string, dim: number): void {
  const s = checkObject(stats, name);
  for (const key of ['mean', 'std'] as const) {
    const v = s[key];
    if (!(v instanceof Float64Array) || v.length !== dim) throw new TypeError(`${name}.${key} must be a Float64Array of ${dim} values, got ${describe(v)}`);
    for (let i = 0; i < dim; i++) if (!Number.isFinite(v[i]) || (key === 'std' && !(v[i] > 0))) throw new RangeError(`${name}.${key}[${i}] = ${v[i]} is not ${key === 'std' ? 'a positive' : 'a finite'} number`);
  }
}

/** Moves the indices of the k largest values to idx[0..k) (quickselect; order within unspecified). */
function selectTopK(idx: Int32Array, v: Float32Array, k: number): void {
  let lo = 0;
  let hi = idx.length - 1;
  while (lo < hi) {
    const pivot = v[idx[(lo + hi) >> 1]];
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (v[idx[i]] > pivot) i++;
      while (v[idx[j]] < pivot) j--;
      if (i <= j) {
        const tmp = idx[i];
        idx[i] = idx[j];
        idx[j] = tmp;
        i++;
        j--;
      }
    }
    if (k - 1 <= j) hi = j;
    else if (k - 1 >= i) lo = i;
    else break;
  }
}
