// A tiny SSLGuard embedding on a small slice (Fashion-MNIST at 14x14, a
// random-init cnn-small as F, 48 steps): WR goes from 0 to high for F_w (and
// its shadow) while F, an independent encoder and F itself after the run stay
// at 0; F_w stays close to F on clean images; only F_w's conv weights move
// (batch norm frozen); the per-epoch checkpoint restores the run exactly.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { tidy } from '../../lib/core/tensor';
import * as ops from '../../lib/core/ops';
import { loadDataset } from '../../lib/data/builtin';
import { subset, type Dataset } from '../../lib/data/dataset';
import { toTensor } from '../../lib/data/tensor';
import { createEncoder } from '../../lib/nn/encoders';
import { embedSync } from '../../lib/nn/module';
import { createKey, disposeKey, embedWatermark, quickWatermarkRate, watermarkRate } from '../../lib/watermark/sslguard';

process.env.ENCSEC_CACHE = process.env.ENCSEC_CACHE ?? path.join(os.tmpdir(), 'encsec-test-cache');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'encsec-sslguard-embed-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Every other pixel of every other row: 28x28 -> 14x14 (a quarter of the compute). */
function halve(ds: Dataset): Dataset {
  const n = ds.labels.length;
  const images = new Uint8Array(n * 196);
  for (let i = 0; i < n; i++) for (let y = 0; y < 14; y++) for (let x = 0; x < 14; x++) images[i * 196 + y * 14 + x] = ds.images[i * 784 + 2 * y * 28 + 2 * x];
  return { ...ds, height: 14, width: 14, images };
}

t.test('a tiny embedding raises WR from 0 to high, and only for F_w', async (t) => {
  const all = halve(loadDataset('fashion-mnist', { split: 'train', limit: 600 }));
  const key = createKey({ dim: 128, imageShape: [1, 14, 14], seed: 1, verifySize: 128, splitSize: 600 });
  const inDv = new Set(key.verification.indices);
  const train = subset(all, Int32Array.from({ length: 600 }, (_, i) => i).filter((i) => !inDv.has(i)).slice(0, 256));
  const dv = subset(all, key.verification.indices);
  const F = createEncoder('cnn-small', { seed: 0 }).eval();
  const before = new Map([...F.stateDict()].map(([k, v]) => [k, v.toArray()]));
  t.equal(quickWatermarkRate(F, key, dv), 0, 'WR(F) = 0 before');

  const ckpt = path.join(tmp, 'embed.safetensors');
  const events: Record<string, unknown>[] = [];
  const updates: Record<string, unknown>[] = [];
  const opts = { epochs: 6, batchSize: 32, seed: 0, checkpoint: ckpt, progress: { update: (e: Record<string, unknown>) => void updates.push(e), event: (e: Record<string, unknown>) => void events.push(e), stop() {} } };
  const res = embedWatermark(F, train, dv, key, opts);
  const Fw = res.watermarked;
  const last = res.history[res.history.length - 1];
  t.equal(res.history.length, 6);
  t.ok(last.wrWatermarked >= 0.9, `WR(F_w) = ${last.wrWatermarked} after ${6 * 8} steps`);
  const wr = await watermarkRate(Fw, key, dv);
  t.equal(wr.wr, last.wrWatermarked, 'verification agrees with the progress record');
  t.equal((await watermarkRate(F, key, dv)).wr, 0, 'WR(F) = 0 after (F untouched)');
  const indep = createEncoder('cnn-small', { seed: 7 }).eval();
  t.ok((await watermarkRate(indep, key, dv)).wr <= 0.05, 'an independent encoder does not carry the mark');
  for (const [k, v] of F.stateDict()) t.same([...v.toArray()], [...before.get(k)!], `F's ${k} unchanged`);

  // Utility: F_w answers like F on clean images; only conv weights moved.
  const cos = tidy(() => {
    const x = toTensor(train, Int32Array.from({ length: 128 }, (_, i) => i));
    return 1 - ops.cosineLoss(embedSync(F, x), embedSync(Fw, x)).item();
  });
  t.ok(cos > 0.9, `mean cos(F(x), F_w(x)) = ${cos}`);
  const fwState = Fw.stateDict();
  let moved = 0;
  for (const [k, v] of F.stateDict()) {
    const same = v.toArray().every((a, i) => a === fwState.get(k)!.toArray()[i]);
    if (v.shape.length >= 2) moved += same ? 0 : 1;
    else t.ok(same, `F_w's ${k} (batch norm) unchanged`);
  }
  t.equal(moved, 4, 'all four conv kernels moved');

  // Progress: loss terms, images/s and ETA per step; one record per epoch.
  t.equal(events.length, 6);
  t.ok(updates.every((u) => typeof u.loss === 'number' && typeof u.ls === 'number' && typeof u.lt === 'number' && typeof u.imagesPerSec === 'number' && typeof u.etaSec === 'number'));

  // Resume from the last checkpoint: nothing left to run, the same F_w.
  const again = embedWatermark(F, train, dv, key, { ...opts, resume: true });
  t.equal(again.resumedFrom, 6);
  t.same(again.history, res.history);
  const againState = again.watermarked.stateDict();
  for (const [k, v] of fwState) t.same([...againState.get(k)!.toArray()], [...v.toArray()], `resumed ${k}`);
  // Another key's checkpoint is refused.
  const other = createKey({ dim: 128, imageShape: [1, 14, 14], seed: 2, verifySize: 128, splitSize: 600 });
  t.throws(() => embedWatermark(F, train, subset(all, other.verification.indices), other, { ...opts, resume: true }), /checkpoint was made with another key/);
  t.throws(() => embedWatermark(F, train, dv, key, { ...opts, epochs: 0 }), RangeError);
  t.throws(() => embedWatermark(F, train, dv, key, { ...opts, lrShadw: 1 } as never), /unknown key "lrShadw"/);
  for (const e of [again.watermarked, Fw, F, indep]) e.dispose();
  disposeKey(other);
  disposeKey(key);
});
