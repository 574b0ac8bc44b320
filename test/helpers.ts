// Test helpers: a seeded PRNG independent of the library's, one closeness
// metric, plain reference implementations (float64 loops, written from the
// PyTorch definitions) and a finite-difference gradient checker.
import type { Test } from 'tap';
import { Tensor, noGrad } from '../lib/core/tensor';

/** mulberry32: small, seeded, independent of the library's Philox RNG. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randArray(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const r = rng(seed);
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * r();
  return a;
}

export function prod(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/**
 * The one error metric: max_i |a_i - b_i| / (atol + rtol * |b_i|). Returns
 * the worst value (<= 1 means close) and where it occurred.
 */
export function scaledError(a: ArrayLike<number>, b: ArrayLike<number>, atol: number, rtol: number): { err: number; at: number } {
  if (a.length !== b.length) return { err: Infinity, at: -1 };
  let err = 0;
  let at = 0;
  for (let i = 0; i < a.length; i++) {
    const e = Math.abs(a[i] - b[i]) / (atol + rtol * Math.abs(b[i]));
    if (!(e <= err)) {
      err = Number.isNaN(e) ? Infinity : e;
      at = i;
    }
  }
  return { err, at };
}

/** Exact element-wise equality (tap's deep compare is far too slow on big typed arrays). */
export function sameValues(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return false;
  return true;
}

/** The part of tap's Test that the helpers use. */
type TapLike = Pick<Test, 'ok'>;

export function assertClose(t: TapLike, actual: ArrayLike<number>, expected: ArrayLike<number>, msg: string, atol = 1e-5, rtol = 1e-4): void {
  const { err, at } = scaledError(actual, expected, atol, rtol);
  t.ok(err <= 1, `${msg} (scaled error ${err.toExponential(2)})`, err <= 1 ? {} : { index: at, actual: actual[at], expected: expected[at], lengths: [actual.length, expected.length] });
}

// ------------------------------------------------------------ references
// All in float64, straight from the definitions.

export function refConv2d(x: Float32Array, xs: number[], w: Float32Array, ws: number[], b: Float32Array | null, stride: number, pad: number): { out: Float64Array; shape: number[] } {
  const [N, C, H, W] = xs;
  const [OC, , KH, KW] = ws;
  const OH = Math.floor((H + 2 * pad - KH) / stride) + 1;
  const OW = Math.floor((W + 2 * pad - KW) / stride) + 1;
  const out = new Float64Array(N * OC * OH * OW);
  for (let n = 0; n < N; n++)
    for (let oc = 0; oc < OC; oc++)
      for (let oh = 0; oh < OH; oh++)
        for (let ow = 0; ow < OW; ow++) {
          let s = b ? b[oc] : 0;
          for (let c = 0; c < C; c++)
            for (let kh = 0; kh < KH; kh++)
              for (let kw = 0; kw < KW; kw++) {
                const ih = oh * stride - pad + kh;
                const iw = ow * stride - pad + kw;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                s += x[((n * C + c) * H + ih) * W + iw] * w[((oc * C + c) * KH + kh) * KW + kw];
              }
          out[((n * OC + oc) * OH + oh) * OW + ow] = s;
        }
  return { out, shape: [N, OC, OH, OW] };
}

/** Training-mode batch norm: returns the output, batch mean and biased / unbiased variances. */
export function refBatchNorm(x: Float32Array, xs: number[], g: Float32Array, b: Float32Array, eps: number) {
  const [N, C, H, W] = xs;
  const HW = H * W;
  const m = N * HW;
  const out = new Float64Array(x.length);
  const mean = new Float64Array(C);
  const varB = new Float64Array(C);
  const varU = new Float64Array(C);
  for (let c = 0; c < C; c++) {
    let s = 0;
    for (let n = 0; n < N; n++) for (let i = 0; i < HW; i++) s += x[(n * C + c) * HW + i];
    const mu = s / m;
    let v = 0;
    for (let n = 0; n < N; n++) for (let i = 0; i < HW; i++) v += (x[(n * C + c) * HW + i] - mu) ** 2;
    mean[c] = mu;
    varB[c] = v / m;
    varU[c] = m > 1 ? v / (m - 1) : 0;
    const inv = 1 / Math.sqrt(varB[c] + eps);
    for (let n = 0; n < N; n++) for (let i = 0; i < HW; i++) {
      const k = (n * C + c) * HW + i;
      out[k] = (x[k] - mu) * inv * g[c] + b[c];
    }
  }
  return { out, mean, varB, varU };
}

export function refMaxPool(x: Float32Array, xs: number[], k: number): Float64Array {
  const [N, C, H, W] = xs;
  const OH = Math.floor(H / k);
  const OW = Math.floor(W / k);
  const out = new Float64Array(N * C * OH * OW);
  for (let nc = 0; nc < N * C; nc++)
    for (let oh = 0; oh < OH; oh++)
      for (let ow = 0; ow < OW; ow++) {
        let m = -Infinity;
        for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) m = Math.max(m, x[(nc * H + oh * k + i) * W + ow * k + j]);
        out[(nc * OH + oh) * OW + ow] = m;
      }
  return out;
}

export function refLinear(x: Float32Array, B: number, IC: number, w: Float32Array, OC: number, b: Float32Array | null): Float64Array {
  const out = new Float64Array(B * OC);
  for (let i = 0; i < B; i++)
    for (let o = 0; o < OC; o++) {
      let s = b ? b[o] : 0;
      for (let k = 0; k < IC; k++) s += x[i * IC + k] * w[o * IC + k];
      out[i * OC + o] = s;
    }
  return out;
}

function rowNorm(a: ArrayLike<number>, r: number, D: number): number {
  let s = 0;
  for (let k = 0; k < D; k++) s += a[r * D + k] ** 2;
  return Math.sqrt(s);
}

export function refCosineMatrix(a: Float32Array, n: number, b: Float32Array, m: number, D: number, eps = 1e-8): Float64Array {
  const out = new Float64Array(n * m);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < m; j++) {
      let d = 0;
      for (let k = 0; k < D; k++) d += a[i * D + k] * b[j * D + k];
      out[i * m + j] = d / (Math.max(rowNorm(a, i, D), eps) * Math.max(rowNorm(b, j, D), eps));
    }
  return out;
}

/** NT-Xent over z [2N, D] (SimCLR): mean over rows of -log softmax_{j != r}(sim[r, j])[pos(r)]. */
export function refNtXent(z: ArrayLike<number>, twoN: number, D: number, tau: number): number {
  const N = twoN / 2;
  const zn = new Float64Array(twoN * D);
  for (let r = 0; r < twoN; r++) {
    const nr = Math.max(rowNorm(z, r, D), 1e-12);
    for (let k = 0; k < D; k++) zn[r * D + k] = z[r * D + k] / nr;
  }
  let loss = 0;
  for (let r = 0; r < twoN; r++) {
    const pos = r < N ? r + N : r - N;
    const sims: number[] = [];
    let sp = 0;
    for (let j = 0; j < twoN; j++) {
      if (j === r) continue;
      let d = 0;
      for (let k = 0; k < D; k++) d += zn[r * D + k] * zn[j * D + k];
      sims.push(d / tau);
      if (j === pos) sp = d / tau;
    }
    const mx = Math.max(...sims);
    const lse = mx + Math.log(sims.reduce((s, v) => s + Math.exp(v - mx), 0));
    loss += lse - sp;
  }
  return loss / twoN;
}

export function refCrossEntropy(logits: ArrayLike<number>, B: number, C: number, labels: ArrayLike<number>): number {
  let loss = 0;
  for (let i = 0; i < B; i++) {
    let mx = -Infinity;
    for (let c = 0; c < C; c++) mx = Math.max(mx, logits[i * C + c]);
    let s = 0;
    for (let c = 0; c < C; c++) s += Math.exp(logits[i * C + c] - mx);
    loss += mx + Math.log(s) - logits[i * C + labels[i]];
  }
  return loss / B;
}

// ------------------------------------------------------ finite differences

/**
 * Checks the gradients of a scalar function of several tensors against
 * central finite differences along random directions: for each input i and
 * direction v, (f(x + h v) - f(x - h v)) / 2h must match <grad_i, v>. Also
 * checks a few single coordinates. f is evaluated in float32, so tolerances
 * are loose (relative 2e-2 by default).
 */
export function gradCheck(
  t: TapLike,
  name: string,
  f: (inputs: Tensor[]) => Tensor,
  inputs: { data: Float32Array; shape: number[] }[],
  opts: { h?: number; rtol?: number; atol?: number; directions?: number; seed?: number; check?: boolean[] } = {},
): void {
  const h = opts.h ?? 1e-2;
  const rtol = opts.rtol ?? 2e-2;
  const atol = opts.atol ?? 1e-3;
  const r = rng(opts.seed ?? 7);
  const tensors = inputs.map((x) => Tensor.from(x.data, x.shape).requiresGrad_(true));
  const loss = f(tensors);
  loss.backward();
  const grads = tensors.map((x) => (x.grad ? x.grad.toArray() : null));
  const evalAt = (i: number, v: Float32Array, s: number): number =>
    noGrad(() => {
      const shifted = inputs.map((x, j) => {
        if (j !== i) return Tensor.from(x.data, x.shape);
        const d = new Float32Array(x.data.length);
        for (let k = 0; k < d.length; k++) d[k] = x.data[k] + s * v[k];
        return Tensor.from(d, x.shape);
      });
      const val = f(shifted).item();
      shifted.forEach((x) => x.dispose());
      return val;
    });
  inputs.forEach((x, i) => {
    if (opts.check && !opts.check[i]) return;
    const g = grads[i];
    t.ok(g !== null, `${name}: input ${i} received a gradient`);
    if (!g) return;
    const dirs = opts.directions ?? 3;
    for (let d = 0; d < dirs + 2; d++) {
      const v = new Float32Array(x.data.length);
      if (d < dirs) for (let k = 0; k < v.length; k++) v[k] = r() * 2 - 1;
      else v[Math.floor(r() * v.length)] = 1; // single coordinates
      const fd = (evalAt(i, v, h) - evalAt(i, v, -h)) / (2 * h);
      let an = 0;
      for (let k = 0; k < v.length; k++) an += g[k] * v[k];
      const ok = Math.abs(fd - an) <= atol + rtol * Math.max(Math.abs(fd), Math.abs(an));
      t.ok(ok, `${name}: d/d input ${i} along direction ${d} (fd ${fd.toPrecision(6)}, analytic ${an.toPrecision(6)})`);
    }
  });
  tensors.forEach((x) => {
    x.grad?.dispose();
    x.dispose();
  });
}

/** Asserts lo <= v <= hi for a finite number (NaN, Infinity and non-numbers fail). */
export function assertInRange(t: TapLike, v: unknown, lo: number, hi: number, msg: string): void {
  const ok = typeof v === 'number' && Number.isFinite(v) && v >= lo && v <= hi;
  t.ok(ok, `${msg}: ${String(v)} in [${lo}, ${hi}]`);
}

/** Asserts every value of a record is a finite number in [lo, hi], and that it has exactly `keys`. */
export function assertRecordInRange(t: Pick<Test, 'ok' | 'same'>, r: unknown, keys: readonly string[], lo: number, hi: number, msg: string): void {
  const rec = (r ?? {}) as Record<string, unknown>;
  t.same(Object.keys(rec), [...keys], `${msg}: keys`);
  for (const k of keys) assertInRange(t, rec[k], lo, hi, `${msg}.${k}`);
}
