// The output perturbations against hand-computed values: top-k keeps exactly
// K entries, the right ones (ties to the lower index); rounding matches by
// hand and is idempotent; the noise is N(0, sigma^2) added to the
// L2-normalised embedding, reproducible per (seed, client, row) and
// different per client; and composition applies the stages left to right.
import t from 'tap';
import { Tensor, tidy } from '../../lib/core/tensor';
import * as ops from '../../lib/core/ops';
import { NoiseDefense, RoundDefense, TopkDefense } from '../../lib/defenses/perturb';
import { ComposedDefense } from '../../lib/defenses/compose';
import { parseDefense } from '../../lib/defenses/spec';
import { assertClose, randArray, sameValues } from '../helpers';

const rows = (a: Float32Array, d: number) => Array.from({ length: a.length / d }, (_, i) => Array.from(a.subarray(i * d, (i + 1) * d)));

/** Row-wise x / ||x|| in float64. */
function refNormalize(x: Float32Array, d: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length / d; i++) {
    let s = 0;
    for (let k = 0; k < d; k++) s += x[i * d + k] ** 2;
    const n = Math.sqrt(s);
    for (let k = 0; k < d; k++) out[i * d + k] = x[i * d + k] / n;
  }
  return out;
}

t.test('topk: exactly K entries kept, the largest magnitudes, ties to the lower index', async (t) => {
  tidy(() => {
    const x = Tensor.from([3, -4, 1, 4, 0, -2, /* row 2 */ 5, -2, 2, 2, 1, 0.5], [2, 6]);
    t.same(rows(new TopkDefense(2).apply('c', x).toArray(), 6), [
      [0, -4, 0, 4, 0, 0],
      [5, -2, 0, 0, 0, 0],
    ], 'top-2 per row: |-4| = |4| both kept; row 2 keeps 5 and the first of the tied |2|s (-2 at index 1)');
    t.same(rows(new TopkDefense(3).apply('c', x).toArray(), 6)[1], [5, -2, 2, 0, 0, 0], 'top-3: the three-way tie at |2| keeps the two lowest indices');
    const tie = new TopkDefense(2).apply('c', Tensor.from([1, -1, 1, 1], [1, 4])).toArray();
    t.same(Array.from(tie), [1, -1, 0, 0], 'all tied: the lower indices win');
    const big = Tensor.from(randArray(50 * 40, 1), [50, 40]);
    const k = 7;
    const y = new TopkDefense(k).apply('c', big).toArray();
    const xa = big.toArray();
    let exact = true;
    let right = true;
    for (let i = 0; i < 50; i++) {
      const r = Array.from(xa.subarray(i * 40, (i + 1) * 40));
      const kept = Array.from(y.subarray(i * 40, (i + 1) * 40));
      if (kept.filter((v) => v !== 0).length !== k) exact = false;
      const threshold = r.map(Math.abs).sort((a, b) => b - a)[k - 1];
      for (let j = 0; j < 40; j++) {
        const should = Math.abs(r[j]) >= threshold;
        if ((kept[j] !== 0) !== should || (should && kept[j] !== r[j])) right = false;
      }
    }
    t.ok(exact, 'random rows: exactly K non-zeros per row');
    t.ok(right, 'random rows: the kept entries are the K largest in magnitude, unchanged');
    t.same(new TopkDefense(10).apply('c', Tensor.from([1, -2, 3], [1, 3])).toArray(), Float32Array.from([1, -2, 3]), 'K >= d keeps everything');
  });
});

t.test('round: hand-computed values, idempotent', async (t) => {
  tidy(() => {
    const x = Tensor.from([0.14, -0.16, 0.25, 1.96, -0.04, 12.3456], [1, 6]);
    assertClose(t, new RoundDefense(1).apply('c', x).toArray(), [0.1, -0.2, 0.3, 2.0, 0, 12.3], 'round:1 (0.25 -> 0.3: halves away from zero)', 1e-7, 1e-6);
    assertClose(t, new RoundDefense(0).apply('c', x).toArray(), [0, 0, 0, 2, 0, 12], 'round:0', 1e-12, 0);
    assertClose(t, new RoundDefense(3).apply('c', x).toArray(), [0.14, -0.16, 0.25, 1.96, -0.04, 12.346], 'round:3', 1e-7, 1e-6);
    const r = Tensor.from(randArray(64 * 32, 2, -3, 3), [64, 32]);
    for (const d of [0, 1, 2, 4]) {
      const def = new RoundDefense(d);
      const once = def.apply('c', r);
      t.ok(sameValues(def.apply('c', once).toArray(), once.toArray()), `round:${d} is idempotent`);
    }
  });
});

t.test('noise: added to the L2-normalised embedding, N(0, sigma^2), reproducible per client', async (t) => {
  tidy(() => {
    const n = 400;
    const d = 64;
    const xa = randArray(n * d, 3, -5, 5);
    const x = Tensor.from(xa, [n, d]);
    const unit = refNormalize(xa, d);

    assertClose(t, new NoiseDefense({ sigma: 0 }).apply('c', x).toArray(), unit, 'sigma 0: exactly the normalised embedding', 1e-6, 1e-5);
    const scaled = Tensor.from(xa.map((v) => v * 37), [n, d]);
    assertClose(t, new NoiseDefense({ sigma: 0.3 }).apply('c', scaled).toArray(), new NoiseDefense({ sigma: 0.3 }).apply('c', x).toArray(), 'the input scale does not matter: the noise is added after normalising', 1e-6, 1e-5);

    for (const sigma of [0.05, 0.3]) {
      const y = new NoiseDefense({ sigma }).apply('c', x).toArray();
      let m = 0;
      for (let i = 0; i < y.length; i++) m += y[i] - unit[i];
      m /= y.length;
      let v = 0;
      for (let i = 0; i < y.length; i++) v += (y[i] - unit[i] - m) ** 2;
      v /= y.length;
      t.ok(Math.abs(m) < 4 * sigma / Math.sqrt(y.length), `sigma ${sigma}: mean of the noise ${m.toExponential(2)} ~ 0`);
      t.ok(Math.abs(v / (sigma * sigma) - 1) < 0.03, `sigma ${sigma}: variance ${v.toExponential(3)} ~ sigma^2 = ${(sigma * sigma).toExponential(3)}`);
    }

    const a = new NoiseDefense({ sigma: 0.2, seed: 5 });
    const b = new NoiseDefense({ sigma: 0.2, seed: 5 });
    const ya = a.apply('alice', x).toArray();
    t.ok(sameValues(b.apply('alice', x).toArray(), ya), 'same seed, same client: the same answers');
    t.notOk(sameValues(new NoiseDefense({ sigma: 0.2, seed: 6 }).apply('alice', x).toArray(), ya), 'another seed: other noise');
    const yb = a.apply('bob', x).toArray();
    t.notOk(sameValues(yb, ya), 'another client: other noise');
    t.notOk(sameValues(a.apply('alice', x).toArray(), ya), "a client's second request continues its stream (fresh noise)");
    t.equal(a.rowsOf('alice'), 2 * n, 'rows counted per client');
    t.same(a.clientStats('alice'), { rows: 2 * n, sigma: 0.2 });

    // The answers do not depend on how the client splits its requests.
    const c = new NoiseDefense({ sigma: 0.2, seed: 5 });
    const first = c.apply('alice', Tensor.from(xa.subarray(0, 150 * d), [150, d])).toArray();
    const rest = c.apply('alice', Tensor.from(xa.subarray(150 * d), [n - 150, d])).toArray();
    const joined = new Float32Array(n * d);
    joined.set(first);
    joined.set(rest, 150 * d);
    t.ok(sameValues(joined, ya), 'one request of 400 rows = requests of 150 + 250 rows');
  });
});

t.test('composition applies the stages left to right; intermediate tensors are freed', async (t) => {
  tidy(() => {
    const x = Tensor.from([1, 2, 3, 4], [1, 4]);
    const topkThenUnit = parseDefense('topk:2,noise:0').apply('c', x).toArray();
    const unitThenTopk = parseDefense('noise:0+topk:2').apply('c', x).toArray();
    assertClose(t, topkThenUnit, [0, 0, 0.6, 0.8], 'topk:2,noise:0 = normalise(topk(x)) = [0, 0, 3, 4] / 5', 1e-6, 1e-5);
    assertClose(t, unitThenTopk, [0, 0, 3 / Math.sqrt(30), 4 / Math.sqrt(30)], 'noise:0+topk:2 = topk(normalise(x))', 1e-6, 1e-5);
    const comp = new ComposedDefense([new TopkDefense(3), new RoundDefense(0)]);
    t.equal(comp.spec, 'topk:3+round:0');
    t.equal(comp.name, 'topk+round');
    const y = comp.apply('c', Tensor.from([0.4, -2.6, 1.5, 0.2], [1, 4]));
    t.same(Array.from(y.toArray()), [0, -3, 2, 0], 'round(topk(x))');
    t.notOk(x.disposed, 'the input survives');
    const seen: Tensor[] = [];
    const spy = { name: 'spy', apply: (_c: string, e: Tensor) => { seen.push(e); return ops.scale(e, 2); } };
    const out = new ComposedDefense([spy, spy, spy]).apply('c', x);
    t.ok(seen[1].disposed && seen[2].disposed, 'intermediate results are disposed once used');
    t.notOk(seen[0].disposed, "the caller's input is not");
    t.same(Array.from(out.toArray()), [8, 16, 24, 32]);
    const failing = { name: 'boom', apply: () => { throw new Error('boom'); } };
    t.throws(() => new ComposedDefense([spy, failing]).apply('c', x), /boom/);
    t.notOk(x.disposed, 'a failing later stage: the input is still alive');
    t.throws(() => new ComposedDefense([spy]), TypeError, 'one stage is not a composition');
  });
});
