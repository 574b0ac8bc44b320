// Embeddings of a whole dataset by a frozen encoder (eval mode, no
// augmentation), in batches, through the encoder's compiled inference plan.
import { Tensor, noGrad, tidy } from '../core/tensor';
import { checkAllocation, checkInt, checkOptions, describe } from '../core/validate';
import { Module, embedSync } from '../nn/module';
import { checkDataset, datasetSize, type Dataset } from '../data/dataset';
import { toTensor, NORMALIZE_MEAN, NORMALIZE_STD } from '../data/tensor';
import type { Embeddings } from './probe';

/** Runs the encoder over every image of ds; returns [n, dim] embeddings with the labels. */
export function embedDataset(encoder: Module, ds: Dataset, options: { batchSize?: number } = {}): Embeddings {
  if (!(encoder instanceof Module)) throw new TypeError(`encoder must be a Module, got ${describe(encoder)}`);
  checkDataset(ds, 'dataset', false);
  checkOptions(options, 'options', ['batchSize']);
  const bs = checkInt(options.batchSize ?? 512, 'batchSize', { min: 1 });
  const n = datasetSize(ds);
  if (n === 0) throw new RangeError(`${ds.name} has no images`);
  let data: Float32Array | null = null;
  let dim = 0;
  noGrad(() => {
    for (let s = 0; s < n; s += bs) {
      const m = Math.min(bs, n - s);
      const idx = new Int32Array(m);
      for (let i = 0; i < m; i++) idx[i] = s + i;
      const out = tidy(() => {
        const y: Tensor = embedSync(encoder, toTensor(ds, idx));
        return y.toArray();
      });
      if (!data) {
        dim = out.length / m;
        data = new Float32Array(n * dim);
      }
      data.set(out, s * dim);
    }
  });
  return { data: data!, n, dim, labels: ds.labels.slice() };
}

/** Baseline features: the normalised pixels of every image, flattened. */
export function pixelFeatures(ds: Dataset): Embeddings {
  checkDataset(ds, 'dataset', false);
  const n = datasetSize(ds);
  const dim = ds.channels * ds.height * ds.width;
  checkAllocation(n * dim, 4, `the pixel features (${n} x ${dim})`);
  const data = new Float32Array(n * dim);
  for (let i = 0; i < data.length; i++) data[i] = (ds.images[i] / 255 - NORMALIZE_MEAN) / NORMALIZE_STD;
  return { data, n, dim, labels: ds.labels.slice() };
}
