// The row ops (gatherRows, concatRows, sliceRows, scaleRows, lshCodes)
// against plain JS references, their gradients, and their argument errors,
// from lib/ and from the binding directly (a caller skipping lib/ must get an
// exception, never a crash).
import t from 'tap';
import { Tensor, tidy } from '../../lib/core/tensor';
import * as ops from '../../lib/core/ops';
import { native } from '../../lib/core/native';
import { LshCoverage } from '../../lib/defenses/b4b';
import { prod, randArray, rng, sameValues } from '../helpers';

const T = (data: Float32Array, shape: number[]) => Tensor.from(data, shape);

function refGather(x: Float32Array, d: number, idx: ArrayLike<number>): Float32Array {
  const out = new Float32Array(idx.length * d);
  for (let i = 0; i < idx.length; i++) out.set(x.subarray(idx[i] * d, idx[i] * d + d), i * d);
  return out;
}

/** Scatter-add of the rows of g into n rows, in increasing i, float32 adds. */
function refScatterAdd(g: Float32Array, d: number, idx: ArrayLike<number>, n: number): Float32Array {
  const out = new Float32Array(n * d);
  for (let i = 0; i < idx.length; i++)
    for (let c = 0; c < d; c++) out[idx[i] * d + c] = Math.fround(out[idx[i] * d + c] + g[i * d + c]);
  return out;
}

function randIndices(m: number, n: number, seed: number): Int32Array {
  const r = rng(seed);
  return Int32Array.from({ length: m }, () => Math.floor(r() * n));
}

t.test('gatherRows: values (any rank, duplicates) and the scatter-add gradient', async (t) => {
  const cases = [
    { xs: [7, 5], m: 13 },
    { xs: [4, 2, 3], m: 6 },
    { xs: [1, 1], m: 3 },
    { xs: [300, 33], m: 1000 },
  ];
  cases.forEach((c, k) => {
    const n = c.xs[0];
    const d = prod(c.xs) / n;
    const x = randArray(prod(c.xs), 100 + k);
    const idx = randIndices(c.m, n, 200 + k);
    const g = randArray(c.m * d, 300 + k);
    tidy(() => {
      const xt = T(x, c.xs).requiresGrad_();
      const y = ops.gatherRows(xt, idx);
      t.same(y.shape, [c.m, ...c.xs.slice(1)], `case ${k}: shape`);
      t.ok(sameValues(y.toArray(), refGather(x, d, idx)), `case ${k}: rows equal the reference`);
      // d/dx sum(y * g) = scatter-add of g.
      ops.sum(ops.mul(y, T(g, y.shape.slice()))).backward();
      t.ok(sameValues(xt.grad!.toArray(), refScatterAdd(g, d, idx, n)), `case ${k}: gradient is the scatter-add`);
    });
  });
  // A plain array of integers works too, and the indices are copied (mutating them later changes nothing).
  tidy(() => {
    const x = T(Float32Array.from([1, 2, 3, 4, 5, 6]), [3, 2]).requiresGrad_();
    const idx = new Int32Array([2, 0, 2]);
    const y = ops.gatherRows(x, idx);
    idx[0] = 1;
    t.same(Array.from(y.toArray()), [5, 6, 1, 2, 5, 6]);
    ops.sum(y).backward();
    t.same(Array.from(x.grad!.toArray()), [1, 1, 0, 0, 2, 2], 'row 2 picked twice gets twice the gradient');
    t.same(Array.from(ops.gatherRows(x.detach(), [1]).toArray()), [3, 4]);
    t.same(ops.gatherRows(x.detach(), []).shape, [0, 2], 'no indices: no rows');
  });
});

t.test('gatherRows: bad arguments are TypeErrors/RangeErrors naming them', async (t) => {
  tidy(() => {
    const x = Tensor.zeros([4, 3]);
    t.throws(() => ops.gatherRows(x, [0, 4]), { name: 'RangeError', message: /indices\[1\].*\[0, 4\)/ });
    t.throws(() => ops.gatherRows(x, [-1]), { name: 'RangeError', message: /indices\[0\]/ });
    t.throws(() => ops.gatherRows(x, [0.5]), { name: 'RangeError', message: /indices\[0\]/ });
    t.throws(() => ops.gatherRows(x, 3 as never), { name: 'TypeError', message: /indices/ });
    t.throws(() => ops.gatherRows('x' as never, [0]), { name: 'TypeError', message: /^x must be a Tensor/ });
    t.throws(() => ops.gatherRows(Tensor.zeros([]), [0]), { name: 'RangeError', message: /x must have at least one dimension/ });
    // The binding checks the indices too: a caller skipping lib/ gets an exception, not a crash.
    t.throws(() => native.gatherRows(x.handle, new Int32Array([0, 1 << 30])), { name: 'RangeError', message: /indices\[1\]/ });
    t.throws(() => native.gatherRows(x.handle, new Int32Array([-5])), { name: 'RangeError', message: /indices\[0\]/ });
    t.throws(() => native.gatherRows(x.handle, [0] as never), { name: 'TypeError', message: /indices must be an Int32Array/ });
    t.throws(() => native.gatherRowsBackward(x.handle, new Int32Array([0, 1, 2, 9]), 5), { name: 'RangeError', message: /indices\[3\]/ });
    t.throws(() => native.gatherRowsBackward(x.handle, new Int32Array([0, 1]), 5), { name: 'RangeError', message: /dout has 4 rows/ });
  });
});

t.test('concatRows: values, gradient slices, errors', async (t) => {
  const a = randArray(2 * 3, 1), b = randArray(0, 2), c = randArray(5 * 3, 3);
  tidy(() => {
    const ta = T(a, [2, 3]).requiresGrad_(), tb = T(b, [0, 3]), tc = T(c, [5, 3]).requiresGrad_();
    const y = ops.concatRows([ta, tb, tc]);
    t.same(y.shape, [7, 3]);
    const ref = new Float32Array(21);
    ref.set(a, 0);
    ref.set(c, 6);
    t.ok(sameValues(y.toArray(), ref), 'rows equal the JS concatenation');
    const g = randArray(21, 4);
    ops.sum(ops.mul(y, T(g, [7, 3]))).backward();
    t.ok(sameValues(ta.grad!.toArray(), g.subarray(0, 6)), 'gradient of the first part: its rows of dout');
    t.ok(sameValues(tc.grad!.toArray(), g.subarray(6)), 'gradient of the last part');
    // Rank 3, one part.
    const z = randArray(24, 5);
    t.ok(sameValues(ops.concatRows([T(z, [2, 3, 4])]).toArray(), z), 'one part is a copy');
    t.throws(() => ops.concatRows([]), { name: 'RangeError', message: /tensors is empty/ });
    t.throws(() => ops.concatRows('a' as never), { name: 'TypeError', message: /tensors must be an array/ });
    t.throws(() => ops.concatRows([ta, Tensor.zeros([2, 4])]), { name: 'RangeError', message: /tensors\[1\] has shape \[2, 4\]/ });
    t.throws(() => ops.concatRows([ta, 5 as never]), { name: 'TypeError', message: /tensors\[1\] must be a Tensor/ });
    t.throws(() => native.concatRows([ta.handle, Tensor.zeros([2, 4]).handle]), { name: 'RangeError', message: /tensors\[1\] differs/ });
    t.throws(() => native.concatRows([ta.handle, {} as never]), { name: 'TypeError', message: /tensors\[1\] must be a tensor/ });
  });
});

t.test('sliceRows: values on any rank, gradient, errors', async (t) => {
  const x = randArray(6 * 2 * 3, 7);
  tidy(() => {
    const xt = T(x, [6, 2, 3]).requiresGrad_();
    const y = ops.sliceRows(xt, 1, 4);
    t.same(y.shape, [3, 2, 3]);
    t.ok(sameValues(y.toArray(), x.subarray(6, 24)), 'rows 1..3');
    t.same(ops.sliceRows(xt, 2, 2).shape, [0, 2, 3], 'an empty slice');
    t.ok(sameValues(ops.sliceRows(xt, 0, 6).toArray(), x), 'the whole tensor');
    ops.sum(y).backward();
    const expected = new Float32Array(36);
    expected.fill(1, 6, 24);
    t.ok(sameValues(xt.grad!.toArray(), expected), 'gradient: ones on the sliced rows, zeros elsewhere');
    t.throws(() => ops.sliceRows(xt, 4, 3), { name: 'RangeError', message: /end must be >= 4/ });
    t.throws(() => ops.sliceRows(xt, 0, 7), { name: 'RangeError', message: /end must be <= 6/ });
    t.throws(() => ops.sliceRows(xt, -1, 2), { name: 'RangeError', message: /start must be >= 0/ });
    t.throws(() => ops.sliceRows(xt, 1.5, 2), { name: 'RangeError', message: /start must be an integer/ });
    t.throws(() => native.sliceRows(xt.handle, 3, 9), { name: 'RangeError', message: /end must be an integer in \[3, 6\]/ });
  });
});

t.test('scaleRows: values, gradient to x, errors', async (t) => {
  const x = randArray(4 * 5, 8);
  const s = Float32Array.from([2, -0.5, 0, 3.25]);
  tidy(() => {
    const xt = T(x, [4, 5]).requiresGrad_();
    const y = ops.scaleRows(xt, T(s, [4]));
    const ref = x.map((v, i) => Math.fround(v * s[Math.floor(i / 5)]));
    t.ok(sameValues(y.toArray(), ref), 'row r times s[r]');
    ops.sum(y).backward();
    t.ok(sameValues(xt.grad!.toArray(), Float32Array.from({ length: 20 }, (_, i) => s[Math.floor(i / 5)])), 'dx = s per row');
    t.throws(() => ops.scaleRows(xt, Tensor.zeros([3])), { name: 'RangeError', message: /s has 3 entries but x has 4 rows/ });
    t.throws(() => ops.scaleRows(xt, T(s, [4]).requiresGrad_()), { name: 'TypeError', message: /scaleRows does not propagate gradients to s/ });
    t.throws(() => ops.scaleRows(Tensor.zeros([4]), T(s, [4])), { name: 'RangeError', message: /^x must be 2-D/ });
    t.throws(() => native.scaleRows(xt.handle, Tensor.zeros([5]).handle), { name: 'RangeError', message: /s/ });
  });
});

t.test("lshCodes: the bucket of LshCoverage.add for every row and family", async (t) => {
  const cases = [
    { n: 50, F: 5, P: 12 },
    { n: 7, F: 1, P: 16 },
    { n: 9, F: 3, P: 1 },
  ];
  cases.forEach((c, k) => {
    const proj = randArray(c.n * c.F * c.P, 400 + k);
    // Exact zeros (both signs) set the bit in LshCoverage (>= 0); a tiny
    // negative does not. (Tensor.from refuses NaN; the native table tests it.)
    proj[0] = 0;
    proj[1] = -0;
    proj[2] = -1e-30;
    const codes = tidy(() => ops.lshCodes(T(proj, [c.n, c.F * c.P]), c.F, c.P).toArray());
    t.equal(codes.length, c.n * c.F, `case ${k}: one code per row and family`);
    let agree = 0;
    for (let r = 0; r < c.n; r++) {
      // The bucket LshCoverage.add sets for this row alone, family by family.
      const cov = new LshCoverage(c.F, c.P);
      cov.add(proj, r * c.F * c.P);
      for (let f = 0; f < c.F; f++) {
        const bytes = cov.bits.subarray(f * cov.familyBytes, (f + 1) * cov.familyBytes);
        let bucket = -1;
        bytes.forEach((byte, i) => {
          for (let b = 0; b < 8; b++) if (byte & (1 << b)) bucket = i * 8 + b;
        });
        if (codes[r * c.F + f] === bucket) agree++;
      }
    }
    t.equal(agree, c.n * c.F, `case ${k}: every code equals LshCoverage's bucket`);
  });
  // Hand-computed: planes j = 0, 1, 2 with projections (+, -, 0) -> bits 0 and 2 -> 5.
  t.same(Array.from(tidy(() => ops.lshCodes(T(Float32Array.from([0.3, -2, 0]), [1, 3]), 1, 3).toArray())), [5]);
  tidy(() => {
    const p = Tensor.zeros([2, 6]);
    t.throws(() => ops.lshCodes(p, 4, 2), { name: 'RangeError', message: /proj has 6 columns but families\*planes = 4\*2 = 8/ });
    t.throws(() => ops.lshCodes(Tensor.zeros([2, 34]), 2, 17), { name: 'RangeError', message: /planes must be <= 16/ });
    t.throws(() => ops.lshCodes(p, 0, 6), { name: 'RangeError', message: /families must be >= 1/ });
    t.throws(() => native.lshCodes(p.handle, 4, 2), { name: 'RangeError', message: /expected families\*planes = 8/ });
  });
});
