// SSL-Auth (Li et al., 2023, arXiv 2308.04673): checks that a deployed
// encoder is exactly the released one, from its embeddings alone.
//
// Symbols: f the encoder; x_1..x_K the key samples; E = [f(x_1); ...; f(x_K)]
// the K x d embedding matrix (rows in key order); W the secret watermark
// image (side x side, pixels in {0,1}); G the generator, an MLP
//   G(E) = L2(relu(L1(vec(E) / s)))      s = RMS of the authentic E_0
// trained with the encoder frozen to minimise MSE(G(E_0), W). Verification
// rebuilds Ŵ = G(E') from a suspect's embeddings E' and compares it with W
// (PSNR, SSIM, bit agreement of Ŵ binarised at 0.5); the verdict uses PSNR.
//
// Key samples (the rule): from a seeded pool of the owner's images, the K
// whose embedding moves most, relative to its norm, when every conv/linear
// weight is multiplied by (1 + sigma * N(0,1)) (sigma 1e-3, R = 4 seeded
// draws): sens(x) = mean_r ||f_r(x) - f(x)|| / ||f(x)||. Random selection
// (the first K of the pool) is the comparison.
//
// Thresholds (calibration): the authentic encoder's scores vary only by
// floating-point noise. Two sources of it are measured or modelled at
// make-time: (1) observed: E_0 recomputed under each of `threadCounts`
// (ENCSEC_THREADS 1 and 2 by default); (2) modelled: E_0 * (1 + eps * N(0,1))
// element-wise, eps = noiseRel (1e-6 by default: float32 sums over ~1e3
// terms in another order differ by about that; the CPU kernels here give
// bit-identical embeddings for 1 and 2 threads), `noiseDraws` seeded draws.
// The rebuild error of the authentic E_0 is MSE_0 (training residual, ~0);
// noise raises it by at most X = max (MSE - MSE_0) over all of them, and
// moves the baseline by at most D. Noise is an amplitude, MSE its square, so
// with safety factor a (3): PSNR threshold = -10 log10(MSE_0 + a^2 X) and
// baseline threshold = a D. A row's margin is how many times the noise its
// change is: sqrt((MSE - MSE_0) / X) for SSL-Auth, distance / D for the baseline.
//
// Baseline (beside it): the key also stores E_0 itself; its score is
// max_k ||e'_k - e0_k|| / ||e0_k||, tampered above its threshold.
//
// Sources that perturb their answers: a source that says it applies a
// defense (describe().defense not 'none') is refused without a query
// ("cannot authenticate"); one that cannot tell (defense null) is asked for
// K + 1 images (key sample 0 twice): answers that differ for the same image
// mean it perturbs. A deterministic perturbation from a source that does not
// say so (rounding, top-k) cannot be told from tampering with these queries.
import { Tensor, noGrad, tidy } from '../../core/tensor';
import * as ops from '../../core/ops';
import { info, setThreads } from '../../core/backend';
import { checkInt, checkNumber, checkObject, checkOneOf, checkOptions, checkSeed, describe } from '../../core/validate';
import { Linear, Module, ReLU, Sequential } from '../../nn/module';
import { Encoder } from '../../nn/encoders';
import { Adam } from '../../nn/optim';
import { checkDataset, datasetSize, type Dataset } from '../../data/dataset';
import { toTensor } from '../../data/tensor';
import { epochPermutation } from '../../data/batching';
import { Prng, deriveSeed } from '../../data/prng';
import { EncoderSource, checkEmbeddingSource, type EmbeddingSource } from '../../service/source';
import { cloneEncoder, prunableWeights } from '../../attacks/tamper';
import { checkProgressSink, silentProgress, type ProgressSink } from '../../report/progress';
import { MAX_PSNR_DB, bitAgreement, maxRelativeRowDistance, meanSquaredError, psnr, seededWatermark, ssim } from './metrics';

export const SELECTION_RULES = ['sensitivity', 'random'] as const;
export type SelectionRule = (typeof SELECTION_RULES)[number];

export interface AuthConfig {
  /** Number of key samples K. */
  keySamples: number;
  selection: SelectionRule;
  /** Candidates the key samples are chosen from (a seeded subset of the data). */
  pool: number;
  /** Relative weight noise of the sensitivity rule, and its number of draws. */
  sensitivitySigma: number;
  sensitivityDraws: number;
  /** Side of the square watermark image. */
  watermarkSide: number;
  /** Generator hidden width, Adam steps and learning rate (linearly decayed to 0). */
  hidden: number;
  steps: number;
  lr: number;
  /** Modelled floating-point noise (relative, per element) and its draws. */
  noiseRel: number;
  noiseDraws: number;
  /** Thread counts whose embeddings are measured for the calibration. */
  threadCounts: number[];
  /** Margin factor on the largest score change seen under noise. */
  safety: number;
  seed: number;
}

export const AUTH_DEFAULTS: AuthConfig = {
  keySamples: 16,
  selection: 'sensitivity',
  pool: 512,
  sensitivitySigma: 1e-3,
  sensitivityDraws: 4,
  watermarkSide: 28,
  hidden: 256,
  steps: 1500,
  lr: 1e-3,
  noiseRel: 1e-6,
  noiseDraws: 32,
  threadCounts: [1, 2],
  safety: 3,
  seed: 0,
};

export function resolveAuthConfig(o: unknown = {}): AuthConfig {
  const v = checkOptions(o, 'options', [...Object.keys(AUTH_DEFAULTS), 'progress']);
  const get = <K extends keyof AuthConfig>(k: K): AuthConfig[K] => (v[k] ?? AUTH_DEFAULTS[k]) as AuthConfig[K];
  const threadCounts = get('threadCounts');
  if (!Array.isArray(threadCounts) || threadCounts.length === 0) throw new TypeError('options.threadCounts must be a non-empty array of integers');
  threadCounts.forEach((n, i) => checkInt(n, `options.threadCounts[${i}]`, { min: 1, max: 256 }));
  return {
    keySamples: checkInt(get('keySamples'), 'options.keySamples', { min: 1, max: 1024 }),
    selection: checkOneOf(get('selection'), 'options.selection', SELECTION_RULES),
    pool: checkInt(get('pool'), 'options.pool', { min: 1 }),
    sensitivitySigma: checkNumber(get('sensitivitySigma'), 'options.sensitivitySigma', { gt: 0, max: 1 }),
    sensitivityDraws: checkInt(get('sensitivityDraws'), 'options.sensitivityDraws', { min: 1, max: 1000 }),
    watermarkSide: checkInt(get('watermarkSide'), 'options.watermarkSide', { min: 7, max: 256 }),
    hidden: checkInt(get('hidden'), 'options.hidden', { min: 1, max: 65536 }),
    steps: checkInt(get('steps'), 'options.steps', { min: 1, max: 1e6 }),
    lr: checkNumber(get('lr'), 'options.lr', { gt: 0, max: 10 }),
    noiseRel: checkNumber(get('noiseRel'), 'options.noiseRel', { gt: 0, max: 0.1 }),
    noiseDraws: checkInt(get('noiseDraws'), 'options.noiseDraws', { min: 1, max: 100000 }),
    threadCounts: [...threadCounts],
    safety: checkNumber(get('safety'), 'options.safety', { min: 1, max: 1e6 }),
    seed: checkSeed(get('seed'), 'options.seed'),
  };
}

/** The generator G: vec(E)/s -> hidden -> side*side. Seeded initialisation. */
export function createGenerator(inputs: number, hidden: number, side: number, seed: number): Sequential {
  return new Sequential(new Linear(inputs, hidden, { seed, stream: 0 }), new ReLU(), new Linear(hidden, side * side, { seed, stream: 1 }));
}

export interface Thresholds {
  /** Authentic when PSNR(Ŵ, W) >= psnrDb. */
  psnrDb: number;
  /** Baseline: authentic when the max relative row distance <= baselineDistance. */
  baselineDistance: number;
}

/** Everything a verifier needs (and the owner keeps secret). */
export interface AuthKey {
  /** The key samples as the encoder takes them: normalised [K, C, H, W] values, row-major. */
  samples: Float32Array;
  sampleShape: [number, number, number, number];
  /** Embedding width d. */
  dim: number;
  watermark: Float32Array;
  watermarkSide: number;
  generator: Sequential;
  hidden: number;
  /** s: G's input is vec(E) / s. */
  inputScale: number;
  /** The authentic embeddings E_0 [K, d] (the baseline's reference). */
  reference: Float32Array;
  thresholds: Thresholds;
  /** How the thresholds were set (for reports). */
  calibration: Calibration;
  /** Where the key samples came from. */
  selection: { rule: SelectionRule; dataset: string; indices: number[]; sensitivity: number[] };
  /** The encoder the key was made for. */
  encoder: { arch: string; inChannels: number };
  config: AuthConfig;
}

export interface Calibration {
  /** PSNR and the rebuilt image's other scores on E_0. */
  authentic: Scores;
  /** Largest rise of the rebuild MSE above MSE_0, and largest baseline distance, under the observed thread counts. */
  observedMseExcess: number;
  observedBaselineDistance: number;
  /** The same under the modelled float32 noise. */
  modelledMseExcess: number;
  modelledBaselineDistance: number;
  /** X and D: the larger of the two of each (what the thresholds and margins are measured in). */
  noiseMseExcess: number;
  noiseBaselineDistance: number;
  threadCounts: number[];
  noiseRel: number;
  noiseDraws: number;
  safety: number;
  generatorLoss: number;
}

export interface Scores {
  /** MSE(Ŵ, W). */
  mse: number;
  psnrDb: number;
  ssim: number;
  bitAgreement: number;
  baselineDistance: number;
}

function checkFloats(v: unknown, name: string): Float32Array {
  if (!(v instanceof Float32Array)) throw new TypeError(`${name} must be a Float32Array, got ${describe(v)}`);
  if (v.length === 0) throw new RangeError(`${name} is empty`);
  return v;
}

function checkGenerator(v: unknown, name: string): Sequential {
  if (!(v instanceof Sequential)) throw new TypeError(`${name} must be the key's generator (an nn.Sequential), got ${describe(v)}`);
  return v;
}

/** The generator's rebuilt image Ŵ = G(vec(E) / s) for one [K, d] embedding matrix. */
export function rebuildWatermark(key: Pick<AuthKey, 'generator' | 'inputScale'>, embeddings: Float32Array): Float32Array {
  checkObject(key, 'key');
  checkGenerator(key.generator, 'key.generator');
  checkNumber(key.inputScale, 'key.inputScale', { gt: 0 });
  checkFloats(embeddings, 'embeddings');
  return noGrad(() =>
    tidy(() => {
      key.generator.eval();
      const x = ops.scale(Tensor.from(embeddings, [1, embeddings.length]), 1 / key.inputScale);
      return key.generator.forward(x).toArray();
    }),
  );
}

/** SSL-Auth's and the baseline's scores of one embedding matrix against the key. */
export function scoreEmbeddings(key: Pick<AuthKey, 'generator' | 'inputScale' | 'watermark' | 'watermarkSide' | 'reference' | 'sampleShape'>, embeddings: Float32Array): Scores {
  checkObject(key, 'key');
  checkFloats(embeddings, 'embeddings');
  checkFloats(key.reference, 'key.reference');
  checkFloats(key.watermark, 'key.watermark');
  checkInt(key.watermarkSide, 'key.watermarkSide', { min: 1, max: 1 << 15 });
  if (!Array.isArray(key.sampleShape) || key.sampleShape.length !== 4) throw new TypeError(`key.sampleShape must be [K, C, H, W], got ${describe(key.sampleShape)}`);
  checkInt(key.sampleShape[0], 'key.sampleShape[0]', { min: 1 });
  if (embeddings.length !== key.reference.length) throw new RangeError(`embeddings have ${embeddings.length} values, the key expects ${key.reference.length}`);
  const w = rebuildWatermark(key, embeddings);
  return {
    mse: meanSquaredError(w, key.watermark),
    psnrDb: psnr(w, key.watermark),
    ssim: ssim(w, key.watermark, key.watermarkSide),
    bitAgreement: bitAgreement(w, key.watermark),
    baselineDistance: maxRelativeRowDistance(embeddings, key.reference, key.sampleShape[0]),
  };
}

/** sens(x) of each candidate: mean relative embedding change under R weight perturbations. */
export function sampleSensitivity(encoder: Encoder, data: Dataset, indices: Int32Array, sigma: number, draws: number, seed: number): Float64Array {
  if (!(encoder instanceof Encoder)) throw new TypeError(`encoder must be an Encoder, got ${describe(encoder)}`);
  checkDataset(data, 'data', false);
  if (!(indices instanceof Int32Array)) throw new TypeError(`indices must be an Int32Array of image indices, got ${describe(indices)}`);
  if (indices.length === 0) throw new RangeError('indices is empty');
  const n = datasetSize(data);
  indices.forEach((v, i) => {
    if (v < 0 || v >= n) throw new RangeError(`indices[${i}] = ${v} is not an image of data (${n} images)`);
  });
  checkNumber(sigma, 'sigma', { min: 0, max: 1e3 });
  checkInt(draws, 'draws', { min: 1, max: 100000 });
  checkSeed(seed, 'seed');
  const embed = (e: Encoder) => {
    const out: Float32Array[] = [];
    for (let s = 0; s < indices.length; s += 256) out.push(noGrad(() => tidy(() => e.forward(toTensor(data, indices.subarray(s, s + 256))).toArray())));
    const all = new Float32Array(out.reduce((n, a) => n + a.length, 0));
    let o = 0;
    for (const a of out) {
      all.set(a, o);
      o += a.length;
    }
    return all;
  };
  encoder.eval();
  const base = embed(encoder);
  const d = base.length / indices.length;
  const sens = new Float64Array(indices.length);
  const names = prunableWeights(encoder);
  for (let r = 0; r < draws; r++) {
    const pert = cloneEncoder(encoder);
    const state = pert.stateDict();
    noGrad(() =>
      tidy(() => {
        names.forEach((name, p) => {
          const w = state.get(name)!;
          const noise = Tensor.randn(w.shape, { seed: deriveSeed(seed, 11, r), offset: p * 2 ** 32, std: sigma });
          w.copy_(ops.add(w, ops.mul(w, noise)));
        });
      }),
    );
    const e = embed(pert);
    pert.dispose();
    for (let i = 0; i < indices.length; i++) {
      let num = 0;
      let den = 0;
      for (let j = 0; j < d; j++) {
        num += (e[i * d + j] - base[i * d + j]) ** 2;
        den += base[i * d + j] ** 2;
      }
      sens[i] += Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-30) / draws;
    }
  }
  return sens;
}

/** The key samples: K indices of `data` by the rule, with their sensitivities. */
export function selectKeySamples(encoder: Encoder, data: Dataset, config: AuthConfig): { indices: number[]; sensitivity: number[] } {
  if (!(encoder instanceof Encoder)) throw new TypeError(`encoder must be an Encoder, got ${describe(encoder)}`);
  checkObject(config, 'config');
  checkInt(config.pool, 'config.pool', { min: 1 });
  checkInt(config.keySamples, 'config.keySamples', { min: 1 });
  checkSeed(config.seed, 'config.seed');
  checkOneOf(config.selection, 'config.selection', SELECTION_RULES);
  const n = datasetSize(data);
  const poolSize = Math.min(config.pool, n);
  if (config.keySamples > poolSize) throw new RangeError(`options.keySamples (${config.keySamples}) exceeds the pool of ${poolSize} image(s)`);
  const pool = epochPermutation(n, deriveSeed(config.seed, 10), 0).subarray(0, poolSize);
  const sens = sampleSensitivity(encoder, data, pool, config.sensitivitySigma, config.sensitivityDraws, deriveSeed(config.seed, 12));
  let order = Array.from({ length: poolSize }, (_, i) => i);
  if (config.selection === 'sensitivity') order = order.sort((a, b) => sens[b] - sens[a] || a - b);
  const chosen = order.slice(0, config.keySamples);
  return { indices: chosen.map((i) => pool[i]), sensitivity: chosen.map((i) => sens[i]) };
}

/** Trains G on E_0 -> W with the encoder frozen (Adam, lr decayed linearly to 0). Returns the final MSE. */
export function trainGenerator(generator: Sequential, embeddings: Float32Array, inputScale: number, watermark: Float32Array, config: Pick<AuthConfig, 'steps' | 'lr'>, progress: ProgressSink = silentProgress): number {
  checkGenerator(generator, 'generator');
  checkFloats(embeddings, 'embeddings');
  checkNumber(inputScale, 'inputScale', { gt: 0 });
  checkFloats(watermark, 'watermark');
  checkObject(config, 'config');
  checkInt(config.steps, 'config.steps', { min: 1, max: 10_000_000 });
  checkNumber(config.lr, 'config.lr', { gt: 0, max: 10 });
  checkProgressSink(progress, 'progress');
  const opt = new Adam(generator.parameters(), { lr: config.lr });
  generator.train();
  let loss = NaN;
  const x = Tensor.from(embeddings, [1, embeddings.length]);
  const w = Tensor.from(watermark, [1, watermark.length]);
  try {
    for (let step = 0; step < config.steps; step++) {
      opt.lr = config.lr * (1 - step / config.steps);
      loss = tidy(() => {
        const l = ops.mseLoss(generator.forward(ops.scale(x, 1 / inputScale)), w);
        opt.zeroGrad();
        l.backward();
        opt.step();
        return l.item();
      });
      if (step % 100 === 99 || step === config.steps - 1) progress.update({ task: 'sslauth-generator', step: step + 1, steps: config.steps, loss });
    }
  } finally {
    x.dispose();
    w.dispose();
    generator.zeroGrad();
    for (const t of opt.state().tensors.values()) t.dispose();
    generator.eval();
  }
  return loss;
}

/** E of a source for the key samples: exactly K images in one request. */
async function embedSamples(source: EmbeddingSource, samples: Float32Array, shape: readonly number[], clientId: string, repeatFirst: boolean): Promise<Float32Array> {
  const [K, C, H, W] = shape;
  const per = C * H * W;
  const data = repeatFirst ? new Float32Array((K + 1) * per) : samples;
  if (repeatFirst) {
    data.set(samples);
    data.set(samples.subarray(0, per), K * per);
  }
  const x = Tensor.from(data, [repeatFirst ? K + 1 : K, C, H, W]);
  try {
    const e = await source.embed(clientId, x);
    try {
      return e.toArray();
    } finally {
      e.dispose();
    }
  } finally {
    x.dispose();
  }
}

/** Embeddings of the key samples by `encoder` under each thread count (the thread count is restored after). */
async function embedUnderThreads(encoder: Encoder, samples: Float32Array, shape: readonly number[], counts: readonly number[]): Promise<Float32Array[]> {
  const before = info().cpuThreads;
  const out: Float32Array[] = [];
  try {
    for (const n of counts) {
      setThreads(n);
      out.push(await embedSamples(new EncoderSource(encoder), samples, shape, 'sslauth-owner', false));
    }
  } finally {
    setThreads(before);
  }
  return out;
}

/** E_0 * (1 + eps * N(0,1)) element-wise, seeded (the modelled float32 noise). */
export function modelledNoise(e0: Float32Array, eps: number, seed: number): Float32Array {
  checkFloats(e0, 'e0');
  checkNumber(eps, 'eps', { min: 0 });
  checkSeed(seed, 'seed');
  const rng = new Prng(seed);
  const out = new Float32Array(e0.length);
  for (let i = 0; i < e0.length; i++) {
    // Box-Muller.
    const u = Math.max(rng.next(), 1e-300);
    const z = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng.next());
    out[i] = e0[i] * (1 + eps * z);
  }
  return out;
}

export interface MakeAuthKeyOptions extends Partial<AuthConfig> {
  progress?: ProgressSink;
}

/**
 * Makes the key of `encoder` from the owner's images: selects the key
 * samples, trains G on their embeddings, calibrates the thresholds. The
 * encoder is not modified.
 */
export async function makeAuthKey(encoder: Encoder, data: Dataset, options: MakeAuthKeyOptions = {}): Promise<AuthKey> {
  if (!(encoder instanceof Encoder)) throw new TypeError('encoder must be an Encoder');
  checkDataset(data, 'data', false);
  const config = resolveAuthConfig(options);
  const progress = options.progress ?? silentProgress;
  if (data.channels !== encoder.config.inChannels) throw new RangeError(`data has ${data.channels}-channel images, the encoder takes ${encoder.config.inChannels}`);
  const { indices, sensitivity } = selectKeySamples(encoder, data, config);
  progress.event({ task: 'sslauth', selected: indices.length, rule: config.selection, meanSensitivity: sensitivity.reduce((a, b) => a + b, 0) / indices.length });
  const samples = noGrad(() => tidy(() => toTensor(data, indices).toArray()));
  const sampleShape: [number, number, number, number] = [indices.length, data.channels, data.height, data.width];
  const [e0, ...others] = await embedUnderThreads(encoder, samples, sampleShape, [info().cpuThreads, ...config.threadCounts]);
  const dim = e0.length / indices.length;
  let sq = 0;
  for (const v of e0) sq += v * v;
  const inputScale = Math.sqrt(sq / e0.length) || 1;
  const watermark = seededWatermark(config.watermarkSide, deriveSeed(config.seed, 20));
  const generator = createGenerator(e0.length, config.hidden, config.watermarkSide, deriveSeed(config.seed, 21));
  const generatorLoss = trainGenerator(generator, e0, inputScale, watermark, config, progress);
  const partial = { generator, inputScale, watermark, watermarkSide: config.watermarkSide, reference: e0, sampleShape };
  const authentic = scoreEmbeddings(partial, e0);
  const change = (e: Float32Array) => {
    const s = scoreEmbeddings(partial, e);
    return [Math.max(0, s.mse - authentic.mse), s.baselineDistance];
  };
  let observedMseExcess = 0;
  let observedBaselineDistance = 0;
  for (const e of others) {
    const [x, b] = change(e);
    observedMseExcess = Math.max(observedMseExcess, x);
    observedBaselineDistance = Math.max(observedBaselineDistance, b);
  }
  let modelledMseExcess = 0;
  let modelledBaselineDistance = 0;
  for (let r = 0; r < config.noiseDraws; r++) {
    const [x, b] = change(modelledNoise(e0, config.noiseRel, deriveSeed(config.seed, 22, r)));
    modelledMseExcess = Math.max(modelledMseExcess, x);
    modelledBaselineDistance = Math.max(modelledBaselineDistance, b);
  }
  progress.stop();
  const noiseMseExcess = Math.max(observedMseExcess, modelledMseExcess);
  const noiseBaselineDistance = Math.max(observedBaselineDistance, modelledBaselineDistance);
  const thresholdMse = authentic.mse + config.safety ** 2 * noiseMseExcess;
  const thresholds: Thresholds = {
    psnrDb: thresholdMse === 0 ? MAX_PSNR_DB : Math.min(MAX_PSNR_DB, -10 * Math.log10(thresholdMse)),
    baselineDistance: config.safety * noiseBaselineDistance,
  };
  return {
    samples,
    sampleShape,
    dim,
    watermark,
    watermarkSide: config.watermarkSide,
    generator,
    hidden: config.hidden,
    inputScale,
    reference: e0,
    thresholds,
    calibration: {
      authentic,
      observedMseExcess,
      observedBaselineDistance,
      modelledMseExcess,
      modelledBaselineDistance,
      noiseMseExcess,
      noiseBaselineDistance,
      threadCounts: config.threadCounts,
      noiseRel: config.noiseRel,
      noiseDraws: config.noiseDraws,
      safety: config.safety,
      generatorLoss,
    },
    selection: { rule: config.selection, dataset: data.name, indices, sensitivity },
    encoder: { arch: encoder.config.arch, inChannels: encoder.config.inChannels },
    config,
  };
}

export type Verdict = 'authentic' | 'tampered' | 'cannot-authenticate';

export interface AuthReport {
  /** SSL-Auth's verdict (from PSNR). */
  verdict: Verdict;
  /** The baseline's verdict on the same answers. */
  baselineVerdict: Verdict;
  /** Why, in words. */
  reason: string;
  psnrDb: number | null;
  mse: number | null;
  /** How many times the calibrated numerical noise this answer's change is (SSL-Auth, baseline); see the top of this file. */
  noiseRatio: number | null;
  baselineNoiseRatio: number | null;
  ssim: number | null;
  bitAgreement: number | null;
  baselineDistance: number | null;
  thresholds: Thresholds;
  /** Images sent to the source. */
  queries: number;
  source: { kind: string; defense: string | null };
}

/**
 * Verifies an embedding source against the key with K queries (K + 1 when
 * the source cannot say whether it perturbs its answers; none when it says
 * it does). A file is verified as `new EncoderSource(encoder)`.
 */
export async function verifyAuth(source: EmbeddingSource, key: AuthKey, options: { clientId?: string } = {}): Promise<AuthReport> {
  checkEmbeddingSource(source);
  const o = checkOptions<{ clientId?: string }>(options, 'options', ['clientId']);
  const clientId = (o.clientId as string | undefined) ?? 'sslauth-verifier';
  const desc = source.describe();
  const base = { thresholds: key.thresholds, source: { kind: desc.kind, defense: desc.defense } };
  const refuse = (reason: string, queries: number): AuthReport => ({
    verdict: 'cannot-authenticate',
    baselineVerdict: 'cannot-authenticate',
    reason,
    psnrDb: null,
    mse: null,
    noiseRatio: null,
    baselineNoiseRatio: null,
    ssim: null,
    bitAgreement: null,
    baselineDistance: null,
    queries,
    ...base,
  });
  if (desc.defense !== null && desc.defense !== 'none') return refuse(`cannot authenticate: the source perturbs its answers (defense ${desc.defense})`, 0);
  const K = key.sampleShape[0];
  const repeat = desc.defense === null;
  const answers = await embedSamples(source, key.samples, key.sampleShape, clientId, repeat);
  const rows = repeat ? K + 1 : K;
  if (answers.length % rows !== 0) throw new RangeError(`the source answered ${answers.length} values for ${rows} images`);
  const d = answers.length / rows;
  for (let i = 0; i < answers.length; i++) if (!Number.isFinite(answers[i])) return refuse(`cannot authenticate: the source answered a non-finite value`, rows);
  if (repeat) {
    for (let j = 0; j < d; j++) {
      if (answers[j] !== answers[K * d + j]) return refuse('cannot authenticate: the source perturbs its answers (two answers for the same image differ)', rows);
    }
  }
  const e = repeat ? answers.subarray(0, K * d) : answers;
  if (d !== key.dim) {
    return { verdict: 'tampered', baselineVerdict: 'tampered', reason: `embeddings have ${d} dimensions, the key's encoder has ${key.dim}: another model`, psnrDb: null, mse: null, noiseRatio: null, baselineNoiseRatio: null, ssim: null, bitAgreement: null, baselineDistance: null, queries: rows, ...base };
  }
  const s = scoreEmbeddings(key, e);
  const ratios = noiseRatios(key, s);
  const verdict: Verdict = s.psnrDb >= key.thresholds.psnrDb ? 'authentic' : 'tampered';
  const baselineVerdict: Verdict = s.baselineDistance <= key.thresholds.baselineDistance ? 'authentic' : 'tampered';
  const reason =
    verdict === 'authentic'
      ? `PSNR ${s.psnrDb.toFixed(4)} dB >= threshold ${key.thresholds.psnrDb.toFixed(4)} dB${repeat ? ' (the source does not say whether it perturbs; its answers were reproducible)' : ''}`
      : `PSNR ${s.psnrDb.toFixed(4)} dB < threshold ${key.thresholds.psnrDb.toFixed(4)} dB: the encoder differs from the released one`;
  return { verdict, baselineVerdict, reason, ...s, ...ratios, queries: rows, ...base };
}

/** A score's change from the authentic one in units of the calibrated noise (SSL-Auth: sqrt of MSE excess ratio; baseline: distance ratio). */
export function noiseRatios(key: Pick<AuthKey, 'calibration'>, s: Scores): { noiseRatio: number; baselineNoiseRatio: number } {
  checkObject(key, 'key');
  const c = checkObject(key.calibration, 'key.calibration') as unknown as Calibration;
  checkObject(c.authentic, 'key.calibration.authentic');
  checkNumber(c.authentic.mse, 'key.calibration.authentic.mse');
  checkNumber(c.noiseMseExcess, 'key.calibration.noiseMseExcess');
  checkNumber(c.noiseBaselineDistance, 'key.calibration.noiseBaselineDistance');
  checkObject(s, 's');
  checkNumber(s.mse, 's.mse');
  checkNumber(s.baselineDistance, 's.baselineDistance');
  return {
    noiseRatio: Math.sqrt(Math.max(0, s.mse - c.authentic.mse) / Math.max(c.noiseMseExcess, 1e-300)),
    baselineNoiseRatio: s.baselineDistance / Math.max(c.noiseBaselineDistance, 1e-300),
  };
}

/** Frees the generator's tensors. */
export function disposeAuthKey(key: AuthKey): void {
  checkObject(key, 'key');
  if (!(key.generator instanceof Module)) throw new TypeError(`key.generator must be the key's generator (a Module), got ${describe(key.generator)}`);
  key.generator.dispose();
}
