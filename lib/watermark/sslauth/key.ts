// An SSL-Auth key on disk: a folder with
//   key.safetensors  samples [K,C,H,W], watermark [side*side], reference [K,d],
//                    generator.* (G's weights); with encsec's file digest
//   manifest.json    format, version, the SHA-256 of key.safetensors, the
//                    shapes, s, thresholds, calibration, selection, config
// Both are written atomically, the tensors first: a manifest only ever names
// a complete tensor file. Loading checks the manifest's fields, the digest of
// the tensor file and every shape before the key is used; a truncated,
// corrupt or mismatched key is an Error naming the file and the problem.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Tensor } from '../../core/tensor';
import { writeFileAtomic, checkPath } from '../../io/atomic';
import { loadSafetensors, saveSafetensors } from '../../io/safetensors';
import { createGenerator, resolveAuthConfig, SELECTION_RULES, type AuthKey } from './sslauth';

export const AUTH_KEY_FORMAT = 'encsec-sslauth-key';
export const AUTH_KEY_VERSION = 1;
export const KEY_TENSORS_FILE = 'key.safetensors';
export const KEY_MANIFEST_FILE = 'manifest.json';

function sha256(file: string): string {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

/** Writes the key into `dir` (created if missing). Returns the two paths. */
export function saveAuthKey(dir: string, key: AuthKey): string[] {
  checkPath(dir, 'dir');
  const tensorsFile = path.join(dir, KEY_TENSORS_FILE);
  const manifestFile = path.join(dir, KEY_MANIFEST_FILE);
  const tensors = new Map<string, Tensor>();
  const own: Tensor[] = [
    Tensor.from(key.samples, key.sampleShape),
    Tensor.from(key.watermark, [key.watermark.length]),
    Tensor.from(key.reference, [key.sampleShape[0], key.dim]),
  ];
  try {
    tensors.set('samples', own[0]);
    tensors.set('watermark', own[1]);
    tensors.set('reference', own[2]);
    for (const [n, t] of key.generator.stateDict()) tensors.set(`generator.${n}`, t);
    saveSafetensors(tensorsFile, tensors, { format: AUTH_KEY_FORMAT });
  } finally {
    own.forEach((t) => t.dispose());
  }
  const manifest = {
    format: AUTH_KEY_FORMAT,
    version: AUTH_KEY_VERSION,
    tensorsSha256: sha256(tensorsFile),
    sampleShape: key.sampleShape,
    dim: key.dim,
    watermarkSide: key.watermarkSide,
    hidden: key.hidden,
    inputScale: key.inputScale,
    thresholds: key.thresholds,
    calibration: key.calibration,
    selection: key.selection,
    encoder: key.encoder,
    config: key.config,
  };
  writeFileAtomic(manifestFile, JSON.stringify(manifest, null, 2) + '\n');
  return [tensorsFile, manifestFile];
}

function fail(file: string, what: string): never {
  throw new Error(`${file}: ${what}`);
}

function num(v: unknown, file: string, name: string, opts: { int?: boolean; min?: number } = {}): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) fail(file, `${name} must be a finite number, got ${JSON.stringify(v)}`);
  if (opts.int && !Number.isInteger(v)) fail(file, `${name} must be an integer, got ${v}`);
  if (opts.min !== undefined && v < opts.min) fail(file, `${name} must be >= ${opts.min}, got ${v}`);
  return v;
}

/** Reads and validates a key folder written by saveAuthKey. */
export function loadAuthKey(dir: string): AuthKey {
  checkPath(dir, 'dir');
  const manifestFile = path.join(dir, KEY_MANIFEST_FILE);
  const tensorsFile = path.join(dir, KEY_TENSORS_FILE);
  if (!fs.existsSync(manifestFile)) throw new Error(`${dir}: not an SSL-Auth key folder (no ${KEY_MANIFEST_FILE})`);
  if (!fs.existsSync(tensorsFile)) throw new Error(`${dir}: the key's ${KEY_TENSORS_FILE} is missing`);
  let m: Record<string, any>;
  try {
    m = JSON.parse(fs.readFileSync(manifestFile, 'utf8'));
  } catch (e) {
    fail(manifestFile, `not valid JSON (${(e as Error).message}): truncated or corrupt`);
  }
  if (m === null || typeof m !== 'object' || Array.isArray(m)) fail(manifestFile, 'is not a JSON object');
  if (m.format !== AUTH_KEY_FORMAT) fail(manifestFile, `format is ${JSON.stringify(m.format)}, expected ${JSON.stringify(AUTH_KEY_FORMAT)}`);
  if (m.version !== AUTH_KEY_VERSION) fail(manifestFile, `version ${JSON.stringify(m.version)} is not supported (this encsec reads ${AUTH_KEY_VERSION})`);
  const digest = sha256(tensorsFile);
  if (m.tensorsSha256 !== digest) fail(tensorsFile, `SHA-256 ${digest} does not match the manifest's ${JSON.stringify(m.tensorsSha256)}: the key files are corrupt or do not belong together`);
  const shape = m.sampleShape;
  if (!Array.isArray(shape) || shape.length !== 4) fail(manifestFile, 'sampleShape must be [K, C, H, W]');
  shape.forEach((v: unknown, i: number) => num(v, manifestFile, `sampleShape[${i}]`, { int: true, min: 1 }));
  const dim = num(m.dim, manifestFile, 'dim', { int: true, min: 1 });
  const side = num(m.watermarkSide, manifestFile, 'watermarkSide', { int: true, min: 7 });
  const hidden = num(m.hidden, manifestFile, 'hidden', { int: true, min: 1 });
  const inputScale = num(m.inputScale, manifestFile, 'inputScale');
  if (!(inputScale > 0)) fail(manifestFile, 'inputScale must be > 0');
  const th = m.thresholds ?? {};
  const thresholds = { psnrDb: num(th.psnrDb, manifestFile, 'thresholds.psnrDb'), baselineDistance: num(th.baselineDistance, manifestFile, 'thresholds.baselineDistance', { min: 0 }) };
  const cal = m.calibration ?? {};
  num(cal.authentic?.mse, manifestFile, 'calibration.authentic.mse', { min: 0 });
  num(cal.noiseMseExcess, manifestFile, 'calibration.noiseMseExcess', { min: 0 });
  num(cal.noiseBaselineDistance, manifestFile, 'calibration.noiseBaselineDistance', { min: 0 });
  const sel = m.selection ?? {};
  if (!(SELECTION_RULES as readonly string[]).includes(sel.rule)) fail(manifestFile, `selection.rule ${JSON.stringify(sel.rule)} is not one of ${SELECTION_RULES.join(', ')}`);
  let config;
  try {
    config = resolveAuthConfig(m.config);
  } catch (e) {
    fail(manifestFile, `config: ${(e as Error).message}`);
  }

  const { tensors, metadata } = loadSafetensors(tensorsFile);
  const generator = createGenerator(shape[0] * dim, hidden, side, 0);
  try {
    if (metadata.format !== AUTH_KEY_FORMAT) fail(tensorsFile, `format is ${JSON.stringify(metadata.format)}, expected ${JSON.stringify(AUTH_KEY_FORMAT)}`);
    const take = (name: string, expect: number[]): Float32Array => {
      const t = tensors.get(name);
      if (!t) fail(tensorsFile, `tensor "${name}" is missing`);
      if (t.shape.length !== expect.length || t.shape.some((d, i) => d !== expect[i])) fail(tensorsFile, `tensor "${name}" has shape [${t.shape.join(', ')}], expected [${expect.join(', ')}]`);
      return t.toArray();
    };
    const samples = take('samples', shape);
    const watermark = take('watermark', [side * side]);
    const reference = take('reference', [shape[0], dim]);
    const g = new Map<string, Tensor>();
    for (const [n, t] of tensors) {
      if (n.startsWith('generator.')) g.set(n.slice('generator.'.length), t);
      else if (!['samples', 'watermark', 'reference'].includes(n)) fail(tensorsFile, `unexpected tensor "${n}"`);
    }
    try {
      generator.loadStateDict(g);
    } catch (e) {
      fail(tensorsFile, `generator: ${(e as Error).message}`);
    }
    generator.eval();
    return {
      samples,
      sampleShape: shape as [number, number, number, number],
      dim,
      watermark,
      watermarkSide: side,
      generator,
      hidden,
      inputScale,
      reference,
      thresholds,
      calibration: cal,
      selection: sel,
      encoder: m.encoder,
      config,
    };
  } catch (e) {
    generator.dispose();
    throw e;
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
}
