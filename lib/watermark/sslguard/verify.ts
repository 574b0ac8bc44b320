// SSLGuard verification: WR(E), the share of D_v whose triggered image x_t
// gives cos(D(E(x_t)), sk) > 0.5, measured through ANY embedding source (an
// encoder file via EncoderSource, an EncoderService with budgets and
// defenses, a remote API), spending exactly |D_v| queries. (The official
// verify returns the hit count; we report the fraction and the count.)
//
// The verdict is a test, not a threshold on WR: under the null hypothesis
// "E is not derived from F_w", each image is a hit with probability p0, the
// hit rate of encoders known not to be derived (the clean F, independently
// trained encoders, copies stolen from F), pooled and taken at its one-sided
// 95% Clopper-Pearson upper bound (so that a null model with 0 hits does not
// make a single hit decisive). The p-value is P(X >= hits), X ~ Bin(|D_v|,
// p0); "watermarked" when p < alpha (1e-6 by default). Images are treated as
// independent given the encoder, as the binomial model assumes.
import type { Tensor } from '../../core/tensor';
import { noGrad } from '../../core/tensor';
import { checkInt, checkNumber, checkOptions, describe } from '../../core/validate';
import { Module } from '../../nn/module';
import { datasetSize, type Dataset } from '../../data/dataset';
import { toTensor } from '../../data/tensor';
import { EncoderSource, checkClientId, isEmbeddingSource, type EmbeddingSource } from '../../service/source';
import { applyTrigger, checkSslGuardKey, decodedCosines, type NullModel, type SslGuardKey } from './key';
import { logBinomialTail, rateUpperBound } from './binomial';

export interface WatermarkRate {
  hits: number;
  /** |D_v| */
  n: number;
  /** hits / n */
  wr: number;
  /** Mean of cos(D(E(x_t)), sk) over D_v. */
  meanCos: number;
  /** Queries this measurement spent (= n). */
  queries: number;
}

export interface VerifyOptions {
  clientId?: string;
  /** Images per query (default 250). */
  batchSize?: number;
}

/** A source for an encoder in memory, or the source itself. */
export function toSource(v: Module | EmbeddingSource, name = 'source'): EmbeddingSource {
  if (typeof name !== 'string') throw new TypeError(`name must be a string (the argument's name in messages), got ${describe(name)}`);
  if (v instanceof Module) return new EncoderSource(v);
  if (isEmbeddingSource(v)) return v;
  throw new TypeError(`${name} must be an encoder (Module) or an EmbeddingSource`);
}

/** WR(E) on D_v (verifyData) through `source`, spending exactly |D_v| queries. */
export async function watermarkRate(source: Module | EmbeddingSource, key: SslGuardKey, verifyData: Dataset, options: VerifyOptions = {}): Promise<WatermarkRate> {
  const src = toSource(source);
  checkSslGuardKey(key);
  const o = checkOptions<VerifyOptions>(options, 'options', ['clientId', 'batchSize']);
  const clientId = checkClientId(o.clientId ?? 'owner', 'options.clientId');
  const bs = checkInt(o.batchSize ?? 250, 'options.batchSize', { min: 1, max: 65536 });
  const n = datasetSize(verifyData);
  if (n !== key.verification.indices.length) throw new RangeError(`verifyData has ${n} images, the key's D_v has ${key.verification.indices.length}`);
  const [C, H, W] = key.imageShape;
  if (verifyData.channels !== C || verifyData.height !== H || verifyData.width !== W) throw new RangeError(`verifyData has ${verifyData.channels}x${verifyData.height}x${verifyData.width} images, the key expects ${C}x${H}x${W}`);
  // A budgeted service says how much is left: refuse before spending anything.
  const remaining = (src as { remaining?: (id: string) => number }).remaining;
  if (typeof remaining === 'function') {
    const left = remaining.call(src, clientId);
    if (left < n) throw new Error(`verification needs ${n} queries (|D_v|) but client ${JSON.stringify(clientId)} has ${left} left`);
  }
  let hits = 0;
  let cosSum = 0;
  let spent = 0;
  for (let s = 0; s < n; s += bs) {
    const e = Math.min(n, s + bs);
    const xt = noGrad(() => {
      const x = toTensor(verifyData, Int32Array.from({ length: e - s }, (_, i) => s + i));
      const t = applyTrigger(x, key.mask, key.trigger);
      x.dispose();
      return t;
    });
    let emb: Tensor;
    try {
      emb = await src.embed(clientId, xt);
    } catch (err) {
      throw new Error(`verification stopped after ${spent} of ${n} queries (|D_v|): the source refused the next ${e - s}: ${(err as Error).message}`);
    } finally {
      xt.dispose();
    }
    try {
      if (emb.ndim !== 2 || emb.shape[0] !== e - s) throw new Error(`the source returned shape [${emb.shape.join(', ')}] for ${e - s} images`);
      if (emb.shape[1] !== key.dim) throw new Error(`the source returns ${emb.shape[1]}-d embeddings, the key's decoder takes ${key.dim}-d`);
      const cos = decodedCosines(key, emb);
      for (const c of cos) {
        cosSum += c;
        if (c > key.cosThreshold) hits++;
      }
    } finally {
      emb.dispose();
    }
    spent += e - s;
  }
  return { hits, n, wr: hits / n, meanCos: cosSum / n, queries: spent };
}

export interface OwnershipVerdict {
  verdict: 'watermarked' | 'not watermarked';
  wr: number;
  hits: number;
  n: number;
  /** p0: the null hit rate used (upper confidence bound of the pooled null counts). */
  nullRate: number;
  nullHits: number;
  nullTrials: number;
  /** P(X >= hits), X ~ Binomial(n, p0) (0 when it underflows; see log10PValue). */
  pValue: number;
  log10PValue: number;
  alpha: number;
}

/** The verdict for `hits` of `n` under the key's null model (or the one given). */
export function ownershipVerdict(hits: number, n: number, nullModel: NullModel, options: { alpha?: number; confidence?: number } = {}): OwnershipVerdict {
  const o = checkOptions<{ alpha?: number; confidence?: number }>(options, 'options', ['alpha', 'confidence']);
  checkInt(n, 'n', { min: 1 });
  checkInt(hits, 'hits', { min: 0, max: n });
  const alpha = checkNumber(o.alpha ?? 1e-6, 'options.alpha', { gt: 0, lt: 1 });
  if (!nullModel || !(nullModel.trials > 0)) throw new RangeError('the null model is empty: calibrate the key on encoders not derived from F_w (calibrateNullModel / `encsec watermark calibrate`) first');
  const nullRate = rateUpperBound(nullModel.hits, nullModel.trials, o.confidence ?? 0.95);
  const logP = logBinomialTail(hits, n, nullRate);
  return {
    verdict: logP < Math.log(alpha) ? 'watermarked' : 'not watermarked',
    wr: hits / n,
    hits,
    n,
    nullRate,
    nullHits: nullModel.hits,
    nullTrials: nullModel.trials,
    pValue: Math.exp(logP),
    log10PValue: logP / Math.LN10,
    alpha,
  };
}

/** WR and the verdict for one suspect (encoder or any embedding source). */
export async function verifyOwnership(
  suspect: Module | EmbeddingSource,
  key: SslGuardKey,
  verifyData: Dataset,
  options: VerifyOptions & { alpha?: number } = {},
): Promise<OwnershipVerdict & { meanCos: number; queries: number }> {
  const { alpha, ...rest } = checkOptions<VerifyOptions & { alpha?: number }>(options, 'options', ['clientId', 'batchSize', 'alpha']);
  const rate = await watermarkRate(suspect, key, verifyData, rest);
  return { ...ownershipVerdict(rate.hits, rate.n, key.nullModel, { alpha: alpha ?? key.alpha }), meanCos: rate.meanCos, queries: rate.queries };
}

/**
 * A null model from encoders NOT derived from F_w: their hits on D_v,
 * pooled. `names` label them in the key.
 */
export async function calibrateNullModel(
  nulls: { name: string; source: Module | EmbeddingSource }[],
  key: SslGuardKey,
  verifyData: Dataset,
  options: VerifyOptions = {},
): Promise<NullModel & { rates: { name: string; hits: number; n: number }[] }> {
  if (!Array.isArray(nulls) || nulls.length === 0) throw new TypeError('nulls must be a non-empty array of { name, source }');
  const rates: { name: string; hits: number; n: number }[] = [];
  for (const [i, e] of nulls.entries()) {
    if (!e || typeof e.name !== 'string' || e.name === '') throw new TypeError(`nulls[${i}].name must be a non-empty string`);
    const r = await watermarkRate(toSource(e.source, `nulls[${i}].source`), key, verifyData, options);
    rates.push({ name: e.name, hits: r.hits, n: r.n });
  }
  return { hits: rates.reduce((s, r) => s + r.hits, 0), trials: rates.reduce((s, r) => s + r.n, 0), sources: rates.map((r) => r.name), rates };
}
