// CIFAR-10 in its binary distribution (cifar-10-batches-bin): files of
// 3073-byte records, one label byte (0..9) then 3072 pixel bytes (1024 red,
// 1024 green, 1024 blue, each 32x32 row-major: already CHW).
// TRAIN = data_batch_1.bin .. data_batch_5.bin, TEST = test_batch.bin; the
// records keep the files' order (CIFAR's files are already shuffled).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { checkInt, checkOneOf, checkOptions, describe } from '../core/validate';
import type { Dataset, Split } from './dataset';

export const CIFAR10_CLASSES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'] as const;
export const CIFAR10_TRAIN_FILES = ['data_batch_1.bin', 'data_batch_2.bin', 'data_batch_3.bin', 'data_batch_4.bin', 'data_batch_5.bin'] as const;
export const CIFAR10_TEST_FILES = ['test_batch.bin'] as const;

const RECORD = 1 + 3 * 32 * 32;
const PIXELS = 3 * 32 * 32;

export interface CifarOptions {
  /** Which files of a folder to read (ignored when the path is a single file). */
  split?: Split;
  /** Keep only the first `limit` records. */
  limit?: number;
}

function readRecords(file: string): Buffer {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(code === 'ENOENT' || code === 'ENOTDIR' ? `CIFAR-10 file not found: ${file}` : `cannot read CIFAR-10 file ${file}: ${(e as Error).message}`);
  }
  if (!st.isFile()) throw new Error(`CIFAR-10 path is not a file: ${file}`);
  if (st.size === 0) throw new Error(`CIFAR-10 file ${file} is empty`);
  if (st.size % RECORD !== 0) {
    throw new Error(`CIFAR-10 file ${file} is truncated or not in the binary format: ${st.size} bytes is not a multiple of the ${RECORD}-byte record`);
  }
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    throw new Error(`cannot read CIFAR-10 file ${file}: ${(e as Error).message}`);
  }
  // The file may have changed between stat and read.
  if (buf.length !== st.size || buf.length % RECORD !== 0) throw new Error(`CIFAR-10 file ${file} changed while it was read (${st.size} then ${buf.length} bytes)`);
  return buf;
}

/**
 * Loads CIFAR-10 from `location`: a folder holding the binary batch files (the
 * split picks data_batch_1..5.bin or test_batch.bin), or one .bin file.
 * Any missing, truncated or malformed file is an Error naming it.
 */
export function loadCifar10(location: string, options: CifarOptions = {}): Dataset {
  if (typeof location !== 'string' || location === '') throw new TypeError(`location must be a non-empty path, got ${describe(location)}`);
  if (location.includes('\0')) throw new TypeError('location must not contain NUL characters');
  const opts = checkOptions(options, 'options', ['split', 'limit']) as CifarOptions;
  const split = checkOneOf(opts.split ?? 'train', 'options.split', ['train', 'test'] as const);
  const limit = opts.limit === undefined ? Infinity : checkInt(opts.limit, 'options.limit', { min: 1 });
  let isDir: boolean;
  try {
    isDir = fs.statSync(location).isDirectory();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(code === 'ENOENT' || code === 'ENOTDIR' ? `CIFAR-10 location not found: ${location}` : `cannot read CIFAR-10 location ${location}: ${(e as Error).message}`);
  }
  const files = isDir
    ? (split === 'train' ? CIFAR10_TRAIN_FILES : CIFAR10_TEST_FILES).map((f) => path.join(location, f))
    : [location];
  for (const f of files) if (!fs.existsSync(f)) throw new Error(`CIFAR-10 file not found: ${f} (expected the binary version, cifar-10-batches-bin)`);

  const chunks: Buffer[] = [];
  let total = 0;
  for (const f of files) {
    if (total >= limit) break;
    const buf = readRecords(f);
    const n = buf.length / RECORD;
    for (let r = 0; r < n; r++) {
      const label = buf[r * RECORD];
      if (label > 9) throw new Error(`CIFAR-10 file ${f}: record ${r} has label ${label}, expected 0..9 (not a CIFAR-10 binary file?)`);
    }
    chunks.push(buf);
    total += n;
  }
  const n = Math.min(total, limit);
  const images = new Uint8Array(n * PIXELS);
  const labels = new Int32Array(n);
  let i = 0;
  for (const buf of chunks) {
    for (let r = 0; r < buf.length / RECORD && i < n; r++, i++) {
      labels[i] = buf[r * RECORD];
      images.set(buf.subarray(r * RECORD + 1, (r + 1) * RECORD), i * PIXELS);
    }
  }
  return {
    name: `cifar10/${files.length === 1 && files[0] === location ? path.basename(location) : split}`,
    channels: 3,
    height: 32,
    width: 32,
    numClasses: 10,
    images,
    labels,
    classNames: CIFAR10_CLASSES,
  };
}
