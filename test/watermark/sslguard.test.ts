// SSLGuard key files, the verdict's statistics and verification through
// embedding sources, on hand-built cases (no embedding run: see
// sslguard-embed.test.ts).
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Tensor, noGrad } from '../../lib/core/tensor';
import { loadDataset } from '../../lib/data/builtin';
import { subset, type Dataset } from '../../lib/data/dataset';
import { toTensor } from '../../lib/data/tensor';
import { createEncoder } from '../../lib/nn/encoders';
import { saveEncoder } from '../../lib/io/checkpoint';
import { loadSurrogate } from '../../lib/attacks/surrogate';
import { EncoderService } from '../../lib/service/service';
import type { EmbeddingSource, QueryImages } from '../../lib/service/source';
import {
  applyTrigger,
  calibrateNullModel,
  createKey,
  disposeKey,
  loadKey,
  logBinomialTail,
  ownershipVerdict,
  rateUpperBound,
  saveKey,
  verifyOwnership,
  watermarkRate,
  type SslGuardKey,
} from '../../lib/watermark/sslguard';

process.env.ENCSEC_CACHE = process.env.ENCSEC_CACHE ?? path.join(os.tmpdir(), 'encsec-test-cache');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'encsec-sslguard-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));

const full = loadDataset('fashion-mnist', { split: 'train', limit: 500 });
function smallKey(seed: number, dim = 128, verifySize = 40): { key: SslGuardKey; dv: Dataset } {
  const key = createKey({ dim, seed, verifySize, splitSize: 500 });
  return { key, dv: subset(full, key.verification.indices) };
}

t.test('a key survives a save/load round trip exactly', async (t) => {
  const { key } = smallKey(3);
  key.nullModel = { hits: 2, trials: 3000, sources: ['a', 'b'] };
  const dir = path.join(tmp, 'k1');
  saveKey(dir, key);
  const back = loadKey(dir);
  t.same([...back.sk.toArray()], [...key.sk.toArray()], 'sk');
  t.same([...back.mask.toArray()], [...key.mask.toArray()], 'mask');
  t.same([...back.trigger.toArray()], [...key.trigger.toArray()], 'trigger');
  for (const [k, v] of key.decoder.stateDict()) t.same([...back.decoder.stateDict().get(k)!.toArray()], [...v.toArray()], `decoder ${k}`);
  t.same([...back.verification.indices], [...key.verification.indices], 'D_v indices');
  t.same(back.nullModel, key.nullModel);
  t.equal(back.alpha, 1e-6);
  t.equal(back.cosThreshold, 0.5);
  // M: a pixel is in the mask with probability 1 - r = 0.35 (784 pixels: within 5 standard deviations).
  const inMask = key.mask.toArray().reduce((s, v) => s + v, 0);
  t.ok(Math.abs(inMask - 0.35 * 784) < 5 * Math.sqrt(784 * 0.35 * 0.65), `mask covers ${inMask} of 784 pixels`);
  const tv = key.trigger.toArray();
  t.ok(tv.every((v) => v >= 0 && v <= 1), 'trigger in [0, 1]');
  // Same seed, same key.
  const again = createKey({ dim: 128, seed: 3, verifySize: 40, splitSize: 500 });
  t.same([...again.sk.toArray()], [...key.sk.toArray()], 'createKey is deterministic');
  disposeKey(again);
  disposeKey(back);
  disposeKey(key);
});

t.test('truncated, bit-flipped, edited or missing key files are clear errors', async (t) => {
  const { key } = smallKey(4);
  const dir = path.join(tmp, 'k2');
  saveKey(dir, key);
  disposeKey(key);
  const tfile = path.join(dir, 'key.safetensors');
  const mfile = path.join(dir, 'key.json');
  const tgood = fs.readFileSync(tfile);
  const mgood = fs.readFileSync(mfile, 'utf8');

  fs.writeFileSync(tfile, tgood.subarray(0, tgood.length - 100));
  t.throws(() => loadKey(dir), /invalid SSLGuard key .*key\.safetensors does not match the SHA-256/, 'truncated tensors');
  const flipped = Buffer.from(tgood);
  flipped[flipped.length - 7] ^= 0x10;
  fs.writeFileSync(tfile, flipped);
  t.throws(() => loadKey(dir), /does not match the SHA-256/, 'one flipped bit in the tensors');
  fs.writeFileSync(tfile, tgood);

  fs.writeFileSync(mfile, mgood.slice(0, mgood.length / 2));
  t.throws(() => loadKey(dir), /key\.json is not JSON \(truncated or damaged\)/, 'truncated manifest');
  fs.writeFileSync(mfile, mgood.replace('"alpha": 0.000001', '"alpha": 0.5'));
  t.throws(() => loadKey(dir), /does not match its digest/, 'edited manifest');
  fs.writeFileSync(mfile, mgood);
  t.doesNotThrow(() => disposeKey(loadKey(dir)), 'restored files load');

  fs.rmSync(tfile);
  t.throws(() => loadKey(dir), /key\.safetensors not found/);
  t.throws(() => loadKey(path.join(tmp, 'nowhere')), /key\.json not found/);
});

t.test('binomial tail in log space against hand-computed values', async (t) => {
  // P(X >= 8), X ~ Bin(10, 1/2) = (C(10,8) + C(10,9) + C(10,10)) / 2^10 = 56/1024
  t.ok(Math.abs(Math.exp(logBinomialTail(8, 10, 0.5)) - 56 / 1024) < 1e-12);
  // P(X >= 2), X ~ Bin(3, 0.1) = 3 * 0.01 * 0.9 + 0.001 = 0.028
  t.ok(Math.abs(Math.exp(logBinomialTail(2, 3, 0.1)) - 0.028) < 1e-12);
  t.equal(logBinomialTail(0, 1000, 0.01), 0, 'k = 0: probability 1');
  // k = n: ln P = n ln p, far below double's range (1e-4605), exact in log space.
  t.ok(Math.abs(logBinomialTail(1000, 1000, 0.01) - 1000 * Math.log(0.01)) < 1e-9);
  // 950 of 1000 at p = 0.003: dominated by the first term ln C(1000,950) + 950 ln p + 50 ln(1-p).
  let logC = 0;
  for (let j = 1; j <= 950; j++) logC += Math.log((50 + j) / j);
  const first = logC + 950 * Math.log(0.003) + 50 * Math.log(0.997);
  const got = logBinomialTail(950, 1000, 0.003);
  t.ok(got >= first && got - first < 1e-3, `${got} ~ ${first}`);
  t.equal(logBinomialTail(3, 10, 0), -Infinity);
  // Against direct summation in float64 for a moderate case.
  let direct = 0;
  const n = 50;
  const p = 0.1;
  for (let i = 20; i <= n; i++) {
    let c = 1;
    for (let j = 1; j <= i; j++) c *= (n - i + j) / j;
    direct += c * p ** i * (1 - p) ** (n - i);
  }
  t.ok(Math.abs(Math.exp(logBinomialTail(20, n, p)) / direct - 1) < 1e-10);
  t.throws(() => logBinomialTail(11, 10, 0.5), RangeError);
  t.throws(() => logBinomialTail(1, 10, 1.5), RangeError);
});

t.test('Clopper-Pearson upper bound of the null rate', async (t) => {
  t.ok(Math.abs(rateUpperBound(0, 1000) - (1 - 0.05 ** (1 / 1000))) < 1e-12, '0 of n: 1 - 0.05^(1/n)');
  // 5 of 100: P(X <= 5 | 100, ub) = 0.05 at the bound.
  const ub = rateUpperBound(5, 100);
  t.ok(Math.abs(1 - Math.exp(logBinomialTail(6, 100, ub)) - 0.05) < 1e-9);
  t.ok(ub > 0.05 && ub < 0.15);
});

/** An identity-like encoder: the embedding is the first `d` (normalised) pixels of the image. */
class FirstPixels implements EmbeddingSource {
  queries = 0;
  constructor(readonly d: number) {}
  async embed(_client: string, images: QueryImages): Promise<Tensor> {
    const x = images as Tensor;
    const n = x.shape[0];
    const per = x.size / n;
    const a = x.toArray();
    const out = new Float32Array(n * this.d);
    for (let i = 0; i < n; i++) out.set(a.subarray(i * per, i * per + this.d), i * this.d);
    this.queries += n;
    return Tensor.from(out, [n, this.d]);
  }
  describe() {
    return { kind: 'test', defense: 'none' };
  }
}

/** D(e) = sk * relu(e_0): cos(D(e), sk) = 1 when e_0 > 0, and 0 (not a hit) otherwise. */
function decoderHittingSk(key: SslGuardKey): void {
  noGrad(() => {
    const [l1, , l2, , l3] = key.decoder.net.layers as unknown as { weight: Tensor; bias: Tensor }[];
    const set = (t: Tensor, f: (i: number) => number) => t.copy_(Tensor.from(Float32Array.from({ length: t.size }, (_, i) => f(i)), t.shape));
    set(l1.weight, (i) => (i === 0 ? 1 : 0));
    set(l1.bias, () => 0);
    set(l2.weight, (i) => (i === 0 ? 1 : 0));
    set(l2.bias, () => 0);
    const sk = key.sk.toArray();
    const cols = l3.weight.shape[1];
    set(l3.weight, (i) => (i % cols === 0 ? sk[i / cols] : 0));
    set(l3.bias, () => 0);
  });
}

t.test('WR and the verdict on hand-built encoders', async (t) => {
  const { key, dv } = smallKey(5, 4, 60);
  decoderHittingSk(key);
  // Pixel 0 (a corner: 0 in Fashion-MNIST, -1 normalised) in the mask with trigger value 1.
  const m = key.mask.toArray();
  const tr = key.trigger.toArray();
  m[0] = 1;
  tr[0] = 1;
  key.mask.copy_(Tensor.from(m, key.mask.shape));
  key.trigger.copy_(Tensor.from(tr, key.trigger.shape));
  const marked = new FirstPixels(4);
  const r = await watermarkRate(marked, key, dv);
  t.same({ hits: r.hits, n: r.n, wr: r.wr, queries: r.queries }, { hits: 60, n: 60, wr: 1, queries: 60 });
  t.equal(marked.queries, 60, 'exactly |D_v| queries');
  t.ok(Math.abs(r.meanCos - 1) < 1e-5);

  // Without the trigger on pixel 0 the corner stays dark: no image is a hit.
  m[0] = 0;
  key.mask.copy_(Tensor.from(m, key.mask.shape));
  const nul = await watermarkRate(new FirstPixels(4), key, dv);
  t.equal(nul.hits, 0);

  const nullModel = { hits: 0, trials: 3000, sources: ['x'] };
  const p0 = 1 - 0.05 ** (1 / 3000);
  const v = ownershipVerdict(60, 60, nullModel);
  t.equal(v.verdict, 'watermarked');
  t.ok(Math.abs(v.nullRate - p0) < 1e-12);
  t.ok(Math.abs(v.log10PValue - 60 * Math.log10(p0)) < 1e-9, 'p = p0^60 for 60 of 60');
  const v0 = ownershipVerdict(0, 60, nullModel);
  t.same([v0.verdict, v0.pValue], ['not watermarked', 1]);
  // 2 hits of 60 at p0 ~ 1e-3: p ~ C(60,2) p0^2 ~ 1.8e-3, far above 1e-6.
  t.equal(ownershipVerdict(2, 60, nullModel).verdict, 'not watermarked');
  t.equal(ownershipVerdict(2, 60, nullModel, { alpha: 0.01 }).verdict, 'watermarked', 'alpha is configurable');
  t.throws(() => ownershipVerdict(5, 60, { hits: 0, trials: 0, sources: [] }), /null model is empty/);
  disposeKey(key);
});

t.test('the trigger: clip((1 - M) p + M T, 0, 1) in pixel space, on normalised images', async (t) => {
  const { key, dv } = smallKey(6, 128, 4);
  const x = toTensor(dv, [0, 1, 2, 3]);
  const xt = noGrad(() => applyTrigger(x, key.mask, key.trigger)).toArray();
  const xa = x.toArray();
  const m = key.mask.toArray();
  const tr = key.trigger.toArray();
  let worst = 0;
  for (let i = 0; i < xa.length; i++) {
    const j = i % 784;
    const p = (xa[i] + 1) / 2;
    const pt = Math.min(1, Math.max(0, (1 - m[j]) * p + m[j] * tr[j]));
    worst = Math.max(worst, Math.abs(xt[i] - (2 * pt - 1)));
  }
  t.ok(worst < 1e-5, `max error ${worst}`);
  t.throws(() => applyTrigger(Tensor.zeros([2, 1, 14, 14]), key.mask, key.trigger), /does not match the key's image shape/);
  disposeKey(key);
});

t.test('black-box verification through an EncoderService equals verification of the file', async (t) => {
  const { key, dv } = smallKey(7, 128, 50);
  const enc = createEncoder('cnn-small', { seed: 11 }).eval();
  const file = path.join(tmp, 'e.safetensors');
  saveEncoder(file, enc);
  const { surrogate } = loadSurrogate(file);
  key.nullModel = { hits: 1, trials: 1000, sources: ['test'] };
  const fromFile = await verifyOwnership(surrogate, key, dv, { batchSize: 16 });
  const service = new EncoderService(enc, { defaultBudget: 0, budgets: { owner: 50 } });
  const fromService = await verifyOwnership(service, key, dv, { batchSize: 16 });
  t.same(fromService, fromFile, 'same WR, hits, cosines, p-value and verdict');
  t.equal(service.used('owner'), 50, 'exactly |D_v| queries');
  // The decoder, untrained, rarely aims at sk: a random encoder is no copy.
  t.equal(fromFile.verdict, 'not watermarked');

  // A budget too small for |D_v|: refused before anything is spent ...
  const small = new EncoderService(enc, { defaultBudget: 0, budgets: { owner: 30 } });
  await t.rejects(watermarkRate(small, key, dv, { batchSize: 16 }), /verification needs 50 queries \(\|D_v\|\) but client "owner" has 30 left/);
  t.equal(small.used('owner'), 0);
  // ... and a source that cannot say: a clear error when it runs out mid-verification.
  const opaque: EmbeddingSource = { embed: (c, im) => small.embed(c, im), describe: () => small.describe() };
  await t.rejects(watermarkRate(opaque, key, dv, { batchSize: 16 }), /verification stopped after 16 of 50 queries \(\|D_v\|\): the source refused the next 16: query budget exceeded/);

  const fresh = new EncoderService(enc, { defaultBudget: 50 });
  const nm = await calibrateNullModel([{ name: 'e', source: enc }, { name: 's', source: fresh }], key, dv);
  t.same({ hits: nm.hits, trials: nm.trials, sources: nm.sources }, { hits: 2 * fromFile.hits, trials: 100, sources: ['e', 's'] });
  await t.rejects(watermarkRate(enc, key, subset(dv, [0, 1])), /verifyData has 2 images, the key's D_v has 50/);
  surrogate.dispose();
  enc.dispose();
  disposeKey(key);
});
