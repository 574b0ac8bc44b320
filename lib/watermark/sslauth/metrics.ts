// SSL-Auth's watermark image W and how close a rebuilt image Ŵ is to it.
// Images are row-major [H, W] float arrays with W's pixels in {0, 1}; all
// arithmetic is in float64 on the host (K x 784 values: no kernel needed).
import { checkInt, checkSeed, describe } from '../../core/validate';
import { Prng } from '../../data/prng';

/** The largest PSNR reported (an exact rebuild has infinite PSNR, which JSON cannot hold). */
export const MAX_PSNR_DB = 300;

/**
 * The secret watermark: a seeded binary pattern of side x side pixels, drawn
 * as blocks of 4x4 pixels (so the pattern has structure that SSIM can see),
 * each block 1 with probability 1/2.
 */
export function seededWatermark(side: number, seed: number): Float32Array {
  checkInt(side, 'side', { min: 4, max: 1024 });
  checkSeed(seed);
  const rng = new Prng(seed);
  const block = 4;
  const blocks = Math.ceil(side / block);
  const bits = Array.from({ length: blocks * blocks }, () => (rng.next() < 0.5 ? 1 : 0));
  const w = new Float32Array(side * side);
  for (let r = 0; r < side; r++) for (let c = 0; c < side; c++) w[r * side + c] = bits[Math.floor(r / block) * blocks + Math.floor(c / block)];
  return w;
}

function checkValues(v: unknown, name: string): void {
  const ok = Array.isArray(v) || (ArrayBuffer.isView(v) && !(v instanceof DataView) && !(v instanceof BigInt64Array) && !(v instanceof BigUint64Array));
  if (!ok) throw new TypeError(`${name} must be an array or typed array of numbers, got ${describe(v)}`);
}

function checkPair(a: ArrayLike<number>, b: ArrayLike<number>, aName = 'a', bName = 'b'): void {
  checkValues(a, aName);
  checkValues(b, bName);
  if (a.length !== b.length || a.length === 0) throw new RangeError(`images must have the same non-zero size, got ${a.length} and ${b.length}`);
}

export function meanSquaredError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  checkPair(a, b);
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] - b[i]) ** 2;
  return s / a.length;
}

/** PSNR in dB for a peak value of 1: 10 log10(1 / MSE), at most MAX_PSNR_DB. */
export function psnr(rebuilt: ArrayLike<number>, target: ArrayLike<number>): number {
  checkPair(rebuilt, target, 'rebuilt', 'target');
  const mse = meanSquaredError(rebuilt, target);
  return mse === 0 ? MAX_PSNR_DB : Math.min(MAX_PSNR_DB, -10 * Math.log10(mse));
}

/**
 * SSIM (Wang et al., 2004) as skimage computes it by default: uniform 7x7
 * windows over every valid position, data range 1, C1 = (0.01)^2,
 * C2 = (0.03)^2, sample (n-1) covariances; the mean over the windows.
 */
export function ssim(a: ArrayLike<number>, b: ArrayLike<number>, side: number): number {
  checkPair(a, b);
  checkInt(side, 'side', { min: 1, max: 1 << 15 });
  if (a.length !== side * side) throw new RangeError(`images have ${a.length} pixels, expected side^2 = ${side * side}`);
  const win = 7;
  if (side < win) throw new RangeError(`SSIM needs images of at least ${win}x${win}`);
  const C1 = 0.01 ** 2;
  const C2 = 0.03 ** 2;
  const n = win * win;
  let total = 0;
  let count = 0;
  for (let r = 0; r + win <= side; r++) {
    for (let c = 0; c + win <= side; c++) {
      let sa = 0;
      let sb = 0;
      for (let i = 0; i < win; i++) for (let j = 0; j < win; j++) {
        sa += a[(r + i) * side + c + j];
        sb += b[(r + i) * side + c + j];
      }
      const ma = sa / n;
      const mb = sb / n;
      let va = 0;
      let vb = 0;
      let cov = 0;
      for (let i = 0; i < win; i++) for (let j = 0; j < win; j++) {
        const da = a[(r + i) * side + c + j] - ma;
        const db = b[(r + i) * side + c + j] - mb;
        va += da * da;
        vb += db * db;
        cov += da * db;
      }
      va /= n - 1;
      vb /= n - 1;
      cov /= n - 1;
      total += ((2 * ma * mb + C1) * (2 * cov + C2)) / ((ma * ma + mb * mb + C1) * (va + vb + C2));
      count++;
    }
  }
  return total / count;
}

/** Fraction of pixels where the rebuilt image, binarised at 0.5, equals the binary target. */
export function bitAgreement(rebuilt: ArrayLike<number>, target: ArrayLike<number>): number {
  checkPair(rebuilt, target, 'rebuilt', 'target');
  let same = 0;
  for (let i = 0; i < rebuilt.length; i++) if ((rebuilt[i] >= 0.5 ? 1 : 0) === (target[i] >= 0.5 ? 1 : 0)) same++;
  return same / rebuilt.length;
}

/**
 * The baseline's distance between two [K, d] embedding matrices: the largest
 * relative L2 change of a row, max_k ||a_k - b_k|| / ||b_k|| (b the reference).
 */
export function maxRelativeRowDistance(a: ArrayLike<number>, b: ArrayLike<number>, rows: number): number {
  checkPair(a, b);
  checkInt(rows, 'rows', { min: 1 });
  if (a.length % rows !== 0) throw new RangeError(`${a.length} values do not split into ${rows} rows`);
  const d = a.length / rows;
  let worst = 0;
  for (let k = 0; k < rows; k++) {
    let num = 0;
    let den = 0;
    for (let j = 0; j < d; j++) {
      num += (a[k * d + j] - b[k * d + j]) ** 2;
      den += b[k * d + j] ** 2;
    }
    worst = Math.max(worst, Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-30));
  }
  return worst;
}
