// How good a stolen encoder is, against its target.
//
// For each downstream task (Fashion-MNIST, in distribution, and MNIST, out of
// distribution, by default): the linear-probe TEST accuracy of the target
// and of the stolen encoder (the protocol of probe.ts: each encoder's probe
// is trained on its own TRAIN embeddings), the agreement (fraction of TEST
// images on which the two probes predict the same class) and the mean cosine
// similarity between s(x) and t(x) on TEST. The headline `agreement` and
// `meanCosine` are those of the first task.
//
// The target's side (embeddings, probes, predictions) is computed once per
// evaluator and reused for every stolen encoder of a grid.
import { Module } from '../nn/module';
import { checkDataset, type Dataset } from '../data/dataset';
import type { TaskData } from './tasks';
import { embedDataset } from './embed';
import { agreement, linearProbe, type Embeddings } from './probe';
import { checkInt, checkObject, checkOptions, checkSeed, describe } from '../core/validate';

export interface FidelityOptions {
  /** Linear probe epochs (default 100, the probe protocol's). */
  probeEpochs?: number;
  /** Probe seed (default 0). */
  seed?: number;
  /** Embedding batch size. */
  batchSize?: number;
}

interface TargetSide {
  accuracy: number;
  predictions: Int32Array;
  test: Embeddings;
}

export interface TaskFidelity {
  targetAccuracy: number;
  stolenAccuracy: number;
  agreement: number;
  /** null when the two encoders' embeddings differ in size. */
  meanCosine: number | null;
  trainImages: number;
  testImages: number;
}

export interface FidelityReport {
  /** Task name -> linear-probe TEST accuracy. */
  targetAccuracy: Record<string, number>;
  stolenAccuracy: Record<string, number>;
  /** On the first task's TEST split. */
  agreement: number;
  meanCosine: number | null;
  tasks: Record<string, TaskFidelity>;
  evalSeconds: number;
}

/** Mean over rows of cos(a_i, b_i) for two row-major [n, d] arrays (float64 sums). */
export function meanRowCosine(a: Float32Array, b: Float32Array, n: number, d: number): number {
  if (!(a instanceof Float32Array)) throw new TypeError(`a must be a Float32Array, got ${describe(a)}`);
  if (!(b instanceof Float32Array)) throw new TypeError(`b must be a Float32Array, got ${describe(b)}`);
  checkInt(n, 'n', { min: 1 });
  checkInt(d, 'd', { min: 1 });
  if (a.length !== n * d || b.length !== n * d) throw new RangeError('a and b must both hold n*d values');
  let total = 0;
  for (let i = 0; i < n; i++) {
    let dot = 0;
    let na = 0;
    let nb = 0;
    for (let k = 0; k < d; k++) {
      const x = a[i * d + k];
      const y = b[i * d + k];
      dot += x * y;
      na += x * x;
      nb += y * y;
    }
    total += dot / (Math.max(Math.sqrt(na), 1e-8) * Math.max(Math.sqrt(nb), 1e-8));
  }
  return total / n;
}

type ProbeSettings = { epochs: number; seed: number; batchSize: number };

/** Checks the tasks and options of an evaluation; returns the probe settings. */
function checkProbeSetup(tasks: readonly TaskData[], options: FidelityOptions): ProbeSettings {
  if (!Array.isArray(tasks) || tasks.length === 0) throw new TypeError('tasks must be a non-empty array of TaskData');
  tasks.forEach((t, i) => {
    checkObject(t, `tasks[${i}]`);
    if (typeof t.name !== 'string') throw new TypeError(`tasks[${i}].name must be a string, got ${describe(t.name)}`);
    checkDataset(t.train, `tasks[${i}].train`, false);
    checkDataset(t.test, `tasks[${i}].test`, false);
  });
  checkOptions(options, 'options', ['probeEpochs', 'seed', 'batchSize']);
  const names = new Set(tasks.map((t) => t.name));
  if (names.size !== tasks.length) throw new RangeError('task names must be distinct');
  return {
    epochs: checkInt(options.probeEpochs ?? 100, 'probeEpochs', { min: 1 }),
    seed: checkSeed(options.seed ?? 0),
    batchSize: checkInt(options.batchSize ?? 512, 'batchSize', { min: 1 }),
  };
}

/** One encoder's linear probe on one task: trained on its TRAIN embeddings, measured on TEST. */
function probeTask(encoder: Module, task: TaskData, o: ProbeSettings): { result: ReturnType<typeof linearProbe>; test: Embeddings; trainImages: number } {
  const train = embedDataset(encoder, task.train, { batchSize: o.batchSize });
  const test = embedDataset(encoder, task.test, { batchSize: o.batchSize });
  const result = linearProbe(train, test, { numClasses: task.train.numClasses, epochs: o.epochs, seed: o.seed });
  return { result, test, trainImages: train.n };
}

export interface ProbeReport {
  /** Task name -> linear-probe TEST accuracy. */
  accuracy: Record<string, number>;
  tasks: Record<string, { accuracy: number; trainImages: number; testImages: number }>;
  evalSeconds: number;
}

/**
 * An encoder's own linear-probe TEST accuracy on every task, with the
 * protocol of FidelityEvaluator (the same probes, so the numbers equal its
 * stolenAccuracy): for a copy whose target is not at hand (a remote API),
 * where agreement and cosine cannot be measured without querying it.
 */
export function probeAccuracies(encoder: Module, tasks: readonly TaskData[], options: FidelityOptions = {}): ProbeReport {
  if (!(encoder instanceof Module)) throw new TypeError(`encoder must be a Module, got ${describe(encoder)}`);
  const o = checkProbeSetup(tasks, options);
  const t0 = Date.now();
  const out: ProbeReport['tasks'] = {};
  for (const task of tasks) {
    const { result, test, trainImages } = probeTask(encoder, task, o);
    out[task.name] = { accuracy: result.accuracy, trainImages, testImages: test.n };
  }
  return { accuracy: Object.fromEntries(Object.entries(out).map(([k, v]) => [k, v.accuracy])), tasks: out, evalSeconds: (Date.now() - t0) / 1000 };
}

export class FidelityEvaluator {
  readonly #target: Module;
  readonly tasks: readonly TaskData[];
  readonly #opts: ProbeSettings;
  #targetSide: Map<string, TargetSide> | null = null;
  #targetSeconds = 0;

  constructor(target: Module, tasks: readonly TaskData[], options: FidelityOptions = {}) {
    if (!(target instanceof Module)) throw new TypeError(`target must be a Module, got ${describe(target)}`);
    this.#opts = checkProbeSetup(tasks, options);
    this.#target = target;
    this.tasks = tasks;
  }

  #probe(encoder: Module, task: TaskData): { result: ReturnType<typeof linearProbe>; test: Embeddings; trainImages: number } {
    return probeTask(encoder, task, this.#opts);
  }

  /** The target's probe accuracy per task (computed on first use, then cached). */
  targetAccuracy(): Record<string, number> {
    const side = this.#ensureTarget();
    return Object.fromEntries([...side].map(([k, v]) => [k, v.accuracy]));
  }

  /** Seconds spent on the target's side (once). */
  get targetSeconds(): number {
    return this.#targetSeconds;
  }

  #ensureTarget(): Map<string, TargetSide> {
    if (this.#targetSide) return this.#targetSide;
    const t0 = Date.now();
    const side = new Map<string, TargetSide>();
    for (const task of this.tasks) {
      const { result, test } = this.#probe(this.#target, task);
      side.set(task.name, { accuracy: result.accuracy, predictions: result.predictions, test });
    }
    this.#targetSide = side;
    this.#targetSeconds = (Date.now() - t0) / 1000;
    return side;
  }

  /** The stolen encoder against the target, on every task. */
  evaluate(stolen: Module): FidelityReport {
    if (!(stolen instanceof Module)) throw new TypeError(`stolen must be a Module, got ${describe(stolen)}`);
    return this.evaluateFeatures((ds) => embedDataset(stolen, ds, { batchSize: this.#opts.batchSize }));
  }

  /**
   * Any features against the target, on every task, with the same probe
   * protocol: e.g. a baseline that is not an encoder (raw pixels). The mean
   * cosine is null when the features' size differs from the target's.
   */
  evaluateFeatures(features: (ds: Dataset) => Embeddings): FidelityReport {
    if (typeof features !== 'function') throw new TypeError(`features must be a function (dataset) => Embeddings, got ${describe(features)}`);
    const side = this.#ensureTarget();
    const t0 = Date.now();
    const tasks: Record<string, TaskFidelity> = {};
    for (const task of this.tasks) {
      const tgt = side.get(task.name)!;
      const train = features(task.train);
      const test = features(task.test);
      const result = linearProbe(train, test, { numClasses: task.train.numClasses, epochs: this.#opts.epochs, seed: this.#opts.seed });
      const trainImages = train.n;
      tasks[task.name] = {
        targetAccuracy: tgt.accuracy,
        stolenAccuracy: result.accuracy,
        agreement: agreement(result.predictions, tgt.predictions),
        meanCosine: test.dim === tgt.test.dim ? meanRowCosine(test.data, tgt.test.data, test.n, test.dim) : null,
        trainImages,
        testImages: test.n,
      };
    }
    const first = tasks[this.tasks[0].name];
    return {
      targetAccuracy: Object.fromEntries(Object.entries(tasks).map(([k, v]) => [k, v.targetAccuracy])),
      stolenAccuracy: Object.fromEntries(Object.entries(tasks).map(([k, v]) => [k, v.stolenAccuracy])),
      agreement: first.agreement,
      meanCosine: first.meanCosine,
      tasks,
      evalSeconds: (Date.now() - t0) / 1000,
    };
  }
}

