// SSLGuard embedding: turns a clean encoder F into a watermarked F_w that
// answers like F on clean inputs while D(F_w(x_t)) points at sk on triggered
// ones, with a shadow encoder S (a stand-in thief, trained from F_w's
// answers) made to carry the mark too. Per batch, x clean images (the public
// training data, D_v excluded) and x_t triggered images of D_v (as the
// official code does), three alternating steps; c(z) = batch mean of
// cos(D(z_i), sk), cos(a, b) = batch mean of row cosines, and each square is
// the square of that mean (as the official code):
//   1. shadow:  L_s = -cos(F_w(x), S(x))                                  updates S
//   2. decoder and trigger:
//      L_t = -c(F_w(x_t)) - c(S(x_t)) + c(F(x_t))² + c(F(x))² + c(F_w(x))² + c(S(x))²
//                                                                         updates D and T
//   3. watermark: L_w = -cos(F(x), F_w(x)) + c(F_w(x))² - c(F_w(x_t))     updates F_w
// F is frozen; F_w's batch norm is frozen (running statistics, affine
// parameters constant: Module.freezeBatchNorm), only its conv weights move.
//
// Deviation from the official code (tianshuocong/SSLGuard embed.py), on
// purpose: there, the gradients of steps 1 and 2 are left on F_w (and step
// 3's on T) before the next update, so F_w really follows ∇(L_s + L_t + L_w).
// Here each step updates only its own parameters with its own loss, as the
// equations say: the parameters a step does not update do not even receive
// gradients (requiresGrad is off for them during that step).
//
// Every random choice derives from `seed`: S's initial weights from
// (seed, 30), the clean-batch order of epoch e from ((seed, 31), e), the D_v
// order from ((seed, 32), e). A checkpoint after every epoch (F_w, S, D, T and
// the optimizers' momenta) lets an interrupted run resume exactly.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import { Tensor, keep, noGrad, tidy } from '../../core/tensor';
import * as ops from '../../core/ops';
import { checkInt, checkNumber, checkOptions, checkSeed } from '../../core/validate';
import { Encoder } from '../../nn/encoders';
import { embedSync, type Module } from '../../nn/module';
import { SGD, type Optimizer, type OptimizerState } from '../../nn/optim';
import { checkDataset, datasetSize, type Dataset } from '../../data/dataset';
import { toTensor } from '../../data/tensor';
import { deriveSeed } from '../../data/prng';
import { epochBatches, epochPermutation } from '../../data/batching';
import { loadSafetensors, saveSafetensors } from '../../io/safetensors';
import { cloneEncoder, prunableWeights } from '../../attacks/tamper';
import { silentProgress, type ProgressSink } from '../../report/progress';
import { applyTrigger, decodedCosines, meanCosToSk, type SslGuardKey } from './key';

export interface EmbedConfig {
  epochs: number;
  batchSize: number;
  /** SGD learning rates (momentum `momentum` except the trigger's, plain SGD as in the official code). */
  lrWatermark: number;
  lrShadow: number;
  /** S's learning rate is multiplied by this after every epoch. */
  shadowDecay: number;
  lrDecoder: number;
  lrTrigger: number;
  momentum: number;
  /** Steps per epoch (default: one pass over the training data). */
  stepsPerEpoch: number | null;
  seed: number;
}

/**
 * Defaults for this scale (cnn-small, 28x28, a few epochs). The official
 * settings (SGD momentum 0.9; lr 1e-5 for F_w, 1e-2 for S ×0.96 per epoch,
 * 1e-3 for D and T; 500 epochs of STL-10 on a ResNet-50) barely move F_w, D
 * and T in the hundreds of steps we can afford. Changed after runs on a
 * Fashion-MNIST slice with a random-init F: F_w 1e-3, D and T 1e-2, 24 steps
 * of 64: WR(F_w) = WR(S) = 0; F_w 1e-2, D 5e-2, T 1, 48 steps of 32: WR(F_w)
 * 0.98 after 40 steps and 1.0 after 48, mean cos(F, F_w) on clean images
 * 0.974; F_w 5e-2, D 0.1, T 2: WR 1 but that cosine fell to 0.59. T is
 * updated by plain SGD (as the official code); S keeps the official schedule.
 */
export const EMBED_DEFAULTS: Omit<EmbedConfig, 'epochs'> = {
  batchSize: 64,
  lrWatermark: 1e-2,
  lrShadow: 1e-2,
  shadowDecay: 0.96,
  lrDecoder: 5e-2,
  lrTrigger: 1,
  momentum: 0.9,
  stepsPerEpoch: null,
  seed: 0,
};

export interface EmbedOptions extends Partial<EmbedConfig> {
  epochs: number;
  progress?: ProgressSink;
  /** Written atomically after every epoch; with `resume`, read first if it exists. */
  checkpoint?: string;
  resume?: boolean;
}

export interface EmbedEpoch {
  epoch: number;
  ls: number;
  lt: number;
  lw: number;
  /** WR of F_w and of the shadow S on D_v after the epoch. */
  wrWatermarked: number;
  wrShadow: number;
  seconds: number;
  imagesPerSec: number;
}

export interface EmbedResult {
  /** F_w, in eval mode (its own storage; F is untouched). */
  watermarked: Encoder;
  config: EmbedConfig;
  history: EmbedEpoch[];
  /** Seconds of this call (a resumed run counts only what it ran). */
  seconds: number;
  resumedFrom: number;
}

const OPTION_KEYS = ['epochs', 'batchSize', 'lrWatermark', 'lrShadow', 'shadowDecay', 'lrDecoder', 'lrTrigger', 'momentum', 'stepsPerEpoch', 'seed', 'progress', 'checkpoint', 'resume'];

export function resolveEmbedConfig(options: EmbedOptions): EmbedConfig {
  const o = checkOptions<EmbedOptions>(options, 'options', OPTION_KEYS);
  const d = EMBED_DEFAULTS;
  const lr = (v: unknown, name: string) => checkNumber(v, `options.${name}`, { min: 0, max: 10 });
  return {
    epochs: checkInt(o.epochs, 'options.epochs', { min: 1, max: 100000 }),
    batchSize: checkInt(o.batchSize ?? d.batchSize, 'options.batchSize', { min: 2, max: 65536 }),
    lrWatermark: lr(o.lrWatermark ?? d.lrWatermark, 'lrWatermark'),
    lrShadow: lr(o.lrShadow ?? d.lrShadow, 'lrShadow'),
    shadowDecay: checkNumber(o.shadowDecay ?? d.shadowDecay, 'options.shadowDecay', { gt: 0, max: 1 }),
    lrDecoder: lr(o.lrDecoder ?? d.lrDecoder, 'lrDecoder'),
    lrTrigger: lr(o.lrTrigger ?? d.lrTrigger, 'lrTrigger'),
    momentum: checkNumber(o.momentum ?? d.momentum, 'options.momentum', { min: 0, lt: 1 }),
    stepsPerEpoch: o.stepsPerEpoch === undefined || o.stepsPerEpoch === null ? null : checkInt(o.stepsPerEpoch, 'options.stepsPerEpoch', { min: 1 }),
    seed: checkSeed(o.seed ?? d.seed, 'options.seed'),
  };
}

/** -cos(a, b), batch mean of row cosines: cosineLoss is mean(1 - cos), so subtract the 1. */
function negMeanCos(a: Tensor, b: Tensor): Tensor {
  return ops.sub(ops.cosineLoss(a, b), Tensor.ones([]));
}

const sq = (t: Tensor) => ops.mul(t, t);
const neg = (t: Tensor) => ops.scale(t, -1);

/** Runs fn with gradients off for every parameter of `modules` (restored afterwards). */
function withoutGrads<T>(modules: Module[], fn: () => T): T {
  const ps = modules.flatMap((m) => m.parameters());
  const saved = ps.map((p) => p.requiresGrad);
  ps.forEach((p) => (p.requiresGrad = false));
  try {
    return fn();
  } finally {
    ps.forEach((p, i) => (p.requiresGrad = saved[i]));
  }
}

/** WR of an encoder on D_v (synchronous, for progress). */
export function quickWatermarkRate(encoder: Module, key: SslGuardKey, verifyData: Dataset): number {
  const n = datasetSize(verifyData);
  let hits = 0;
  for (let s = 0; s < n; s += 500) {
    const idx = Int32Array.from({ length: Math.min(n, s + 500) - s }, (_, i) => s + i);
    const cos = tidy(() => decodedCosines(key, embedSync(encoder, noGrad(() => applyTrigger(toTensor(verifyData, idx), key.mask, key.trigger)))));
    for (const c of cos) if (c > key.cosThreshold) hits++;
  }
  return hits / n;
}

function keyFingerprint(key: SslGuardKey): string {
  const h = crypto.createHash('sha256');
  h.update(Buffer.from(key.sk.toArray().buffer));
  h.update(Buffer.from(key.mask.toArray().buffer));
  h.update(Buffer.from(key.verification.indices.buffer));
  return h.digest('hex');
}

const CHECKPOINT_FORMAT = 'encsec-sslguard-embed-checkpoint';

/**
 * Embeds the key's watermark into a copy of `clean` (F). `train` is the
 * public unlabelled data x (D_v's images must not be in it); `verifyData` is
 * D_v. The key's trigger T and decoder D are TRAINED IN PLACE (save the key
 * afterwards). Returns F_w.
 */
export function embedWatermark(clean: Encoder, train: Dataset, verifyData: Dataset, key: SslGuardKey, options: EmbedOptions): EmbedResult {
  if (!(clean instanceof Encoder)) throw new TypeError('clean must be an Encoder');
  checkDataset(train, 'train', false);
  checkDataset(verifyData, 'verifyData', false);
  const config = resolveEmbedConfig(options);
  const progress = options.progress ?? silentProgress;
  if (clean.dim !== key.dim) throw new RangeError(`clean encoder gives ${clean.dim}-d embeddings, the key's decoder takes ${key.dim}-d`);
  const nx = datasetSize(train);
  const nv = datasetSize(verifyData);
  if (nx < 2) throw new RangeError(`train has ${nx} images; embedding needs at least 2`);
  if (nv !== key.verification.indices.length) throw new RangeError(`verifyData has ${nv} images, the key's D_v has ${key.verification.indices.length}`);

  const F = cloneEncoder(clean).freezeBatchNorm(true);
  const Fw = cloneEncoder(clean).freezeBatchNorm(true);
  const S = new Encoder({ ...clean.config, seed: deriveSeed(config.seed, 30) });
  const D = key.decoder;
  const T = key.trigger;
  for (const p of F.parameters()) p.requiresGrad = false;
  const fwState = Fw.stateDict();
  const optW = new SGD(prunableWeights(Fw).map((n) => fwState.get(n)!), { lr: config.lrWatermark, momentum: config.momentum });
  const optS = new SGD(S.parameters(), { lr: config.lrShadow, momentum: config.momentum });
  const optD = new SGD(D.parameters(), { lr: config.lrDecoder, momentum: config.momentum });
  const optT = new SGD([T], { lr: config.lrTrigger });
  const optimizers: [string, Optimizer][] = [['wm', optW], ['shadow', optS], ['dec', optD], ['trig', optT]];
  const fingerprint = keyFingerprint(key);

  let history: EmbedEpoch[] = [];
  let start = 0;
  if (options.resume && options.checkpoint && fs.existsSync(options.checkpoint)) {
    const { tensors, metadata } = loadSafetensors(options.checkpoint);
    try {
      const file = options.checkpoint;
      if (metadata.format !== CHECKPOINT_FORMAT) throw new Error(`${file}: not an SSLGuard embedding checkpoint`);
      if (metadata.key !== fingerprint) throw new Error(`${file}: checkpoint was made with another key`);
      const saved = JSON.parse(metadata.config ?? '{}') as Record<string, unknown>;
      for (const k of ['batchSize', 'lrWatermark', 'lrShadow', 'shadowDecay', 'lrDecoder', 'lrTrigger', 'momentum', 'stepsPerEpoch', 'seed'] as const) {
        if (saved[k] !== config[k]) throw new Error(`${file}: checkpoint was made with ${k}=${JSON.stringify(saved[k])}, this run has ${JSON.stringify(config[k])}`);
      }
      const part = (prefix: string) => new Map([...tensors].filter(([k]) => k.startsWith(prefix)).map(([k, v]) => [k.slice(prefix.length), v]));
      Fw.loadStateDict(part('wm.'));
      S.loadStateDict(part('shadow.'));
      D.loadStateDict(part('decoder.'));
      T.copy_(tensors.get('trigger')!);
      const steps = JSON.parse(metadata.optimizerSteps) as Record<string, number>;
      for (const [name, opt] of optimizers) opt.loadState({ kind: 'sgd', step: steps[name], tensors: part(`optim.${name}.`) } as OptimizerState);
      start = Number(metadata.epoch);
      history = JSON.parse(metadata.history) as EmbedEpoch[];
      optS.lr = config.lrShadow * config.shadowDecay ** start;
      progress.event({ task: 'watermark', resumedFrom: file, epoch: start });
    } finally {
      for (const t of tensors.values()) t.dispose();
    }
  }
  const resumedFrom = start;
  const t0 = Date.now();
  T.requiresGrad_(true);
  try {
    for (let epoch = start; epoch < config.epochs; epoch++) {
      let batches = epochBatches(nx, config.batchSize, deriveSeed(config.seed, 31), epoch);
      if (config.stepsPerEpoch !== null) batches = batches.slice(0, config.stepsPerEpoch);
      const vOrder = epochPermutation(nv, deriveSeed(config.seed, 32), epoch);
      const te = Date.now();
      const sums = { ls: 0, lt: 0, lw: 0 };
      let seen = 0;
      batches.forEach((idx, step) => {
        const vIdx = Int32Array.from({ length: idx.length }, (_, i) => vOrder[(step * config.batchSize + i) % nv]);
        const { ls, lt, lw } = tidy(() => {
          const x = toTensor(train, idx);
          const xv = toTensor(verifyData, vIdx);
          const c = (z: Tensor) => meanCosToSk(D.forward(z), key.sk);
          // 1. shadow: L_s = -cos(F_w(x), S(x)); S trains with its own (batch) BN statistics.
          const hw = noGrad(() => Fw.forward(x));
          S.freezeBatchNorm(false).train();
          const Ls = negMeanCos(S.forward(x), hw);
          optS.zeroGrad();
          Ls.backward();
          optS.step();
          S.freezeBatchNorm(true);
          // 2. decoder and trigger (encoders fixed, BN in eval mode; gradients reach T through them).
          const h0 = noGrad(() => F.forward(x));
          const h2 = noGrad(() => S.forward(x));
          const Lt = withoutGrads([Fw, S], () => {
            const xt = applyTrigger(xv, key.mask, T);
            return [neg(c(Fw.forward(xt))), neg(c(S.forward(xt))), sq(c(F.forward(xt))), sq(c(h0)), sq(c(hw)), sq(c(h2))].reduce((a, b) => ops.add(a, b));
          });
          optD.zeroGrad();
          optT.zeroGrad();
          Lt.backward();
          optD.step();
          optT.step();
          // 3. watermark: L_w = -cos(F(x), F_w(x)) + c(F_w(x))² - c(F_w(x_t)), with the updated T and D fixed.
          const xt = noGrad(() => applyTrigger(xv, key.mask, T));
          const Lw = withoutGrads([D], () => {
            const zw = Fw.forward(x);
            return ops.add(ops.add(negMeanCos(h0, zw), sq(c(zw))), neg(c(Fw.forward(xt))));
          });
          optW.zeroGrad();
          Lw.backward();
          optW.step();
          return { ls: Ls.item(), lt: Lt.item(), lw: Lw.item() };
        });
        sums.ls += ls * idx.length;
        sums.lt += lt * idx.length;
        sums.lw += lw * idx.length;
        seen += idx.length;
        const sec = (Date.now() - te) / 1000;
        const perStep = sec / (step + 1);
        progress.update({
          task: 'watermark',
          epoch: epoch + 1,
          epochs: config.epochs,
          step: step + 1,
          steps: batches.length,
          loss: lw,
          ls,
          lt,
          imagesPerSec: seen / Math.max(sec, 1e-3),
          etaSec: Math.round(perStep * (batches.length - step - 1 + (config.epochs - epoch - 1) * batches.length)),
        });
      });
      optS.lr *= config.shadowDecay;
      const seconds = (Date.now() - te) / 1000;
      const rec: EmbedEpoch = {
        epoch: epoch + 1,
        ls: sums.ls / seen,
        lt: sums.lt / seen,
        lw: sums.lw / seen,
        wrWatermarked: quickWatermarkRate(Fw, key, verifyData),
        wrShadow: quickWatermarkRate(S, key, verifyData),
        seconds,
        imagesPerSec: seen / Math.max(seconds, 1e-3),
      };
      history.push(rec);
      progress.event({ task: 'watermark', ...rec });
      if (options.checkpoint) {
        const tensors = new Map<string, Tensor>();
        for (const [k, v] of Fw.stateDict()) tensors.set(`wm.${k}`, v);
        for (const [k, v] of S.stateDict()) tensors.set(`shadow.${k}`, v);
        for (const [k, v] of D.stateDict()) tensors.set(`decoder.${k}`, v);
        tensors.set('trigger', T);
        const steps: Record<string, number> = {};
        for (const [name, opt] of optimizers) {
          const st = opt.state();
          steps[name] = st.step;
          for (const [k, v] of st.tensors) tensors.set(`optim.${name}.${k}`, v);
        }
        saveSafetensors(options.checkpoint, tensors, {
          format: CHECKPOINT_FORMAT,
          key: fingerprint,
          config: JSON.stringify(config),
          epoch: String(epoch + 1),
          history: JSON.stringify(history),
          optimizerSteps: JSON.stringify(steps),
        });
      }
    }
  } catch (e) {
    Fw.dispose();
    throw e;
  } finally {
    progress.stop();
    T.requiresGrad = false;
    T.grad?.dispose();
    T.grad = null;
    D.zeroGrad();
    F.dispose();
    S.dispose();
    for (const [, opt] of optimizers) for (const t of opt.state().tensors.values()) t.dispose();
  }
  Fw.zeroGrad();
  Fw.freezeBatchNorm(false).eval();
  D.eval();
  keep(T);
  return { watermarked: Fw, config, history, seconds: (Date.now() - t0) / 1000, resumedFrom };
}
