// Measuring PoisonedEncoder on a (poisoned or clean) encoder f.
//
// For each downstream task, several downstream classifiers g are trained on
// frozen f(TRAIN): linear probes with different seeds and a small MLP
// (Linear(d, 256) + ReLU + Linear(256, K), Adam, full batch on standardised
// embeddings, like the probe). Then
//   CA  = accuracy of the seed-0 linear probe on TEST (the project's probe protocol),
//   ASR = |{(x_t, g) : g(f(x_t)) = y_t}| / (#targets * #classifiers),
// the same figure on the clean encoder being the base rate. `shift` reports
// whether f(x_t) moved toward y_t at all: cos(f(x_t), mean f(TRAIN of y_t))
// minus cos(f(x_t), mean f(TRAIN of its true class)).
import { Tensor, keep, noGrad, tidy } from '../../core/tensor';
import * as ops from '../../core/ops';
import { Adam } from '../../nn/optim';
import { Linear } from '../../nn/module';
import { checkInt, checkNumber, checkOptions, checkSeed, describe } from '../../core/validate';
import type { Module } from '../../nn/module';
import type { Dataset } from '../../data/dataset';
import { embedDataset } from '../../eval/embed';
import { accuracy, featureStats, linearProbe, probePredict, standardize, type Embeddings } from '../../eval/probe';
import { cosine } from './construct';

export interface TargetInput {
  image: Uint8Array;
  trueClass: number;
  targetClass: number;
}

export interface PoisonTaskData {
  name: string;
  train: Dataset;
  test: Dataset;
  targets: TargetInput[];
}

export interface ClassifierOutcome {
  kind: 'linear' | 'mlp';
  seed: number;
  /** Test accuracy. */
  accuracy: number;
  /** The class predicted for each target input. */
  targetPredictions: number[];
}

export interface PoisonTaskResult {
  task: string;
  /** Clean accuracy: the seed-0 linear probe's test accuracy. */
  ca: number;
  /** Mean test accuracy over every downstream classifier. */
  meanAccuracy: number;
  asr: number;
  hits: number;
  pairs: number;
  /** Per target: cos to the target class's mean embedding minus cos to its true class's. */
  shift: number[];
  classifiers: ClassifierOutcome[];
}

export interface MeasureOptions {
  /** Seeds of the linear probes (default [0, 1, 2]). */
  probeSeeds?: number[];
  /** Train the MLP classifier too (default true). */
  mlp?: boolean;
  probeEpochs?: number;
  mlpEpochs?: number;
  mlpHidden?: number;
}

const KEYS = ['probeSeeds', 'mlp', 'probeEpochs', 'mlpEpochs', 'mlpHidden'];

/** ASR from predictions: predictions[g][t] is classifier g's class for target t. */
export function attackSuccessRate(predictions: readonly (readonly number[])[], targetClasses: readonly number[]): { asr: number; hits: number; pairs: number } {
  if (!Array.isArray(predictions) || predictions.length === 0) throw new RangeError('predictions must hold at least one classifier');
  if (!Array.isArray(targetClasses) || targetClasses.length === 0) throw new RangeError('targetClasses must be non-empty');
  let hits = 0;
  predictions.forEach((row, g) => {
    if (!Array.isArray(row) || row.length !== targetClasses.length) throw new RangeError(`predictions[${g}] must have one class per target (${targetClasses.length})`);
    row.forEach((c, t) => {
      if (c === targetClasses[t]) hits++;
    });
  });
  const pairs = predictions.length * targetClasses.length;
  return { asr: hits / pairs, hits, pairs };
}

/** A small MLP classifier on standardised embeddings; returns test accuracy and the predictions on `extra`. */
export function mlpClassifier(train: Embeddings, test: Embeddings, extra: Embeddings, options: { numClasses: number; hidden?: number; epochs?: number; lr?: number; seed?: number }): { accuracy: number; predictions: Int32Array } {
  if (options === undefined) throw new TypeError('options must be an object { numClasses, ... }, got undefined');
  const o = checkOptions<{ numClasses: number; hidden?: number; epochs?: number; lr?: number; seed?: number }>(options, 'options', ['numClasses', 'hidden', 'epochs', 'lr', 'seed']);
  const C = checkInt(o.numClasses, 'options.numClasses', { min: 2, max: 1e6 });
  const hidden = checkInt(o.hidden ?? 256, 'options.hidden', { min: 1, max: 65536 });
  const epochs = checkInt(o.epochs ?? 200, 'options.epochs', { min: 1, max: 1e6 });
  const lr = checkNumber(o.lr ?? 1e-3, 'options.lr', { gt: 0 });
  const seed = checkSeed(o.seed ?? 0, 'options.seed');
  // Every input is checked (and test, extra standardised) before any training.
  const stats = featureStats(train);
  const checkLabels = (e: Embeddings, name: string) => {
    if (!(e.labels instanceof Int32Array) || e.labels.length !== e.n) throw new TypeError(`${name}.labels must be an Int32Array of ${name}.n = ${e.n} labels, got ${describe(e.labels)}`);
    for (let i = 0; i < e.n; i++) if (e.labels[i] < 0 || e.labels[i] >= C) throw new RangeError(`${name}.labels[${i}] = ${e.labels[i]} is not a class in [0, ${C})`);
  };
  checkLabels(train, 'train');
  standardize(test, stats);
  checkLabels(test, 'test');
  standardize(extra, stats);
  const l1 = new Linear(train.dim, hidden, { seed, stream: 0 });
  const l2 = new Linear(hidden, C, { seed, stream: 1 });
  const net = (x: Tensor) => l2.forward(ops.relu(l1.forward(x)));
  const x = keep(Tensor.from(standardize(train, stats), [train.n, train.dim]));
  const opt = new Adam([...l1.parameters(), ...l2.parameters()], { lr });
  const predict = (e: Embeddings): Int32Array => {
    const logits = noGrad(() => tidy(() => net(Tensor.from(standardize(e, stats), [e.n, e.dim])).toArray()));
    const pred = new Int32Array(e.n);
    for (let i = 0; i < e.n; i++) {
      let best = 0;
      for (let c = 1; c < C; c++) if (logits[i * C + c] > logits[i * C + best]) best = c;
      pred[i] = best;
    }
    return pred;
  };
  try {
    for (let e = 0; e < epochs; e++) {
      tidy(() => {
        opt.zeroGrad();
        const loss = ops.crossEntropy(net(x), train.labels);
        loss.backward();
        opt.step();
      });
    }
    return { accuracy: accuracy(predict(test), test.labels), predictions: predict(extra) };
  } finally {
    opt.zeroGrad();
    x.dispose();
    for (const t of opt.state().tensors.values()) t.dispose();
    l1.dispose();
    l2.dispose();
  }
}

function classMean(e: Embeddings, c: number): Float64Array {
  const m = new Float64Array(e.dim);
  let k = 0;
  for (let i = 0; i < e.n; i++) {
    if (e.labels[i] !== c) continue;
    k++;
    for (let j = 0; j < e.dim; j++) m[j] += e.data[i * e.dim + j];
  }
  for (let j = 0; j < e.dim; j++) m[j] /= Math.max(k, 1);
  return m;
}


/** CA, ASR and the embedding shift of the targets, per task (see the header). */
export function measurePoisoning(encoder: Module, tasks: readonly PoisonTaskData[], options: MeasureOptions = {}): PoisonTaskResult[] {
  const o = checkOptions<MeasureOptions>(options, 'options', KEYS);
  if (!encoder || typeof (encoder as Module).forward !== 'function') throw new TypeError(`encoder must be an encoder (Module), got ${describe(encoder)}`);
  const seeds = o.probeSeeds ?? [0, 1, 2];
  if (!Array.isArray(seeds) || seeds.length === 0) throw new RangeError('options.probeSeeds must be a non-empty array of seeds');
  Array.from(seeds).forEach((s, i) => checkSeed(s, `options.probeSeeds[${i}]`));
  if (!Array.isArray(tasks as unknown) || tasks.length === 0) throw new RangeError('tasks must be a non-empty array');
  Array.from(tasks).forEach((t, i) => {
    if (t === null || typeof t !== 'object') throw new TypeError(`tasks[${i}] must be an object { name, train, test, targets }, got ${describe(t)}`);
    if (!Array.isArray(t.targets) || t.targets.length === 0) throw new RangeError(`tasks[${i}].targets must be a non-empty array`);
  });
  return tasks.map((task: PoisonTaskData) => {
    const numClasses = task.train.numClasses;
    const eTrain = embedDataset(encoder, task.train);
    const eTest = embedDataset(encoder, task.test);
    const per = task.train.channels * task.train.height * task.train.width;
    const tImages = new Uint8Array(task.targets.length * per);
    task.targets.forEach((t, i) => tImages.set(t.image, i * per));
    const tSet: Dataset = { ...task.test, name: `${task.name}/targets`, images: tImages, labels: Int32Array.from(task.targets.map((t) => t.trueClass)) };
    const eTargets = embedDataset(encoder, tSet);
    const classifiers: ClassifierOutcome[] = [];
    for (const seed of seeds) {
      const r = linearProbe(eTrain, eTest, { numClasses, seed, epochs: options.probeEpochs });
      const pred = probePredict(r.probe, eTargets);
      classifiers.push({ kind: 'linear', seed, accuracy: r.accuracy, targetPredictions: Array.from(pred) });
    }
    if (options.mlp !== false) {
      const m = mlpClassifier(eTrain, eTest, eTargets, { numClasses, seed: seeds[0], epochs: options.mlpEpochs, hidden: options.mlpHidden });
      classifiers.push({ kind: 'mlp', seed: seeds[0], accuracy: m.accuracy, targetPredictions: Array.from(m.predictions) });
    }
    const { asr, hits, pairs } = attackSuccessRate(
      classifiers.map((c) => c.targetPredictions),
      task.targets.map((t) => t.targetClass),
    );
    const shift = task.targets.map((t, i) => {
      const e = eTargets.data.subarray(i * eTargets.dim, (i + 1) * eTargets.dim);
      return cosine(e, classMean(eTrain, t.targetClass)) - cosine(e, classMean(eTrain, t.trueClass));
    });
    return {
      task: task.name,
      ca: classifiers[0].accuracy,
      meanAccuracy: classifiers.reduce((s, c) => s + c.accuracy, 0) / classifiers.length,
      asr,
      hits,
      pairs,
      shift,
      classifiers,
    };
  });
}
