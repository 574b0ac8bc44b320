// Defenses against PoisonedEncoder: the spliced-image detector finds planted
// poisons in a small set; clipping groups; a clipped noisy step with one
// group, no clipping and no noise is exactly a plain SimCLR step, and tight
// clipping bounds the SGD update; localised crops lie inside the first view.
import t from 'tap';
import { buildPoisons, pickTargets } from '../../lib/attacks/poison/construct';
import { detectSplicedImages, detectionCounts } from '../../lib/defenses/poison/detect';
import { clipGroups, clippedNoisyStep, cropParams } from '../../lib/defenses/poison/training';
import { cleanSubset } from '../../lib/defenses/poison/finetune';
import { createEncoder, Encoder, ProjectionHead } from '../../lib/nn/encoders';
import { SGD } from '../../lib/nn/optim';
import { simclrStep } from '../../lib/ssl/simclr';
import { decodeAugmentParams } from '../../lib/data/augment';
import { deriveSeed } from '../../lib/data/prng';
import type { Dataset } from '../../lib/data/dataset';
import { rng } from '../helpers';

const per = 28 * 28;

/** Clean images made of one random 14x14 patch tiled 2x2: every half equals its opposite half. */
function tiledSet(n: number, seed: number): Dataset {
  const r = rng(seed);
  const images = new Uint8Array(n * per);
  for (let i = 0; i < n; i++) {
    const patch = Array.from({ length: 196 }, () => Math.floor(r() * 256));
    for (let y = 0; y < 28; y++) for (let x = 0; x < 28; x++) images[i * per + y * 28 + x] = patch[(y % 14) * 14 + (x % 14)];
  }
  return { name: 'tiled', channels: 1, height: 28, width: 28, numClasses: 10, images, labels: Int32Array.from({ length: n }, (_, i) => i % 10) };
}

t.test('the detector finds planted poisons in a small set', async (t) => {
  const clean = tiledSet(40, 1);
  const targets = pickTargets('tiled', tiledSet(30, 2), 2, { seed: 1, references: 2 });
  const built = buildPoisons(targets, clean, { count: 5, construction: 'random', seed: 2 });
  // Plant the 5 poisons at known positions of a 45-image set.
  const where = [3, 11, 20, 31, 44];
  const images = new Uint8Array(45 * per);
  let c = 0;
  for (let i = 0, p = 0; i < 45; i++) {
    if (where.includes(i)) images.set(built.images.subarray(p * per, (p++ + 1) * per), i * per);
    else images.set(clean.images.subarray(c * per, (c++ + 1) * per), i * per);
  }
  const data: Dataset = { ...clean, images, labels: new Int32Array(45) };
  const f = createEncoder('cnn-small', { inChannels: 1, seed: 3 });
  f.eval();
  const det = detectSplicedImages(f, data, { dropFraction: 5 / 45 });
  t.same(Array.from(det.drop), where, 'exactly the poisons are dropped');
  t.same(detectionCounts(det.drop, where, 45), { poisonsDropped: 5, poisons: 5, cleanDropped: 0, clean: 40 });
  for (let i = 0; i < 45; i++) if (!where.includes(i)) t.ok(Math.abs(det.scores[i]) < 1e-5, `clean image ${i} scores ~0`);
  t.equal(detectSplicedImages(f, data, { threshold: 10 }).drop.length, 0, 'a threshold above every score drops nothing');
  t.throws(() => detectSplicedImages(f, data, { threshold: 0.1, dropFraction: 0.1 }), /not both/);
  t.throws(() => detectSplicedImages(f, data, { fraction: 0.1 } as never), /options has unknown key "fraction"/);
  f.dispose();
});

t.test('clipGroups covers the batch once; no group of one', async (t) => {
  const idx = Int32Array.from([5, 6, 7, 8, 9, 10, 11]);
  t.same(clipGroups(idx, 3).map((g) => Array.from(g)), [[5, 6, 7], [8, 9, 10, 11]]);
  t.same(clipGroups(idx, 2).map((g) => g.length), [2, 2, 3]);
  t.same(clipGroups(idx, 7).map((g) => g.length), [7]);
});

function weights(e: Encoder, h: ProjectionHead): Float32Array[] {
  return [...e.parameters(), ...h.parameters()].map((p) => p.toArray());
}

t.test('clipped noisy step: one group, no clip, no noise = plain step; tight clip bounds the update', async (t) => {
  const data = tiledSet(8, 5);
  const idx = Int32Array.from([0, 1, 2, 3, 4, 5, 6, 7]);
  const make = () => {
    const e = new Encoder({ arch: 'cnn-small', inChannels: 1, seed: 1 });
    const h = new ProjectionHead(e.dim, 64, 1);
    return { e, h, opt: new SGD([...e.parameters(), ...h.parameters()], { lr: 0.1 }) };
  };
  const a = make();
  const b = make();
  const before = weights(a.e, a.h);
  const la = clippedNoisyStep({ groupSize: 8, clipNorm: 1e9, noiseMultiplier: 0 })(a.e, a.h, a.opt, data, idx, 0.5, 77);
  const lb = simclrStep(b.e, b.h, b.opt, data, idx, 0.5, deriveSeed(77, 0));
  t.ok(Math.abs(la - lb) < 1e-5, `same loss ${la} ${lb}`);
  const wa = weights(a.e, a.h);
  const wb = weights(b.e, b.h);
  let maxDiff = 0;
  wa.forEach((w, i) => w.forEach((v, k) => (maxDiff = Math.max(maxDiff, Math.abs(v - wb[i][k])))));
  t.ok(maxDiff < 1e-5, `same weights (max diff ${maxDiff})`);
  // Tight clipping: the SGD update is lr * (mean of clipped group gradients), norm <= lr * C.
  const c = make();
  clippedNoisyStep({ groupSize: 4, clipNorm: 1e-3, noiseMultiplier: 0 })(c.e, c.h, c.opt, data, idx, 0.5, 77);
  let sq = 0;
  weights(c.e, c.h).forEach((w, i) => w.forEach((v, k) => (sq += (v - before[i][k]) ** 2)));
  t.ok(Math.sqrt(sq) <= 0.1 * 1e-3 * (1 + 1e-3), `update norm ${Math.sqrt(sq)} <= lr * C`);
  t.ok(Math.sqrt(sq) > 0, 'but not zero');
  t.throws(() => clippedNoisyStep({ groupSize: 1, clipNorm: 1, noiseMultiplier: 0 }), /groupSize must be >= 2/);
  t.throws(() => clippedNoisyStep({ groupSize: 4, clipNorm: 1, noiseMultiplier: 0, sigma: 1 } as never), /options has unknown key "sigma"/);
});

t.test('localised cropping: the second view lies inside the first view box', async (t) => {
  const image = { channels: 1 as const, height: 28, width: 28 };
  const p = cropParams(50, image, 9, [0.2, 1], true);
  for (let i = 0; i < 50; i++) {
    const a = decodeAugmentParams(p, i);
    const b = decodeAugmentParams(p, 50 + i);
    t.ok(b.top >= a.top && b.left >= a.left && b.top + b.height <= a.top + a.height && b.left + b.width <= a.left + a.width, `view pair ${i}`);
  }
  const free = cropParams(50, image, 9, [0.2, 1], false);
  let outside = 0;
  for (let i = 0; i < 50; i++) {
    const a = decodeAugmentParams(free, i);
    const b = decodeAugmentParams(free, 50 + i);
    if (!(b.top >= a.top && b.left >= a.left && b.top + b.height <= a.top + a.height && b.left + b.width <= a.left + a.width)) outside++;
  }
  t.ok(outside > 10, `without localisation many second views leave the first box (${outside}/50)`);
});

t.test('cleanSubset: seeded, the requested size', async (t) => {
  const data = tiledSet(100, 3);
  const s = cleanSubset(data, 0.1, 4);
  t.equal(s.labels.length, 10);
  t.same(cleanSubset(data, 0.1, 4).images, s.images);
  t.throws(() => cleanSubset(data, 0, 4), /fraction must be > 0/);
});
