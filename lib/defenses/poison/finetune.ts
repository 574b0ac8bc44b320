// Post-processing defense against PoisonedEncoder: continue SimCLR on a small
// clean subset, starting from the poisoned encoder's weights (a fresh
// projection head and optimizer), hoping the clean positive pairs undo the
// target/reference pull. Cost: `epochs` passes over fraction * |D| clean
// images, and the defender must hold that clean data.
import { checkInt, checkNumber, checkOptions, checkSeed } from '../../core/validate';
import { epochPermutation } from '../../data/batching';
import { checkDataset, datasetSize, subset, type Dataset } from '../../data/dataset';
import type { Encoder } from '../../nn/encoders';
import { pretrainSimclr, type PretrainResult } from '../../ssl/simclr';
import type { ProgressSink } from '../../report/progress';

export interface FinetuneOptions {
  /** Fraction of `clean` used (a seeded random subset), e.g. 0.01 or 0.1. */
  fraction: number;
  epochs: number;
  batchSize?: number;
  lr?: number;
  seed: number;
  progress?: ProgressSink;
}

const KEYS = ['fraction', 'epochs', 'batchSize', 'lr', 'seed', 'progress'];

/** The seeded clean subset fine-tuning uses: round(fraction * |clean|) images (at least 2). */
export function cleanSubset(clean: Dataset, fraction: number, seed: number): Dataset {
  checkDataset(clean, 'clean', false);
  checkNumber(fraction, 'fraction', { gt: 0, max: 1 });
  checkSeed(seed);
  const n = datasetSize(clean);
  const k = Math.max(2, Math.round(fraction * n));
  if (k > n) throw new RangeError(`clean has ${n} images, fewer than the ${k} fine-tuning needs`);
  const pick = epochPermutation(n, seed, 0xf1).subarray(0, k).sort();
  return subset(clean, pick, `${clean.name}[${k}]`);
}

/** SimCLR fine-tuning of `poisoned` on a clean subset; the input encoder is not modified. */
export function finetuneOnClean(poisoned: Encoder, clean: Dataset, options: FinetuneOptions): PretrainResult & { cleanImages: number } {
  if (options === undefined) throw new TypeError('options must be an object { fraction, epochs, seed, ... }, got undefined');
  const o = checkOptions<FinetuneOptions>(options, 'options', KEYS);
  const epochs = checkInt(o.epochs, 'options.epochs', { min: 1, max: 10000 });
  const data = cleanSubset(clean, checkNumber(o.fraction, 'options.fraction', { gt: 0, max: 1 }), checkSeed(o.seed, 'options.seed'));
  const res = pretrainSimclr(data, { initialEncoder: poisoned, epochs, batchSize: o.batchSize, lr: o.lr, seed: o.seed, progress: o.progress });
  return { ...res, cleanImages: datasetSize(data) };
}
