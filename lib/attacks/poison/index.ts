// PoisonedEncoder: poisoning inputs for contrastive pre-training, the
// poisoned pre-training set, and its measurement (CA, ASR).
export { MAX_REFERENCES, MIN_PART_SCALE, POISON_CONSTRUCTIONS, buildPoisons, drawPlacement, pickTargets, poisonCount, poisonsPerTarget, renderPoison, resizeArea } from './construct';
export type { Box, BuildPoisonsOptions, BuiltPoisons, ImageShape, PoisonConstruction, PoisonPlacement, PoisonTarget } from './construct';
export { makePoisonedDataset } from './dataset';
export type { PoisonDatasetOptions } from './dataset';
export { attackSuccessRate, measurePoisoning, mlpClassifier } from './measure';
export type { ClassifierOutcome, MeasureOptions, PoisonTaskData, PoisonTaskResult, TargetInput } from './measure';
