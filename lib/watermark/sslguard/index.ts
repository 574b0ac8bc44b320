// SSLGuard (Cong, He, Zhang, ACM CCS 2022): watermark an encoder, prove ownership.
export { KEY_FORMAT, WatermarkDecoder, applyTrigger, createKey, decodedCosines, disposeKey, loadKey, loadVerificationSet, meanCosToSk, saveKey } from './key';
export type { CreateKeyOptions, NullModel, SslGuardKey, VerificationSet } from './key';
export { EMBED_DEFAULTS, embedWatermark, quickWatermarkRate, resolveEmbedConfig } from './embed';
export type { EmbedConfig, EmbedEpoch, EmbedOptions, EmbedResult } from './embed';
export { calibrateNullModel, ownershipVerdict, toSource, verifyOwnership, watermarkRate } from './verify';
export type { OwnershipVerdict, VerifyOptions, WatermarkRate } from './verify';
export { logBinomialTail, rateUpperBound } from './binomial';
