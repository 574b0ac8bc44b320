// Pre-processing defense against PoisonedEncoder: find and drop spliced
// images before pre-training.
//
// A poisoning input x_t ⊕ x_r holds two unrelated objects side by side or one
// above the other. Under a reference encoder f_ref (one the defender trusts,
// e.g. pre-trained on a clean public set), the two halves of such an image
// embed far apart along the split between the parts, while the halves of a
// clean image show the same object. The score of an image x is
//   s(x) = max(1 - cos(f_ref(L), f_ref(R)), 1 - cos(f_ref(T), f_ref(B)))
// with L, R, T, B its left, right, top and bottom halves, each resized to the
// full input size (the encoder's native resolution). The detector drops the
// images with the largest scores: a fixed fraction, or those above a
// threshold. Cost: 4 inference passes per pre-training image, no training;
// the clean data it needs is whatever f_ref was trained on.
import { noGrad, tidy } from '../../core/tensor';
import { checkInt, checkNumber, checkOptions, describe } from '../../core/validate';
import { embedSync, type Module } from '../../nn/module';
import { augmentWithParams, encodeAugmentParams, identityParams, type ImageAugmentParams } from '../../data/augment';
import { checkDataset, datasetSize, type Dataset } from '../../data/dataset';

export interface DetectOptions {
  /** Drop this fraction of the images with the largest scores (default 0.02). Exclusive with threshold. */
  dropFraction?: number;
  /** Drop the images scoring above this. */
  threshold?: number;
  batchSize?: number;
}

export interface Detection {
  /** s(x) per image. */
  scores: Float32Array;
  /** The threshold applied (scores > threshold are dropped). */
  threshold: number;
  /** Indices dropped, ascending. */
  drop: Int32Array;
}

/** The four half crops of an image (left, right, top, bottom), as augmentation records. */
function halves(h: number, w: number): ImageAugmentParams[] {
  const id = identityParams(h, w);
  const hw = Math.floor(w / 2);
  const hh = Math.floor(h / 2);
  return [
    { ...id, left: 0, width: hw },
    { ...id, left: w - hw, width: hw },
    { ...id, top: 0, height: hh },
    { ...id, top: h - hh, height: hh },
  ];
}

function cosRows(e: Float32Array, dim: number, a: number, b: number): number {
  let ab = 0, aa = 0, bb = 0;
  for (let k = 0; k < dim; k++) {
    const x = e[a * dim + k];
    const y = e[b * dim + k];
    ab += x * y;
    aa += x * x;
    bb += y * y;
  }
  return ab / Math.max(Math.sqrt(aa * bb), 1e-12);
}

/** s(x) for every image of data under the reference encoder (see the header). */
export function halfDisagreementScores(referenceEncoder: Module, data: Dataset, options: { batchSize?: number } = {}): Float32Array {
  if (!referenceEncoder || typeof (referenceEncoder as Module).forward !== 'function') throw new TypeError('referenceEncoder must be an encoder (Module)');
  checkDataset(data, 'data', false);
  const bs = checkInt(checkOptions<{ batchSize?: number }>(options, 'options', ['batchSize']).batchSize ?? 128, 'options.batchSize', { min: 1, max: 65536 });
  const n = datasetSize(data);
  const scores = new Float32Array(n);
  const quarter = halves(data.height, data.width);
  noGrad(() => {
    for (let s = 0; s < n; s += bs) {
      const m = Math.min(bs, n - s);
      const idx = new Int32Array(4 * m);
      const recs: ImageAugmentParams[] = [];
      for (let i = 0; i < m; i++) {
        for (let k = 0; k < 4; k++) {
          idx[4 * i + k] = s + i;
          recs.push(quarter[k]);
        }
      }
      const e = tidy(() => embedSync(referenceEncoder, augmentWithParams(data, idx, encodeAugmentParams(recs))).toArray());
      const dim = e.length / (4 * m);
      for (let i = 0; i < m; i++) {
        const lr = 1 - cosRows(e, dim, 4 * i, 4 * i + 1);
        const tb = 1 - cosRows(e, dim, 4 * i + 2, 4 * i + 3);
        scores[s + i] = Math.max(lr, tb);
      }
    }
  });
  return scores;
}

/** Scores every image and picks those to drop (the top dropFraction, or those above threshold). */
export function detectSplicedImages(referenceEncoder: Module, data: Dataset, options: DetectOptions = {}): Detection {
  const o = checkOptions<DetectOptions>(options, 'options', ['dropFraction', 'threshold', 'batchSize']);
  if (o.dropFraction !== undefined && o.threshold !== undefined) throw new RangeError('give options.dropFraction or options.threshold, not both');
  const fraction = o.threshold === undefined ? checkNumber(o.dropFraction ?? 0.02, 'options.dropFraction', { min: 0, lt: 1 }) : null;
  const given = o.threshold === undefined ? null : checkNumber(o.threshold, 'options.threshold');
  const scores = halfDisagreementScores(referenceEncoder, data, o.batchSize === undefined ? {} : { batchSize: o.batchSize });
  let threshold: number;
  if (given !== null) threshold = given;
  else {
    const k = Math.round(fraction! * scores.length);
    const sorted = Float32Array.from(scores).sort();
    // Drop exactly the k largest (ties at the cut may add a few).
    threshold = k === 0 ? Infinity : k >= sorted.length ? -Infinity : sorted[sorted.length - k - 1];
  }
  const drop: number[] = [];
  scores.forEach((v, i) => {
    if (v > threshold) drop.push(i);
  });
  return { scores, threshold, drop: Int32Array.from(drop) };
}

/** How many of the dropped images were poisons and how many clean. */
export function detectionCounts(drop: ArrayLike<number>, poisonIndices: readonly number[], total: number): { poisonsDropped: number; poisons: number; cleanDropped: number; clean: number } {
  checkInt(total, 'total', { min: 0, max: 2 ** 31 - 1 });
  const indices = (v: unknown, name: string): void => {
    if (!(Array.isArray(v) || v instanceof Int32Array || v instanceof Uint32Array)) throw new TypeError(`${name} must be an array or Int32Array of image indices, got ${describe(v)}`);
    const a = v as ArrayLike<unknown>;
    for (let i = 0; i < a.length; i++) {
      const x = a[i];
      if (typeof x !== 'number' || !Number.isInteger(x) || x < 0 || x >= total) {
        throw new (typeof x === 'number' ? RangeError : TypeError)(`${name}[${i}] must be an image index in [0, ${total}), got ${describe(x)}`);
      }
    }
  };
  indices(drop, 'drop');
  indices(poisonIndices, 'poisonIndices');
  const poison = new Set(poisonIndices);
  let poisonsDropped = 0;
  for (let i = 0; i < drop.length; i++) if (poison.has(drop[i])) poisonsDropped++;
  return { poisonsDropped, poisons: poison.size, cleanDropped: drop.length - poisonsDropped, clean: total - poison.size };
}
