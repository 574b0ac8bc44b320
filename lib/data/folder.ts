// A folder of images with one sub-folder per class (torchvision's ImageFolder
// layout): root/<class>/<image>.png|jpg|... Classes are the sub-folders in
// sorted order (label = position); files of other types are ignored.
//
// Images are decoded with sharp (libvips; prebuilt binaries come from npm as
// @img/* packages), alpha dropped, converted to sRGB, resized to exactly
// height x width (bilinear, aspect ratio not kept), then either kept as RGB or
// reduced to one channel with PIL's "L" formula (R*299 + G*587 + B*114) / 1000
// (in PIL's fixed-point form), so a grayscale folder matches what a
// torchvision pipeline with Grayscale() would see.
//
// The result is in the class-interleaved order of interleavedOrder() (files
// sorted by name within a class), so `limit` keeps every class and only the
// images kept are decoded.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Sharp, SharpOptions } from 'sharp';
import { checkAllocation, checkInt, checkObject, checkOptions, describe } from '../core/validate';
import { type Dataset, interleavedOrder } from './dataset';

export const IMAGE_EXTENSIONS: readonly string[] = ['.png', '.jpg', '.jpeg', '.webp', '.gif', '.tif', '.tiff'];

export interface ImageFolderOptions {
  /** Output size: a side for square images, or [height, width]. */
  size: number | readonly [number, number];
  /** 1 (grayscale) or 3 (RGB, the default). */
  channels?: 1 | 3;
  /** Keep only the first `limit` images (class-interleaved order). */
  limit?: number;
  /** Images decoded at once (default 8). */
  concurrency?: number;
}

type SharpFactory = (input?: string | Buffer, options?: SharpOptions) => Sharp;

let sharpModule: SharpFactory | null = null;
function loadSharp(): SharpFactory {
  if (!sharpModule) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      sharpModule = require('sharp') as SharpFactory;
    } catch (e) {
      throw new Error(`loading image folders needs the "sharp" package, which did not load: ${(e as Error).message}`);
    }
  }
  return sharpModule;
}

function listDir(dir: string): fs.Dirent[] {
  try {
    return fs.readdirSync(dir, { withFileTypes: true });
  } catch (e) {
    throw new Error(`cannot read image folder ${dir}: ${(e as Error).message}`);
  }
}

const byName = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** Decodes one image file into out (CHW bytes at `offset`). */
async function decodeInto(file: string, h: number, w: number, channels: 1 | 3, out: Uint8Array, offset: number): Promise<void> {
  const sharp = loadSharp();
  let data: Buffer;
  try {
    const res = await sharp(file, { failOn: 'error' })
      .removeAlpha()
      .toColourspace('srgb')
      .resize(w, h, { fit: 'fill', kernel: 'linear' })
      .raw()
      .toBuffer({ resolveWithObject: true });
    if (res.info.channels !== 3 || res.info.width !== w || res.info.height !== h) {
      throw new Error(`decoded to ${res.info.width}x${res.info.height}x${res.info.channels}, expected ${w}x${h}x3`);
    }
    data = res.data;
  } catch (e) {
    throw new Error(`cannot decode image ${file}: ${(e as Error).message}`);
  }
  const hw = h * w;
  if (channels === 3) {
    for (let i = 0; i < hw; i++) {
      out[offset + i] = data[3 * i];
      out[offset + hw + i] = data[3 * i + 1];
      out[offset + 2 * hw + i] = data[3 * i + 2];
    }
  } else {
    // PIL's ImagingConvert RGB -> L: (r*19595 + g*38470 + b*7471 + 0x8000) >> 16.
    for (let i = 0; i < hw; i++) {
      out[offset + i] = (data[3 * i] * 19595 + data[3 * i + 1] * 38470 + data[3 * i + 2] * 7471 + 0x8000) >>> 16;
    }
  }
}

/** Loads root/<class>/<image> into a Dataset of uint8 images [N, channels, height, width]. */
export async function loadImageFolder(root: string, options: ImageFolderOptions): Promise<Dataset> {
  if (typeof root !== 'string' || root === '') throw new TypeError(`root must be a non-empty path, got ${describe(root)}`);
  if (root.includes('\0')) throw new TypeError('root must not contain NUL characters');
  const opts = checkOptions(checkObject(options, 'options'), 'options', ['size', 'channels', 'limit', 'concurrency']) as unknown as ImageFolderOptions;
  let h: number, w: number;
  if (Array.isArray(opts.size)) {
    if (opts.size.length !== 2) throw new RangeError('options.size must be a number or [height, width]');
    h = checkInt(opts.size[0], 'options.size[0]', { min: 1, max: 32768 });
    w = checkInt(opts.size[1], 'options.size[1]', { min: 1, max: 32768 });
  } else {
    h = w = checkInt(opts.size, 'options.size', { min: 1, max: 32768 });
  }
  const channels = opts.channels ?? 3;
  if (channels !== 1 && channels !== 3) throw new RangeError(`options.channels must be 1 or 3, got ${String(channels)}`);
  const limit = opts.limit === undefined ? Infinity : checkInt(opts.limit, 'options.limit', { min: 1 });
  const concurrency = opts.concurrency === undefined ? 8 : checkInt(opts.concurrency, 'options.concurrency', { min: 1, max: 256 });

  let st: fs.Stats;
  try {
    st = fs.statSync(root);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(code === 'ENOENT' || code === 'ENOTDIR' ? `image folder not found: ${root}` : `cannot read image folder ${root}: ${(e as Error).message}`);
  }
  if (!st.isDirectory()) throw new Error(`image folder path is not a directory: ${root}`);
  const classes = listDir(root).filter((d) => d.isDirectory() && !d.name.startsWith('.')).map((d) => d.name).sort(byName);
  if (classes.length === 0) throw new Error(`image folder ${root} has no class sub-folders (expected root/<class>/<image>)`);
  const files = classes.map((c) => {
    const dir = path.join(root, c);
    const list = listDir(dir)
      .filter((d) => (d.isFile() || d.isSymbolicLink()) && IMAGE_EXTENSIONS.includes(path.extname(d.name).toLowerCase()))
      .map((d) => d.name)
      .sort(byName)
      .map((f) => path.join(dir, f));
    if (list.length === 0) throw new Error(`class folder ${dir} has no images (${IMAGE_EXTENSIONS.join(', ')})`);
    return list;
  });

  const order = interleavedOrder(files.map((l) => l.length));
  const n = Math.min(order.length, limit);
  const per = channels * h * w;
  checkAllocation(n * per, 1, `the images of ${root} (${n} x ${channels}x${h}x${w} bytes)`);
  const images = new Uint8Array(n * per);
  const labels = new Int32Array(n);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) {
      const j = next++;
      const [c, i] = order[j];
      labels[j] = c;
      await decodeInto(files[c][i], h, w, channels, images, j * per);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker));
  return { name: path.resolve(root), channels, height: h, width: w, numClasses: classes.length, images, labels, classNames: classes };
}
