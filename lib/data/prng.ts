// The seeded PRNG of the data layer (shuffling, augmentation parameters).
//
// sfc32 (Chris Doty-Humphrey's Small Fast Counting generator, 128-bit state,
// passes PractRand to 2^60+ bytes): fast in plain 32-bit JS arithmetic. The
// state is derived from a 53-bit integer seed and a stream number through a
// 32-bit finaliser (MurmurHash3's fmix32), so nearby seeds give unrelated
// streams. Sequences depend only on (seed, stream): the same on every
// platform and Node version.
import { checkInt, checkNumber, checkSeed, describe } from '../core/validate';

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Low and high 32-bit words of an integer in [0, 2^53). */
function words(v: number): [number, number] {
  return [v >>> 0, Math.floor(v / 4294967296) >>> 0];
}

export class Prng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;

  /** A generator for (seed, stream); seed and stream are integers in [0, 2^53). */
  constructor(seed: number, stream = 0) {
    checkSeed(seed, 'seed');
    checkSeed(stream, 'stream');
    const [s0, s1] = words(seed);
    const [t0, t1] = words(stream);
    this.#a = fmix32(s0 ^ 0x9e3779b9);
    this.#b = fmix32(s1 ^ 0x243f6a88 ^ fmix32(t1 + 0x7f4a7c15));
    this.#c = fmix32(t0 ^ 0xb7e15162);
    this.#d = 1;
    for (let i = 0; i < 15; i++) this.nextUint32();
  }

  /** A uniform 32-bit unsigned integer. */
  nextUint32(): number {
    const a = this.#a, b = this.#b, c = this.#c;
    const d = (this.#d + 1) | 0;
    const t = (((a + b) | 0) + d) | 0;
    this.#d = d;
    this.#a = b ^ (b >>> 9);
    this.#b = (c + (c << 3)) | 0;
    this.#c = (((c << 21) | (c >>> 11)) + t) | 0;
    return t >>> 0;
  }

  /** Uniform in [0, 1) with 53 random bits. */
  next(): number {
    const hi = this.nextUint32() >>> 5; // 27 bits
    const lo = this.nextUint32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** Uniform in [lo, hi). */
  uniform(lo: number, hi: number): number {
    checkNumber(lo, 'lo');
    checkNumber(hi, 'hi');
    if (!Number.isFinite(hi - lo)) throw new RangeError(`hi - lo (${hi} - ${lo}) is not finite`);
    return lo + (hi - lo) * this.next();
  }

  /** Uniform integer in [0, n), n in [1, 2^32], without modulo bias. */
  int(n: number): number {
    // Validated: 0, NaN or a fraction would make the rejection loop below never end.
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 4294967296) {
      checkInt(n, 'n', { min: 1, max: 4294967296 });
    }
    if (n === 1) return 0;
    // Rejection on the largest multiple of n below 2^32.
    const limit = 4294967296 - (4294967296 % n);
    for (;;) {
      const x = this.nextUint32();
      if (x < limit) return x % n;
    }
  }

  /** True with probability p. */
  bernoulli(p: number): boolean {
    checkNumber(p, 'p', { min: 0, max: 1 });
    return this.next() < p;
  }

  /** In-place Fisher-Yates shuffle. */
  shuffle<T extends { length: number; [i: number]: number }>(a: T): T {
    if (a === null || typeof a !== 'object' || !Number.isSafeInteger((a as { length?: unknown }).length) || a.length < 0) {
      throw new TypeError(`a must be an array or typed array, got ${describe(a)}`);
    }
    if (a.length > 4294967296) throw new RangeError(`a has ${a.length} elements, more than 2^32`);
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = a[i];
      a[i] = a[j];
      a[j] = t;
    }
    return a;
  }
}

/**
 * A seed in [0, 2^53) derived from a base seed and integer parts (epoch, step,
 * view, ...): different parts give unrelated seeds, the same parts the same one.
 */
export function deriveSeed(seed: number, ...parts: number[]): number {
  checkSeed(seed, 'seed');
  let [h0, h1] = words(seed);
  h0 = fmix32(h0 ^ 0x3c6ef372);
  h1 = fmix32(h1 ^ 0xa54ff53a ^ h0);
  parts.forEach((p, i) => {
    checkInt(p, `parts[${i}]`, { min: 0, max: Number.MAX_SAFE_INTEGER });
    const [p0, p1] = words(p);
    h0 = fmix32((h0 ^ p0) + Math.imul(0x9e3779b9, i + 1));
    h1 = fmix32((h1 ^ p1 ^ h0) + 0x7f4a7c15);
    h0 = fmix32(h0 ^ h1);
  });
  return (h1 & 0x1fffff) * 4294967296 + h0;
}
