// The data layer: datasets as uint8 images + labels, loaders (built-in
// Fashion-MNIST / MNIST with a binary cache, CIFAR-10 binary files, image
// folders), seeded batching, and batch conversion / SimCLR augmentation by
// native kernels.
export type { Dataset, Split } from './dataset';
export { checkDataset, classCounts, datasetSize, interleavedOrder, subset, takeFirst } from './dataset';
export type { BuiltinName, LoadDatasetOptions } from './builtin';
export { BUILTIN_DATASETS, FASHION_MNIST_CLASSES, MNIST_CLASSES, defaultCacheDir, loadDataset } from './builtin';
export type { CifarOptions } from './cifar';
export { CIFAR10_CLASSES, loadCifar10 } from './cifar';
export type { ImageFolderOptions } from './folder';
export { IMAGE_EXTENSIONS, loadImageFolder } from './folder';
export type { BatchOptions } from './batching';
export { batchIndices, epochBatches, epochPermutation, numBatches } from './batching';
export { Prng, deriveSeed } from './prng';
export type { AugmentOptions, CropBox, ImageAugmentParams } from './augment';
export {
  AUG_PARAMS,
  JITTER_OPS,
  augmentBatch,
  augmentWithParams,
  decodeAugmentParams,
  encodeAugmentParams,
  identityParams,
  makeAugmentParams,
  sampleResizedCrop,
} from './augment';
export { NORMALIZE_MEAN, NORMALIZE_STD, labelsOf, toIndexArray, toTensor } from './tensor';
export { POISONED_FORMAT, readPoisonedDataset, withoutImages, writePoisonedDataset } from './poisoned';
export type { PoisonManifest, PoisonedDataset, PoisonedTargetEntry } from './poisoned';
