// Defenses of an encoder service against stealing: the Defense contract,
// output perturbations (noise, top-k, rounding), B4B (coverage-priced noise,
// per-client rotations), their composition, and the SPEC parser that builds
// them by name. The defense experiment is in lib/experiments.
export { defenseSpec, identityDefense } from './defense';
export type { Defense } from './defense';
export { joinDefenseList, listDefenses, parseDefense, registerDefense } from './spec';
export type { DefenseFactory } from './spec';
export { NoiseDefense, RoundDefense, TopkDefense } from './perturb';
export type { NoiseOptions } from './perturb';
export { B4B_DEFAULTS, B4B_MAX_SIGMA, B4bDefense, LshCoverage, b4bSigma, resolveB4bConfig } from './b4b';
export type { B4bConfig, B4bOptions } from './b4b';
export { ComposedDefense } from './compose';
export { randomOrthogonal } from './rotation';
export { CALIBRATION_IMAGES, calibrateDefense } from './calibrate';
export { clientHash, clientSeed } from './common';
export * as poison from './poison';
