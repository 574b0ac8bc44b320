// Model tampering: each modification does what its definition says (checked
// against the weights directly), returns a new encoder and leaves its input
// untouched; one SGD step is linear in lr; SimCLR fine-tuning starts from the
// given weights.
import t from 'tap';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadDataset } from '../../lib/data/builtin';
import { toTensor } from '../../lib/data/tensor';
import { noGrad, tidy } from '../../lib/core/tensor';
import { createEncoder, type Encoder } from '../../lib/nn/encoders';
import {
  badEncoderBackdoor,
  cloneEncoder,
  magnitudePrune,
  perturbWeight,
  prunableWeights,
  quantizeWeights,
  sgdFinetuneStep,
  simclrFinetune,
  withTrigger,
} from '../../lib/attacks/tamper';
import { sameValues } from '../helpers';

const cacheDir = process.env.ENCSEC_CACHE ?? path.join(os.tmpdir(), 'encsec-test-cache');
const data = loadDataset('fashion-mnist', { split: 'train', limit: 64, cacheDir });
const all = Int32Array.from({ length: 64 }, (_, i) => i);
const half = { ...data, images: data.images.subarray(0, 32 * 784), labels: data.labels.subarray(0, 32) };

// A random-init encoder with BN statistics calibrated on the data.
const base = createEncoder('cnn-small', { seed: 3 }).train();
noGrad(() => {
  for (let r = 0; r < 10; r++) tidy(() => base.forward(toTensor(data, all)));
});
base.eval();
t.teardown(() => base.dispose());

function snapshot(e: Encoder): Map<string, Float32Array> {
  return new Map([...e.stateDict()].map(([n, x]) => [n, x.toArray()]));
}
const original = snapshot(base);
function unchanged(): boolean {
  for (const [n, x] of base.stateDict()) if (!sameValues(x.toArray(), original.get(n)!)) return false;
  return true;
}

t.test('cloneEncoder copies weights into separate storage', (t) => {
  const c = cloneEncoder(base);
  const s = c.stateDict();
  for (const [n, v] of original) t.ok(sameValues(s.get(n)!.toArray(), v), `${n} equal`);
  s.get('net.0.conv.weight')!.copy_(tidy(() => noGrad(() => createEncoder('cnn-small', { seed: 9 }).stateDict().get('net.0.conv.weight')!.clone())));
  t.ok(unchanged(), 'writing into the clone leaves the original');
  c.dispose();
  t.end();
});

t.test('magnitudePrune zeroes exactly round(f*N) smallest |w| globally', (t) => {
  const names = prunableWeights(base);
  t.ok(names.length === 4 && names.every((n) => n.endsWith('conv.weight')), 'cnn-small: 4 conv weights');
  const N = names.reduce((s, n) => s + original.get(n)!.length, 0);
  for (const f of [0, 0.01, 0.1]) {
    const p = magnitudePrune(base, f);
    const st = snapshot(p);
    let zeroed = 0;
    let otherwiseChanged = 0;
    let maxZeroed = 0;
    let minKept = Infinity;
    for (const n of names) {
      const a = original.get(n)!;
      const b = st.get(n)!;
      for (let i = 0; i < a.length; i++) {
        if (b[i] === 0 && a[i] !== 0) {
          zeroed++;
          maxZeroed = Math.max(maxZeroed, Math.abs(a[i]));
        } else {
          if (b[i] !== a[i]) otherwiseChanged++;
          if (b[i] !== 0) minKept = Math.min(minKept, Math.abs(a[i]));
        }
      }
    }
    t.equal(zeroed, Math.round(f * N), `fraction ${f}: ${zeroed} of ${N} zeroed`);
    t.equal(otherwiseChanged, 0, `fraction ${f}: no weight changed except by zeroing`);
    t.ok(maxZeroed <= minKept, `fraction ${f}: every pruned |w| <= every kept |w|`);
    // BN parameters and buffers are not touched.
    t.ok([...original].every(([n, v]) => names.includes(n) || sameValues(st.get(n)!, v)), `fraction ${f}: BN parameters and buffers untouched`);
    p.dispose();
  }
  t.ok(unchanged(), 'input unchanged');
  t.throws(() => magnitudePrune(base, 1.5), /fraction must be <= 1/);
  t.throws(() => magnitudePrune({} as Encoder, 0.1), /encoder must be an Encoder/);
  t.end();
});

t.test('quantizeWeights: at most 2^b - 1 levels per tensor, error <= half a step', (t) => {
  const q = quantizeWeights(base, 4);
  const st = snapshot(q);
  for (const n of prunableWeights(base)) {
    const a = original.get(n)!;
    const b = st.get(n)!;
    let max = 0;
    for (const v of a) max = Math.max(max, Math.abs(v));
    const step = max / 7;
    const levels = new Set<number>();
    let worst = 0;
    for (let i = 0; i < a.length; i++) {
      levels.add(Math.round(b[i] / step));
      worst = Math.max(worst, Math.abs(a[i] - b[i]));
    }
    t.ok(levels.size <= 15, `${n}: ${levels.size} levels`);
    t.ok(worst <= step / 2 + 1e-7, `${n}: max error ${worst} <= step/2 ${step / 2}`);
    t.notOk(sameValues(a, b), `${n} changed`);
  }
  t.ok(sameValues(st.get('net.0.bn.weight')!, original.get('net.0.bn.weight')!), 'BN affine untouched');
  q.dispose();
  t.ok(unchanged(), 'input unchanged');
  t.throws(() => quantizeWeights(base, 1), /bits must be >= 2/);
  t.end();
});

t.test('perturbWeight changes exactly one entry by the relative amount', (t) => {
  const p = perturbWeight(base, { param: 'net.3.conv.weight', index: 17, relative: 0.01 });
  const st = snapshot(p);
  for (const [n, v] of original) {
    const b = st.get(n)!;
    let diffs = 0;
    for (let i = 0; i < v.length; i++) if (b[i] !== v[i]) diffs++;
    t.equal(diffs, n === 'net.3.conv.weight' ? 1 : 0, `${n}: ${diffs} entries differ`);
  }
  const w0 = original.get('net.3.conv.weight')![17];
  t.ok(Math.abs(st.get('net.3.conv.weight')![17] - w0 * 1.01) <= 1e-7 * Math.abs(w0), 'w * 1.01');
  p.dispose();
  t.ok(unchanged(), 'input unchanged');
  t.throws(() => perturbWeight(base, { param: 'nope', index: 0, relative: 0.01 }), /options.param "nope" is not a tensor/);
  t.throws(() => perturbWeight(base, { param: 'net.3.conv.weight', index: 1e9, relative: 0.01 }), /options.index must be <=/);
  t.throws(() => perturbWeight(base, { param: 'net.3.conv.weight', index: 0, relative: 0.01, extra: 1 } as never), /options has unknown key "extra"/);
  t.throws(() => perturbWeight(base, { param: 'net.0.bn.bias', index: 0, relative: 0.01 }), /is 0: a relative change/);
  t.end();
});

t.test('sgdFinetuneStep: the parameter change is linear in lr; seeded; input unchanged', (t) => {
  const a = sgdFinetuneStep(base, data, { lr: 1e-3, seed: 5, batchSize: 16 });
  const b = sgdFinetuneStep(base, data, { lr: 2e-3, seed: 5, batchSize: 16 });
  const a2 = sgdFinetuneStep(base, data, { lr: 1e-3, seed: 5, batchSize: 16 });
  const sa = snapshot(a);
  const sb = snapshot(b);
  let changed = 0;
  for (const [n] of base.namedParameters()) {
    const w = original.get(n)!;
    const da = sa.get(n)!.map((v, i) => v - w[i]);
    const db = sb.get(n)!.map((v, i) => v - w[i]);
    let num = 0;
    let den = 0;
    let rounding = 0; // float32 rounding of w + delta: half an ulp of |w| per update, three updates compared
    for (let i = 0; i < w.length; i++) {
      num += Math.abs(db[i] - 2 * da[i]);
      den += Math.abs(db[i]);
      rounding += 3 * 2 ** -24 * Math.max(Math.abs(w[i]), 1e-30);
    }
    if (den > 0) changed++;
    t.ok(num <= 1e-3 * den + rounding, `${n}: delta(2 lr) = 2 delta(lr) (rel. diff ${(num / Math.max(den, 1e-30)).toExponential(1)})`);
    t.ok(sameValues(sa.get(n)!, snapshot(a2).get(n)!), `${n}: same seed, same result`);
  }
  t.ok(changed > 0, `${changed} parameters changed`);
  t.ok(unchanged(), 'input unchanged');
  t.throws(() => sgdFinetuneStep(base, data, { lr: 0, seed: 1 }), /options.lr must be > 0/);
  for (const e of [a, b, a2]) e.dispose();
  t.end();
});

t.test('simclrFinetune continues from the given weights', (t) => {
  // With a vanishing learning rate the result stays at the input's weights
  // (and not at the fresh initialisation for that seed).
  const still = simclrFinetune(base, half, { epochs: 1, seed: 0, batchSize: 16, lr: 1e-12 });
  const fresh = createEncoder('cnn-small', { seed: 0 });
  const w = still.stateDict().get('net.3.conv.weight')!.toArray();
  const w0 = original.get('net.3.conv.weight')!;
  let maxDiff = 0;
  for (let i = 0; i < w.length; i++) maxDiff = Math.max(maxDiff, Math.abs(w[i] - w0[i]));
  t.ok(maxDiff < 1e-6, `weights stay at the input's (max diff ${maxDiff})`);
  t.notOk(sameValues(fresh.stateDict().get('net.3.conv.weight')!.toArray(), w), 'not the fresh init');
  const moved = simclrFinetune(base, half, { epochs: 1, seed: 0, batchSize: 16, lr: 1e-3 });
  t.notOk(sameValues(moved.stateDict().get('net.3.conv.weight')!.toArray(), w0), 'a real lr moves the weights');
  t.ok(unchanged(), 'input unchanged');
  t.throws(() => simclrFinetune(base, data, { epochs: 1, seed: 0, momentum: 1 } as never), /options has unknown key "momentum"/);
  for (const e of [still, fresh, moved]) e.dispose();
  t.end();
});

t.test('withTrigger stamps the patch and nothing else', (t) => {
  const tr = withTrigger(data, { size: 3, margin: 2, value: 200 });
  let inside = 0;
  let outsideChanged = 0;
  for (let i = 0; i < 64; i++) {
    for (let r = 0; r < 28; r++) {
      for (let c = 0; c < 28; c++) {
        const k = i * 784 + r * 28 + c;
        if (r >= 23 && r < 26 && c >= 23 && c < 26) inside += tr.images[k] === 200 ? 1 : 0;
        else if (tr.images[k] !== data.images[k]) outsideChanged++;
      }
    }
  }
  t.equal(inside, 64 * 9, 'every patch pixel set');
  t.equal(outsideChanged, 0, 'no other pixel changed');
  t.throws(() => withTrigger(data, { size: 28 }), /does not fit/);
  t.end();
});

// BadEncoder's effectiveness is measured on a trained target by the auth
// experiment (backdoorSuccessRate); on a random-init encoder the embeddings
// of all images are nearly collinear, so only the mechanics are tested here.
t.test('badEncoderBackdoor: a new, seeded encoder; input unchanged; options checked', (t) => {
  const small = { ...data, images: data.images.subarray(0, 16 * 784), labels: data.labels.subarray(0, 16) };
  const a = badEncoderBackdoor(base, small, { epochs: 1, seed: 1, lr: 1e-3, batchSize: 8 });
  const b = badEncoderBackdoor(base, small, { epochs: 1, seed: 1, lr: 1e-3, batchSize: 8 });
  const w = a.stateDict().get('net.3.conv.weight')!.toArray();
  t.notOk(sameValues(w, original.get('net.3.conv.weight')!), 'weights changed');
  t.ok(sameValues(w, b.stateDict().get('net.3.conv.weight')!.toArray()), 'same seed, same weights');
  t.notOk(a.training, 'returned in eval mode');
  t.ok(unchanged(), 'input unchanged');
  t.throws(() => badEncoderBackdoor(base, data, { epochs: 1, seed: 1, reference: { dataset: data, index: 64 } }), /options.reference.index must be <= 63/);
  t.throws(() => badEncoderBackdoor(base, data, { epochs: 1, seed: 1, trigger: { size: 40 } }), /does not fit/);
  a.dispose();
  b.dispose();
  t.end();
});
