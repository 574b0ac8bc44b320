// Defenses against poisoned contrastive pre-training (PoisonedEncoder):
// pre-processing (drop spliced images), in-processing (early stopping,
// clipped noisy steps, another crop policy) and post-processing (fine-tuning
// on clean data).
export { detectSplicedImages, detectionCounts, halfDisagreementScores } from './detect';
export type { Detection, DetectOptions } from './detect';
export { clipGroups, clippedNoisyStep, cropParams, croppedStep } from './training';
export type { ClipNoiseOptions, CropOptions } from './training';
export { cleanSubset, finetuneOnClean } from './finetune';
export type { FinetuneOptions } from './finetune';
