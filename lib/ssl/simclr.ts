// SimCLR pre-training (Chen et al., ICML 2020).
//
// For a batch of B images x: two augmented views A1(x), A2(x) (one native
// augmentation call for the 2B images), h = f(view) the encoder, z = g(h) the
// projection head, and the NT-Xent loss over z = cat[z1, z2] with temperature
// tau: rows i and i+B are positives, every other row a negative.
//
// Every random choice derives from the seed: the shuffle of epoch e from
// (seed, e), the augmentation of step s of epoch e from (seed, e, s). A run
// resumed from the checkpoint of epoch e therefore continues exactly as the
// uninterrupted run would (on the same backend and thread count).
import * as fs from 'node:fs';
import { tidy, noGrad } from '../core/tensor';
import * as ops from '../core/ops';
import { Adam, Optimizer } from '../nn/optim';
import { Encoder, ProjectionHead, projectionDim, ARCHITECTURES, type Architecture } from '../nn/encoders';
import { checkBool, checkInt, checkNumber, checkOneOf, checkOptions, checkSeed, describe } from '../core/validate';
import { checkDataset, datasetSize, type Dataset } from '../data/dataset';
import { deriveSeed } from '../data/prng';
import { epochBatches } from '../data/batching';
import { augmentBatch } from '../data/augment';
import { loadCheckpoint, saveCheckpoint } from '../io/checkpoint';
import { checkProgressSink, silentProgress, type ProgressSink } from '../report/progress';

export interface SimclrConfig {
  arch: Architecture;
  epochs: number;
  batchSize: number;
  lr: number;
  weightDecay: number;
  tau: number;
  seed: number;
}

export const SIMCLR_DEFAULTS: Omit<SimclrConfig, 'arch' | 'epochs'> = {
  batchSize: 256,
  lr: 1e-3,
  weightDecay: 1e-6,
  tau: 0.5,
  seed: 0,
};

export interface PretrainOptions extends Partial<SimclrConfig> {
  epochs: number;
  /** Written atomically after every epoch; with `resume`, read first if it exists. */
  checkpoint?: string;
  resume?: boolean;
  progress?: ProgressSink;
  /** Stop after this many epochs in this call (to split a run; resume continues it). */
  stopAfterEpochs?: number;
  /** Called after every epoch (1-based), e.g. to save snapshots of the encoder. */
  onEpochEnd?: (epoch: number, encoder: Encoder, record: EpochRecord) => void;
  /**
   * Continue from these weights (SimCLR fine-tuning) instead of a fresh
   * seeded initialisation. The encoder is copied, never modified; its
   * architecture is used (an `arch` that differs is an error).
   */
  initialEncoder?: Encoder;
  /**
   * Replaces simclrStep for every step (same arguments, returns the loss):
   * a training-time defense such as per-group gradient clipping with noise or
   * another augmentation. Not part of the checkpoint's config: give such a
   * run its own checkpoint file.
   */
  step?: SimclrStepFn;
}

export interface EpochRecord {
  epoch: number;
  loss: number;
  seconds: number;
  imagesPerSec: number;
}

export interface PretrainResult {
  encoder: Encoder;
  head: ProjectionHead;
  config: SimclrConfig;
  history: EpochRecord[];
  /** Epochs completed in total (including those restored from a checkpoint). */
  epochsDone: number;
  resumedFrom: number;
}

/** Every key of PretrainOptions (a key outside it is an error naming it): add a new option here too. */
export const PRETRAIN_OPTION_KEYS: readonly string[] = ['arch', 'epochs', 'batchSize', 'lr', 'weightDecay', 'tau', 'seed', 'checkpoint', 'resume', 'progress', 'stopAfterEpochs', 'onEpochEnd', 'initialEncoder', 'step'];

/** The SimCLR settings of PretrainOptions (its other keys are allowed and ignored here), checked, defaults filled in. */
export function resolveSimclrConfig(o: Partial<SimclrConfig> & { epochs: number }): SimclrConfig {
  if (o === undefined) throw new TypeError('options must be an object { epochs, ... }, got undefined');
  checkOptions(o, 'options', PRETRAIN_OPTION_KEYS);
  return {
    arch: checkOneOf(o.arch ?? 'cnn-small', 'arch', ARCHITECTURES),
    epochs: checkInt(o.epochs, 'epochs', { min: 1, max: 100000 }),
    batchSize: checkInt(o.batchSize ?? SIMCLR_DEFAULTS.batchSize, 'batchSize', { min: 2, max: 65536 }),
    lr: checkNumber(o.lr ?? SIMCLR_DEFAULTS.lr, 'lr', { gt: 0, max: 10 }),
    weightDecay: checkNumber(o.weightDecay ?? SIMCLR_DEFAULTS.weightDecay, 'weightDecay', { min: 0 }),
    tau: checkNumber(o.tau ?? SIMCLR_DEFAULTS.tau, 'tau', { gt: 0, max: 100 }),
    seed: checkSeed(o.seed ?? SIMCLR_DEFAULTS.seed),
  };
}

/** The signature of simclrStep (PretrainOptions.step). */
export type SimclrStepFn = (encoder: Encoder, head: ProjectionHead, opt: Optimizer, data: Dataset, idx: Int32Array, tau: number, augSeed: number) => number;

/** One SimCLR step on a batch of indices; returns the loss. */
export function simclrStep(encoder: Encoder, head: ProjectionHead, opt: Optimizer, data: Dataset, idx: Int32Array, tau: number, augSeed: number): number {
  if (!(encoder instanceof Encoder)) throw new TypeError(`encoder must be an Encoder, got ${describe(encoder)}`);
  if (!(head instanceof ProjectionHead)) throw new TypeError(`head must be a ProjectionHead, got ${describe(head)}`);
  if (!(opt instanceof Optimizer)) throw new TypeError(`opt must be an Optimizer (nn.SGD, nn.Adam), got ${describe(opt)}`);
  checkDataset(data, 'data', false);
  if (!(idx instanceof Int32Array)) throw new TypeError(`idx must be an Int32Array of image indices, got ${describe(idx)}`);
  if (idx.length < 2) throw new RangeError(`idx has ${idx.length} index(es); NT-Xent needs at least 2 images`);
  checkNumber(tau, 'tau', { gt: 0, max: 100 });
  checkSeed(augSeed, 'augSeed');
  return tidy(() => {
    const both = new Int32Array(idx.length * 2);
    both.set(idx, 0);
    both.set(idx, idx.length);
    const views = augmentBatch(data, both, { seed: augSeed });
    const z = head.forward(encoder.forward(views));
    const loss = ops.ntXent(z, tau);
    opt.zeroGrad();
    loss.backward();
    opt.step();
    return loss.item();
  });
}

/** Pre-trains an encoder with SimCLR on `train` (its labels are not used). */
export function pretrainSimclr(train: Dataset, options: PretrainOptions): PretrainResult {
  checkDataset(train, 'train');
  if (options === undefined) throw new TypeError('options must be an object { epochs, ... }, got undefined');
  checkOptions(options, 'options', PRETRAIN_OPTION_KEYS);
  if (options.checkpoint !== undefined && (typeof options.checkpoint !== 'string' || options.checkpoint === '')) throw new TypeError(`options.checkpoint must be a non-empty path, got ${describe(options.checkpoint)}`);
  if (options.resume !== undefined) checkBool(options.resume, 'options.resume');
  if (options.progress !== undefined) checkProgressSink(options.progress, 'options.progress');
  if (options.stopAfterEpochs !== undefined) checkInt(options.stopAfterEpochs, 'options.stopAfterEpochs', { min: 1 });
  for (const k of ['onEpochEnd', 'step'] as const) {
    if (options[k] !== undefined && typeof options[k] !== 'function') throw new TypeError(`options.${k} must be a function, got ${describe(options[k])}`);
  }
  const init = options.initialEncoder;
  if (init !== undefined && !(init instanceof Encoder)) throw new TypeError('initialEncoder must be an Encoder');
  if (init && options.arch !== undefined && options.arch !== init.config.arch) {
    throw new RangeError(`arch is ${JSON.stringify(options.arch)} but initialEncoder is ${JSON.stringify(init.config.arch)}`);
  }
  if (init && init.config.inChannels !== train.channels) {
    throw new RangeError(`initialEncoder takes ${init.config.inChannels} channel(s) but train has ${train.channels}`);
  }
  const config = resolveSimclrConfig(init ? { ...options, arch: init.config.arch } : options);
  const progress = options.progress ?? silentProgress;
  const n = datasetSize(train);
  if (n < 2) throw new RangeError(`train has ${n} images; SimCLR needs at least 2`);
  const encoder = new Encoder({ arch: config.arch, inChannels: train.channels, seed: config.seed });
  if (init) encoder.loadStateDict(init.stateDict());
  const head = new ProjectionHead(encoder.dim, projectionDim(config.arch), config.seed);
  const opt = new Adam([...encoder.parameters(), ...head.parameters()], { lr: config.lr, weightDecay: config.weightDecay });
  let history: EpochRecord[] = [];
  let startEpoch = 0;
  /** Identifies the training set in the checkpoint: a resumed run must train on the same images. */
  const trainData = { name: train.name, images: n };
  if (options.resume && options.checkpoint && fs.existsSync(options.checkpoint)) {
    const st = loadCheckpoint(options.checkpoint, encoder, head, opt);
    const saved = st.config as Partial<SimclrConfig>;
    for (const k of ['arch', 'batchSize', 'lr', 'weightDecay', 'tau', 'seed'] as const) {
      if (saved[k] !== config[k]) throw new Error(`${options.checkpoint}: checkpoint was made with ${k}=${JSON.stringify(saved[k])}, this run has ${JSON.stringify(config[k])}`);
    }
    // The training images change the result as much as the settings do (e.g. another --limit).
    const savedData = (st.config as { trainData?: unknown }).trainData;
    if (savedData !== undefined && JSON.stringify(savedData) !== JSON.stringify(trainData)) {
      throw new Error(`${options.checkpoint}: checkpoint was made on ${JSON.stringify(savedData)}, this run trains on ${JSON.stringify(trainData)}`);
    }
    startEpoch = st.epoch;
    history = st.history as EpochRecord[];
    progress.event({ task: 'pretrain', resumedFrom: options.checkpoint, epoch: startEpoch });
  }
  const resumedFrom = startEpoch;
  const lastEpoch = Math.min(config.epochs, options.stopAfterEpochs !== undefined ? startEpoch + options.stopAfterEpochs : config.epochs);
  encoder.train();
  head.train();
  for (let epoch = startEpoch; epoch < lastEpoch; epoch++) {
    const batches = epochBatches(n, config.batchSize, config.seed, epoch);
    const t0 = Date.now();
    let lossSum = 0;
    let seen = 0;
    batches.forEach((idx, step) => {
      const loss = (options.step ?? simclrStep)(encoder, head, opt, train, idx, config.tau, deriveSeed(config.seed, 2, epoch, step));
      lossSum += loss * idx.length;
      seen += idx.length;
      const sec = (Date.now() - t0) / 1000;
      const ips = seen / Math.max(sec, 1e-3);
      const remaining = (batches.length - step - 1) * (sec / (step + 1)) + (lastEpoch - epoch - 1) * (sec / (step + 1)) * batches.length;
      progress.update({ task: 'pretrain', epoch: epoch + 1, epochs: config.epochs, step: step + 1, steps: batches.length, loss, imagesPerSec: ips, etaSec: Math.round(remaining) });
    });
    const seconds = (Date.now() - t0) / 1000;
    const rec: EpochRecord = { epoch: epoch + 1, loss: lossSum / Math.max(seen, 1), seconds, imagesPerSec: seen / Math.max(seconds, 1e-3) };
    history.push(rec);
    progress.event({ task: 'pretrain', ...rec });
    options.onEpochEnd?.(epoch + 1, encoder, rec);
    if (options.checkpoint) {
      saveCheckpoint(options.checkpoint, encoder, head, opt, { epoch: epoch + 1, step: 0, config: { ...config, trainData }, history });
    }
  }
  progress.stop();
  encoder.eval();
  head.eval();
  // Optimizer state is not needed after training.
  noGrad(() => opt.zeroGrad());
  for (const t of opt.state().tensors.values()) t.dispose();
  return { encoder, head, config, history, epochsDone: lastEpoch, resumedFrom };
}
