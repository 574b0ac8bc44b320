// Batch conversion and SimCLR augmentation: shapes, range, identity and flip
// properties, determinism, the native kernel against a plain TS reference
// (float64, written from torchvision's / PyTorch's definitions: bilinear
// F.interpolate(align_corners=False) on the crop, ColorJitter's ops, RGB<->HSV)
// and against its naive twin, the sampling of the parameters, and bad input.
import t from 'tap';
import { tidy } from '../../lib/core/tensor';
import type { Dataset } from '../../lib/data/dataset';
import { Prng } from '../../lib/data/prng';
import {
  AUG_PARAMS,
  type ImageAugmentParams,
  augmentBatch,
  augmentWithParams,
  decodeAugmentParams,
  encodeAugmentParams,
  identityParams,
  makeAugmentParams,
  roundHalfEven,
  sampleResizedCrop,
} from '../../lib/data/augment';
import { labelsOf, toTensor } from '../../lib/data/tensor';
import { assertClose, rng } from '../helpers';

function synthetic(n: number, channels: 1 | 3, height: number, width: number, seed: number): Dataset {
  const r = rng(seed);
  const images = new Uint8Array(n * channels * height * width);
  // Smooth-ish images (a gradient plus noise) so that crops and jitter have something to act on.
  for (let i = 0; i < n; i++)
    for (let c = 0; c < channels; c++)
      for (let y = 0; y < height; y++)
        for (let x = 0; x < width; x++) {
          const v = 128 + 90 * Math.sin((x + 2 * c + i) / 3) * Math.cos(y / 4) + 40 * (r() - 0.5);
          images[((i * channels + c) * height + y) * width + x] = Math.max(0, Math.min(255, Math.round(v)));
        }
  const labels = Int32Array.from({ length: n }, (_, i) => i % 10);
  return { name: `synthetic-${channels}`, channels, height, width, numClasses: 10, images, labels };
}

const gray = synthetic(64, 1, 28, 28, 1);
const rgb = synthetic(48, 3, 32, 32, 2);
/** Bit-for-bit equality of two float arrays (tap's deep compare is far too slow on 100k elements). */
function sameValues(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return false;
  return true;
}

const idxOf = (n: number, stride = 1, size = 1 << 30) => Int32Array.from({ length: n }, (_, i) => (i * stride) % size);

// ---------------------------------------------------------------- reference

const gray3 = (r: number, g: number, b: number) => 0.2989 * r + 0.587 * g + 0.114 * b;
const clamp01 = (v: number) => Math.min(1, Math.max(0, v));

/** One source tap of F.interpolate(bilinear, align_corners=False). */
function tap(o: number, nIn: number, nOut: number): [number, number, number] {
  let src = ((o + 0.5) * nIn) / nOut - 0.5;
  if (src < 0) src = 0;
  const lo = Math.min(Math.floor(src), nIn - 1);
  return [lo, Math.min(lo + 1, nIn - 1), src - lo];
}

function rgbToHsv(r: number, g: number, b: number): [number, number, number] {
  const max = Math.max(r, g, b), min = Math.min(r, g, b);
  if (max === min) return [0, 0, max];
  const d = max - min;
  let h: number;
  if (max === r) h = (g - b) / d;
  else if (max === g) h = 2 + (b - r) / d;
  else h = 4 + (r - g) / d;
  h = (h / 6 + 1) % 1;
  return [h, d / max, max];
}

function hsvToRgb(h: number, s: number, v: number): [number, number, number] {
  const i = Math.floor(h * 6);
  const f = h * 6 - i;
  const p = clamp01(v * (1 - s)), q = clamp01(v * (1 - s * f)), u = clamp01(v * (1 - s * (1 - f)));
  return ([[v, u, p], [q, v, p], [p, v, u], [p, q, v], [u, p, v], [v, p, q]] as const)[i % 6].slice() as [number, number, number];
}

/** The whole pipeline for one image, float64, straight from the definitions. */
function refAugment(ds: Dataset, index: number, p: ImageAugmentParams, oh: number, ow: number): Float64Array {
  const { channels: C, height: H, width: W } = ds;
  const P = oh * ow;
  const img = new Float64Array(C * P);
  const px = (c: number, y: number, x: number) => ds.images[((index * C + c) * H + y) * W + x];
  for (let c = 0; c < C; c++)
    for (let oy = 0; oy < oh; oy++)
      for (let ox = 0; ox < ow; ox++) {
        const [y0, y1, ly] = tap(oy, p.height, oh);
        const [x0, x1, lx] = tap(p.flip ? ow - 1 - ox : ox, p.width, ow);
        const at = (y: number, x: number) => px(c, p.top + y, p.left + x);
        img[c * P + oy * ow + ox] = ((1 - ly) * ((1 - lx) * at(y0, x0) + lx * at(y0, x1)) + ly * ((1 - lx) * at(y1, x0) + lx * at(y1, x1))) / 255;
      }
  for (const op of p.order) {
    if (op === 0 && p.brightness !== 1) for (let i = 0; i < img.length; i++) img[i] = clamp01(p.brightness * img[i]);
    if (op === 1 && p.contrast !== 1) {
      let m = 0;
      for (let i = 0; i < P; i++) m += C === 3 ? gray3(img[i], img[P + i], img[2 * P + i]) : img[i];
      m /= P;
      for (let i = 0; i < img.length; i++) img[i] = clamp01(p.contrast * img[i] + (1 - p.contrast) * m);
    }
    if (op === 2 && C === 3 && p.saturation !== 1) {
      for (let i = 0; i < P; i++) {
        const g = gray3(img[i], img[P + i], img[2 * P + i]);
        for (let c = 0; c < 3; c++) img[c * P + i] = clamp01(p.saturation * img[c * P + i] + (1 - p.saturation) * g);
      }
    }
    if (op === 3 && C === 3 && p.hue !== 0) {
      for (let i = 0; i < P; i++) {
        const [h, s, v] = rgbToHsv(img[i], img[P + i], img[2 * P + i]);
        const hh = h + p.hue - Math.floor(h + p.hue);
        [img[i], img[P + i], img[2 * P + i]] = hsvToRgb(hh, s, v);
      }
    }
  }
  if (C === 3 && p.grayscale) {
    for (let i = 0; i < P; i++) img[i] = img[P + i] = img[2 * P + i] = gray3(img[i], img[P + i], img[2 * P + i]);
  }
  return img.map((v) => (v - 0.5) / 0.5);
}

function refBatch(ds: Dataset, idx: Int32Array, params: Float32Array, oh: number, ow: number): Float64Array {
  const per = ds.channels * oh * ow;
  const out = new Float64Array(idx.length * per);
  for (let b = 0; b < idx.length; b++) out.set(refAugment(ds, idx[b], decodeAugmentParams(params, b), oh, ow), b * per);
  return out;
}

// -------------------------------------------------------------------- tests

t.test('toTensor: normalised NCHW floats, x = (p/255 - 0.5)/0.5', async (t) => {
  tidy(() => {
    const idx = Int32Array.of(5, 0, 63, 5);
    const x = toTensor(gray, idx);
    t.same(x.shape, [4, 1, 28, 28]);
    const a = x.toArray();
    let exact = true;
    for (let b = 0; b < 4; b++)
      for (let i = 0; i < 784; i++) if (a[b * 784 + i] !== Math.fround((Math.fround(gray.images[idx[b] * 784 + i] / 255) - 0.5) / 0.5)) exact = false;
    t.ok(exact, 'every value as ToTensor + Normalize compute it in float32');
    const y = toTensor(rgb, [1, 2]);
    t.same(y.shape, [2, 3, 32, 32]);
    t.equal(y.toArray()[3072 + 1024 * 2 + 5], Math.fround((Math.fround(rgb.images[2 * 3072 + 2048 + 5] / 255) - 0.5) / 0.5), 'RGB layout kept (CHW)');
    t.same(Array.from(labelsOf(gray, idx)), [5, 0, 3, 5]);
    t.same(toTensor(gray, []).shape, [0, 1, 28, 28], 'empty batch');
  });
});

t.test('augmentBatch: shapes, finite values within [-1, 1]', async (t) => {
  tidy(() => {
    for (const [ds, B] of [[gray, 64], [rgb, 48]] as const) {
      const x = augmentBatch(ds, idxOf(B), { seed: 3 });
      t.same(x.shape, [B, ds.channels, ds.height, ds.width], `${ds.name}: output size = input size by default`);
      const a = x.toArray();
      t.ok(a.every((v) => Number.isFinite(v) && v >= -1 && v <= 1), `${ds.name}: all values in [-1, 1]`);
      // Strong jitter still stays in range (clamped after each op, as torchvision).
      const s = augmentBatch(ds, idxOf(B), { seed: 4, jitterP: 1, brightness: 3, contrast: 3, saturation: 3, hue: 0.5 });
      t.ok(s.toArray().every((v) => v >= -1 && v <= 1), `${ds.name}: strong jitter clamped`);
      t.same(augmentBatch(ds, idxOf(3), { seed: 1, size: [20, 24] }).shape, [3, ds.channels, 20, 24], `${ds.name}: explicit size`);
      t.same(augmentBatch(ds, idxOf(2), { seed: 1, size: 40 }).shape, [2, ds.channels, 40, 40], `${ds.name}: upscaled`);
    }
  });
});

t.test('full-box crop without flip or jitter is the identity (equals toTensor)', async (t) => {
  tidy(() => {
    for (const ds of [gray, rgb]) {
      const idx = idxOf(16, 3, 16);
      const params = encodeAugmentParams(Array.from({ length: 16 }, () => identityParams(ds.height, ds.width)));
      t.ok(sameValues(augmentWithParams(ds, idx, params).toArray(), toTensor(ds, idx).toArray()), `${ds.name}: bit-identical`);
      // The same through the sampler: scale 1, ratio 1 (the only box), no flip, no jitter, no grayscale.
      const x = augmentBatch(ds, idx, { seed: 8, scale: [1, 1], ratio: [1, 1], flipP: 0, jitterP: 0, grayscaleP: 0 });
      t.ok(sameValues(x.toArray(), toTensor(ds, idx).toArray()), `${ds.name}: sampled with scale 1, ratio 1`);
    }
  });
});

t.test('horizontal flip mirrors the columns and is its own inverse', async (t) => {
  tidy(() => {
    for (const ds of [gray, rgb]) {
      const B = 8;
      const idx = idxOf(B);
      const flip = encodeAugmentParams(Array.from({ length: B }, () => ({ ...identityParams(ds.height, ds.width), flip: true })));
      const once = augmentWithParams(ds, idx, flip).toArray();
      const plain = toTensor(ds, idx).toArray();
      const W = ds.width;
      let mirrored = true;
      for (let r = 0; r < plain.length / W; r++) for (let x = 0; x < W; x++) if (once[r * W + x] !== plain[r * W + W - 1 - x]) mirrored = false;
      t.ok(mirrored, `${ds.name}: flip reverses every row`);
      // Back to bytes (exact: the values are p/255 normalised), flip again.
      const bytes = Uint8Array.from(once, (v) => Math.round((v * 0.5 + 0.5) * 255));
      const flipped: Dataset = { ...ds, images: bytes, labels: new Int32Array(B) };
      const twice = augmentWithParams(flipped, idx, flip).toArray();
      t.ok(sameValues(twice, plain), `${ds.name}: flip twice = identity`);
    }
  });
});

t.test('same seed, same batch; another seed, another batch', async (t) => {
  tidy(() => {
    for (const ds of [gray, rgb]) {
      const idx = idxOf(32);
      const a = augmentBatch(ds, idx, { seed: 123 }).toArray();
      const b = augmentBatch(ds, idx, { seed: 123 }).toArray();
      const c = augmentBatch(ds, idx, { seed: 124 }).toArray();
      t.ok(sameValues(a, b), `${ds.name}: reproducible`);
      t.notOk(sameValues(a, c), `${ds.name}: seed matters`);
      t.ok(sameValues(makeAugmentParams(32, ds, { seed: 5 }), makeAugmentParams(32, ds, { seed: 5 })), `${ds.name}: params reproducible`);
    }
    // Two copies of an index in one batch get independent views (SimCLR's two views).
    const both = Int32Array.of(7, 7);
    const v = augmentBatch(rgb, both, { seed: 9 }).toArray();
    t.notOk(sameValues(v.subarray(0, 3072), v.subarray(3072)), 'two views of one image differ');
  });
});

t.test('native crop + flip against the TS bilinear reference (align_corners=False)', async (t) => {
  tidy(() => {
    const r = new Prng(77);
    for (const ds of [gray, rgb]) {
      for (const [oh, ow] of [[ds.height, ds.width], [17, 23], [45, 40], [1, 1]]) {
        const B = 12;
        const list: ImageAugmentParams[] = [];
        for (let i = 0; i < B; i++) {
          const h = 1 + r.int(ds.height), w = 1 + r.int(ds.width);
          list.push({ ...identityParams(ds.height, ds.width), top: r.int(ds.height - h + 1), left: r.int(ds.width - w + 1), height: h, width: w, flip: i % 2 === 1 });
        }
        const params = encodeAugmentParams(list);
        const idx = idxOf(B, 5, datasetLen(ds));
        const out = augmentWithParams(ds, idx, params, { size: [oh, ow] });
        t.same(out.shape, [B, ds.channels, oh, ow]);
        assertClose(t, out.toArray(), refBatch(ds, idx, params, oh, ow), `${ds.name} -> ${oh}x${ow}: crop+resize+flip`, 2e-6, 1e-5);
      }
    }
  });
});

function datasetLen(ds: Dataset): number {
  return ds.labels.length;
}

t.test('native jitter and grayscale against the TS reference and the naive twin', async (t) => {
  tidy(() => {
    for (const ds of [gray, rgb]) {
      const B = 40;
      const idx = idxOf(B, 7, datasetLen(ds));
      const params = makeAugmentParams(B, ds, { seed: 21, jitterP: 1, grayscaleP: 0.5 });
      const out = augmentWithParams(ds, idx, params).toArray();
      assertClose(t, out, refBatch(ds, idx, params, ds.height, ds.width), `${ds.name}: full pipeline vs TS reference`, 2e-5, 1e-4);
      const naive = augmentWithParams(ds, idx, params, { reference: true }).toArray();
      assertClose(t, out, naive, `${ds.name}: fast kernel vs naive twin`, 2e-5, 1e-4);
      // Each op alone, with extreme factors.
      for (const op of [0, 1, 2, 3]) {
        const one = encodeAugmentParams(
          Array.from({ length: 4 }, (_, i) => ({
            ...identityParams(ds.height, ds.width),
            order: [op, ...[0, 1, 2, 3].filter((o) => o !== op)],
            brightness: op === 0 ? [0, 0.3, 1.7, 4][i] : 1,
            contrast: op === 1 ? [0, 0.3, 1.7, 4][i] : 1,
            saturation: op === 2 ? [0, 0.3, 1.7, 4][i] : 1,
            hue: op === 3 ? [-0.5, -0.1, 0.25, 0.5][i] : 0,
          })),
        );
        const i4 = idxOf(4, 3, datasetLen(ds));
        assertClose(t, augmentWithParams(ds, i4, one).toArray(), refBatch(ds, i4, one, ds.height, ds.width), `${ds.name}: ${['brightness', 'contrast', 'saturation', 'hue'][op]} alone`, 2e-5, 1e-4);
      }
    }
    // Grayscale makes the three channels equal.
    const g = encodeAugmentParams([{ ...identityParams(32, 32), grayscale: true }]);
    const x = augmentWithParams(rgb, [0], g).toArray();
    t.ok(sameValues(x.subarray(0, 1024), x.subarray(1024, 2048)), 'grayscale: R = G');
    t.ok(sameValues(x.subarray(0, 1024), x.subarray(2048)), 'grayscale: R = B');
    // Order matters: brightness then contrast differs from contrast then brightness once clamping bites.
    const p1 = encodeAugmentParams([{ ...identityParams(32, 32), brightness: 1.8, contrast: 0.3, order: [0, 1, 2, 3] }]);
    const p2 = encodeAugmentParams([{ ...identityParams(32, 32), brightness: 1.8, contrast: 0.3, order: [1, 0, 2, 3] }]);
    t.notOk(sameValues(augmentWithParams(rgb, [0], p1).toArray(), augmentWithParams(rgb, [0], p2).toArray()), 'jitter order is applied');
  });
});

t.test('parameter sampling follows torchvision', async (t) => {
  t.same([0.5, 1.5, 2.5, 3.5, -0.5, 2.4, 2.6].map(roundHalfEven), [0, 2, 2, 4, -0, 2, 3], "Python's round()");
  const r = new Prng(1);
  let full = 0, inside = true, areaOk = true, ratioOk = true;
  for (let i = 0; i < 2000; i++) {
    const b = sampleResizedCrop(r, 28, 28, [0.2, 1], [3 / 4, 4 / 3]);
    if (!(b.top >= 0 && b.left >= 0 && b.height >= 1 && b.width >= 1 && b.top + b.height <= 28 && b.left + b.width <= 28)) inside = false;
    if (b.height === 28 && b.width === 28) full++;
    const area = (b.height * b.width) / 784;
    if (!(area > 0.17 && area <= 1)) areaOk = false;
    // Rounding the sides to whole pixels moves the ratio a little off [3/4, 4/3].
    if (!(b.width / b.height > 0.6 && b.width / b.height < 1.6)) ratioOk = false;
  }
  t.ok(inside, 'every box inside the image');
  t.ok(areaOk, 'areas about in [0.2, 1] of the image');
  t.ok(ratioOk, 'aspect ratios about in [3/4, 4/3]');
  t.ok(full < 200, `few full-image boxes (${full}/2000)`);
  // Impossible area: 10 failed attempts, then the centre-crop fallback.
  t.same(sampleResizedCrop(new Prng(2), 28, 28, [5, 6], [3 / 4, 4 / 3]), { top: 0, left: 0, height: 28, width: 28 }, 'fallback: whole image');
  t.same(sampleResizedCrop(new Prng(2), 20, 30, [5, 6], [2, 3]), { top: 2, left: 0, height: 15, width: 30 }, 'fallback: ratio below range -> centre crop');
  t.same(sampleResizedCrop(new Prng(2), 10, 30, [5, 6], [0.5, 0.8]), { top: 0, left: 11, height: 10, width: 8 }, 'fallback: ratio above range');

  const n = 4000;
  const p = makeAugmentParams(n, rgb, { seed: 99 });
  let flips = 0, jit = 0, grays = 0;
  const orders = new Set<string>();
  let ok = true;
  for (let i = 0; i < n; i++) {
    const q = decodeAugmentParams(p, i);
    flips += +q.flip;
    grays += +q.grayscale;
    const jittered = q.brightness !== 1 || q.contrast !== 1 || q.saturation !== 1 || q.hue !== 0;
    jit += +jittered;
    if (jittered) orders.add(q.order.join(''));
    if (q.brightness < 0.6 || q.brightness > 1.4 || q.contrast < 0.6 || q.contrast > 1.4 || q.saturation < 0.6 || q.saturation > 1.4 || Math.abs(q.hue) > 0.1) ok = false;
  }
  t.ok(ok, 'factors within SimCLR strengths (0.4, 0.4, 0.4, 0.1)');
  t.ok(Math.abs(flips / n - 0.5) < 0.03, `flip rate ${flips / n} ~ 0.5`);
  t.ok(Math.abs(jit / n - 0.8) < 0.03, `jitter rate ${jit / n} ~ 0.8`);
  t.ok(Math.abs(grays / n - 0.2) < 0.03, `grayscale rate ${grays / n} ~ 0.2`);
  t.equal(orders.size, 24, 'all 24 jitter orders occur');
  const fixed = makeAugmentParams(200, rgb, { seed: 1, jitterOrder: 'fixed', jitterP: 1 });
  t.ok(Array.from({ length: 200 }, (_, i) => decodeAugmentParams(fixed, i).order.join('')).every((o) => o === '0123'), "jitterOrder 'fixed'");
  const g = makeAugmentParams(500, gray, { seed: 3 });
  let grayOnly = true;
  for (let i = 0; i < 500; i++) {
    const q = decodeAugmentParams(g, i);
    if (q.saturation !== 1 || q.hue !== 0 || q.grayscale) grayOnly = false;
  }
  t.ok(grayOnly, 'grayscale images: brightness and contrast only, no random grayscale');
  t.equal(p.length, n * AUG_PARAMS);
});

t.test('speed: a few ms per batch', async (t) => {
  const fm = synthetic(512, 1, 28, 28, 5);
  const big = synthetic(256, 3, 32, 32, 6);
  for (const [ds, B] of [[fm, 512], [big, 256]] as const) {
    const idx = idxOf(B);
    augmentBatch(ds, idx, { seed: 0 }).dispose();
    let best = Infinity;
    for (let r = 0; r < 5; r++) {
      const t0 = process.hrtime.bigint();
      augmentBatch(ds, idx, { seed: r }).dispose();
      best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e6);
    }
    t.comment(`augmentBatch ${B} x ${ds.channels}x${ds.height}x${ds.width}: ${best.toFixed(2)} ms`);
    t.ok(best < 200, `${B} images in ${best.toFixed(2)} ms`);
  }
});

t.test('bad input is refused with a clear error', async (t) => {
  t.throws(() => toTensor(gray, [64]), { name: 'RangeError', message: /indices\[0\] = 64/ });
  t.throws(() => toTensor(gray, [0.5]), RangeError);
  t.throws(() => toTensor(gray, 'abc' as unknown as number[]), TypeError);
  t.throws(() => toTensor({ ...gray, images: new Uint8Array(5) }, [0]), { message: /dataset\.images has 5 bytes/ });
  t.throws(() => toTensor({ ...gray, channels: 2 as 1 }, [0]), RangeError);
  t.throws(() => augmentBatch(gray, [0], {} as { seed: number }), { name: 'TypeError', message: /options.seed/ });
  t.throws(() => augmentBatch(gray, [0], { seed: 1, scale: [0.9, 0.2] }), { message: /min <= max/ });
  t.throws(() => augmentBatch(gray, [0], { seed: 1, flipP: 2 }), { message: /flipP must be <= 1/ });
  t.throws(() => augmentBatch(gray, [0], { seed: 1, hue: 0.7 }), RangeError);
  t.throws(() => augmentBatch(gray, [0], { seed: 1, size: 0 }), RangeError);
  t.throws(() => augmentBatch(gray, [0], { seed: 1, jitterOrder: 'sorted' as 'fixed' }), RangeError);
  t.throws(() => augmentWithParams(gray, [0, 1], new Float32Array(AUG_PARAMS)), { message: /expected 14 per index/ });
  t.throws(() => augmentWithParams(gray, [0], [] as unknown as Float32Array), TypeError);
  const bad = (p: Partial<ImageAugmentParams>) => encodeAugmentParams([{ ...identityParams(28, 28), ...p }]);
  // Raw records (not through encodeAugmentParams, which refuses these values itself): entry k set to v.
  const raw = (k: number, v: number) => {
    const r = encodeAugmentParams([identityParams(28, 28)]);
    r[k] = v;
    return r;
  };
  t.throws(() => augmentWithParams(gray, [0], bad({ top: 5 })), { message: /crop box is outside the 28x28 image/ });
  t.throws(() => augmentWithParams(gray, [0], raw(3, 0)), { message: /at least 1x1/ });
  t.throws(() => augmentWithParams(gray, [0], raw(1, 1.5)), { message: /integers/ });
  t.throws(() => bad({ width: 0 }), { name: 'RangeError', message: /list\[0\]\.width must be >= 1/ });
  t.throws(() => bad({ left: 1.5 }), { name: 'RangeError', message: /list\[0\]\.left must be an integer/ });
  t.throws(() => augmentWithParams(gray, [0], raw(11, 1)), { message: /permutation/ });
  t.throws(() => augmentWithParams(gray, [0], raw(5, -1)), { message: /non-negative/ });
  t.throws(() => augmentWithParams(gray, [0], raw(8, 0.6)), { message: /hue/ });
  t.throws(() => augmentWithParams(gray, [0], raw(5, NaN)), { message: /not finite/ });
  t.throws(() => bad({ order: [0, 1, 1, 3] }), { name: 'RangeError', message: /list\[0\]\.order must be a permutation/ });
  t.throws(() => bad({ brightness: -1 }), { name: 'RangeError', message: /list\[0\]\.brightness must be >= 0/ });
  t.throws(() => bad({ hue: 0.6 }), { name: 'RangeError', message: /list\[0\]\.hue must be <= 0\.5/ });
  t.throws(() => bad({ brightness: NaN }), { name: 'RangeError', message: /list\[0\]\.brightness must be finite/ });
  t.throws(() => encodeAugmentParams([{ ...identityParams(28, 28), order: [0, 1] }]), RangeError);
});
