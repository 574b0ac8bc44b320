// B4B, "Bucks for Buckets" (Dubiński et al., NeurIPS 2023): an active
// defense that makes each client pay for how much of the embedding space its
// queries cover.
//
// Coverage. The service hashes every embedding it returns to a client with
// locality-sensitive hashing: the signs of its projections on P random
// hyperplanes through the origin give a bucket among 2^P. A client's coverage
// c (in percent) is the fraction of buckets it has hit, averaged over F
// independent hash families (F sets of P hyperplanes, the service's secret,
// from its seed). An honest client solving one downstream task sends images
// of one kind; their embeddings stay in one region and hit few buckets. A
// stealer wants the encoder's behaviour everywhere and sweeps the space.
//
// Centring (center=true, not in the paper). Hyperplanes through the origin
// split the sphere evenly, but an encoder's embeddings rarely fill it: after
// a ReLU and an average pool they all lie in the positive orthant, within a
// few tens of degrees of their mean direction, and then every client,
// stealer or not, hits only a few percent of the buckets (measured on our
// cnn-small Fashion-MNIST target: 3% after 12000 Fashion-MNIST queries, 0.5%
// after 3000 MNIST ones). With center=true the service first calibrates on
// embeddings of its own data (calibrate()): the hyperplanes then pass through
// the mean of its L2-normalised embeddings and hash x/||x|| - mean, which
// spreads the buckets over the region the embeddings really occupy (20% and
// 2% for the same clients). beta must then be chosen for that scale.
//
// Cost. The answers carry Gaussian noise whose scale grows exponentially
// with the coverage:
//     sigma(c) = lambda * (exp(ln(alpha / lambda) * c / beta) - 1)
// so sigma(0) = 0 and sigma(beta) = alpha - lambda: lambda sets how gently
// the noise starts, alpha the noise reached at coverage beta. As in the noise
// defense, the noise is added to the L2-normalised embedding and its stream
// derives from (seed, client id, the client's row counter). Each row is hashed
// first, and its noise uses the coverage including it, so the answers do not
// depend on how the client splits its requests.
//
// Transformation (optional, rotate=true). Each client's answers are
// multiplied by its own secret random rotation (an orthogonal matrix from
// the seed and the client id): distances and inner products, hence the
// client's own downstream utility, are unchanged, but two accounts get
// incompatible coordinates and cannot pool their answers (nor their
// coverage) into one training set.
//
// Per-client state: the row counter and the F bitsets of 2^P bits (5 x 4096
// bits = 2.5 KiB a client with the defaults), saved with the service's state.
import { Tensor, noGrad, tidy } from '../core/tensor';
import * as ops from '../core/ops';
import { checkBool, checkInt, checkNdim, checkNumber, checkOptions, checkSeed, describe } from '../core/validate';
import { deriveSeed } from '../data/prng';
import type { Defense } from './defense';
import { SEED_DOMAIN, clientSeed, specNumber, stateClients, stateCount, stateError, stateObject } from './common';
import { randomOrthogonal } from './rotation';

export interface B4bOptions {
  /** Noise scale reached at coverage beta (default 1). */
  alpha?: number;
  /** Coverage, in percent, at which the noise reaches alpha (default 80). */
  beta?: number;
  /** Initial noise scale: sigma grows like lambda * exp(...) (default 1e-6). */
  lambda?: number;
  /** Hyperplanes per hash family: 2^planes buckets (default 12). */
  planes?: number;
  /** Independent hash families averaged (default 5). */
  families?: number;
  /** Seed of the hyperplanes, the noise and the rotations (default 0). */
  seed?: number;
  /** Multiply each client's answers by its own secret rotation (default false). */
  rotate?: boolean;
  /** Hash around the mean of calibration embeddings instead of the origin (default false; needs calibrate()). */
  center?: boolean;
}

export type B4bConfig = Required<B4bOptions>;

export const B4B_DEFAULTS: Readonly<B4bConfig> = Object.freeze({ alpha: 1, beta: 80, lambda: 1e-6, planes: 12, families: 5, seed: 0, rotate: false, center: false });

/** Above this the answer is noise anyway; the cap keeps sigma finite for any coverage. */
export const B4B_MAX_SIGMA = 1e6;

/** The noise scale at coverage c (percent): lambda * (exp(ln(alpha/lambda) * c/beta) - 1), capped at B4B_MAX_SIGMA. */
export function b4bSigma(coverage: number, p: { alpha: number; beta: number; lambda: number }): number {
  checkNumber(coverage, 'coverage', { min: 0, max: 100 });
  if (p === null || typeof p !== 'object' || Array.isArray(p)) throw new TypeError(`p must be an object { alpha, beta, lambda }, got ${describe(p)}`);
  checkNumber(p.alpha, 'p.alpha', { gt: 0 });
  checkNumber(p.beta, 'p.beta', { gt: 0, max: 100 });
  checkNumber(p.lambda, 'p.lambda', { gt: 0 });
  return Math.min(B4B_MAX_SIGMA, p.lambda * Math.expm1((Math.log(p.alpha / p.lambda) * coverage) / p.beta));
}

/** Validated B4B settings (defaults filled in). */
export function resolveB4bConfig(options: B4bOptions = {}): B4bConfig {
  const o = checkOptions<B4bOptions>(options, 'options', Object.keys(B4B_DEFAULTS));
  const d = B4B_DEFAULTS;
  const cfg: B4bConfig = {
    alpha: checkNumber(o.alpha ?? d.alpha, 'alpha', { gt: 0 }),
    beta: checkNumber(o.beta ?? d.beta, 'beta', { gt: 0, max: 100 }),
    lambda: checkNumber(o.lambda ?? d.lambda, 'lambda', { gt: 0 }),
    planes: checkInt(o.planes ?? d.planes, 'planes', { min: 1, max: 16 }),
    families: checkInt(o.families ?? d.families, 'families', { min: 1, max: 64 }),
    seed: checkSeed(o.seed ?? d.seed),
    rotate: checkBool(o.rotate ?? d.rotate, 'rotate'),
    center: checkBool(o.center ?? d.center, 'center'),
  };
  // alpha <= lambda would make the noise shrink (or vanish) as coverage grows.
  if (!(cfg.alpha > cfg.lambda)) throw new RangeError(`alpha must be larger than lambda, got alpha=${cfg.alpha}, lambda=${cfg.lambda}`);
  return cfg;
}

/** The buckets one client has hit in each of F hash families of P hyperplanes. */
export class LshCoverage {
  readonly buckets: number;
  /** F bitsets of 2^P bits, family after family (bit b of family f: byte f*2^P/8 + b/8, bit b%8). */
  readonly bits: Uint8Array;
  /** Buckets hit, per family. */
  readonly counts: Int32Array;
  #total = 0;

  constructor(
    readonly families: number,
    readonly planes: number,
  ) {
    checkInt(families, 'families', { min: 1, max: 64 });
    checkInt(planes, 'planes', { min: 1, max: 16 });
    this.buckets = 2 ** planes;
    this.bits = new Uint8Array(families * Math.ceil(this.buckets / 8));
    this.counts = new Int32Array(families);
  }

  /** Bytes of one family's bitset. */
  get familyBytes(): number {
    return Math.ceil(this.buckets / 8);
  }

  /**
   * Hashes one embedding from its F*P projections proj[at .. at+F*P) (family
   * f's hyperplanes at f*P .. f*P+P-1): bit j of the bucket is 1 when the
   * projection on hyperplane j is >= 0.
   */
  add(proj: ArrayLike<number>, at: number): void {
    const P = this.planes;
    for (let f = 0; f < this.families; f++) {
      let b = 0;
      for (let j = 0; j < P; j++) if (proj[at + f * P + j] >= 0) b |= 1 << j;
      this.#hit(f, b);
    }
  }

  /**
   * The same for one embedding whose bucket codes are already computed
   * (ops.lshCodes: codes[at + f] is family f's bucket), so that only F
   * numbers per row leave native memory.
   */
  addCodes(codes: ArrayLike<number>, at: number): void {
    for (let f = 0; f < this.families; f++) this.#hit(f, codes[at + f]);
  }

  #hit(f: number, b: number): void {
    const byte = f * this.familyBytes + (b >> 3);
    const mask = 1 << (b & 7);
    if ((this.bits[byte] & mask) === 0) {
      this.bits[byte] |= mask;
      this.counts[f]++;
      this.#total++;
    }
  }

  /** Coverage in percent: buckets hit over buckets, averaged over the families. */
  get percent(): number {
    return (100 * this.#total) / (this.families * this.buckets);
  }

  /** Replaces the bitsets (validated by the caller) and recounts. */
  setBits(bits: Uint8Array): void {
    this.bits.set(bits);
    this.#total = 0;
    const fb = this.familyBytes;
    for (let f = 0; f < this.families; f++) {
      let c = 0;
      for (let i = f * fb; i < (f + 1) * fb; i++) {
        let v = this.bits[i];
        while (v) {
          v &= v - 1;
          c++;
        }
      }
      this.counts[f] = c;
      this.#total += c;
    }
  }
}

interface ClientState {
  rows: number;
  cov: LshCoverage;
}

export class B4bDefense implements Defense {
  readonly name = 'b4b';
  readonly config: Readonly<B4bConfig>;
  readonly params: Readonly<Record<string, number | boolean>>;
  readonly spec: string;
  readonly #clients = new Map<string, ClientState>();
  readonly #rotations = new Map<string, Float32Array>();
  /** Embedding size, fixed by the first request (or a restored state). */
  #dim: number | null = null;
  /** The F*P hyperplanes [F*P, dim], row-major, for #dim. */
  #planes: Float32Array | null = null;
  /** center=true: the mean of the calibration embeddings (L2-normalised), [dim]. */
  #center: Float32Array | null = null;
  /** -H c for the current hyperplanes and centre (computed once per centre). */
  #bias: { center: Float32Array; planes: Float32Array; value: Float32Array } | null = null;

  constructor(options: B4bOptions = {}) {
    this.config = Object.freeze(resolveB4bConfig(options));
    this.params = Object.freeze({ ...this.config });
    const d = B4B_DEFAULTS as Record<string, number | boolean>;
    const changed = Object.entries(this.config).filter(([k, v]) => d[k] !== v);
    this.spec = `b4b${changed.length ? ':' + changed.map(([k, v]) => `${k}=${typeof v === 'number' ? specNumber(v) : v}`).join(',') : ''}`;
  }

  /** True until calibrate() has run, for center=true. */
  get needsCalibration(): boolean {
    return this.config.center && this.#center === null;
  }

  /** The hashing centre (a copy), or null. */
  get center(): Float32Array | null {
    return this.#center ? this.#center.slice() : null;
  }

  /**
   * center=true: sets the hashing centre to the mean of the L2-normalised
   * rows of `embeddings` [n, d], the encoder's raw embeddings of the
   * service's own data. (Harmless without center: the centre is then unused.)
   */
  calibrate(embeddings: Tensor): void {
    const [n, d] = checkNdim(embeddings, 2, 'embeddings', '[n, d]');
    if (this.#dim !== null && this.#dim !== d) throw new RangeError(`b4b: calibration embeddings have ${d} dimensions, the service's have ${this.#dim}`);
    const x = noGrad(() => tidy(() => ops.normalize(embeddings).toArray()));
    const mean = new Float64Array(d);
    for (let i = 0; i < n; i++) for (let k = 0; k < d; k++) mean[k] += x[i * d + k];
    for (let k = 0; k < d; k++) mean[k] /= n;
    this.#dim = d;
    this.#center = Float32Array.from(mean);
  }

  /** sigma(c) with this defense's alpha, beta and lambda. */
  sigma(coverage: number): number {
    return b4bSigma(coverage, this.config);
  }

  #setDim(d: number): void {
    if (this.#dim === null) this.#dim = d;
    else if (this.#dim !== d) throw new RangeError(`b4b: the embeddings have ${d} dimensions, earlier ones had ${this.#dim}`);
  }

  #hyperplanes(d: number): Float32Array {
    if (!this.#planes) {
      const rows = this.config.families * this.config.planes;
      this.#planes = tidy(() => Tensor.randn([rows, d], { seed: deriveSeed(this.config.seed, SEED_DOMAIN.hyperplanes) }).toArray());
    }
    return this.#planes;
  }

  /** The client's rotation Q [d, d] (answers are x Q). */
  rotationOf(clientId: string, d: number): Float32Array {
    let q = this.#rotations.get(clientId);
    if (!q || q.length !== d * d) {
      q = randomOrthogonal(d, clientSeed(this.config.seed, SEED_DOMAIN.rotation, clientId));
      this.#rotations.set(clientId, q);
    }
    return q;
  }

  #client(clientId: string): ClientState {
    let s = this.#clients.get(clientId);
    if (!s) {
      s = { rows: 0, cov: new LshCoverage(this.config.families, this.config.planes) };
      this.#clients.set(clientId, s);
    }
    return s;
  }

  /** The client's coverage in percent (0 for a client never seen). */
  coverageOf(clientId: string): number {
    return this.#clients.get(clientId)?.cov.percent ?? 0;
  }

  clientStats(clientId: string): Record<string, number> {
    const c = this.coverageOf(clientId);
    return { rows: this.#clients.get(clientId)?.rows ?? 0, coverage: c, sigma: this.sigma(c) };
  }

  /**
   * Updates the client's coverage with the embeddings only (no answer): what
   * apply() does to the state, for measuring coverage without computing noise.
   */
  observe(clientId: string, embeddings: Tensor): number[] {
    const [n, d] = checkNdim(embeddings, 2, 'embeddings', '[n, d]');
    if (this.needsCalibration) {
      throw new Error('b4b:center=true hashes around the mean of the service\'s own embeddings: call calibrate() (or calibrateDefense()) before serving');
    }
    this.#setDim(d);
    const s = this.#client(clientId);
    const { families: F, planes: P } = this.config;
    const FP = F * P;
    const codes = noGrad(() =>
      tidy(() => {
        const H = Tensor.from(this.#hyperplanes(d), [FP, d]);
        if (!this.config.center) return ops.lshCodes(ops.linear(embeddings, H), F, P).toArray();
        return ops.lshCodes(ops.linear(ops.normalize(embeddings), H, Tensor.from(this.#centerBias(FP, d), [FP])), F, P).toArray();
      }),
    );
    const sigmas: number[] = [];
    for (let r = 0; r < n; r++) {
      s.cov.addCodes(codes, r * F);
      sigmas.push(this.sigma(s.cov.percent));
    }
    s.rows += n;
    return sigmas;
  }

  /** sign(w . (x/||x|| - c)) = sign(w . x/||x|| - w . c): the bias -H c, computed once per centre. */
  #centerBias(FP: number, d: number): Float32Array {
    const c = this.#center!;
    const h = this.#planes!;
    if (this.#bias && this.#bias.center === c && this.#bias.planes === h) return this.#bias.value;
    const bias = new Float32Array(FP);
    for (let j = 0; j < FP; j++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += h[j * d + k] * c[k];
      bias[j] = -s;
    }
    this.#bias = { center: c, planes: h, value: bias };
    return bias;
  }

  apply(clientId: string, embeddings: Tensor): Tensor {
    const [n, d] = checkNdim(embeddings, 2, 'embeddings', '[n, d]');
    const rowStart = this.#clients.get(clientId)?.rows ?? 0;
    const sigmas = this.observe(clientId, embeddings);
    return noGrad(() =>
      tidy(() => {
        let y = ops.normalize(embeddings);
        if (sigmas.some((s) => s > 0)) {
          // The same stream as the noise defense's: unit noise, scaled per row.
          const z = ops.gaussianNoise(Tensor.zeros([n, d]), 1, clientSeed(this.config.seed, SEED_DOMAIN.noise, clientId), rowStart * d);
          y = ops.add(y, ops.scaleRows(z, Tensor.from(sigmas, [n])));
        }
        if (this.config.rotate) y = ops.matmul(y, Tensor.from(this.rotationOf(clientId, d), [d, d]));
        return y;
      }),
    );
  }

  exportState(): { dim: number | null; center: string | null; clients: [string, { rows: number; bits: string }][] } {
    const b64 = (a: Uint8Array | Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64');
    return {
      dim: this.#dim,
      center: this.#center ? b64(this.#center) : null,
      clients: [...this.#clients].map(([id, s]) => [id, { rows: s.rows, bits: b64(s.cov.bits) }]),
    };
  }

  importState(state: unknown): void {
    const where = 'b4b state';
    const o = stateObject(state, where);
    const dim = o.dim;
    if (dim !== null && (typeof dim !== 'number' || !Number.isInteger(dim) || dim < 1)) stateError(where, `dim must be a positive integer or null, got ${JSON.stringify(dim)}`);
    if (dim !== null && this.#dim !== null && dim !== this.#dim) stateError(where, `embeddings of ${dim} dimensions, this defense already answered ${this.#dim}-dimensional ones`);
    let center: Float32Array | null = null;
    if (o.center !== null && o.center !== undefined) {
      if (typeof o.center !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(o.center)) stateError(where, 'center must be a base64 string or null');
      const raw = Buffer.from(o.center, 'base64');
      if (dim === null || raw.length !== (dim as number) * 4) stateError(where, `center of ${raw.length} bytes, expected ${dim === null ? 'none (no dim)' : (dim as number) * 4}`);
      center = new Float32Array(dim as number);
      new Uint8Array(center.buffer).set(raw);
      if (!center.every(Number.isFinite)) stateError(where, 'center has non-finite values');
    }
    const expected = this.config.families * Math.ceil(2 ** this.config.planes / 8);
    const parsed = stateClients(o.clients, where).map(([id, v]) => {
      const w = `${where}, client ${JSON.stringify(id)}`;
      const c = stateObject(v, w);
      const rows = stateCount(c.rows, w, 'rows');
      if (typeof c.bits !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(c.bits)) stateError(w, 'bits must be a base64 string');
      const bits = Buffer.from(c.bits, 'base64');
      if (bits.length !== expected) {
        stateError(w, `bitsets of ${bits.length} bytes, expected ${expected} (${this.config.families} families of 2^${this.config.planes} buckets)`);
      }
      return { id, rows, bits };
    });
    // Everything checked: now replace the state.
    this.#clients.clear();
    if (dim !== null && this.#dim === null) this.#dim = dim as number;
    // A state saved before calibration keeps this defense's own centre.
    if (center) this.#center = center;
    for (const { id, rows, bits } of parsed) {
      const s = this.#client(id);
      s.rows = rows;
      s.cov.setBits(bits);
    }
  }
}
