// Model modifications ("tampering") of a released encoder: the alterations an
// integrity check (SSL-Auth) or an ownership check (SSLGuard) must notice or
// survive. Every function returns a NEW encoder (a clone made through the
// lib/nn state dict) and never modifies its input.
//
//   magnitudePrune     zero the smallest-|w| fraction of the conv/linear
//                      weights, GLOBALLY (one threshold over all of them)
//   quantizeWeights    conv/linear weights to b-bit symmetric per-tensor
//                      integers and back
//   perturbWeight      one entry of one tensor multiplied by (1 + relative)
//   sgdFinetuneStep    one plain-SGD step of SimCLR fine-tuning
//   simclrFinetune     SimCLR continued from the encoder's weights (lib/ssl)
//   badEncoderBackdoor BadEncoder (Jia, Liu, Gong, IEEE S&P 2022)
//
// "conv/linear weights" are the parameters with 2 or more dimensions (conv
// kernels [O,I,k,k], linear matrices [O,I]); BN affine parameters, biases and
// BN running statistics are left as they are by pruning and quantisation.
import { Tensor, noGrad, tidy } from '../core/tensor';
import * as ops from '../core/ops';
import { checkInt, checkNumber, checkObject, checkOptions, checkSeed } from '../core/validate';
import { Encoder, ProjectionHead, projectionDim } from '../nn/encoders';
import { embedSync } from '../nn/module';
import { Adam, SGD } from '../nn/optim';
import { checkDataset, datasetSize, type Dataset } from '../data/dataset';
import { toIndexArray, toTensor } from '../data/tensor';
import { batchIndices, epochPermutation } from '../data/batching';
import { deriveSeed } from '../data/prng';
import { pretrainSimclr, simclrStep, SIMCLR_DEFAULTS } from '../ssl/simclr';
import { embedDataset } from '../eval/embed';
import { accuracy, probePredict, trainLinearProbe } from '../eval/probe';
import { checkProgressSink, silentProgress, type ProgressSink } from '../report/progress';

function checkEncoder(v: unknown, name = 'encoder'): Encoder {
  if (!(v instanceof Encoder)) throw new TypeError(`${name} must be an Encoder`);
  return v;
}

function checkKeys(o: Record<string, unknown>, allowed: readonly string[], name: string): void {
  checkOptions(o, name, allowed);
}

/** A copy of the encoder with its own storage (parameters and BN buffers), in eval mode. */
export function cloneEncoder(encoder: Encoder): Encoder {
  checkEncoder(encoder);
  const copy = new Encoder(encoder.config);
  copy.loadStateDict(encoder.stateDict());
  return copy.eval();
}

/** Names of the conv/linear weights (parameters with >= 2 dimensions), in state-dict order. */
export function prunableWeights(encoder: Encoder): string[] {
  return checkEncoder(encoder)
    .namedParameters()
    .filter(([, t]) => t.shape.length >= 2)
    .map(([n]) => n);
}

/** Applies fn to a host copy of each named tensor of `encoder`'s clone and writes the result back. */
function editClone(encoder: Encoder, names: readonly string[], fn: (name: string, data: Float32Array) => void): Encoder {
  const copy = cloneEncoder(encoder);
  const state = copy.stateDict();
  noGrad(() =>
    tidy(() => {
      for (const name of names) {
        const t = state.get(name)!;
        const data = t.toArray();
        fn(name, data);
        t.copy_(Tensor.from(data, t.shape));
      }
    }),
  );
  return copy;
}

/**
 * Global magnitude pruning: the round(fraction * N) entries of smallest |w|
 * among all N conv/linear weights are set to 0 (ties broken by position in
 * state-dict order, so the count is exact and the result deterministic).
 */
export function magnitudePrune(encoder: Encoder, fraction: number): Encoder {
  checkEncoder(encoder);
  checkNumber(fraction, 'fraction', { min: 0, max: 1 });
  const names = prunableWeights(encoder);
  const state = encoder.stateDict();
  const arrays = names.map((n) => state.get(n)!.toArray());
  const total = arrays.reduce((s, a) => s + a.length, 0);
  const k = Math.round(fraction * total);
  const mags = new Float32Array(total);
  let o = 0;
  for (const a of arrays) for (let i = 0; i < a.length; i++) mags[o++] = Math.abs(a[i]);
  const sorted = k > 0 ? mags.slice().sort() : mags;
  const threshold = k > 0 ? sorted[k - 1] : -1;
  // Entries strictly below the threshold all go; entries equal to it go in order until k are gone.
  let below = 0;
  for (let i = 0; i < total; i++) if (mags[i] < threshold) below++;
  let equalBudget = k - below;
  return editClone(encoder, names, (_name, data) => {
    for (let i = 0; i < data.length; i++) {
      const m = Math.abs(data[i]);
      if (m < threshold) data[i] = 0;
      else if (m === threshold && equalBudget > 0) {
        data[i] = 0;
        equalBudget--;
      }
    }
  });
}

/**
 * Symmetric per-tensor quantisation of every conv/linear weight to `bits`
 * bits and back: s = max|w| / (2^(bits-1) - 1), w' = s * round(w / s)
 * (ties away from zero). A tensor of zeros stays zeros.
 */
export function quantizeWeights(encoder: Encoder, bits: number): Encoder {
  checkEncoder(encoder);
  checkInt(bits, 'bits', { min: 2, max: 16 });
  const levels = 2 ** (bits - 1) - 1;
  return editClone(encoder, prunableWeights(encoder), (_name, data) => {
    let max = 0;
    for (let i = 0; i < data.length; i++) max = Math.max(max, Math.abs(data[i]));
    if (max === 0) return;
    const s = max / levels;
    for (let i = 0; i < data.length; i++) data[i] = s * Math.sign(data[i]) * Math.round(Math.abs(data[i]) / s);
  });
}

export interface PerturbWeightOptions {
  /** A state-dict name, e.g. "net.0.conv.weight" (parameters and BN buffers). */
  param: string;
  /** Flat (row-major) index into that tensor. */
  index: number;
  /** w <- w * (1 + relative); e.g. 0.01 for a 1% change. */
  relative: number;
}

/** One entry of one tensor changed by a relative amount. A zero entry is an error (a relative change would leave it as it is). */
export function perturbWeight(encoder: Encoder, options: PerturbWeightOptions): Encoder {
  checkEncoder(encoder);
  const o = checkObject(options, 'options');
  checkKeys(o, ['param', 'index', 'relative'], 'options');
  if (typeof o.param !== 'string') throw new TypeError('options.param must be a string (a state-dict name)');
  const t = encoder.stateDict().get(o.param);
  if (!t) throw new RangeError(`options.param "${o.param}" is not a tensor of the encoder (e.g. ${prunableWeights(encoder)[0]})`);
  const index = checkInt(o.index, 'options.index', { min: 0, max: t.size - 1 });
  const relative = checkNumber(o.relative, 'options.relative', { gt: -1e6, lt: 1e6 });
  if (relative === 0) throw new RangeError('options.relative must be non-zero');
  if (t.toArray()[index] === 0) throw new RangeError(`${o.param}[${index}] is 0: a relative change would leave it unchanged; pick another index`);
  return editClone(encoder, [o.param], (_n, data) => {
    data[index] = data[index] * (1 + relative);
  });
}

/** Images for fine-tuning: a whole dataset, or some of its images by index. */
export type FinetuneImages = Dataset | { dataset: Dataset; indices: ArrayLike<number> };

function resolveImages(images: unknown, name: string): { dataset: Dataset; indices: Int32Array } {
  const o = checkObject(images, name);
  if ('dataset' in o && 'indices' in o) {
    const ds = checkDataset(o.dataset, `${name}.dataset`, false);
    return { dataset: ds, indices: toIndexArray(o.indices as ArrayLike<number>, datasetSize(ds), `${name}.indices`) };
  }
  const ds = checkDataset(images, name, false);
  const n = datasetSize(ds);
  return { dataset: ds, indices: Int32Array.from({ length: n }, (_, i) => i) };
}

export interface SgdFinetuneStepOptions {
  lr: number;
  seed: number;
  /** Images in the step: a seeded choice of this many (default min(64, all)). */
  batchSize?: number;
  /** NT-Xent temperature (default SimCLR's 0.5). */
  tau?: number;
}

/**
 * One plain-SGD step (no momentum) of SimCLR fine-tuning: a seeded batch of
 * `images`, two augmented views, a fresh projection head seeded with `seed`,
 * the NT-Xent loss. The encoder is in training mode for the step, as in any
 * fine-tuning, so BN running statistics move by momentum 0.1 as well.
 */
export function sgdFinetuneStep(encoder: Encoder, images: FinetuneImages, options: SgdFinetuneStepOptions): Encoder {
  checkEncoder(encoder);
  const { dataset, indices } = resolveImages(images, 'images');
  const o = checkObject(options, 'options');
  checkKeys(o, ['lr', 'seed', 'batchSize', 'tau'], 'options');
  const lr = checkNumber(o.lr, 'options.lr', { gt: 0, max: 10 });
  const seed = checkSeed(o.seed, 'options.seed');
  const batchSize = checkInt(o.batchSize ?? Math.min(64, indices.length), 'options.batchSize', { min: 2, max: indices.length });
  const tau = checkNumber(o.tau ?? SIMCLR_DEFAULTS.tau, 'options.tau', { gt: 0, max: 100 });
  if (indices.length < 2) throw new RangeError(`images has ${indices.length} image(s); a SimCLR step needs at least 2`);
  const perm = epochPermutation(indices.length, seed, 0);
  const batch = new Int32Array(batchSize);
  for (let i = 0; i < batchSize; i++) batch[i] = indices[perm[i]];
  const copy = cloneEncoder(encoder);
  const head = new ProjectionHead(copy.dim, projectionDim(copy.config.arch), seed);
  const opt = new SGD([...copy.parameters(), ...head.parameters()], { lr });
  copy.train();
  head.train();
  try {
    simclrStep(copy, head, opt, dataset, batch, tau, deriveSeed(seed, 1));
  } finally {
    copy.eval();
    copy.zeroGrad();
    head.dispose();
  }
  return copy;
}

export interface SimclrFinetuneOptions {
  epochs: number;
  seed: number;
  batchSize?: number;
  lr?: number;
  progress?: ProgressSink;
}

/** SimCLR continued from the encoder's weights (lib/ssl pretrainSimclr with initialEncoder); a fresh projection head. */
export function simclrFinetune(encoder: Encoder, data: Dataset, options: SimclrFinetuneOptions): Encoder {
  checkEncoder(encoder);
  checkDataset(data, 'data', false);
  const o = checkObject(options, 'options');
  checkKeys(o, ['epochs', 'seed', 'batchSize', 'lr', 'progress'], 'options');
  const result = pretrainSimclr(data, {
    epochs: checkInt(o.epochs, 'options.epochs', { min: 1, max: 100000 }),
    seed: checkSeed(o.seed, 'options.seed'),
    batchSize: o.batchSize === undefined ? undefined : checkInt(o.batchSize, 'options.batchSize', { min: 2 }),
    lr: o.lr === undefined ? undefined : checkNumber(o.lr, 'options.lr', { gt: 0, max: 10 }),
    progress: o.progress === undefined ? silentProgress : checkProgressSink(o.progress, 'options.progress'),
    initialEncoder: encoder,
  });
  result.head.dispose();
  return result.encoder;
}

// ---------------------------------------------------------------- BadEncoder

/** A square patch of one pixel value stamped on every channel of an image. */
export interface Trigger {
  /** Side of the square in pixels (default 4). */
  size: number;
  /** Pixel value 0..255 of the patch (default 255, white). */
  value: number;
  /** Distance of the patch from the bottom-right corner in pixels (default 1). */
  margin: number;
}

export const DEFAULT_TRIGGER: Trigger = { size: 4, value: 255, margin: 1 };

export function resolveTrigger(t: unknown = {}, name = 'trigger'): Trigger {
  const o = checkObject(t, name);
  checkKeys(o, ['size', 'value', 'margin'], name);
  return {
    size: checkInt(o.size ?? DEFAULT_TRIGGER.size, `${name}.size`, { min: 1, max: 4096 }),
    value: checkInt(o.value ?? DEFAULT_TRIGGER.value, `${name}.value`, { min: 0, max: 255 }),
    margin: checkInt(o.margin ?? DEFAULT_TRIGGER.margin, `${name}.margin`, { min: 0, max: 4096 }),
  };
}

/** The dataset with the trigger stamped on every image (x ⊕ t); a new dataset, same labels. */
export function withTrigger(ds: Dataset, trigger: Partial<Trigger> = {}): Dataset {
  checkDataset(ds, 'dataset', false);
  const t = resolveTrigger(trigger);
  if (t.size + t.margin > Math.min(ds.height, ds.width)) {
    throw new RangeError(`trigger.size + trigger.margin = ${t.size + t.margin} does not fit ${ds.height}x${ds.width} images`);
  }
  const images = ds.images.slice();
  const per = ds.channels * ds.height * ds.width;
  const n = datasetSize(ds);
  const r0 = ds.height - t.margin - t.size;
  const c0 = ds.width - t.margin - t.size;
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < ds.channels; c++) {
      for (let r = r0; r < r0 + t.size; r++) {
        const row = i * per + c * ds.height * ds.width + r * ds.width;
        images.fill(t.value, row + c0, row + c0 + t.size);
      }
    }
  }
  return { ...ds, name: `${ds.name}+trigger`, images };
}

export interface BadEncoderOptions {
  /** The reference input x_ref (an image of the attacker's target class): an image of a dataset (default: shadow image 0). */
  reference?: { dataset: Dataset; index: number };
  trigger?: Partial<Trigger>;
  epochs: number;
  seed: number;
  /** Adam learning rate (default 1e-4). */
  lr?: number;
  batchSize?: number;
  /** Weight of the reference term (default 1). */
  lambda1?: number;
  /** Weight of the utility term (default 1). */
  lambda2?: number;
  progress?: ProgressSink;
}

/**
 * BadEncoder: fine-tunes a copy f' of the clean encoder f on shadow images x
 * so that triggered images land on the reference's embedding while clean
 * embeddings stay put. With sim the cosine similarity, per batch:
 *   L0 = -mean sim(f'(x ⊕ t), f'(x_ref))      effectiveness
 *   L1 = -sim(f'(x_ref), f(x_ref))            the reference keeps its embedding
 *   L2 = -mean sim(f'(x), f(x))               utility
 *   L  = L0 + λ1 L1 + λ2 L2                   (as 1 - sim: cosineLoss)
 * f' is trained in training mode on one batch [x ⊕ t; x; x_ref] per step
 * (batch norm sees them together; its running statistics move as in any
 * fine-tuning); f stays frozen. Adam, lr 1e-4 by default.
 */
export function badEncoderBackdoor(encoder: Encoder, shadow: Dataset, options: BadEncoderOptions): Encoder {
  checkEncoder(encoder);
  checkDataset(shadow, 'shadow', false);
  const o = checkObject(options, 'options');
  checkKeys(o, ['reference', 'trigger', 'epochs', 'seed', 'lr', 'batchSize', 'lambda1', 'lambda2', 'progress'], 'options');
  const epochs = checkInt(o.epochs, 'options.epochs', { min: 1, max: 10000 });
  const seed = checkSeed(o.seed, 'options.seed');
  const lr = checkNumber(o.lr ?? 1e-4, 'options.lr', { gt: 0, max: 10 });
  const n = datasetSize(shadow);
  const batchSize = checkInt(o.batchSize ?? Math.min(64, n), 'options.batchSize', { min: 1, max: 65536 });
  const lambda1 = checkNumber(o.lambda1 ?? 1, 'options.lambda1', { min: 0 });
  const lambda2 = checkNumber(o.lambda2 ?? 1, 'options.lambda2', { min: 0 });
  const progress = o.progress === undefined ? silentProgress : checkProgressSink(o.progress, 'options.progress');
  const ref = checkObject(o.reference ?? { dataset: shadow, index: 0 }, 'options.reference');
  const refData = checkDataset(ref.dataset, 'options.reference.dataset', false);
  const refIndex = checkInt(ref.index, 'options.reference.index', { min: 0, max: datasetSize(refData) - 1 });
  if (refData.channels !== encoder.config.inChannels || shadow.channels !== encoder.config.inChannels) {
    throw new RangeError(`the encoder takes ${encoder.config.inChannels} channel(s); shadow has ${shadow.channels}, reference ${refData.channels}`);
  }
  const triggered = withTrigger(shadow, (o.trigger as Partial<Trigger> | undefined) ?? {});

  const backdoored = cloneEncoder(encoder).train(); // f'
  const opt = new Adam(backdoored.parameters(), { lr });
  const refImage = toTensor(refData, [refIndex]);
  const refClean = noGrad(() => embedSync(encoder, refImage)); // f(x_ref), [1, d]
  try {
    for (let epoch = 0; epoch < epochs; epoch++) {
      const batches = [...batchIndices(n, { batchSize, seed: deriveSeed(seed, 3), epoch })];
      const t0 = Date.now();
      batches.forEach((idx, step) => {
        const loss = tidy(() => {
          const B = idx.length;
          const xClean = toTensor(shadow, idx);
          const target = noGrad(() => embedSync(encoder, xClean)); // f(x)
          // One forward of [x ⊕ t; x; x_ref] (batch norm sees one batch), rows picked by selector matrices.
          const h = backdoored.forward(ops.cat0(ops.cat0(toTensor(triggered, idx), xClean), refImage));
          const pick = (rows: number, col: (r: number) => number) => {
            const m = new Float32Array(rows * (2 * B + 1));
            for (let r = 0; r < rows; r++) m[r * (2 * B + 1) + col(r)] = 1;
            return Tensor.from(m, [rows, 2 * B + 1]);
          };
          const fTrig = ops.matmul(pick(B, (r) => r), h); // f'(x ⊕ t)
          const fClean = ops.matmul(pick(B, (r) => B + r), h); // f'(x)
          const fRefRows = ops.matmul(pick(B, () => 2 * B), h); // f'(x_ref), B times
          const fRef = ops.matmul(pick(1, () => 2 * B), h);
          const l0 = ops.cosineLoss(fTrig, fRefRows);
          const l1 = ops.cosineLoss(fRef, refClean);
          const l2 = ops.cosineLoss(fClean, target);
          const l = ops.add(ops.add(l0, ops.scale(l1, lambda1)), ops.scale(l2, lambda2));
          opt.zeroGrad();
          l.backward();
          opt.step();
          return l.item();
        });
        const sec = (Date.now() - t0) / 1000;
        progress.update({ task: 'badencoder', epoch: epoch + 1, epochs, step: step + 1, steps: batches.length, loss, imagesPerSec: ((step + 1) * idx.length * 2) / Math.max(sec, 1e-3) });
      });
    }
    // Batch norm: training normalised each [x ⊕ t; x; x_ref] batch by its own
    // statistics; the running statistics (used at inference) are set to the
    // same mixture by forward passes without updates (30 passes: momentum
    // 0.1 leaves 0.9^30 = 4% of the old values).
    noGrad(() => {
      for (let pass = 0; pass < 30; pass++) {
        const idx = epochPermutation(n, deriveSeed(seed, 4), pass).subarray(0, batchSize);
        tidy(() => backdoored.forward(ops.cat0(ops.cat0(toTensor(triggered, idx), toTensor(shadow, idx)), refImage)));
      }
    });
  } finally {
    progress.stop();
    backdoored.eval();
    backdoored.zeroGrad();
    for (const t of opt.state().tensors.values()) t.dispose();
    refImage.dispose();
    refClean.dispose();
  }
  return backdoored;
}

export interface BackdoorSuccess {
  /** Fraction of triggered test images, not of the target class, that a downstream linear probe assigns to the target class. */
  attackSuccessRate: number;
  /** The same probe's accuracy on clean test images. */
  cleanAccuracy: number;
  /** Fraction of clean non-target test images assigned to the target class (the rate without the trigger). */
  baseRate: number;
  /** Mean cosine between triggered test embeddings and the reference's embedding. */
  triggerToReferenceCosine: number;
}

/**
 * BadEncoder's attack success rate: a linear probe (lib/eval) trained on the
 * (possibly backdoored) encoder's clean embeddings of `train` classifies the
 * triggered test images; success = predicted `targetClass`.
 */
export function backdoorSuccessRate(
  encoder: Encoder,
  options: { train: Dataset; test: Dataset; targetClass: number; reference: { dataset: Dataset; index: number }; trigger?: Partial<Trigger>; seed?: number },
): BackdoorSuccess {
  checkEncoder(encoder);
  const o = checkObject(options, 'options');
  checkKeys(o, ['train', 'test', 'targetClass', 'reference', 'trigger', 'seed'], 'options');
  const train = checkDataset(o.train, 'options.train');
  const test = checkDataset(o.test, 'options.test');
  const target = checkInt(o.targetClass, 'options.targetClass', { min: 0, max: train.numClasses - 1 });
  const ref = checkObject(o.reference, 'options.reference');
  const refData = checkDataset(ref.dataset, 'options.reference.dataset', false);
  const refIndex = checkInt(ref.index, 'options.reference.index', { min: 0, max: datasetSize(refData) - 1 });
  const probe = trainLinearProbe(embedDataset(encoder, train), { numClasses: train.numClasses, seed: checkSeed(o.seed ?? 0, 'options.seed') });
  const clean = embedDataset(encoder, test);
  const trig = embedDataset(encoder, withTrigger(test, (o.trigger as Partial<Trigger> | undefined) ?? {}));
  const predClean = probePredict(probe, clean);
  const predTrig = probePredict(probe, trig);
  let hits = 0;
  let base = 0;
  let others = 0;
  for (let i = 0; i < test.labels.length; i++) {
    if (test.labels[i] === target) continue;
    others++;
    if (predTrig[i] === target) hits++;
    if (predClean[i] === target) base++;
  }
  const refEmb = noGrad(() => tidy(() => embedSync(encoder, toTensor(refData, [refIndex])).toArray()));
  let cosSum = 0;
  const d = trig.dim;
  let rn = 0;
  for (let j = 0; j < d; j++) rn += refEmb[j] * refEmb[j];
  for (let i = 0; i < trig.n; i++) {
    let dot = 0;
    let nn = 0;
    for (let j = 0; j < d; j++) {
      const v = trig.data[i * d + j];
      dot += v * refEmb[j];
      nn += v * v;
    }
    cosSum += dot / Math.max(Math.sqrt(nn * rn), 1e-12);
  }
  return {
    attackSuccessRate: others ? hits / others : 0,
    cleanAccuracy: accuracy(predClean, test.labels),
    baseRate: others ? base / others : 0,
    triggerToReferenceCosine: cosSum / trig.n,
  };
}
