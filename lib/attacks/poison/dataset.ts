// D ∪ P: the clean pre-training set D with the poisoning inputs P planted at
// seeded random positions, |P| = round(rho * |D|), and the manifest that
// lib/data/poisoned.ts writes beside the images.
import { checkNumber, checkOptions, checkSeed, describe } from '../../core/validate';
import { Prng, deriveSeed } from '../../data/prng';
import { checkDataset, datasetSize, type Dataset } from '../../data/dataset';
import { sha256Hex, type PoisonedDataset } from '../../data/poisoned';
import { buildPoisons, poisonCount, type BuildPoisonsOptions, type PoisonTarget } from './construct';

export interface PoisonDatasetOptions extends Omit<BuildPoisonsOptions, 'count'> {
  /** rho: poisons = round(rate * |D|). */
  rate: number;
  /** Provenance recorded in manifest.extra (e.g. the surrogate file's digest). */
  extra?: Record<string, unknown>;
}

const KEYS = ['rate', 'construction', 'seed', 'surrogate', 'candidates', 'extra'];

/** Builds P for the targets and returns D ∪ P with its manifest (nothing is written). */
export function makePoisonedDataset(clean: Dataset, targets: readonly PoisonTarget[], options: PoisonDatasetOptions): PoisonedDataset {
  checkDataset(clean, 'clean');
  if (options === undefined) throw new TypeError('options must be an object { rate, construction, seed, ... }, got undefined');
  const o = checkOptions<PoisonDatasetOptions>(options, 'options', KEYS);
  if (!Array.isArray(targets) || targets.length === 0) throw new TypeError(`targets must be a non-empty array of PoisonTarget, got ${describe(targets)}`);
  Array.from(targets).forEach((t, i) => {
    if (t === null || typeof t !== 'object') throw new TypeError(`targets[${i}] must be a PoisonTarget, got ${describe(t)}`);
  });
  const rate = checkNumber(o.rate, 'options.rate', { gt: 0, lt: 1 });
  const seed = checkSeed(o.seed, 'options.seed');
  targets.forEach((t, i) => {
    if (t.targetClass >= clean.numClasses) throw new RangeError(`targets[${i}].targetClass ${t.targetClass} is not a class of ${clean.name}`);
  });
  const n = datasetSize(clean);
  const count = poisonCount(rate, n);
  const built = buildPoisons(targets, clean, { count, construction: options.construction, seed, surrogate: options.surrogate, candidates: options.candidates });
  const total = n + count;
  // Seeded positions of the poisons in D ∪ P (sorted); clean images keep their order.
  const slots = new Prng(deriveSeed(seed, 0x51075), 0).shuffle(Int32Array.from({ length: total }, (_, i) => i)).subarray(0, count).sort();
  const per = clean.channels * clean.height * clean.width;
  const images = new Uint8Array(total * per);
  const labels = new Int32Array(total);
  const isPoison = new Uint8Array(total);
  slots.forEach((s) => (isPoison[s] = 1));
  let c = 0;
  let p = 0;
  for (let i = 0; i < total; i++) {
    if (isPoison[i]) {
      images.set(built.images.subarray(p * per, (p + 1) * per), i * per);
      // Unused by SimCLR; the target class marks what the poison is for.
      labels[i] = targets[built.targetOf[p]].targetClass;
      p++;
    } else {
      images.set(clean.images.subarray(c * per, (c + 1) * per), i * per);
      labels[i] = clean.labels[c];
      c++;
    }
  }
  const dataset: Dataset = { ...clean, name: `${clean.name}+poison`, images, labels };
  return {
    dataset,
    manifest: {
      base: clean.name,
      cleanImages: n,
      construction: options.construction,
      rate,
      seed,
      targets: targets.map((t) => ({
        task: t.task,
        index: t.index,
        trueClass: t.trueClass,
        targetClass: t.targetClass,
        referenceIndices: [...t.referenceIndices],
        imageSha256: sha256Hex(t.image),
      })),
      poisonIndices: Array.from(slots),
      poisonTargets: Array.from(built.targetOf),
      extra: { candidates: options.construction === 'surrogate' ? (options.candidates ?? 8) : 1, ...(options.extra ?? {}) },
    },
  };
}
