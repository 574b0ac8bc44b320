// B4B: the cost function at its anchors, the LSH coverage of a sweeping and
// of a narrow client, the noise scale that follows the coverage, the
// per-client rotation (inner products and a linear probe's accuracy
// preserved, different per client), and the centred hashing.
import t from 'tap';
import { Tensor, tidy } from '../../lib/core/tensor';
import { B4B_DEFAULTS, B4bDefense, LshCoverage, b4bSigma } from '../../lib/defenses/b4b';
import { randomOrthogonal } from '../../lib/defenses/rotation';
import { parseDefense } from '../../lib/defenses/spec';
import { linearProbe, type Embeddings } from '../../lib/eval/probe';
import { assertClose, rng, sameValues } from '../helpers';

/** n standard normal vectors in d dimensions (Box-Muller on the test PRNG). */
function gaussian(n: number, d: number, seed: number): Float32Array {
  const r = rng(seed);
  const a = new Float32Array(n * d);
  for (let i = 0; i < a.length; i++) a[i] = Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
  return a;
}

/** n vectors within a small cone around one direction: mu + spread * N(0, I). */
function cone(n: number, d: number, seed: number, spread = 0.02): Float32Array {
  const mu = gaussian(1, d, seed + 1000);
  const z = gaussian(n, d, seed);
  for (let i = 0; i < n; i++) for (let k = 0; k < d; k++) z[i * d + k] = mu[k] + spread * z[i * d + k];
  return z;
}

function unitRows(x: Float32Array, d: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length / d; i++) {
    let s = 0;
    for (let k = 0; k < d; k++) s += x[i * d + k] ** 2;
    for (let k = 0; k < d; k++) out[i * d + k] = x[i * d + k] / Math.sqrt(s);
  }
  return out;
}

t.test('sigma(c) = lambda (exp(ln(alpha/lambda) c / beta) - 1): sigma(0) = 0, sigma(beta) = alpha - lambda', async (t) => {
  const p = B4B_DEFAULTS;
  t.equal(b4bSigma(0, p), 0, 'sigma(0) = 0');
  t.ok(Math.abs(b4bSigma(p.beta, p) - (p.alpha - p.lambda)) < 1e-12, `sigma(beta) = alpha - lambda (${b4bSigma(p.beta, p)})`);
  const q = { alpha: 0.5, beta: 20, lambda: 1e-3 };
  t.ok(Math.abs(b4bSigma(20, q) - 0.499) < 1e-12, 'other parameters: sigma(beta) = alpha - lambda');
  t.ok(Math.abs(b4bSigma(10, q) - 1e-3 * (Math.sqrt(500) - 1)) < 1e-12, 'halfway: lambda (sqrt(alpha/lambda) - 1)');
  let increasing = true;
  for (let c = 1; c <= 100; c++) if (!(b4bSigma(c, p) > b4bSigma(c - 1, p))) increasing = false;
  t.ok(increasing, 'strictly increasing in the coverage');
  t.ok(b4bSigma(1, p) < 2e-6, `almost nothing at 1% coverage (${b4bSigma(1, p).toExponential(2)})`);
  t.equal(b4bSigma(100, { alpha: 1, beta: 0.5, lambda: 1e-6 }), 1e6, 'capped (finite) for any coverage');
  t.throws(() => new B4bDefense({ alpha: 1e-7 }), /alpha must be larger than lambda/);
  t.throws(() => new B4bDefense({ beta: 0 }), /beta must be > 0/);
  t.throws(() => new B4bDefense({ planes: 17 }), /planes must be <= 16/);
});

t.test('LshCoverage: buckets from the projection signs, counted once', async (t) => {
  const c = new LshCoverage(2, 3);
  t.equal(c.buckets, 8);
  c.add([1, -1, 1, /* family 1 */ -1, -1, -1], 0); // family 0: bits 0 and 2 -> bucket 5; family 1: bucket 0
  t.same(Array.from(c.counts), [1, 1]);
  t.equal(c.bits[0], 1 << 5);
  t.equal(c.bits[1], 1);
  c.add([0, -2, 3, -1, -1, -1], 0); // the same buckets (0 counts as >= 0)
  t.same(Array.from(c.counts), [1, 1], 'a bucket hit twice counts once');
  c.add([9, 9, 1, 1, 1, 1, /* the next row */ 0, 0], 0);
  t.same(Array.from(c.counts), [2, 2]);
  t.equal(c.percent, (100 * 4) / 16, 'percent: buckets hit over all buckets, averaged over the families');
  const copy = new LshCoverage(2, 3);
  copy.setBits(c.bits);
  t.same(Array.from(copy.counts), [2, 2], 'setBits recounts');
  t.equal(copy.percent, c.percent);
});

t.test('coverage grows for a sweeping client and stays low for a narrow one', async (t) => {
  tidy(() => {
    const d = 32;
    const n = 3000;
    const b4b = new B4bDefense();
    b4b.observe('sweeper', Tensor.from(gaussian(n, d, 1), [n, d]));
    b4b.observe('narrow', Tensor.from(cone(n, d, 2), [n, d]));
    const sweep = b4b.coverageOf('sweeper');
    const narrow = b4b.coverageOf('narrow');
    // 3000 draws into 4096 equally likely buckets would hit 4096 (1 - exp(-3000/4096)) = 52%
    // of them; the cells of random hyperplanes differ in size, so somewhat fewer.
    t.ok(sweep > 35 && sweep < 53, `sweeping client: ${sweep.toFixed(1)}% of the buckets (at most about 52%)`);
    t.ok(narrow < 1, `narrow client: ${narrow.toFixed(2)}% of the buckets`);
    const s1 = b4b.clientStats('sweeper');
    t.equal(s1.rows, n);
    t.equal(s1.coverage, sweep);
    t.equal(s1.sigma, b4b.sigma(sweep));
    t.ok(s1.sigma > 1e3 * b4b.clientStats('narrow').sigma, `the sweeper pays: sigma ${s1.sigma.toExponential(2)} vs ${b4b.clientStats('narrow').sigma.toExponential(2)}`);
    // Coverage only grows, query after query.
    const g = new B4bDefense();
    let last = 0;
    let grows = true;
    const x = gaussian(1000, d, 3);
    for (let s = 0; s < 1000; s += 100) {
      g.observe('c', Tensor.from(x.subarray(s * d, (s + 100) * d), [100, d]));
      if (g.coverageOf('c') <= last) grows = false;
      last = g.coverageOf('c');
    }
    t.ok(grows, 'a sweeping client covers more buckets with every request');
    t.equal(g.coverageOf('stranger'), 0, 'a client never seen covers nothing');
  });
});

t.test('the answers: normalised embedding + N(0, sigma_r^2) per row, sigma_r from the coverage including row r', async (t) => {
  tidy(() => {
    const d = 64;
    const n = 600;
    const xa = gaussian(n, d, 4);
    const x = Tensor.from(xa, [n, d]);
    const cfg = { beta: 10, alpha: 0.5 };
    const sigmas = new B4bDefense(cfg).observe('c', x);
    const b4b = new B4bDefense(cfg);
    const y = b4b.apply('c', x).toArray();
    const unit = unitRows(xa, d);
    let ss = 0;
    let expected = 0;
    for (let r = 0; r < n; r++) {
      for (let k = 0; k < d; k++) ss += (y[r * d + k] - unit[r * d + k]) ** 2;
      expected += sigmas[r] ** 2 * d;
    }
    t.ok(sigmas[n - 1] > sigmas[0], `the noise grows along the requests (${sigmas[0].toExponential(2)} -> ${sigmas[n - 1].toExponential(2)})`);
    t.ok(Math.abs(ss / expected - 1) < 0.05, `the residual's energy matches sum sigma_r^2 d (ratio ${(ss / expected).toFixed(3)})`);
    t.same(b4b.clientStats('c').rows, n);

    // Reproducible, and independent of how the requests are split.
    const again = new B4bDefense(cfg);
    const a = again.apply('c', Tensor.from(xa.subarray(0, 250 * d), [250, d])).toArray();
    const b = again.apply('c', Tensor.from(xa.subarray(250 * d), [n - 250, d])).toArray();
    const joined = new Float32Array(n * d);
    joined.set(a);
    joined.set(b, 250 * d);
    assertClose(t, joined, y, 'one request = two requests', 1e-6, 1e-5);

    // A narrow client gets (almost) its normalised embeddings back.
    const nx = cone(500, d, 5);
    const quiet = new B4bDefense().apply('honest', Tensor.from(nx, [500, d])).toArray();
    assertClose(t, quiet, unitRows(nx, d), 'narrow client under the default settings: noise below 1e-5', 1e-5, 0);
  });
});

t.test('rotation: orthogonal, preserves inner products and a linear probe, differs per client', async (t) => {
  const d = 24;
  const q = randomOrthogonal(d, 7);
  let worst = 0;
  for (let i = 0; i < d; i++)
    for (let j = 0; j < d; j++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += q[i * d + k] * q[j * d + k];
      worst = Math.max(worst, Math.abs(s - (i === j ? 1 : 0)));
    }
  t.ok(worst < 1e-6, `Q Q^T = I (worst error ${worst.toExponential(2)})`);
  t.ok(sameValues(randomOrthogonal(d, 7), q), 'seeded');
  t.notOk(sameValues(randomOrthogonal(d, 8), q), 'another seed, another rotation');

  tidy(() => {
    const n = 50;
    const xa = cone(n, d, 6, 0.5);
    const b4b = new B4bDefense({ rotate: true });
    const y = b4b.apply('alice', Tensor.from(xa, [n, d])).toArray();
    const unit = unitRows(xa, d);
    let err = 0;
    let moved = 0;
    for (let i = 0; i < n; i++)
      for (let j = 0; j < n; j++) {
        let a = 0;
        let b = 0;
        for (let k = 0; k < d; k++) {
          a += y[i * d + k] * y[j * d + k];
          b += unit[i * d + k] * unit[j * d + k];
        }
        err = Math.max(err, Math.abs(a - b));
      }
    for (let k = 0; k < n * d; k++) moved = Math.max(moved, Math.abs(y[k] - unit[k]));
    t.ok(err < 1e-5, `inner products of the answers = those of the normalised embeddings (worst ${err.toExponential(2)})`);
    t.ok(moved > 0.1, 'but the coordinates changed');
    const again = b4b.apply('alice', Tensor.from(xa.subarray(0, d), [1, d])).toArray();
    assertClose(t, again, y.subarray(0, d), "the same client's later answers use the same rotation", 1e-5, 0);
    const bob = b4b.apply('bob', Tensor.from(xa, [n, d])).toArray();
    let cos = 0;
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += y[i * d + k] * bob[i * d + k];
      cos += s / n;
    }
    t.ok(Math.abs(cos) < 0.5, `two accounts get incompatible coordinates for the same images (mean cosine ${cos.toFixed(3)})`);
  });

  // A linear probe trained and tested on rotated embeddings is as accurate.
  const classes = 4;
  const per = 120;
  const means = gaussian(classes, d, 9);
  const make = (seed: number): Embeddings => {
    const z = gaussian(classes * per, d, seed);
    const labels = new Int32Array(classes * per);
    for (let i = 0; i < classes * per; i++) {
      labels[i] = i % classes;
      for (let k = 0; k < d; k++) z[i * d + k] = 0.6 * means[labels[i] * d + k] + z[i * d + k];
    }
    return { data: z, n: classes * per, dim: d, labels };
  };
  const rotate = (e: Embeddings, qm: Float32Array): Embeddings => {
    const out = new Float32Array(e.data.length);
    for (let i = 0; i < e.n; i++)
      for (let j = 0; j < d; j++) {
        let s = 0;
        for (let k = 0; k < d; k++) s += e.data[i * d + k] * qm[k * d + j];
        out[i * d + j] = s;
      }
    return { ...e, data: out };
  };
  const train = make(10);
  const test = make(11);
  const qm = randomOrthogonal(d, 12);
  const plain = linearProbe(train, test, { numClasses: classes, epochs: 100 }).accuracy;
  const rotated = linearProbe(rotate(train, qm), rotate(test, qm), { numClasses: classes, epochs: 100 }).accuracy;
  t.ok(plain > 0.7, `the task is learnable (accuracy ${plain.toFixed(3)})`);
  t.ok(Math.abs(plain - rotated) <= 0.02, `linear probe accuracy on rotated embeddings ${rotated.toFixed(3)} = on the originals ${plain.toFixed(3)} (within 2 points)`);
});

t.test('center=true: calibrated hashing around the data, refused before calibration', async (t) => {
  tidy(() => {
    const d = 32;
    // Embeddings in the positive orthant, as after ReLU + average pooling.
    const pos = (n: number, seed: number) => cone(n, d, seed, 0.3).map(Math.abs);
    const calib = Tensor.from(pos(500, 20), [500, d]);
    const queries = Tensor.from(pos(2000, 21), [2000, d]);
    const plain = new B4bDefense();
    plain.observe('c', queries);
    const centred = new B4bDefense({ center: true });
    t.ok(centred.needsCalibration);
    t.throws(() => centred.apply('c', queries), /calibrate\(\)/, 'no answers before calibration');
    t.equal(centred.coverageOf('c'), 0, 'and nothing counted');
    centred.calibrate(calib);
    t.notOk(centred.needsCalibration);
    centred.observe('c', queries);
    t.ok(centred.coverageOf('c') > 2 * plain.coverageOf('c'), `coverage around the data's centre ${centred.coverageOf('c').toFixed(2)}% vs around the origin ${plain.coverageOf('c').toFixed(2)}%`);
    const mean = centred.center!;
    const unit = unitRows(calib.toArray(), d);
    const ref = new Float64Array(d);
    for (let i = 0; i < 500; i++) for (let k = 0; k < d; k++) ref[k] += unit[i * d + k] / 500;
    assertClose(t, mean, ref, 'the centre is the mean of the normalised calibration embeddings', 1e-6, 1e-5);
    t.throws(() => centred.calibrate(Tensor.from(new Float32Array(48).fill(1), [3, 16])), /16 dimensions/);
    const p = parseDefense('b4b:center=true,beta=15');
    t.equal(p.spec, 'b4b:beta=15,center=true');
    t.equal(p.needsCalibration, true);
    const comp = parseDefense('topk:16+b4b:center=true');
    t.equal(comp.needsCalibration, true, 'a composition needs calibration when a stage does');
    comp.calibrate!(calib);
    t.equal(comp.needsCalibration, false);
  });
});
