// SSL-Auth (Li et al., 2023): authenticate a deployed encoder from its embeddings of a few key samples.
export { AUTH_DEFAULTS, SELECTION_RULES, createGenerator, disposeAuthKey, makeAuthKey, modelledNoise, noiseRatios, rebuildWatermark, resolveAuthConfig, sampleSensitivity, scoreEmbeddings, selectKeySamples, trainGenerator, verifyAuth } from './sslauth';
export type { AuthConfig, AuthKey, AuthReport, Calibration, MakeAuthKeyOptions, Scores, SelectionRule, Thresholds, Verdict } from './sslauth';
export { AUTH_KEY_FORMAT, AUTH_KEY_VERSION, KEY_MANIFEST_FILE, KEY_TENSORS_FILE, loadAuthKey, saveAuthKey } from './key';
export { MAX_PSNR_DB, bitAgreement, maxRelativeRowDistance, meanSquaredError, psnr, seededWatermark, ssim } from './metrics';
