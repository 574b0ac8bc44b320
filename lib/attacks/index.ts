// Encoder-stealing attacks through any embedding source (an EncoderService, a
// remote API): the losses, the surrogate and the attack loop. The grids that
// run them are in lib/experiments.
export { STEAL_METHODS, contStealLoss, cosineStealLoss, mseStealLoss, stolenEncoderLoss } from './losses';
export type { StealMethod } from './losses';
export { STEAL_DEFAULTS, resolveStealConfig, selectQueries, stealEncoder, stealLoss } from './steal';
export type { StealConfig, StealEpoch, StealOptions, StealResult } from './steal';
export { SURROGATE_FORMAT, Surrogate, createSurrogate, loadSurrogate, saveSurrogate } from './surrogate';
export type { SurrogateConfig } from './surrogate';
export * as poison from './poison';
