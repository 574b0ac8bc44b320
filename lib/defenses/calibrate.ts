// Calibration of a defense that depends on the data (b4b:center=true): the
// operator shows it the encoder's raw embeddings of its own images once,
// before serving.
import { Tensor, tidy } from '../core/tensor';
import { checkInt, describe } from '../core/validate';
import type { Module } from '../nn/module';
import { datasetSize, takeFirst, type Dataset } from '../data/dataset';
import { embedDataset } from '../eval/embed';
import type { Defense } from './defense';

/** Images of the operator's data used for calibration by default. */
export const CALIBRATION_IMAGES = 2000;

/**
 * Calibrates `defense` on the embeddings of the first `images` images of
 * `data` (the operator's own data) if it needs it; returns the number of
 * images used (0 when it needed none).
 */
export function calibrateDefense(defense: Defense, encoder: Module, data: Dataset, images = CALIBRATION_IMAGES): number {
  if (defense === null || typeof defense !== 'object' || typeof (defense as Defense).apply !== 'function') throw new TypeError(`defense must be a Defense ({ name, apply }), got ${describe(defense)}`);
  if (!defense.needsCalibration || !defense.calibrate) return 0;
  checkInt(images, 'images', { min: 1 });
  const ds = takeFirst(data, Math.min(images, datasetSize(data)));
  const e = embedDataset(encoder, ds);
  tidy(() => defense.calibrate!(Tensor.from(e.data, [e.n, e.dim])));
  return e.n;
}
