// The in-memory dataset: uint8 images [N, C, H, W] and int32 labels [N].
// Pixels stay as bytes until a batch is converted (toTensor / augmentBatch),
// so a 60k-image dataset costs 47 MB, not 188 MB of floats.
import { checkAllocation, checkInt, checkObject, describe } from '../core/validate';

export interface Dataset {
  /** e.g. "fashion-mnist/train", "cifar10/test", or the folder's path. */
  readonly name: string;
  readonly channels: 1 | 3;
  readonly height: number;
  readonly width: number;
  readonly numClasses: number;
  /** N * channels * height * width bytes, image after image, each channel-major (NCHW). */
  readonly images: Uint8Array;
  /** N labels in [0, numClasses). */
  readonly labels: Int32Array;
  /** Human-readable class names, numClasses of them, when known. */
  readonly classNames?: readonly string[];
}

export type Split = 'train' | 'test';

/** Number of images of a dataset. */
export function datasetSize(ds: Dataset): number {
  if (ds === null || typeof ds !== 'object' || !((ds as { labels?: unknown }).labels instanceof Int32Array)) {
    throw new TypeError(`dataset must be a Dataset (with an Int32Array of labels), got ${describe(ds)}`);
  }
  return ds.labels.length;
}

/**
 * Checks that a value is a consistent Dataset (sizes, types, label range)
 * and returns it; throws a TypeError / RangeError naming `name` otherwise.
 * `checkLabels` scans every label (O(N)); the batch functions skip it.
 */
export function checkDataset(v: unknown, name = 'dataset', checkLabels = true): Dataset {
  if (typeof name !== 'string') throw new TypeError(`name must be a string, got ${describe(name)}`);
  if (typeof checkLabels !== 'boolean') throw new TypeError(`checkLabels must be a boolean, got ${describe(checkLabels)}`);
  const o = checkObject(v, name);
  if (typeof o.name !== 'string') throw new TypeError(`${name}.name must be a string, got ${describe(o.name)}`);
  if (o.channels !== 1 && o.channels !== 3) throw new RangeError(`${name}.channels must be 1 or 3, got ${String(o.channels)}`);
  const h = checkInt(o.height, `${name}.height`, { min: 1, max: 32768 });
  const w = checkInt(o.width, `${name}.width`, { min: 1, max: 32768 });
  const k = checkInt(o.numClasses, `${name}.numClasses`, { min: 1, max: 2 ** 31 - 1 });
  if (!(o.images instanceof Uint8Array)) throw new TypeError(`${name}.images must be a Uint8Array`);
  if (!(o.labels instanceof Int32Array)) throw new TypeError(`${name}.labels must be an Int32Array`);
  const n = o.labels.length;
  const per = o.channels * h * w;
  if (o.images.length !== n * per) {
    throw new RangeError(`${name}.images has ${o.images.length} bytes but ${n} labels need ${n} * ${o.channels} * ${h} * ${w} = ${n * per}`);
  }
  if (checkLabels) {
    const labels = o.labels;
    for (let i = 0; i < n; i++) {
      if (labels[i] < 0 || labels[i] >= k) throw new RangeError(`${name}.labels[${i}] = ${labels[i]} is outside [0, ${k})`);
    }
  }
  if (o.classNames !== undefined) {
    if (!Array.isArray(o.classNames) || o.classNames.length !== k || o.classNames.some((c) => typeof c !== 'string')) {
      throw new TypeError(`${name}.classNames must be an array of ${k} strings`);
    }
  }
  return v as Dataset;
}

/**
 * The order in which the loaders lay out a split: round-robin over the
 * classes (first image of class 0, of class 1, ..., of class K-1, then the
 * second of each, ...), skipping classes that have run out. Any prefix of the
 * result is as class-balanced as it can be, so `limit` keeps every class.
 * counts[c] is the number of images of class c; returns [class, index within
 * class] pairs in output order.
 */
export function interleavedOrder(counts: readonly number[]): Array<[number, number]> {
  if (!Array.isArray(counts)) throw new TypeError(`counts must be an array of integers, got ${describe(counts)}`);
  let total = 0;
  counts.forEach((c, i) => {
    total += checkInt(c, `counts[${i}]`, { min: 0, max: 2 ** 31 - 1 });
  });
  checkAllocation(total, 64, 'counts (total)');
  const out: Array<[number, number]> = [];
  const longest = counts.reduce((m, c) => Math.max(m, c), 0);
  for (let i = 0; i < longest; i++) {
    for (let c = 0; c < counts.length; c++) if (i < counts[c]) out.push([c, i]);
  }
  return out;
}

/** The first n images (views on the same bytes; n is clamped to the size). */
export function takeFirst(ds: Dataset, n: number): Dataset {
  checkDataset(ds, 'dataset', false);
  checkInt(n, 'limit', { min: 0 });
  const size = datasetSize(ds);
  if (n >= size) return ds;
  const per = ds.channels * ds.height * ds.width;
  return { ...ds, images: ds.images.subarray(0, n * per), labels: ds.labels.subarray(0, n) };
}

/** A copy holding the images at `indices`, in that order. */
export function subset(ds: Dataset, indices: ArrayLike<number>, name?: string): Dataset {
  checkDataset(ds, 'dataset', false);
  if (name === undefined) name = ds.name;
  if (typeof name !== 'string') throw new TypeError(`name must be a string, got ${describe(name)}`);
  if (indices === null || typeof indices !== 'object' || !Number.isSafeInteger((indices as { length?: unknown }).length)) {
    throw new TypeError(`indices must be an Int32Array or an array of integers, got ${describe(indices)}`);
  }
  const size = datasetSize(ds);
  const per = ds.channels * ds.height * ds.width;
  checkAllocation(indices.length * per, 1, `the subset's images (${indices.length} x ${per} bytes)`);
  const images = new Uint8Array(indices.length * per);
  const labels = new Int32Array(indices.length);
  for (let i = 0; i < indices.length; i++) {
    const j = indices[i];
    if (!Number.isInteger(j) || j < 0 || j >= size) throw new RangeError(`indices[${i}] = ${j} is outside [0, ${size})`);
    images.set(ds.images.subarray(j * per, (j + 1) * per), i * per);
    labels[i] = ds.labels[j];
  }
  return { ...ds, name, images, labels };
}

/** Number of images of each class. */
export function classCounts(ds: Dataset): number[] {
  checkDataset(ds, 'dataset');
  const counts = new Array<number>(ds.numClasses).fill(0);
  for (const l of ds.labels) counts[l]++;
  return counts;
}
