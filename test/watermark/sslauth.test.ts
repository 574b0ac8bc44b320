// SSL-Auth: the image metrics against hand-computed values; key-sample
// selection by sensitivity; a key that survives a save/load round trip and
// rejects truncated or corrupt files; the authentic encoder passes and a
// single weight changed by 1% fails (SSL-Auth and the baseline); exactly K
// queries; perturbing sources are reported as such; the thread-count
// calibration holds in child processes with ENCSEC_THREADS=1 and 2.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { loadDataset } from '../../lib/data/builtin';
import { toTensor } from '../../lib/data/tensor';
import { Tensor, noGrad, tidy } from '../../lib/core/tensor';
import { createEncoder } from '../../lib/nn/encoders';
import { saveEncoder } from '../../lib/io/checkpoint';
import { EncoderService } from '../../lib/service/service';
import { EncoderSource, type EmbeddingSource, type QueryImages } from '../../lib/service/source';
import { parseDefense } from '../../lib/defenses/spec';
import { magnitudePrune, perturbWeight } from '../../lib/attacks/tamper';
import {
  bitAgreement,
  disposeAuthKey,
  loadAuthKey,
  makeAuthKey,
  maxRelativeRowDistance,
  psnr,
  rebuildWatermark,
  saveAuthKey,
  seededWatermark,
  ssim,
  verifyAuth,
  KEY_MANIFEST_FILE,
  KEY_TENSORS_FILE,
  type AuthKey,
} from '../../lib/watermark/sslauth';
import { sameValues } from '../helpers';

const cacheDir = process.env.ENCSEC_CACHE ?? path.join(os.tmpdir(), 'encsec-test-cache');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'encsec-sslauth-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));

t.test('metrics against hand-computed values', (t) => {
  const w = new Float32Array(49).fill(1);
  const r = new Float32Array(49).fill(0.9);
  t.ok(Math.abs(psnr(r, w) - 20) < 1e-5, 'MSE 0.01 -> 20 dB');
  t.equal(psnr(w, w), 300, 'exact rebuild: the cap');
  // Constant 7x7 images a, b: one window, zero variances: SSIM = (2ab + C1) / (a^2 + b^2 + C1).
  const C1 = 1e-4;
  t.ok(Math.abs(ssim(r, w, 7) - (2 * 0.9 + C1) / (0.81 + 1 + C1)) < 1e-6, 'SSIM of two constant images');
  const img = seededWatermark(28, 1);
  t.ok(Math.abs(ssim(img, img, 28) - 1) < 1e-12, 'SSIM(x, x) = 1');
  t.ok(img.every((v) => v === 0 || v === 1) && img.some((v) => v === 1) && img.some((v) => v === 0), 'binary, both values');
  t.ok(sameValues(img, seededWatermark(28, 1)) && !sameValues(img, seededWatermark(28, 2)), 'seeded');
  t.equal(bitAgreement([0.2, 0.7, 0.5, 0.4], [0, 1, 0, 0]), 0.75, 'binarised at 0.5 (0.5 -> 1): 3 of 4 agree');
  t.ok(Math.abs(maxRelativeRowDistance([3, 4, 1, 0], [3, 0, 1, 1], 2) - Math.max(4 / 3, 1 / Math.SQRT2)) < 1e-12, 'max relative row distance');
  t.throws(() => ssim(w, w, 6), /expected side\^2/);
  t.end();
});

const data = loadDataset('fashion-mnist', { split: 'train', limit: 48, cacheDir });
const all = Int32Array.from({ length: 48 }, (_, i) => i);
const encoder = createEncoder('cnn-small', { seed: 3 }).train();
noGrad(() => {
  for (let r = 0; r < 10; r++) tidy(() => encoder.forward(toTensor(data, all)));
});
encoder.eval();
t.teardown(() => encoder.dispose());
const encFile = path.join(tmp, 'enc.safetensors');
saveEncoder(encFile, encoder);
const SMALL = { keySamples: 4, pool: 24, steps: 300, noiseDraws: 8 };

let key: AuthKey;
t.before(async () => {
  key = await makeAuthKey(encoder, data, SMALL);
});
t.teardown(() => disposeAuthKey(key));

t.test('sensitivity selection takes the most sensitive candidates', async (t) => {
  t.equal(key.selection.indices.length, 4);
  const random = await makeAuthKey(encoder, data, { ...SMALL, selection: 'random', steps: 1 });
  // Same pool and same sensitivities: the sensitive choice is the top 4 of them.
  const minChosen = Math.min(...key.selection.sensitivity);
  t.ok(random.selection.sensitivity.every((s, i) => s <= minChosen || key.selection.indices.includes(random.selection.indices[i])), 'no unchosen candidate is more sensitive than a chosen one');
  t.ok(key.selection.sensitivity.every((s, i, a) => i === 0 || a[i - 1] >= s), 'in decreasing order');
  disposeAuthKey(random);
});

t.test('the generator rebuilds W from the authentic embeddings', (t) => {
  t.ok(key.calibration.authentic.psnrDb > 60, `PSNR ${key.calibration.authentic.psnrDb.toFixed(1)} dB`);
  t.equal(key.calibration.authentic.bitAgreement, 1, 'every bit');
  t.ok(key.thresholds.psnrDb < key.calibration.authentic.psnrDb, 'threshold below the authentic PSNR');
  t.ok(key.thresholds.baselineDistance > 0, 'baseline threshold above 0');
  t.end();
});

/** Counts the images a source is asked for. */
class CountingSource implements EmbeddingSource {
  images = 0;
  constructor(readonly inner: EmbeddingSource, readonly defense: string | null = 'none', readonly noise = 0) {}
  async embed(clientId: string, images: QueryImages): Promise<Tensor> {
    this.images += (images as Tensor).shape[0];
    const e = await this.inner.embed(clientId, images);
    if (this.noise === 0) return e;
    const a = e.toArray();
    e.dispose();
    for (let i = 0; i < a.length; i++) a[i] += this.noise * Math.sin(1000 * i + this.images);
    return Tensor.from(a, [a.length / 128, 128]);
  }
  describe() {
    return { kind: 'test', defense: this.defense };
  }
}

t.test('authentic passes with exactly K queries; one weight changed by 1% fails', async (t) => {
  const src = new CountingSource(new EncoderSource(encoder));
  const ok = await verifyAuth(src, key);
  t.equal(ok.verdict, 'authentic', ok.reason);
  t.equal(ok.baselineVerdict, 'authentic');
  t.equal(src.images, 4, 'exactly K images asked');
  t.equal(ok.queries, 4);
  // The largest |w| of the first convolution, changed by 1%.
  const w = encoder.stateDict().get('net.0.conv.weight')!.toArray();
  let at = 0;
  for (let i = 1; i < w.length; i++) if (Math.abs(w[i]) > Math.abs(w[at])) at = i;
  const tampered = perturbWeight(encoder, { param: 'net.0.conv.weight', index: at, relative: 0.01 });
  const bad = await verifyAuth(new EncoderSource(tampered), key);
  t.equal(bad.verdict, 'tampered', `SSL-Auth: ${bad.reason} (${bad.noiseRatio?.toFixed(1)}x noise)`);
  t.equal(bad.baselineVerdict, 'tampered', `baseline: distance ${bad.baselineDistance} > ${key.thresholds.baselineDistance}`);
  t.ok(bad.noiseRatio! > key.config.safety && bad.baselineNoiseRatio! > key.config.safety, 'both beyond the safety margin');
  tampered.dispose();
  const pruned = magnitudePrune(encoder, 0.1);
  t.equal((await verifyAuth(new EncoderSource(pruned), key)).verdict, 'tampered', '10% pruned');
  pruned.dispose();
  const other = createEncoder('cnn-small', { seed: 4 });
  t.equal((await verifyAuth(new EncoderSource(other), key)).verdict, 'tampered', 'another encoder');
  other.dispose();
});

t.test('perturbing sources: cannot authenticate, not tampered', async (t) => {
  const service = new EncoderService(encoder, { defense: parseDefense('noise:0.01') });
  const r = await verifyAuth(service, key);
  t.equal(r.verdict, 'cannot-authenticate', r.reason);
  t.match(r.reason, /perturbs its answers \(defense noise/);
  t.equal(r.queries, 0, 'a source that says it perturbs is not queried');
  const quiet = new CountingSource(new EncoderSource(encoder), null, 1e-3);
  const q = await verifyAuth(quiet, key);
  t.equal(q.verdict, 'cannot-authenticate', q.reason);
  t.match(q.reason, /two answers for the same image differ/);
  t.equal(quiet.images, 5, 'a source that does not say: K + 1 images (one repeated)');
  const honest = new CountingSource(new EncoderSource(encoder), null);
  const h = await verifyAuth(honest, key);
  t.equal(h.verdict, 'authentic', h.reason);
  t.equal(honest.images, 5);
  const plain = new EncoderService(encoder);
  t.equal((await verifyAuth(plain, key)).verdict, 'authentic', 'a service without a defense');
  await t.rejects(verifyAuth({} as EmbeddingSource, key), /source must be an EmbeddingSource/);
  await t.rejects(verifyAuth(plain, key, { client: 'x' } as never), /unknown key "client"/);
});

t.test('key round trip; truncated or corrupt keys are rejected', async (t) => {
  const dir = path.join(tmp, 'key');
  saveAuthKey(dir, key);
  const back = loadAuthKey(dir);
  t.ok(sameValues(back.samples, key.samples) && sameValues(back.reference, key.reference) && sameValues(back.watermark, key.watermark), 'tensors');
  t.same(back.thresholds, key.thresholds, 'thresholds');
  t.same(back.selection.indices, key.selection.indices, 'selection');
  t.ok(sameValues(rebuildWatermark(back, key.reference), rebuildWatermark(key, key.reference)), 'the same generator');
  t.equal((await verifyAuth(new EncoderSource(encoder), back)).verdict, 'authentic', 'loaded key verifies');
  disposeAuthKey(back);

  const tensors = path.join(dir, KEY_TENSORS_FILE);
  const manifest = path.join(dir, KEY_MANIFEST_FILE);
  const goodT = fs.readFileSync(tensors);
  const goodM = fs.readFileSync(manifest, 'utf8');
  const restore = () => {
    fs.writeFileSync(tensors, goodT);
    fs.writeFileSync(manifest, goodM);
  };
  fs.writeFileSync(tensors, goodT.subarray(0, goodT.length - 100));
  t.throws(() => loadAuthKey(dir), /key.safetensors: SHA-256 .* does not match/, 'truncated tensors');
  restore();
  const flipped = Buffer.from(goodT);
  flipped[flipped.length - 5] ^= 0x10;
  fs.writeFileSync(tensors, flipped);
  t.throws(() => loadAuthKey(dir), /does not match/, 'a flipped bit');
  restore();
  fs.writeFileSync(manifest, goodM.slice(0, goodM.length / 2));
  t.throws(() => loadAuthKey(dir), /manifest.json: not valid JSON/, 'truncated manifest');
  restore();
  fs.writeFileSync(manifest, goodM.replace(/"psnrDb": [-0-9.e]+/, '"psnrDb": "high"'));
  t.throws(() => loadAuthKey(dir), /thresholds.psnrDb must be a finite number/, 'a bad threshold');
  restore();
  fs.writeFileSync(manifest, goodM.replace('"version": 1', '"version": 7'));
  t.throws(() => loadAuthKey(dir), /version 7 is not supported/);
  restore();
  fs.rmSync(tensors);
  t.throws(() => loadAuthKey(dir), /key.safetensors is missing/);
  restore();
  t.throws(() => loadAuthKey(path.join(tmp, 'nothing')), /not an SSL-Auth key folder/);
  const again = loadAuthKey(dir);
  t.ok(sameValues(again.samples, key.samples), 'the restored key loads, with the same key samples');
  disposeAuthKey(again);
});

t.test('the calibration covers 1 and 2 threads (child processes)', (t) => {
  const dir = path.join(tmp, 'key-threads');
  saveAuthKey(dir, key);
  const script = `
    const { loadAuthKey, verifyAuth } = require(${JSON.stringify(require.resolve('../../lib/watermark/sslauth'))});
    const { loadEncoder } = require(${JSON.stringify(require.resolve('../../lib/io/checkpoint'))});
    const { EncoderSource } = require(${JSON.stringify(require.resolve('../../lib/service/source'))});
    const { info } = require(${JSON.stringify(require.resolve('../../lib/core/backend'))});
    const key = loadAuthKey(${JSON.stringify(dir)});
    const { encoder } = loadEncoder(${JSON.stringify(encFile)});
    verifyAuth(new EncoderSource(encoder), key).then((r) => process.stdout.write(JSON.stringify({ threads: info().cpuThreads, verdict: r.verdict, baseline: r.baselineVerdict, psnr: r.psnrDb })));
  `;
  for (const threads of ['1', '2']) {
    const r = spawnSync(process.execPath, [...process.execArgv, '-e', script], { env: { ...process.env, ENCSEC_THREADS: threads }, encoding: 'utf8', cwd: path.join(__dirname, '..', '..') });
    t.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    t.equal(out.threads, Number(threads), `child ran with ${threads} thread(s)`);
    t.equal(out.verdict, 'authentic', `SSL-Auth with ENCSEC_THREADS=${threads} (PSNR ${out.psnr})`);
    t.equal(out.baseline, 'authentic', `baseline with ENCSEC_THREADS=${threads}`);
  }
  t.end();
});

t.test('bad options are named', async (t) => {
  await t.rejects(makeAuthKey(encoder, data, { keySamples: 0 }), /options.keySamples must be >= 1/);
  await t.rejects(makeAuthKey(encoder, data, { selection: 'best' as never }), /options.selection must be one of/);
  await t.rejects(makeAuthKey(encoder, data, { keySamples: 30, pool: 24 }), /exceeds the pool of 24/);
  await t.rejects(makeAuthKey(encoder, data, { colour: 1 } as never), /unknown key "colour"/);
  await t.rejects(makeAuthKey({} as never, data), /encoder must be an Encoder/);
});
