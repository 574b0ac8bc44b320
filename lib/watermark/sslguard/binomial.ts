// The statistics of the ownership verdict: the one-sided binomial tail
// P(X >= k) for X ~ Binomial(n, p), in log space so that p-values far below
// 1e-300 stay exact in their logarithm, and the Clopper-Pearson upper
// confidence bound of a rate (the conservative null hit rate).
import { checkInt, checkNumber } from '../../core/validate';

function logSumExp(a: number, b: number): number {
  if (a === -Infinity) return b;
  if (b === -Infinity) return a;
  const m = Math.max(a, b);
  return m + Math.log(Math.exp(a - m) + Math.exp(b - m));
}

/** ln P(X >= k), X ~ Binomial(n, p). */
export function logBinomialTail(k: number, n: number, p: number): number {
  checkInt(n, 'n', { min: 0, max: 2 ** 31 - 1 });
  checkInt(k, 'k', { min: 0, max: n });
  checkNumber(p, 'p', { min: 0, max: 1 });
  if (k === 0) return 0;
  if (p === 0) return -Infinity;
  if (p === 1) return 0;
  const lp = Math.log(p);
  const lq = Math.log1p(-p);
  // ln C(n, k) = sum_{j=1..k} ln((n - k + j) / j)
  let logC = 0;
  for (let j = 1; j <= k; j++) logC += Math.log((n - k + j) / j);
  let term = logC + k * lp + (n - k) * lq;
  let acc = term;
  for (let i = k; i < n; i++) {
    // C(n, i+1) = C(n, i) * (n - i) / (i + 1)
    term += Math.log((n - i) / (i + 1)) + lp - lq;
    acc = logSumExp(acc, term);
    if (term < acc - 50) break; // the terms only fall from here on (i >= mode): the rest is below e^-50 of the sum
  }
  return Math.min(0, acc);
}

/**
 * Clopper-Pearson one-sided upper bound on a rate after `hits` of `trials`:
 * the p with P(X <= hits | trials, p) = 1 - confidence (bisection).
 * 0 of n gives 1 - (1 - confidence)^(1/n).
 */
export function rateUpperBound(hits: number, trials: number, confidence = 0.95): number {
  checkInt(trials, 'trials', { min: 1, max: 2 ** 31 - 1 });
  checkInt(hits, 'hits', { min: 0, max: trials });
  checkNumber(confidence, 'confidence', { gt: 0, lt: 1 });
  if (hits === trials) return 1;
  const target = 1 - confidence;
  // P(X <= hits) = 1 - P(X >= hits + 1), decreasing in p.
  const cdf = (p: number) => 1 - Math.exp(logBinomialTail(hits + 1, trials, p));
  let lo = hits / trials;
  let hi = 1;
  for (let it = 0; it < 200 && hi - lo > 1e-15; it++) {
    const mid = (lo + hi) / 2;
    if (cdf(mid) > target) lo = mid;
    else hi = mid;
  }
  return hi;
}
