// SimCLR augmentation (batch conversion without augmentation: tensor.ts).
//
// augmentBatch(ds, indices, {seed}): one augmented view per index, SimCLR's
// CIFAR pipeline (torchvision semantics):
//   RandomResizedCrop(size, scale=(0.2, 1.0), ratio=(3/4, 4/3)) -> RandomHorizontalFlip(0.5)
//   -> RandomApply([ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8) -> RandomGrayscale(0.2)
//   -> ToTensor -> Normalize(0.5, 0.5).
// Grayscale (1-channel) datasets get brightness and contrast jitter only, and
// no random grayscale. Every random draw is made here, in TS, from
// Prng(seed): per image, in this order, the crop (torchvision's 10 attempts,
// then the centre-crop fallback), the flip, whether jitter applies, then the
// jitter order (a random permutation, as torchvision draws one per image;
// `jitterOrder: 'fixed'` keeps brightness, contrast, saturation, hue) and the
// factors, then the grayscale flag. The parameters go to ONE native call
// (native/cpu/augment.h), which does all the pixel work in parallel.
//
// The resize is bilinear with PyTorch's F.interpolate(align_corners=False)
// semantics on the cropped region, without antialiasing (torchvision on PIL
// images antialiases when a crop is shrunk, which at 28-32 px is rare: crops
// are at most the image).
import { native } from '../core/native';
import { Tensor } from '../core/tensor';
import { checkAllocation, checkBool, checkInt, checkNumber, checkObject, checkOneOf, checkOptions, checkSeed, describe } from '../core/validate';
import { type Dataset, checkDataset, datasetSize } from './dataset';
import { Prng } from './prng';
import { NORMALIZE_MEAN, NORMALIZE_STD, toIndexArray } from './tensor';


/** Floats per image in a parameter record (layout: native/cpu/augment.h). */
export const AUG_PARAMS = 14;
const P_TOP = 0, P_LEFT = 1, P_HEIGHT = 2, P_WIDTH = 3, P_FLIP = 4, P_BRIGHTNESS = 5, P_CONTRAST = 6;
const P_SATURATION = 7, P_HUE = 8, P_ORDER = 9, P_GRAYSCALE = 13;

/** Jitter ops, by their number in `order`. */
export const JITTER_OPS = ['brightness', 'contrast', 'saturation', 'hue'] as const;

export interface CropBox {
  top: number;
  left: number;
  height: number;
  width: number;
}

/** One image's augmentation. Identity values: factors 1, hue 0, flags false. */
export interface ImageAugmentParams extends CropBox {
  flip: boolean;
  brightness: number;
  contrast: number;
  saturation: number;
  hue: number;
  /** Jitter ops in application order: a permutation of 0..3 (see JITTER_OPS). */
  order: readonly number[];
  grayscale: boolean;
}

export interface AugmentOptions {
  /** Seed of this batch's draws (integer in [0, 2^53)); derive one per step and view with deriveSeed. */
  seed: number;
  /** Output size: a side or [height, width]; default the input size. */
  size?: number | readonly [number, number];
  /** RandomResizedCrop area fraction range (default [0.2, 1.0]). */
  scale?: readonly [number, number];
  /** RandomResizedCrop aspect ratio range (default [3/4, 4/3]). */
  ratio?: readonly [number, number];
  /** Horizontal flip probability (default 0.5). */
  flipP?: number;
  /** Probability of applying colour jitter (default 0.8). */
  jitterP?: number;
  /** Jitter strengths (defaults 0.4, 0.4, 0.4, 0.1): factors in [max(0, 1-s), 1+s], hue in [-h, h]. */
  brightness?: number;
  contrast?: number;
  saturation?: number;
  hue?: number;
  /** Random grayscale probability for colour images (default 0.2). */
  grayscaleP?: number;
  /** 'random' (default): a random permutation of the jitter ops per image, like torchvision; 'fixed': brightness, contrast, saturation, hue. */
  jitterOrder?: 'random' | 'fixed';
}

interface ResolvedOptions {
  outHeight: number;
  outWidth: number;
  scale: [number, number];
  ratio: [number, number];
  flipP: number;
  jitterP: number;
  brightness: number;
  contrast: number;
  saturation: number;
  hue: number;
  grayscaleP: number;
  randomOrder: boolean;
}

function checkRange(v: unknown, name: string, def: [number, number]): [number, number] {
  if (v === undefined) return def;
  if (!Array.isArray(v) || v.length !== 2) throw new TypeError(`${name} must be [min, max]`);
  const lo = checkNumber(v[0], `${name}[0]`, { gt: 0 });
  const hi = checkNumber(v[1], `${name}[1]`, { gt: 0 });
  if (lo > hi) throw new RangeError(`${name} must be [min, max] with min <= max, got [${lo}, ${hi}]`);
  return [lo, hi];
}

function checkSize(v: unknown, name: string, h: number, w: number): [number, number] {
  if (v === undefined) return [h, w];
  if (Array.isArray(v)) {
    if (v.length !== 2) throw new RangeError(`${name} must be a number or [height, width]`);
    return [checkInt(v[0], `${name}[0]`, { min: 1, max: 32768 }), checkInt(v[1], `${name}[1]`, { min: 1, max: 32768 })];
  }
  const s = checkInt(v, name, { min: 1, max: 32768 });
  return [s, s];
}

/** The keys of AugmentOptions. */
const AUGMENT_KEYS = ['seed', 'size', 'scale', 'ratio', 'flipP', 'jitterP', 'brightness', 'contrast', 'saturation', 'hue', 'grayscaleP', 'jitterOrder'] as const;

/** Checks an image description { channels: 1 | 3, height, width } (a Dataset is one). */
function checkImageShape(image: unknown, name: string): { channels: 1 | 3; height: number; width: number } {
  const o = checkObject(image, name);
  if (o.channels !== 1 && o.channels !== 3) throw new RangeError(`${name}.channels must be 1 or 3, got ${describe(o.channels)}`);
  checkInt(o.height, `${name}.height`, { min: 1, max: 32768 });
  checkInt(o.width, `${name}.width`, { min: 1, max: 32768 });
  return o as { channels: 1 | 3; height: number; width: number };
}

/**
 * Checks parameter records for `count` images of height x width, as the
 * native kernel will read them (the same rules as its own guard), so that a
 * bad record is a RangeError naming params and the image.
 */
function checkAugmentParams(params: Float32Array, count: number, height: number, width: number, name = 'params'): void {
  for (let b = 0; b < count; b++) {
    const r = b * AUG_PARAMS;
    const bad = (what: string): never => {
      throw new RangeError(`${name} of image ${b} (entries ${r}..${r + AUG_PARAMS - 1}): ${what}`);
    };
    for (let k = 0; k < AUG_PARAMS; k++) if (!Number.isFinite(params[r + k])) bad(`entry ${k} is not finite (${params[r + k]})`);
    const top = params[r + P_TOP], left = params[r + P_LEFT], h = params[r + P_HEIGHT], w = params[r + P_WIDTH];
    if (![top, left, h, w].every(Number.isInteger)) bad('the crop box must be integers');
    if (h < 1 || w < 1) bad(`the crop box must be at least 1x1, got ${h}x${w}`);
    if (top < 0 || left < 0 || top + h > height || left + w > width) bad(`the crop box is outside the ${height}x${width} image (top ${top}, left ${left}, ${h}x${w})`);
    if (params[r + P_FLIP] !== 0 && params[r + P_FLIP] !== 1) bad('flip must be 0 or 1');
    if (params[r + P_GRAYSCALE] !== 0 && params[r + P_GRAYSCALE] !== 1) bad('grayscale must be 0 or 1');
    if (params[r + P_BRIGHTNESS] < 0 || params[r + P_CONTRAST] < 0 || params[r + P_SATURATION] < 0) bad('jitter factors must be non-negative');
    if (params[r + P_HUE] < -0.5 || params[r + P_HUE] > 0.5) bad(`hue must be in [-0.5, 0.5], got ${params[r + P_HUE]}`);
    let seen = 0;
    for (let k = 0; k < 4; k++) {
      const o = params[r + P_ORDER + k];
      if (!Number.isInteger(o) || o < 0 || o > 3) bad('order must be a permutation of 0, 1, 2, 3');
      seen |= 1 << o;
    }
    if (seen !== 15) bad('order must be a permutation of 0, 1, 2, 3');
  }
}

function resolveOptions(o: AugmentOptions, h: number, w: number): ResolvedOptions {
  const prob = (v: unknown, name: string, def: number) => (v === undefined ? def : checkNumber(v, name, { min: 0, max: 1 }));
  const strength = (v: unknown, name: string, def: number, max = Infinity) =>
    v === undefined ? def : checkNumber(v, name, { min: 0, max });
  const [outHeight, outWidth] = checkSize(o.size, 'options.size', h, w);
  return {
    outHeight,
    outWidth,
    scale: checkRange(o.scale, 'options.scale', [0.2, 1.0]),
    ratio: checkRange(o.ratio, 'options.ratio', [3 / 4, 4 / 3]),
    flipP: prob(o.flipP, 'options.flipP', 0.5),
    jitterP: prob(o.jitterP, 'options.jitterP', 0.8),
    brightness: strength(o.brightness, 'options.brightness', 0.4),
    contrast: strength(o.contrast, 'options.contrast', 0.4),
    saturation: strength(o.saturation, 'options.saturation', 0.4),
    hue: strength(o.hue, 'options.hue', 0.1, 0.5),
    grayscaleP: prob(o.grayscaleP, 'options.grayscaleP', 0.2),
    randomOrder: (o.jitterOrder === undefined ? 'random' : checkOneOf(o.jitterOrder, 'options.jitterOrder', ['random', 'fixed'] as const)) === 'random',
  };
}

/** Python's round(): halves to even (torchvision computes crop sides with it). */
export function roundHalfEven(x: number): number {
  checkNumber(x, 'x');
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** torchvision's RandomResizedCrop.get_params: 10 attempts, then a centre crop. */
export function sampleResizedCrop(rng: Prng, height: number, width: number, scale: readonly [number, number], ratio: readonly [number, number]): CropBox {
  if (!(rng instanceof Prng)) throw new TypeError(`rng must be a Prng, got ${describe(rng)}`);
  checkInt(height, 'height', { min: 1, max: 32768 });
  checkInt(width, 'width', { min: 1, max: 32768 });
  if (scale === undefined || ratio === undefined) throw new TypeError(`${scale === undefined ? 'scale' : 'ratio'} must be [min, max]`);
  scale = checkRange(scale, 'scale', [0, 0]);
  ratio = checkRange(ratio, 'ratio', [0, 0]);
  const area = height * width;
  const logLo = Math.log(ratio[0]);
  const logHi = Math.log(ratio[1]);
  for (let attempt = 0; attempt < 10; attempt++) {
    const targetArea = area * rng.uniform(scale[0], scale[1]);
    const aspect = Math.exp(rng.uniform(logLo, logHi));
    const w = roundHalfEven(Math.sqrt(targetArea * aspect));
    const h = roundHalfEven(Math.sqrt(targetArea / aspect));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      const top = rng.int(height - h + 1);
      const left = rng.int(width - w + 1);
      return { top, left, height: h, width: w };
    }
  }
  const inRatio = width / height;
  let w: number, h: number;
  if (inRatio < ratio[0]) {
    w = width;
    h = roundHalfEven(w / ratio[0]);
  } else if (inRatio > ratio[1]) {
    h = height;
    w = roundHalfEven(h * ratio[1]);
  } else {
    w = width;
    h = height;
  }
  return { top: Math.floor((height - h) / 2), left: Math.floor((width - w) / 2), height: h, width: w };
}

/** The parameters that leave an image unchanged (full crop, no flip, no jitter, no grayscale). */
export function identityParams(height: number, width: number): ImageAugmentParams {
  checkInt(height, 'height', { min: 1, max: 32768 });
  checkInt(width, 'width', { min: 1, max: 32768 });
  return { top: 0, left: 0, height, width, flip: false, brightness: 1, contrast: 1, saturation: 1, hue: 0, order: [0, 1, 2, 3], grayscale: false };
}

/** Packs per-image parameters into the native record layout. */
export function encodeAugmentParams(list: readonly ImageAugmentParams[]): Float32Array {
  if (!Array.isArray(list)) throw new TypeError(`list must be an array of ImageAugmentParams, got ${describe(list)}`);
  checkAllocation(list.length, AUG_PARAMS * 4, 'list');
  const out = new Float32Array(list.length * AUG_PARAMS);
  list.forEach((p, i) => {
    const name = `list[${i}]`;
    checkOptions(p, name, ['top', 'left', 'height', 'width', 'flip', 'brightness', 'contrast', 'saturation', 'hue', 'order', 'grayscale']);
    if (p === undefined) throw new TypeError(`${name} must be an ImageAugmentParams object, got undefined`);
    checkInt(p.top, `${name}.top`, { min: 0, max: 32767 });
    checkInt(p.left, `${name}.left`, { min: 0, max: 32767 });
    checkInt(p.height, `${name}.height`, { min: 1, max: 32768 });
    checkInt(p.width, `${name}.width`, { min: 1, max: 32768 });
    checkBool(p.flip, `${name}.flip`);
    checkNumber(p.brightness, `${name}.brightness`, { min: 0, max: 1e6 });
    checkNumber(p.contrast, `${name}.contrast`, { min: 0, max: 1e6 });
    checkNumber(p.saturation, `${name}.saturation`, { min: 0, max: 1e6 });
    checkNumber(p.hue, `${name}.hue`, { min: -0.5, max: 0.5 });
    checkBool(p.grayscale, `${name}.grayscale`);
    if (!Array.isArray(p.order) || p.order.length !== 4 || [0, 1, 2, 3].some((k) => !p.order.includes(k))) {
      throw new RangeError(`${name}.order must be a permutation of 0, 1, 2, 3`);
    }
    const r = i * AUG_PARAMS;
    out[r + P_TOP] = p.top;
    out[r + P_LEFT] = p.left;
    out[r + P_HEIGHT] = p.height;
    out[r + P_WIDTH] = p.width;
    out[r + P_FLIP] = p.flip ? 1 : 0;
    out[r + P_BRIGHTNESS] = p.brightness;
    out[r + P_CONTRAST] = p.contrast;
    out[r + P_SATURATION] = p.saturation;
    out[r + P_HUE] = p.hue;
    for (let k = 0; k < 4; k++) out[r + P_ORDER + k] = p.order[k];
    out[r + P_GRAYSCALE] = p.grayscale ? 1 : 0;
  });
  return out;
}

/** Unpacks image i's record. */
export function decodeAugmentParams(params: Float32Array, i: number): ImageAugmentParams {
  if (!(params instanceof Float32Array)) throw new TypeError(`params must be a Float32Array, got ${describe(params)}`);
  if (params.length % AUG_PARAMS !== 0) throw new RangeError(`params has ${params.length} entries, not a multiple of ${AUG_PARAMS} (one record per image)`);
  const count = params.length / AUG_PARAMS;
  if (count === 0) throw new RangeError('params is empty (no image records)');
  checkInt(i, 'i', { min: 0, max: count - 1 });
  const r = i * AUG_PARAMS;
  return {
    top: params[r + P_TOP],
    left: params[r + P_LEFT],
    height: params[r + P_HEIGHT],
    width: params[r + P_WIDTH],
    flip: params[r + P_FLIP] !== 0,
    brightness: params[r + P_BRIGHTNESS],
    contrast: params[r + P_CONTRAST],
    saturation: params[r + P_SATURATION],
    hue: params[r + P_HUE],
    order: Array.from(params.subarray(r + P_ORDER, r + P_ORDER + 4)),
    grayscale: params[r + P_GRAYSCALE] !== 0,
  };
}

/**
 * Draws the augmentation parameters of `count` images of the given shape
 * from Prng(options.seed): a Float32Array of count * AUG_PARAMS records.
 */
export function makeAugmentParams(count: number, image: { channels: 1 | 3; height: number; width: number }, options: AugmentOptions): Float32Array {
  checkInt(count, 'count', { min: 0, max: 2 ** 31 - 1 });
  checkAllocation(count, AUG_PARAMS * 4, 'count');
  checkImageShape(image, 'image');
  if (options === undefined) throw new TypeError('options.seed is required: pass { seed }');
  const o = checkOptions(options, 'options', AUGMENT_KEYS) as unknown as AugmentOptions;
  const seed = checkSeed(o.seed, 'options.seed');
  const opt = resolveOptions(o, image.height, image.width);
  const color = image.channels === 3;
  const rng = new Prng(seed);
  const list: ImageAugmentParams[] = [];
  for (let i = 0; i < count; i++) {
    const box = sampleResizedCrop(rng, image.height, image.width, opt.scale, opt.ratio);
    const p: ImageAugmentParams = { ...identityParams(image.height, image.width), ...box };
    p.flip = rng.bernoulli(opt.flipP);
    if (rng.bernoulli(opt.jitterP)) {
      const order = [0, 1, 2, 3];
      if (opt.randomOrder) rng.shuffle(order);
      p.order = order;
      p.brightness = rng.uniform(Math.max(0, 1 - opt.brightness), 1 + opt.brightness);
      p.contrast = rng.uniform(Math.max(0, 1 - opt.contrast), 1 + opt.contrast);
      if (color) {
        p.saturation = rng.uniform(Math.max(0, 1 - opt.saturation), 1 + opt.saturation);
        p.hue = rng.uniform(-opt.hue, opt.hue);
      }
    }
    if (color) p.grayscale = rng.bernoulli(opt.grayscaleP);
    list.push(p);
  }
  return encodeAugmentParams(list);
}

/**
 * Applies explicit parameter records (makeAugmentParams / encodeAugmentParams)
 * to the images at `indices`: a normalised float batch [B, C, outHeight, outWidth].
 * `reference` runs the naive twin of the kernel (for tests and benchmarks).
 */
export function augmentWithParams(
  ds: Dataset,
  indices: ArrayLike<number>,
  params: Float32Array,
  options: { size?: number | readonly [number, number]; reference?: boolean } = {},
): Tensor {
  checkDataset(ds, 'dataset', false);
  const idx = toIndexArray(indices, datasetSize(ds));
  if (!(params instanceof Float32Array)) throw new TypeError(`params must be a Float32Array, got ${describe(params)}`);
  if (params.length !== idx.length * AUG_PARAMS) {
    throw new RangeError(`params has ${params.length} entries, expected ${AUG_PARAMS} per index (${idx.length * AUG_PARAMS})`);
  }
  checkOptions(options, 'options', ['size', 'reference']);
  if (options.reference !== undefined) checkBool(options.reference, 'options.reference');
  const [oh, ow] = checkSize(options.size, 'options.size', ds.height, ds.width);
  checkAllocation(idx.length * ds.channels * oh * ow, 4, `the augmented batch [${idx.length}, ${ds.channels}, ${oh}, ${ow}]`);
  checkAugmentParams(params, idx.length, ds.height, ds.width);
  const fn = options.reference ? native.augmentNaive : native.augment;
  return new Tensor(fn(ds.images, idx, params, ds.channels, ds.height, ds.width, oh, ow, NORMALIZE_MEAN, NORMALIZE_STD));
}

/** One SimCLR-augmented view of each image at `indices`, drawn from options.seed. */
export function augmentBatch(ds: Dataset, indices: ArrayLike<number>, options: AugmentOptions): Tensor {
  checkDataset(ds, 'dataset', false);
  const idx = toIndexArray(indices, datasetSize(ds));
  if (options === undefined) throw new TypeError('options.seed is required: pass { seed }');
  checkOptions(options, 'options', AUGMENT_KEYS);
  const params = makeAugmentParams(idx.length, ds, options);
  return augmentWithParams(ds, idx, params, { size: options.size });
}

if (native.augmentParamCount !== AUG_PARAMS) {
  throw new Error(`encsec: the native addon uses ${native.augmentParamCount} augmentation parameters per image, lib/data expects ${AUG_PARAMS}: rebuild the addon`);
}
