// Encoder stealing through the service: the attacker picks `budget` images of
// its query set, queries each ONCE (in batches), caches the returned
// embeddings, then trains a surrogate against the cache for `epochs` epochs.
// Augmented views are made from the attacker's own copy of the images and
// compared with the cached clean embedding, so they cost no queries.
//
// Which images: with selection 'random' (default) the first `budget` of a
// seeded permutation of the query set (so the 600 images of a budget-600 run
// are among the 3000 of a budget-3000 run with the same seed); with 'first'
// the first `budget` in dataset order (the built-in loaders interleave the
// classes, so a prefix is class-balanced too).
//
// Every random choice derives from `seed`: the selection from (seed, 10), the
// surrogate's initial weights from seed, the batch order of epoch e from
// ((seed, 11), e), the augmentation of view j at step s of epoch e from
// ((seed, 12, e, s), j). A run is reproducible on the same backend and
// thread count.
import { Tensor, keep, noGrad, tidy } from '../core/tensor';
import * as ops from '../core/ops';
import { checkInt, checkNumber, checkOneOf, checkOptions, checkSeed, checkTensor, describe } from '../core/validate';
import { Adam } from '../nn/optim';
import { ARCHITECTURES, type Architecture } from '../nn/encoders';
import { checkDataset, datasetSize, subset, type Dataset } from '../data/dataset';
import { augmentBatch } from '../data/augment';
import { toTensor } from '../data/tensor';
import { deriveSeed } from '../data/prng';
import { epochBatches, epochPermutation } from '../data/batching';
import { checkProgressSink, silentProgress, type ProgressSink } from '../report/progress';
import { checkEmbeddingSource, type EmbeddingSource } from '../service/source';
import { STEAL_METHODS, contStealLoss, cosineStealLoss, mseStealLoss, stolenEncoderLoss, type StealMethod } from './losses';
import { Surrogate, createSurrogate } from './surrogate';

export interface StealConfig {
  method: StealMethod;
  /** Distinct images queried (each once). */
  budget: number;
  epochs: number;
  batchSize: number;
  /** Adam learning rate. */
  lr: number;
  /** Surrogate architecture. */
  arch: Architecture;
  seed: number;
  /** stolenencoder: weight of the augmented-view term. */
  lambda: number;
  /** stolenencoder: augmented views per image and step. */
  k: number;
  /** contsteal: NT-Xent temperature. */
  tau: number;
  clientId: string;
  selection: 'random' | 'first';
  /** Images per query request. */
  queryBatchSize: number;
}

export const STEAL_DEFAULTS = {
  epochs: 60,
  batchSize: 128,
  lr: 1e-3,
  arch: 'cnn-small' as Architecture,
  seed: 0,
  lambda: 1,
  k: 1,
  tau: 0.5,
  clientId: 'attacker',
  selection: 'random' as const,
  queryBatchSize: 256,
};

export interface StealOptions extends Partial<Omit<StealConfig, 'method' | 'budget'>> {
  method: StealMethod;
  budget: number;
  progress?: ProgressSink;
}

export interface StealEpoch {
  epoch: number;
  loss: number;
  seconds: number;
}

export interface StealResult {
  surrogate: Surrogate;
  /** Images the service counted for this attack. */
  queriesSpent: number;
  history: StealEpoch[];
  /** Querying plus training. */
  wallSeconds: number;
  querySeconds: number;
  trainSeconds: number;
  config: StealConfig;
  /** The query-set indices of the images queried, in query order. */
  queried: Int32Array;
}

/** Every key a StealOptions object may have. */
const STEAL_OPTION_KEYS = ['method', 'budget', ...Object.keys(STEAL_DEFAULTS), 'progress'];

export function resolveStealConfig(o: StealOptions): StealConfig {
  if (o === undefined) throw new TypeError('options must be an object { method, budget, ... }, got undefined');
  checkOptions(o, 'options', STEAL_OPTION_KEYS);
  if (o.progress !== undefined) checkProgressSink(o.progress, 'options.progress');
  const d = STEAL_DEFAULTS;
  const clientId = o.clientId ?? d.clientId;
  if (typeof clientId !== 'string' || clientId === '') throw new TypeError(`clientId must be a non-empty string, got ${typeof clientId === 'string' ? 'an empty string' : describe(clientId)}`);
  return {
    method: checkOneOf(o.method, 'method', STEAL_METHODS),
    budget: checkInt(o.budget, 'budget', { min: 2, max: 2 ** 31 - 1 }),
    epochs: checkInt(o.epochs ?? d.epochs, 'epochs', { min: 0, max: 100000 }),
    batchSize: checkInt(o.batchSize ?? d.batchSize, 'batchSize', { min: 2, max: 65536 }),
    lr: checkNumber(o.lr ?? d.lr, 'lr', { gt: 0, max: 10 }),
    arch: checkOneOf(o.arch ?? d.arch, 'arch', ARCHITECTURES),
    seed: checkSeed(o.seed ?? d.seed),
    lambda: checkNumber(o.lambda ?? d.lambda, 'lambda', { min: 0, max: 1e6 }),
    k: checkInt(o.k ?? d.k, 'k', { min: 0, max: 64 }),
    tau: checkNumber(o.tau ?? d.tau, 'tau', { gt: 0, max: 100 }),
    clientId,
    selection: checkOneOf(o.selection ?? d.selection, 'selection', ['random', 'first'] as const),
    queryBatchSize: checkInt(o.queryBatchSize ?? d.queryBatchSize, 'queryBatchSize', { min: 1, max: 65536 }),
  };
}

/** The query-set indices an attack with this budget, selection and seed queries. */
export function selectQueries(n: number, budget: number, selection: 'random' | 'first', seed: number): Int32Array {
  checkInt(n, 'n', { min: 1, max: 2 ** 31 - 1 });
  checkInt(budget, 'budget', { min: 1, max: 2 ** 31 - 1 });
  checkOneOf(selection, 'selection', ['random', 'first'] as const);
  checkSeed(seed, 'seed');
  if (budget > n) throw new RangeError(`budget ${budget} is larger than the query set (${n} images)`);
  if (selection === 'first') return Int32Array.from({ length: budget }, (_, i) => i);
  return epochPermutation(n, deriveSeed(seed, 10), 0).slice(0, budget);
}

/** One training step's loss (with its graph) on the images `idx` of `data`, whose cached target embeddings are `t`. */
export function stealLoss(cfg: StealConfig, surrogate: Surrogate, data: Dataset, idx: Int32Array, t: Tensor, augSeed: number): Tensor {
  if (cfg === null || typeof cfg !== 'object') throw new TypeError(`cfg must be a steal config (from resolveStealConfig), got ${describe(cfg)}`);
  checkOneOf(cfg.method, 'cfg.method', STEAL_METHODS);
  if (cfg.method === 'stolenencoder') {
    checkNumber(cfg.lambda, 'cfg.lambda', { min: 0, max: 1e6 });
    checkInt(cfg.k, 'cfg.k', { min: 0, max: 64 });
  }
  if (cfg.method === 'contsteal') checkNumber(cfg.tau, 'cfg.tau', { gt: 0, max: 100 });
  if (!(surrogate instanceof Surrogate)) throw new TypeError(`surrogate must be a Surrogate, got ${describe(surrogate)}`);
  checkDataset(data, 'data', false);
  if (!(idx instanceof Int32Array)) throw new TypeError(`idx must be an Int32Array of image indices, got ${describe(idx)}`);
  checkTensor(t, 't');
  checkSeed(augSeed, 'augSeed');
  switch (cfg.method) {
    case 'mse':
      return mseStealLoss(surrogate.forward(toTensor(data, idx)), t);
    case 'cosine':
      return cosineStealLoss(surrogate.forward(toTensor(data, idx)), t);
    case 'stolenencoder': {
      // Separate forward passes for the clean batch and each view, as in the
      // paper: batch norm (train mode) normalises each with its own statistics.
      const clean = surrogate.forward(toTensor(data, idx));
      const views: Tensor[] = [];
      if (cfg.lambda > 0) for (let j = 0; j < cfg.k; j++) views.push(surrogate.forward(augmentBatch(data, idx, { seed: deriveSeed(augSeed, j) })));
      return stolenEncoderLoss(clean, views, t, cfg.lambda);
    }
    case 'contsteal':
      return contStealLoss(surrogate.forward(augmentBatch(data, idx, { seed: deriveSeed(augSeed, 0) })), t, cfg.tau);
  }
}

/**
 * Steals the encoder behind `source` (an EncoderService with its budget and
 * defense, a remote API, ...) with the images of `queryData`: the attack sees
 * only the source's answers. Throws the source's QueryBudgetExceeded if it
 * refuses a query.
 */
export async function stealEncoder(source: EmbeddingSource, queryData: Dataset, options: StealOptions): Promise<StealResult> {
  checkEmbeddingSource(source, 'source');
  checkDataset(queryData, 'queryData');
  const cfg = resolveStealConfig(options);
  const progress = options.progress ?? silentProgress;
  const t0 = Date.now();
  const queried = selectQueries(datasetSize(queryData), cfg.budget, cfg.selection, cfg.seed);
  const data = subset(queryData, queried, `${queryData.name}[query ${cfg.budget}]`);

  // 1. Query each selected image once; cache the embeddings. The cache
  // stays native (one tensor [budget, d]); each step gathers its rows there.
  let queriesSpent = 0;
  const answers: Tensor[] = [];
  let dim = 0;
  let cache: Tensor;
  try {
    for (let s = 0; s < cfg.budget; s += cfg.queryBatchSize) {
      const e = Math.min(cfg.budget, s + cfg.queryBatchSize);
      const idx = Int32Array.from({ length: e - s }, (_, i) => s + i);
      const emb = keep(await source.embed(cfg.clientId, { dataset: data, indices: idx }));
      answers.push(emb);
      queriesSpent += idx.length;
      if (emb.ndim !== 2 || emb.shape[0] !== e - s) throw new Error(`the source returned shape [${emb.shape.join(', ')}] for ${e - s} images`);
      if (s === 0) dim = emb.shape[1];
      else if (emb.shape[1] !== dim) throw new Error(`the source returned ${emb.shape[1]}-d embeddings after ${dim}-d ones`);
      progress.update({ task: `query:${cfg.method}`, step: e, steps: cfg.budget });
    }
    cache = keep(noGrad(() => (answers.length === 1 ? answers[0].clone() : ops.concatRows(answers))));
  } finally {
    for (const a of answers) a.dispose();
  }
  const querySeconds = (Date.now() - t0) / 1000;
  progress.event({ task: `steal:${cfg.method}`, queried: queriesSpent, dim, querySeconds });

  // 2. Train the surrogate against the cache.
  const surrogate = createSurrogate({ arch: cfg.arch, inChannels: queryData.channels, outDim: dim, seed: cfg.seed });
  const opt = new Adam(surrogate.parameters(), { lr: cfg.lr });
  const history: StealEpoch[] = [];
  const t1 = Date.now();
  surrogate.train();
  try {
    for (let epoch = 0; epoch < cfg.epochs; epoch++) {
      const te = Date.now();
      const batches = epochBatches(cfg.budget, cfg.batchSize, deriveSeed(cfg.seed, 11), epoch);
      let lossSum = 0;
      let seen = 0;
      batches.forEach((idx, step) => {
        const loss = tidy(() => {
          const l = stealLoss(cfg, surrogate, data, idx, noGrad(() => ops.gatherRows(cache, idx)), deriveSeed(cfg.seed, 12, epoch, step));
          opt.zeroGrad();
          l.backward();
          opt.step();
          return l.item();
        });
        lossSum += loss * idx.length;
        seen += idx.length;
        const sec = (Date.now() - te) / 1000;
        const perStep = sec / (step + 1);
        progress.update({
          task: `steal:${cfg.method}`,
          epoch: epoch + 1,
          epochs: cfg.epochs,
          step: step + 1,
          steps: batches.length,
          loss,
          imagesPerSec: seen / Math.max(sec, 1e-3),
          etaSec: Math.round(perStep * (batches.length - step - 1 + (cfg.epochs - epoch - 1) * batches.length)),
        });
      });
      const rec = { epoch: epoch + 1, loss: lossSum / Math.max(seen, 1), seconds: (Date.now() - te) / 1000 };
      history.push(rec);
      progress.event({ task: `steal:${cfg.method}`, ...rec });
    }
  } catch (e) {
    surrogate.dispose();
    throw e;
  } finally {
    cache.dispose();
    progress.stop();
    noGrad(() => opt.zeroGrad());
    for (const t of opt.state().tensors.values()) t.dispose();
  }
  surrogate.eval();
  const trainSeconds = (Date.now() - t1) / 1000;
  return { surrogate, queriesSpent, history, wallSeconds: (Date.now() - t0) / 1000, querySeconds, trainSeconds, config: cfg, queried };
}
