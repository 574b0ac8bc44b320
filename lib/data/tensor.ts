// Batch conversion: dataset images (uint8) to the encoder's float input.
//
// toTensor(ds, indices): the images as a float batch [B, C, H, W], pixels
// scaled to [0, 1] and normalised with mean 0.5, std 0.5: x = (p/255 - 0.5)/0.5.
import { native } from '../core/native';
import { Tensor } from '../core/tensor';
import { checkAllocation, checkInt, describe } from '../core/validate';
import { type Dataset, checkDataset, datasetSize } from './dataset';

/** Normalisation applied at the encoder input: x = (p/255 - MEAN) / STD. */
export const NORMALIZE_MEAN = 0.5;
export const NORMALIZE_STD = 0.5;

/** Validated Int32Array of indices into a dataset of `size` images. */
export function toIndexArray(indices: ArrayLike<number>, size: number, name = 'indices'): Int32Array {
  if (typeof name !== 'string') throw new TypeError(`name must be a string, got ${describe(name)}`);
  checkInt(size, 'size', { min: 0, max: 2 ** 31 - 1 });
  if (indices === null || typeof indices !== 'object' || typeof (indices as { length?: unknown }).length !== 'number') {
    throw new TypeError(`${name} must be an Int32Array or an array of integers`);
  }
  const len = (indices as { length: number }).length;
  if (!Number.isSafeInteger(len) || len < 0) throw new RangeError(`${name}.length must be a non-negative integer, got ${len}`);
  checkAllocation(len, 4, name);
  const out = indices instanceof Int32Array ? indices : new Int32Array(len);
  for (let i = 0; i < len; i++) {
    const v = indices[i];
    if (!Number.isInteger(v) || v < 0 || v >= size) throw new RangeError(`${name}[${i}] = ${typeof v === 'number' ? v : describe(v)} is not an image index in [0, ${size})`);
    out[i] = v;
  }
  return out;
}

/** The images at `indices` as a normalised float batch [B, C, H, W] (no augmentation). */
export function toTensor(ds: Dataset, indices: ArrayLike<number>): Tensor {
  checkDataset(ds, 'dataset', false);
  const idx = toIndexArray(indices, datasetSize(ds));
  checkAllocation(idx.length * ds.channels * ds.height * ds.width, 4, `the batch [${idx.length}, ${ds.channels}, ${ds.height}, ${ds.width}]`);
  return new Tensor(native.imagesToTensor(ds.images, idx, ds.channels, ds.height, ds.width, NORMALIZE_MEAN, NORMALIZE_STD));
}

/** The labels of the images at `indices`. */
export function labelsOf(ds: Dataset, indices: ArrayLike<number>): Int32Array {
  checkDataset(ds, 'dataset', false);
  const idx = toIndexArray(indices, datasetSize(ds));
  const out = new Int32Array(idx.length);
  for (let i = 0; i < idx.length; i++) out[i] = ds.labels[idx[i]];
  return out;
}
