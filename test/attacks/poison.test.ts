// PoisonedEncoder's construction: area resampling against hand-computed
// values, both parts present where the placement says, seeded and
// reproducible, the exact poisoning rate, the surrogate construction never
// worse than its first draw, and ASR on a hand-built case.
import t from 'tap';
import { buildPoisons, drawPlacement, pickTargets, poisonCount, poisonsPerTarget, renderPoison, resizeArea, type PoisonTarget } from '../../lib/attacks/poison/construct';
import { makePoisonedDataset } from '../../lib/attacks/poison/dataset';
import { attackSuccessRate } from '../../lib/attacks/poison/measure';
import { Prng } from '../../lib/data/prng';
import { createEncoder } from '../../lib/nn/encoders';
import type { Dataset } from '../../lib/data/dataset';
import { rng } from '../helpers';

const shape = { channels: 1 as const, height: 28, width: 28 };
const per = 28 * 28;

function randomImage(seed: number): Uint8Array {
  const r = rng(seed);
  return Uint8Array.from({ length: per }, () => Math.floor(r() * 256));
}

function fakeSet(n: number, seed: number, classes = 10): Dataset {
  const images = new Uint8Array(n * per);
  for (let i = 0; i < n; i++) images.set(randomImage(seed * 1000 + i), i * per);
  return { name: 'fake', channels: 1, height: 28, width: 28, numClasses: classes, images, labels: Int32Array.from({ length: n }, (_, i) => i % classes) };
}

const test = fakeSet(60, 1);
const targets: PoisonTarget[] = pickTargets('fake', test, 3, { seed: 4, references: 2 });

t.test('resizeArea: exact area means (hand-computed)', async (t) => {
  const src = Uint8Array.from([0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130, 140, 150]);
  const s4 = { channels: 1 as const, height: 4, width: 4 };
  t.same(Array.from(resizeArea(src, s4, 2, 2)), [25, 45, 105, 125], '2x2 blocks averaged');
  t.same(Array.from(resizeArea(src, s4, 1, 1)), [75]);
  t.same(Array.from(resizeArea(src, s4, 4, 4)), Array.from(src), 'same size is the identity');
  // 3 -> 2: each output covers 1.5 source pixels: (1*0 + 0.5*30)/1.5 = 10, (0.5*30 + 1*60)/1.5 = 50.
  t.same(Array.from(resizeArea(Uint8Array.from([0, 30, 60]), { channels: 1, height: 1, width: 3 }, 1, 2)), [10, 50]);
});

t.test('pickTargets: target class differs from the true class, references are of the target class', async (t) => {
  t.equal(targets.length, 3);
  for (const x of targets) {
    t.not(x.targetClass, x.trueClass);
    t.equal(test.labels[x.index], x.trueClass);
    t.ok(x.referenceIndices.length >= 1 && x.referenceIndices.length <= 2);
    for (const j of x.referenceIndices) t.equal(test.labels[j], x.targetClass);
    t.notOk(x.referenceIndices.includes(x.index));
  }
  t.same(pickTargets('fake', test, 3, { seed: 4, references: 2 }), targets, 'seeded');
  t.throws(() => pickTargets('fake', test, 3, { seed: 4, refs: 2 } as never), /options has unknown key "refs"/);
});

t.test('a poisoning input holds both parts, rescaled, where the placement says', async (t) => {
  const r = new Prng(9);
  for (let k = 0; k < 20; k++) {
    const pl = drawPlacement(r, shape, targets[0].references.length);
    const img = renderPoison(targets[0], pl, shape);
    t.equal(img.length, per);
    const cut = (b: typeof pl.targetBox) => {
      const out = new Uint8Array(b.height * b.width);
      for (let y = 0; y < b.height; y++) out.set(img.subarray((b.top + y) * 28 + b.left, (b.top + y) * 28 + b.left + b.width), y * b.width);
      return out;
    };
    t.same(cut(pl.targetBox), resizeArea(targets[0].image, shape, pl.targetBox.height, pl.targetBox.width), 'target part');
    t.same(cut(pl.referenceBox), resizeArea(targets[0].references[pl.reference], shape, pl.referenceBox.height, pl.referenceBox.width), 'reference part');
    const a = pl.targetBox, b = pl.referenceBox;
    const overlap = a.left < b.left + b.width && b.left < a.left + a.width && a.top < b.top + b.height && b.top < a.top + a.height;
    t.notOk(overlap, 'parts do not overlap');
    for (const x of [a, b]) t.ok(x.top >= 0 && x.left >= 0 && x.top + x.height <= 28 && x.left + x.width <= 28 && x.height >= 10, 'inside, at least 0.7 of a half');
  }
});

t.test('buildPoisons: seeded, reproducible, split evenly over targets', async (t) => {
  const a = buildPoisons(targets, shape, { count: 7, construction: 'random', seed: 3 });
  const b = buildPoisons(targets, shape, { count: 7, construction: 'random', seed: 3 });
  const c = buildPoisons(targets, shape, { count: 7, construction: 'random', seed: 4 });
  t.equal(a.images.length, 7 * per);
  t.same(a.images, b.images, 'same seed, same bytes');
  t.notSame(a.images, c.images, 'another seed, other poisons');
  t.same(Array.from(a.targetOf), [0, 0, 0, 1, 1, 2, 2]);
  t.same(poisonsPerTarget(7, 3), [3, 2, 2]);
  t.throws(() => buildPoisons(targets, shape, { count: 2, construction: 'surrogate', seed: 1 }), /surrogate must be an encoder/);
  t.throws(() => buildPoisons(targets, shape, { count: 2, construction: 'clever' as never, seed: 1 }), /construction must be one of/);
  t.throws(() => buildPoisons(targets, shape, { count: 2, construction: 'random', seed: 1, rate: 1 } as never), /options has unknown key "rate"/);
});

t.test('surrogate construction: each kept poison scores at least as well as the first draw', async (t) => {
  const f = createEncoder('cnn-small', { inChannels: 1, seed: 2 });
  f.eval();
  const one = buildPoisons(targets, shape, { count: 6, construction: 'surrogate', seed: 5, surrogate: f, candidates: 1 });
  const many = buildPoisons(targets, shape, { count: 6, construction: 'surrogate', seed: 5, surrogate: f, candidates: 6 });
  t.equal(many.scores.length, 6);
  let better = 0;
  for (let i = 0; i < 6; i++) {
    t.ok(many.scores[i] >= one.scores[i] - 1e-6, `poison ${i}: ${many.scores[i]} >= ${one.scores[i]}`);
    if (many.scores[i] > one.scores[i] + 1e-6) better++;
  }
  t.ok(better > 0, 'the search improves some poison');
  t.same(buildPoisons(targets, shape, { count: 6, construction: 'surrogate', seed: 5, surrogate: f, candidates: 6 }).images, many.images, 'reproducible');
  f.dispose();
});

t.test('makePoisonedDataset: exact rate, poisons at the listed indices, clean images in order', async (t) => {
  const clean = fakeSet(200, 2);
  const res = makePoisonedDataset(clean, targets, { rate: 0.02, construction: 'random', seed: 8 });
  t.equal(poisonCount(0.02, 200), 4);
  const m = res.manifest;
  t.equal(m.poisonIndices.length, 4, 'round(rho * |D|) poisons');
  t.equal(res.dataset.labels.length, 204);
  t.equal(m.cleanImages, 200);
  const built = buildPoisons(targets, shape, { count: 4, construction: 'random', seed: 8 });
  m.poisonIndices.forEach((ix, p) => {
    t.same(res.dataset.images.subarray(ix * per, (ix + 1) * per), built.images.subarray(p * per, (p + 1) * per), `poison ${p} at ${ix}`);
    t.equal(res.dataset.labels[ix], targets[m.poisonTargets[p]].targetClass);
  });
  const poison = new Set(m.poisonIndices);
  let c = 0;
  for (let i = 0; i < 204; i++) {
    if (poison.has(i)) continue;
    t.same(res.dataset.images.subarray(i * per, (i + 1) * per), clean.images.subarray(c * per, (c + 1) * per));
    c++;
  }
  t.equal(c, 200);
  t.same(makePoisonedDataset(clean, targets, { rate: 0.02, construction: 'random', seed: 8 }).dataset.images, res.dataset.images, 'reproducible');
  t.throws(() => makePoisonedDataset(clean, targets, { rate: 1.5, construction: 'random', seed: 8 }), /rate must be < 1/);
});

t.test('ASR on a hand-built case', async (t) => {
  // 3 classifiers x 2 targets (target classes 1 and 2): hits at (0,0), (0,1), (1,0), (2,1).
  const r = attackSuccessRate([[1, 2], [1, 0], [3, 2]], [1, 2]);
  t.same(r, { asr: 4 / 6, hits: 4, pairs: 6 });
  t.equal(attackSuccessRate([[0, 0]], [1, 2]).asr, 0);
  t.throws(() => attackSuccessRate([[1]], [1, 2]), /one class per target/);
});
