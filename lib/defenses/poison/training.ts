// In-processing defenses against PoisonedEncoder: training steps that replace
// simclrStep (PretrainOptions.step), and early stopping (PretrainOptions.epochs
// / snapshots: no code of its own).
//
// 1. Clipped noisy step (DP-SGD, Abadi et al. 2016, adapted): the batch is cut
//    into groups G_1..G_m of `groupSize` images; each group's own NT-Xent loss
//    L_j (negatives only inside the group) gives a gradient g_j, clipped to
//    norm C, and the update uses
//        g~ = (sum_j g_j * min(1, C / ||g_j||) + N(0, sigma^2 C^2 I)) / m.
//    True per-example clipping would need groupSize = 1, but NT-Xent couples
//    the examples of a batch (every other image is a negative), so an
//    "example's gradient" is not defined; the smallest honest unit is a group
//    of >= 2 images (4 views). The cost is m backward passes of small batches
//    instead of one large one (~1.5-3x the time per epoch on CPU for groups of
//    8-16), and the loss sees fewer negatives per anchor. No privacy
//    accounting is claimed: the noise only bounds each group's influence, which
//    is what limits a few poisons' pull.
// 2. Augmentation change: smaller/larger crops (RandomResizedCrop's scale) and
//    CorruptEncoder's localised cropping (Zhang et al., CVPR 2024): the second
//    view's crop is drawn INSIDE the first view's crop box, so both views of a
//    spliced image tend to come from the same part and the (target part,
//    reference part) positive pair is rare. Same cost as plain SimCLR.
import { Tensor, keep, tidy } from '../../core/tensor';
import * as ops from '../../core/ops';
import { checkBool, checkInt, checkNumber, checkOptions, checkSeed, describe } from '../../core/validate';
import { Prng, deriveSeed } from '../../data/prng';
import { augmentBatch, augmentWithParams, decodeAugmentParams, encodeAugmentParams, makeAugmentParams, sampleResizedCrop, AUG_PARAMS } from '../../data/augment';
import type { SimclrStepFn } from '../../ssl/simclr';

export interface ClipNoiseOptions {
  /** Images per clipping group (>= 2; NT-Xent needs a negative). */
  groupSize: number;
  /** C: the clipping norm of each group's gradient. */
  clipNorm: number;
  /** sigma: noise standard deviation in units of C. */
  noiseMultiplier: number;
}

/** Groups of `size` consecutive entries of idx; a last group of fewer than 2 joins the one before. */
export function clipGroups(idx: Int32Array, size: number): Int32Array[] {
  if (!(idx instanceof Int32Array)) throw new TypeError(`idx must be an Int32Array, got ${describe(idx)}`);
  // (size 0 or NaN would never advance through idx.)
  checkInt(size, 'size', { min: 2, max: 65536 });
  const groups: Int32Array[] = [];
  for (let s = 0; s < idx.length; s += size) groups.push(idx.slice(s, Math.min(idx.length, s + size)));
  if (groups.length > 1 && groups[groups.length - 1].length < 2) {
    const tail = groups.pop()!;
    const prev = groups.pop()!;
    const merged = new Int32Array(prev.length + tail.length);
    merged.set(prev);
    merged.set(tail, prev.length);
    groups.push(merged);
  }
  return groups;
}

/** A SimCLR step with per-group gradient clipping and Gaussian noise (see the header). */
export function clippedNoisyStep(options: ClipNoiseOptions): SimclrStepFn {
  if (options === undefined) throw new TypeError('options must be an object { groupSize, clipNorm, noiseMultiplier }, got undefined');
  const o = checkOptions<ClipNoiseOptions>(options, 'options', ['groupSize', 'clipNorm', 'noiseMultiplier']);
  const groupSize = checkInt(o.groupSize, 'options.groupSize', { min: 2, max: 65536 });
  const C = checkNumber(o.clipNorm, 'options.clipNorm', { gt: 0 });
  const sigma = checkNumber(o.noiseMultiplier, 'options.noiseMultiplier', { min: 0 });
  return (encoder, head, opt, data, idx, tau, augSeed) => {
    const groups = clipGroups(idx, groupSize);
    const params = opt.params;
    let acc: Tensor[] = params.map((p) => keep(Tensor.zeros(p.shape)));
    let lossSum = 0;
    try {
      groups.forEach((g, j) => {
        tidy(() => {
          const both = new Int32Array(2 * g.length);
          both.set(g, 0);
          both.set(g, g.length);
          const views = augmentBatch(data, both, { seed: deriveSeed(augSeed, j) });
          const loss = ops.ntXent(head.forward(encoder.forward(views)), tau);
          opt.zeroGrad();
          loss.backward();
          lossSum += loss.item() * g.length;
          // ||g_j||: the norm over every parameter's gradient together.
          let sq = 0;
          for (const p of params) if (p.grad) sq += ops.sum(ops.mul(p.grad, p.grad)).item();
          const factor = Math.min(1, C / Math.max(Math.sqrt(sq), 1e-12));
          acc = acc.map((a, i) => {
            const gi = params[i].grad;
            if (!gi) return a;
            const next = keep(ops.add(a, ops.scale(gi, factor)));
            a.dispose();
            return next;
          });
        });
      });
      opt.zeroGrad();
      // g~ = (sum + N(0, sigma^2 C^2)) / m; one noise stream, disjoint counters per parameter.
      const noiseSeed = deriveSeed(augSeed, 0xd9);
      let offset = 0;
      params.forEach((p, i) => {
        p.grad = keep(tidy(() => ops.scale(ops.gaussianNoise(acc[i], sigma * C, noiseSeed, offset), 1 / groups.length)));
        offset += p.size;
      });
      opt.step();
    } finally {
      for (const a of acc) a.dispose();
    }
    return lossSum / idx.length;
  };
}

export interface CropOptions {
  /** RandomResizedCrop area range of every view (default SimCLR's [0.2, 1]). */
  scale?: [number, number];
  /** Draw the second view's crop inside the first view's box (CorruptEncoder's localised cropping). */
  localised?: boolean;
}

/** A SimCLR step with another crop policy (see the header). */
export function croppedStep(options: CropOptions): SimclrStepFn {
  const o = checkOptions<CropOptions>(options, 'options', ['scale', 'localised']);
  const localised = o.localised === undefined ? false : checkBool(o.localised, 'options.localised');
  const scale = o.scale as [number, number] | undefined;
  if (scale !== undefined) {
    if (!Array.isArray(scale) || scale.length !== 2) throw new TypeError('options.scale must be [min, max]');
    checkNumber(scale[0], 'options.scale[0]', { gt: 0, max: 1 });
    checkNumber(scale[1], 'options.scale[1]', { gt: 0, max: 1 });
    if (scale[0] > scale[1]) throw new RangeError('options.scale must be [min, max] with min <= max');
  }
  const area: [number, number] = scale ?? [0.2, 1];
  return (encoder, head, opt, data, idx, tau, augSeed) =>
    tidy(() => {
      const B = idx.length;
      const both = new Int32Array(2 * B);
      both.set(idx, 0);
      both.set(idx, B);
      const views = augmentWithParams(data, both, cropParams(B, data, augSeed, area, localised));
      const loss = ops.ntXent(head.forward(encoder.forward(views)), tau);
      opt.zeroGrad();
      loss.backward();
      opt.step();
      return loss.item();
    });
}

/**
 * Augmentation records of 2B views (view 1 of every image, then view 2) with
 * crop area range `area`; with `localised`, each second crop lies inside its
 * first crop's box.
 */
export function cropParams(B: number, image: { channels: 1 | 3; height: number; width: number }, seed: number, area: [number, number], localised: boolean): Float32Array {
  checkInt(B, 'B', { min: 1, max: 2 ** 30 });
  checkSeed(seed, 'seed');
  if (!Array.isArray(area) || area.length !== 2) throw new TypeError(`area must be [min, max], got ${describe(area)}`);
  checkNumber(area[0], 'area[0]', { gt: 0, max: 1 });
  checkNumber(area[1], 'area[1]', { gt: 0, max: 1 });
  if (area[0] > area[1]) throw new RangeError(`area must be [min, max] with min <= max, got [${area[0]}, ${area[1]}]`);
  checkBool(localised, 'localised');
  const params = makeAugmentParams(2 * B, image, { seed, scale: area });
  if (localised) {
    const rng = new Prng(seed, 0x10c);
    for (let i = 0; i < B; i++) {
      const first = decodeAugmentParams(params, i);
      const inner = sampleResizedCrop(rng, first.height, first.width, area, [3 / 4, 4 / 3]);
      const second = decodeAugmentParams(params, B + i);
      const box = { top: first.top + inner.top, left: first.left + inner.left, height: inner.height, width: inner.width };
      params.set(encodeAugmentParams([{ ...second, ...box }]), (B + i) * AUG_PARAMS);
    }
  }
  return params;
}
