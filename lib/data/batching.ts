// Mini-batches of dataset indices. An epoch's order is a Fisher-Yates
// permutation drawn from Prng(deriveSeed(seed, epoch)): the same (seed, epoch)
// gives the same batches on every run, another epoch another order.
import { checkBool, checkInt, checkObject, checkOptions, checkSeed } from '../core/validate';
import { Prng, deriveSeed } from './prng';

export interface BatchOptions {
  batchSize: number;
  /** Shuffle seed (required when shuffling). */
  seed?: number;
  /** Epoch number (0-based); part of the shuffle seed. Default 0. */
  epoch?: number;
  /** Shuffle the order (default true); false gives 0, 1, 2, ... */
  shuffle?: boolean;
  /** Drop the last batch when it is smaller than batchSize (default false). */
  dropLast?: boolean;
}

/** The permutation of [0, n) used for (seed, epoch). */
export function epochPermutation(n: number, seed: number, epoch = 0): Int32Array {
  checkInt(n, 'n', { min: 0, max: 2 ** 31 - 1 });
  checkSeed(seed, 'seed');
  checkInt(epoch, 'epoch', { min: 0, max: Number.MAX_SAFE_INTEGER });
  const perm = new Int32Array(n);
  for (let i = 0; i < n; i++) perm[i] = i;
  return new Prng(deriveSeed(seed, epoch)).shuffle(perm);
}

/** How many batches batchIndices yields. */
export function numBatches(n: number, batchSize: number, dropLast = false): number {
  checkInt(n, 'n', { min: 0 });
  checkInt(batchSize, 'batchSize', { min: 1 });
  checkBool(dropLast, 'dropLast');
  return dropLast ? Math.floor(n / batchSize) : Math.ceil(n / batchSize);
}

/** Index batches (Int32Array each) covering [0, n) once, in the epoch's order. */
export function* batchIndices(n: number, options: BatchOptions): Generator<Int32Array, void, undefined> {
  const opts = checkOptions(checkObject(options, 'options'), 'options', ['batchSize', 'seed', 'epoch', 'shuffle', 'dropLast']) as unknown as BatchOptions;
  checkInt(n, 'n', { min: 0, max: 2 ** 31 - 1 });
  const bs = checkInt(opts.batchSize, 'options.batchSize', { min: 1 });
  const shuffle = opts.shuffle === undefined ? true : checkBool(opts.shuffle, 'options.shuffle');
  const dropLast = opts.dropLast === undefined ? false : checkBool(opts.dropLast, 'options.dropLast');
  const epoch = opts.epoch === undefined ? 0 : checkInt(opts.epoch, 'options.epoch', { min: 0, max: Number.MAX_SAFE_INTEGER });
  let order: Int32Array;
  if (shuffle) {
    if (opts.seed === undefined) throw new TypeError('options.seed is required when shuffling');
    order = epochPermutation(n, checkSeed(opts.seed, 'options.seed'), epoch);
  } else {
    order = new Int32Array(n);
    for (let i = 0; i < n; i++) order[i] = i;
  }
  const count = numBatches(n, bs, dropLast);
  for (let b = 0; b < count; b++) yield order.slice(b * bs, Math.min(n, (b + 1) * bs));
}

/**
 * Batches of one epoch: the seeded permutation of (seed, epoch) cut into
 * batches of batchSize; a last batch of fewer than 2 images is dropped
 * (NT-Xent and batch norm need two).
 */
export function epochBatches(n: number, batchSize: number, seed: number, epoch: number): Int32Array[] {
  return [...batchIndices(n, { batchSize, seed, epoch })].filter((b) => b.length >= 2);
}
