// A poisoned pre-training set on disk: one binary file that the data layer
// reads like any dataset, plus a manifest saying what was planted.
//
// Layout (little-endian):
//   8 bytes  magic "ENCPOIS1"
//   8 bytes  header length N (uint64)
//   N bytes  UTF-8 JSON header: { format, version, dataset: {name, channels,
//            height, width, numClasses, count}, sha256: {images, labels},
//            manifest }
//   count * channels * height * width bytes   images (uint8, NCHW)
//   count * 4 bytes                           labels (int32)
// Nothing may follow. The manifest lists the target inputs (task, TEST index,
// true class, target class, reference indices, SHA-256 of the target image),
// the poison indices (sorted, distinct, in range), which target each poison
// serves, the construction, rate and seed. readPoisonedDataset checks every
// field, the sizes and both digests before returning a single image: a
// truncated, edited or mismatched file is an Error naming the file and the
// problem. Files are written atomically.
import * as fs from 'node:fs';
import { createHash } from 'node:crypto';
import { writeFileAtomic } from '../io/atomic';
import { checkDataset, datasetSize, subset, type Dataset } from './dataset';

export const POISONED_MAGIC = 'ENCPOIS1';
export const POISONED_FORMAT = 'encsec-poisoned-dataset';
export const POISONED_VERSION = 1;
const MAX_HEADER = 64 * 1024 * 1024;

export interface PoisonedTargetEntry {
  task: string;
  index: number;
  trueClass: number;
  targetClass: number;
  referenceIndices: number[];
  /** SHA-256 (hex) of the target image's bytes: checked against the task's TEST image when measuring. */
  imageSha256: string;
}

export interface PoisonManifest {
  /** Name of the clean pre-training set (e.g. "fashion-mnist/train"). */
  base: string;
  /** Clean images in the file (count - poisons). */
  cleanImages: number;
  construction: string;
  rate: number;
  seed: number;
  targets: PoisonedTargetEntry[];
  /** Indices of the poisoning inputs in the file, sorted ascending. */
  poisonIndices: number[];
  /** For each poison (same order as poisonIndices), the index of its target. */
  poisonTargets: number[];
  /** Free-form provenance (surrogate file and digest, candidates, ...). */
  extra?: Record<string, unknown>;
}

export interface PoisonedDataset {
  dataset: Dataset;
  manifest: PoisonManifest;
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function fail(file: string, problem: string): never {
  throw new Error(`invalid poisoned dataset ${file}: ${problem}`);
}

const isInt = (v: unknown, min = 0, max = Number.MAX_SAFE_INTEGER): v is number => typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max;
const isHex64 = (v: unknown): v is string => typeof v === 'string' && /^[0-9a-f]{64}$/.test(v);

/** Checks a manifest against a dataset of `count` images and `numClasses` classes; returns the problem or null. */
export function manifestProblem(m: unknown, count: number, numClasses: number): string | null {
  if (m === null || typeof m !== 'object' || Array.isArray(m)) return 'manifest must be an object';
  const o = m as Record<string, unknown>;
  const known = ['base', 'cleanImages', 'construction', 'rate', 'seed', 'targets', 'poisonIndices', 'poisonTargets', 'extra'];
  for (const k of Object.keys(o)) if (!known.includes(k)) return `manifest has an unknown key ${JSON.stringify(k)}`;
  if (typeof o.base !== 'string' || o.base === '') return 'manifest.base must be a non-empty string';
  if (typeof o.construction !== 'string' || o.construction === '') return 'manifest.construction must be a non-empty string';
  if (typeof o.rate !== 'number' || !(o.rate > 0 && o.rate < 1)) return 'manifest.rate must be a number in (0, 1)';
  if (!isInt(o.seed)) return 'manifest.seed must be an integer in [0, 2^53)';
  if (!Array.isArray(o.targets) || o.targets.length === 0) return 'manifest.targets must be a non-empty array';
  for (let i = 0; i < o.targets.length; i++) {
    const t = o.targets[i] as Record<string, unknown>;
    if (t === null || typeof t !== 'object') return `manifest.targets[${i}] must be an object`;
    if (typeof t.task !== 'string' || t.task === '') return `manifest.targets[${i}].task must be a non-empty string`;
    if (!isInt(t.index)) return `manifest.targets[${i}].index must be a non-negative integer`;
    if (!isInt(t.trueClass, 0, numClasses - 1) || !isInt(t.targetClass, 0, numClasses - 1)) return `manifest.targets[${i}] classes must be in [0, ${numClasses})`;
    if (t.trueClass === t.targetClass) return `manifest.targets[${i}].targetClass equals its true class`;
    if (!Array.isArray(t.referenceIndices) || t.referenceIndices.length === 0 || !t.referenceIndices.every((v) => isInt(v))) {
      return `manifest.targets[${i}].referenceIndices must be a non-empty array of indices`;
    }
    if (!isHex64(t.imageSha256)) return `manifest.targets[${i}].imageSha256 must be 64 hex digits`;
  }
  if (!Array.isArray(o.poisonIndices) || !Array.isArray(o.poisonTargets)) return 'manifest.poisonIndices and manifest.poisonTargets must be arrays';
  if (o.poisonIndices.length !== o.poisonTargets.length) return `manifest.poisonIndices has ${o.poisonIndices.length} entries but poisonTargets ${o.poisonTargets.length}`;
  let prev = -1;
  for (let i = 0; i < o.poisonIndices.length; i++) {
    const v = o.poisonIndices[i];
    if (!isInt(v, 0, count - 1)) return `manifest.poisonIndices[${i}] = ${JSON.stringify(v)} is not an image index in [0, ${count})`;
    if (v <= prev) return `manifest.poisonIndices must be strictly increasing (entry ${i})`;
    prev = v;
    if (!isInt(o.poisonTargets[i], 0, o.targets.length - 1)) return `manifest.poisonTargets[${i}] is not a target index`;
  }
  if (!isInt(o.cleanImages) || o.cleanImages + o.poisonIndices.length !== count) {
    return `manifest.cleanImages (${String(o.cleanImages)}) + ${o.poisonIndices.length} poisons != ${count} images`;
  }
  if (o.extra !== undefined && (o.extra === null || typeof o.extra !== 'object' || Array.isArray(o.extra))) return 'manifest.extra must be an object';
  return null;
}

/** Writes the dataset and its manifest atomically (validating the manifest first). */
export function writePoisonedDataset(file: string, dataset: Dataset, manifest: PoisonManifest): void {
  if (typeof file !== 'string' || file === '') throw new TypeError('file must be a non-empty path');
  checkDataset(dataset, 'dataset');
  const count = datasetSize(dataset);
  const problem = manifestProblem(manifest, count, dataset.numClasses);
  if (problem) throw new RangeError(problem);
  const labels = new Uint8Array(dataset.labels.buffer.slice(dataset.labels.byteOffset, dataset.labels.byteOffset + count * 4));
  const header = {
    format: POISONED_FORMAT,
    version: POISONED_VERSION,
    dataset: { name: dataset.name, channels: dataset.channels, height: dataset.height, width: dataset.width, numClasses: dataset.numClasses, count },
    sha256: { images: sha256Hex(dataset.images), labels: sha256Hex(labels) },
    manifest,
  };
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const pre = Buffer.alloc(16);
  pre.write(POISONED_MAGIC, 0, 'latin1');
  pre.writeBigUInt64LE(BigInt(json.length), 8);
  writeFileAtomic(file, [pre, json, dataset.images, labels]);
}

/** Reads and validates a poisoned dataset file (see the header for every check). */
export function readPoisonedDataset(file: string): PoisonedDataset {
  if (typeof file !== 'string' || file === '') throw new TypeError('file must be a non-empty path');
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    throw new Error(`cannot read poisoned dataset ${file}: ${(e as Error).message}`);
  }
  if (buf.length < 16 || buf.toString('latin1', 0, 8) !== POISONED_MAGIC) fail(file, `does not start with "${POISONED_MAGIC}" (not a poisoned dataset, or truncated)`);
  const n64 = buf.readBigUInt64LE(8);
  if (n64 > BigInt(MAX_HEADER) || 16 + Number(n64) > buf.length) fail(file, `header length ${n64} runs past the end of the file (${buf.length} bytes): truncated?`);
  const n = Number(n64);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(buf.subarray(16, 16 + n)));
  } catch (e) {
    fail(file, `the header is not valid UTF-8 JSON (${(e as Error).message})`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) fail(file, 'the header is not a JSON object');
  if (header.format !== POISONED_FORMAT) fail(file, `format is ${JSON.stringify(header.format)}, expected ${JSON.stringify(POISONED_FORMAT)}`);
  if (header.version !== POISONED_VERSION) fail(file, `version ${JSON.stringify(header.version)} is not supported (this reader knows ${POISONED_VERSION})`);
  const d = header.dataset as Record<string, unknown>;
  if (d === null || typeof d !== 'object') fail(file, 'header.dataset must be an object');
  if (typeof d.name !== 'string') fail(file, 'dataset.name must be a string');
  if (d.channels !== 1 && d.channels !== 3) fail(file, 'dataset.channels must be 1 or 3');
  if (!isInt(d.height, 1, 32768) || !isInt(d.width, 1, 32768)) fail(file, 'dataset.height and dataset.width must be integers in [1, 32768]');
  if (!isInt(d.numClasses, 1, 2 ** 31 - 1)) fail(file, 'dataset.numClasses must be a positive integer');
  if (!isInt(d.count, 1, 2 ** 31 - 1)) fail(file, 'dataset.count must be a positive integer');
  const count = d.count;
  const imageBytes = count * (d.channels as number) * d.height * d.width;
  const expected = 16 + n + imageBytes + count * 4;
  if (buf.length !== expected) fail(file, `${buf.length} bytes, expected ${expected} for ${count} images of ${d.channels}x${d.height}x${d.width}${buf.length < expected ? ': truncated?' : ''}`);
  const dig = header.sha256 as Record<string, unknown>;
  if (dig === null || typeof dig !== 'object' || !isHex64(dig.images) || !isHex64(dig.labels)) fail(file, 'header.sha256 must hold images and labels digests (64 hex digits)');
  const problem = manifestProblem(header.manifest, count, d.numClasses);
  if (problem) fail(file, problem);
  const images = new Uint8Array(imageBytes);
  images.set(buf.subarray(16 + n, 16 + n + imageBytes));
  const labelBytes = new Uint8Array(count * 4);
  labelBytes.set(buf.subarray(16 + n + imageBytes));
  if (sha256Hex(images) !== dig.images) fail(file, 'the images do not match their SHA-256 digest (corrupted)');
  if (sha256Hex(labelBytes) !== dig.labels) fail(file, 'the labels do not match their SHA-256 digest (corrupted)');
  const labels = new Int32Array(labelBytes.buffer);
  const dataset: Dataset = { name: d.name, channels: d.channels as 1 | 3, height: d.height, width: d.width, numClasses: d.numClasses, images, labels };
  try {
    checkDataset(dataset, 'dataset');
  } catch (e) {
    fail(file, (e as Error).message);
  }
  return { dataset, manifest: header.manifest as PoisonManifest };
}

/** The dataset without the images at `drop` (e.g. a defense's detections); returns the kept original indices too. */
export function withoutImages(ds: Dataset, drop: ArrayLike<number>): { dataset: Dataset; kept: Int32Array } {
  const n = datasetSize(ds);
  const gone = new Uint8Array(n);
  for (let i = 0; i < drop.length; i++) {
    const j = drop[i];
    if (!Number.isInteger(j) || j < 0 || j >= n) throw new RangeError(`drop[${i}] = ${j} is outside [0, ${n})`);
    gone[j] = 1;
  }
  const kept = new Int32Array(n - gone.reduce((s, v) => s + v, 0));
  let k = 0;
  for (let i = 0; i < n; i++) if (!gone[i]) kept[k++] = i;
  return { dataset: subset(ds, kept), kept };
}
