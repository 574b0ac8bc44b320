// PoisonedEncoder (Liu, Jia, Gong, USENIX Security 2022): poisoning inputs for
// contrastive pre-training.
//
// Symbols of the paper: x_t a target input, y_t its target class, x_r a
// reference input of class y_t (the attacker holds at most 5), f the encoder
// pre-trained on D ∪ P, P the poisoning inputs, rho = |P| / |D| the poisoning
// rate. The attacker wants, for every downstream classifier g built on f,
// g(f(x_t)) = y_t: a bilevel problem max_P sum_t sim(f*(x_t), f*(x_r)) with
// f* = argmin_f L_contrastive(D ∪ P).
//
// The construction tailored to contrastive learning: a poisoning input
// p = x_t ⊕ x_r places a (rescaled, randomly positioned) target input and a
// reference input in one image, side by side or one above the other. SimCLR's
// random crops of p then often fall one on the target part and one on the
// reference part, a positive pair, so minimising the contrastive loss on p
// pulls f(x_t) toward f(x_r), i.e. toward class y_t.
//
// Two constructions:
//   'random'     reference and placement drawn uniformly (the paper's x_t ⊕ x_r).
//   'surrogate'  an approximate solution of the bilevel objective: for each
//                poison, `candidates` draws of (reference, placement) are
//                scored under a surrogate encoder f_s the attacker pre-trained
//                on its own public data, and the draw with the largest
//                min(cos(f_s(p), f_s(x_t)), cos(f_s(p), f_s(x_r))) is kept: the
//                poison whose views sit closest to BOTH x_t and x_r under f_s,
//                so that the positive pairs it creates bridge the target and
//                the reference (maximising cos(f(x_t), f(x_r)) after training).
//
// Every random choice derives from `seed` (Prng streams per poison), so the
// same (targets, rate, construction, seed, surrogate) gives byte-identical
// poisons.
import { checkInt, checkNumber, checkObject, checkOneOf, checkOptions, checkSeed, describe } from '../../core/validate';
import { Prng, deriveSeed } from '../../data/prng';
import { checkDataset, datasetSize, type Dataset } from '../../data/dataset';
import type { Module } from '../../nn/module';
import { embedDataset } from '../../eval/embed';

export const POISON_CONSTRUCTIONS = ['random', 'surrogate'] as const;
export type PoisonConstruction = (typeof POISON_CONSTRUCTIONS)[number];

/** The paper's limit on reference inputs per target class. */
export const MAX_REFERENCES = 5;

/** A target input x_t with its target class y_t and the attacker's references of y_t. */
export interface PoisonTarget {
  /** Downstream task the target comes from (e.g. "fashion-mnist", "mnist"). */
  task: string;
  /** Index of x_t in that task's TEST split. */
  index: number;
  trueClass: number;
  /** y_t (never trueClass). */
  targetClass: number;
  /** x_t: channels * height * width bytes. */
  image: Uint8Array;
  /** Indices (in the task's TEST split) of the reference inputs x_r, all of class y_t. */
  referenceIndices: number[];
  /** The reference images, one per index. */
  references: Uint8Array[];
}

/** Where the two parts went in one poisoning input (pixel boxes in the canvas). */
export interface PoisonPlacement {
  /** 'horizontal': side by side; 'vertical': one above the other. */
  layout: 'horizontal' | 'vertical';
  /** Which reference (index into target.references) was used. */
  reference: number;
  targetBox: Box;
  referenceBox: Box;
}

export interface Box {
  top: number;
  left: number;
  height: number;
  width: number;
}

export interface ImageShape {
  channels: 1 | 3;
  height: number;
  width: number;
}

/**
 * Picks `count` target inputs from a task's TEST split, each with a target
 * class drawn uniformly among the other classes, and up to `references`
 * reference inputs of that class (other TEST images, never a target).
 */
export function pickTargets(task: string, test: Dataset, count: number, options: { seed: number; references?: number }): PoisonTarget[] {
  if (typeof task !== 'string' || task === '') throw new TypeError('task must be a non-empty string');
  checkDataset(test, 'test');
  checkInt(count, 'count', { min: 1, max: 1000 });
  if (options === undefined) throw new TypeError('options must be an object { seed, references? }, got undefined');
  const o = checkOptions<{ seed: number; references?: number }>(options, 'options', ['seed', 'references']);
  const seed = checkSeed(o.seed, 'options.seed');
  const nRef = checkInt(o.references ?? MAX_REFERENCES, 'options.references', { min: 1, max: MAX_REFERENCES });
  if (test.numClasses < 2) throw new RangeError('test must have at least 2 classes');
  const n = datasetSize(test);
  const per = test.channels * test.height * test.width;
  const rng = new Prng(seed, 0x7a6);
  const order = rng.shuffle(Int32Array.from({ length: n }, (_, i) => i));
  const chosen = Array.from(order.subarray(0, Math.min(count, n)));
  if (chosen.length < count) throw new RangeError(`test has ${n} images, fewer than count = ${count}`);
  const taken = new Set(chosen);
  return chosen.map((index) => {
    const trueClass = test.labels[index];
    const targetClass = (trueClass + 1 + rng.int(test.numClasses - 1)) % test.numClasses;
    const referenceIndices: number[] = [];
    for (let k = 0; k < n && referenceIndices.length < nRef; k++) {
      const j = order[(count + k) % n];
      if (test.labels[j] === targetClass && !taken.has(j)) {
        referenceIndices.push(j);
        taken.add(j);
      }
    }
    if (referenceIndices.length === 0) throw new RangeError(`test has no image of class ${targetClass} to use as a reference`);
    return {
      task,
      index,
      trueClass,
      targetClass,
      image: test.images.slice(index * per, (index + 1) * per),
      referenceIndices,
      references: referenceIndices.map((j) => test.images.slice(j * per, (j + 1) * per)),
    };
  });
}

/** Checks an image shape argument: { channels: 1 | 3, height, width } with sides in [min, 32768]. */
function checkImageShape(shape: unknown, name: string, min = 1): ImageShape {
  const s = checkObject(shape, name);
  if (s.channels !== 1 && s.channels !== 3) throw new (typeof s.channels === 'number' ? RangeError : TypeError)(`${name}.channels must be 1 or 3, got ${describe(s.channels)}`);
  checkInt(s.height, `${name}.height`, { min, max: 32768 });
  checkInt(s.width, `${name}.width`, { min, max: 32768 });
  return s as unknown as ImageShape;
}

function checkBytes(v: unknown, n: number, name: string): Uint8Array {
  if (!(v instanceof Uint8Array)) throw new TypeError(`${name} must be a Uint8Array, got ${describe(v)}`);
  if (v.length !== n) throw new RangeError(`${name} has ${v.length} bytes, expected ${n}`);
  return v;
}

/** Checks a box lies inside an H x W canvas. */
function checkBox(v: unknown, shape: ImageShape, name: string): Box {
  const b = checkObject(v, name);
  checkInt(b.height, `${name}.height`, { min: 1, max: shape.height });
  checkInt(b.width, `${name}.width`, { min: 1, max: shape.width });
  checkInt(b.top, `${name}.top`, { min: 0, max: shape.height - (b.height as number) });
  checkInt(b.left, `${name}.left`, { min: 0, max: shape.width - (b.width as number) });
  return b as unknown as Box;
}

/**
 * Area (box-filter) resampling of one channel-major image to outH x outW:
 * each output pixel is the exact area-weighted mean of the source pixels it
 * covers (no aliasing when shrinking a 28 px image to 14 px).
 */
export function resizeArea(src: Uint8Array, shape: ImageShape, outH: number, outW: number): Uint8Array {
  const { channels: C, height: H, width: W } = checkImageShape(shape, 'shape');
  checkInt(outH, 'outH', { min: 1, max: 32768 });
  checkInt(outW, 'outW', { min: 1, max: 32768 });
  checkBytes(src, C * H * W, 'src');
  const out = new Uint8Array(C * outH * outW);
  const sy = H / outH;
  const sx = W / outW;
  for (let c = 0; c < C; c++) {
    for (let oy = 0; oy < outH; oy++) {
      const y0 = oy * sy;
      const y1 = y0 + sy;
      for (let ox = 0; ox < outW; ox++) {
        const x0 = ox * sx;
        const x1 = x0 + sx;
        let acc = 0;
        for (let y = Math.floor(y0); y < Math.min(H, Math.ceil(y1)); y++) {
          const wy = Math.min(y + 1, y1) - Math.max(y, y0);
          for (let x = Math.floor(x0); x < Math.min(W, Math.ceil(x1)); x++) {
            const wx = Math.min(x + 1, x1) - Math.max(x, x0);
            acc += wy * wx * src[(c * H + y) * W + x];
          }
        }
        out[(c * outH + oy) * outW + ox] = Math.min(255, Math.max(0, Math.round(acc / (sy * sx))));
      }
    }
  }
  return out;
}

/** Copies a C x h x w patch into a C x H x W canvas at (top, left). */
function paste(canvas: Uint8Array, shape: ImageShape, patch: Uint8Array, box: Box): void {
  const { channels: C, height: H, width: W } = shape;
  for (let c = 0; c < C; c++) {
    for (let y = 0; y < box.height; y++) {
      const row = patch.subarray((c * box.height + y) * box.width, (c * box.height + y + 1) * box.width);
      canvas.set(row, (c * H + box.top + y) * W + box.left);
    }
  }
}

/**
 * Geometry of the random placement: each part is rescaled to a square of
 * side s in [minScale, 1] x (the half's shorter side), then put at a uniform
 * position inside its half of the canvas. The background is 0 (black, as in
 * Fashion-MNIST and MNIST).
 */
export const MIN_PART_SCALE = 0.7;

/** Draws one placement: layout, which part comes first, reference, sides, positions. */
export function drawPlacement(rng: Prng, shape: ImageShape, numReferences: number): PoisonPlacement {
  if (!(rng instanceof Prng)) throw new TypeError(`rng must be a data.Prng, got ${describe(rng)}`);
  // Two parts side by side (or one above the other): each half needs a side of at least one pixel.
  checkImageShape(shape, 'shape', 2);
  checkInt(numReferences, 'numReferences', { min: 1, max: MAX_REFERENCES });
  const layout = rng.bernoulli(0.5) ? 'horizontal' : 'vertical';
  const targetFirst = rng.bernoulli(0.5);
  const reference = rng.int(numReferences);
  const halfH = layout === 'vertical' ? Math.floor(shape.height / 2) : shape.height;
  const halfW = layout === 'horizontal' ? Math.floor(shape.width / 2) : shape.width;
  const maxSide = Math.min(halfH, halfW);
  const minSide = Math.max(1, Math.round(MIN_PART_SCALE * maxSide));
  const part = (slot: number): Box => {
    const side = minSide + rng.int(maxSide - minSide + 1);
    const top = (layout === 'vertical' ? slot * halfH : 0) + rng.int(halfH - side + 1);
    const left = (layout === 'horizontal' ? slot * halfW : 0) + rng.int(halfW - side + 1);
    return { top, left, height: side, width: side };
  };
  const first = part(0);
  const second = part(1);
  return { layout, reference, targetBox: targetFirst ? first : second, referenceBox: targetFirst ? second : first };
}

/** Renders x_t ⊕ x_r for a placement: a fresh canvas with both parts pasted. */
export function renderPoison(target: PoisonTarget, placement: PoisonPlacement, shape: ImageShape): Uint8Array {
  checkImageShape(shape, 'shape');
  const per = shape.channels * shape.height * shape.width;
  const t = checkObject(target, 'target');
  checkBytes(t.image, per, 'target.image');
  if (!Array.isArray(t.references)) throw new TypeError(`target.references must be an array of images, got ${describe(t.references)}`);
  const pl = checkObject(placement, 'placement');
  checkInt(pl.reference, 'placement.reference', { min: 0, max: MAX_REFERENCES - 1 });
  checkBytes((t.references as unknown[])[pl.reference as number], per, `target.references[${pl.reference as number}]`);
  checkBox(pl.targetBox, shape, 'placement.targetBox');
  checkBox(pl.referenceBox, shape, 'placement.referenceBox');
  const canvas = new Uint8Array(shape.channels * shape.height * shape.width);
  const ref = target.references[placement.reference];
  if (!ref) throw new RangeError(`placement.reference = ${placement.reference} is not a reference of target ${target.index}`);
  paste(canvas, shape, resizeArea(target.image, shape, placement.targetBox.height, placement.targetBox.width), placement.targetBox);
  paste(canvas, shape, resizeArea(ref, shape, placement.referenceBox.height, placement.referenceBox.width), placement.referenceBox);
  return canvas;
}

export interface BuildPoisonsOptions {
  /** Number of poisoning inputs in all; split as evenly as possible across targets (earlier targets take the remainder). */
  count: number;
  construction: PoisonConstruction;
  seed: number;
  /** The attacker's surrogate encoder f_s ('surrogate' construction only). */
  surrogate?: Module;
  /** Draws scored per poison by the surrogate construction (default 8). */
  candidates?: number;
}

export interface BuiltPoisons {
  /** count * C * H * W bytes, poison after poison. */
  images: Uint8Array;
  /** Which target (index into targets) each poison serves. */
  targetOf: Int32Array;
  placements: PoisonPlacement[];
  /** Surrogate score of each kept poison (surrogate construction), else empty. */
  scores: Float32Array;
}

const BUILD_KEYS = ['count', 'construction', 'seed', 'surrogate', 'candidates'];

/** How many poisons target t gets when `count` are split over `targets` targets. */
export function poisonsPerTarget(count: number, targets: number): number[] {
  checkInt(count, 'count', { min: 0, max: Number.MAX_SAFE_INTEGER });
  // (One entry per target: the bound keeps a huge count of targets from allocating without end.)
  checkInt(targets, 'targets', { min: 1, max: 1_000_000 });
  return Array.from({ length: targets }, (_, t) => Math.floor(count / targets) + (t < count % targets ? 1 : 0));
}

function checkTargets(targets: readonly PoisonTarget[], shape: ImageShape): void {
  if (!Array.isArray(targets) || targets.length === 0) throw new TypeError('targets must be a non-empty array of PoisonTarget');
  const per = shape.channels * shape.height * shape.width;
  Array.from(targets).forEach((t, i) => {
    checkObject(t, `targets[${i}]`);
    if (!(t.image instanceof Uint8Array) || t.image.length !== per) throw new RangeError(`targets[${i}].image must be ${per} bytes`);
    if (!Array.isArray(t.references) || t.references.length < 1 || t.references.length > MAX_REFERENCES) {
      throw new RangeError(`targets[${i}].references must hold 1 to ${MAX_REFERENCES} images`);
    }
    (t.references as readonly unknown[]).forEach((r, k) => {
      if (!(r instanceof Uint8Array) || r.length !== per) throw new RangeError(`targets[${i}].references[${k}] must be ${per} bytes`);
    });
    checkInt(t.targetClass, `targets[${i}].targetClass`, { min: 0 });
    if (t.targetClass === t.trueClass) throw new RangeError(`targets[${i}].targetClass equals its true class ${t.trueClass}`);
  });
}

/** Builds the poisoning inputs P for the targets (see the header for the two constructions). */
export function buildPoisons(targets: readonly PoisonTarget[], shape: ImageShape, options: BuildPoisonsOptions): BuiltPoisons {
  if (options === undefined) throw new TypeError('options must be an object { count, construction, seed, ... }, got undefined');
  const o = checkOptions<BuildPoisonsOptions>(options, 'options', BUILD_KEYS);
  checkImageShape(shape, 'shape', 2);
  checkTargets(targets, shape);
  const count = checkInt(o.count, 'options.count', { min: 0, max: 10_000_000 });
  const construction = checkOneOf(o.construction, 'options.construction', POISON_CONSTRUCTIONS);
  const seed = checkSeed(o.seed, 'options.seed');
  const candidates = construction === 'surrogate' ? checkInt(o.candidates ?? 8, 'options.candidates', { min: 1, max: 1024 }) : 1;
  if (construction === 'surrogate' && (o.surrogate === undefined || typeof (o.surrogate as Module).forward !== 'function')) {
    throw new TypeError("options.surrogate must be an encoder (Module) for the 'surrogate' construction");
  }
  const per = shape.channels * shape.height * shape.width;
  const images = new Uint8Array(count * per);
  const targetOf = new Int32Array(count);
  const placements: PoisonPlacement[] = [];
  const scores = new Float32Array(construction === 'surrogate' ? count : 0);
  const split = poisonsPerTarget(count, targets.length);
  let p = 0;
  targets.forEach((target, t) => {
    // Candidate draws of every poison of this target, from one stream per poison.
    const draws: PoisonPlacement[][] = [];
    for (let k = 0; k < split[t]; k++) {
      const rng = new Prng(deriveSeed(seed, t, k), 0x9015);
      draws.push(Array.from({ length: candidates }, () => drawPlacement(rng, shape, target.references.length)));
    }
    let pick: number[] = draws.map(() => 0);
    let best: number[] = [];
    if (construction === 'surrogate' && split[t] > 0) {
      ({ pick, best } = surrogatePick(options.surrogate!, target, draws, shape));
    }
    draws.forEach((cands, k) => {
      const placement = cands[pick[k]];
      images.set(renderPoison(target, placement, shape), p * per);
      targetOf[p] = t;
      placements.push(placement);
      if (construction === 'surrogate') scores[p] = best[k];
      p++;
    });
  });
  return { images, targetOf, placements, scores };
}

/** Cosine similarity of two rows (float64 sums). */
export function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let ab = 0, aa = 0, bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i] * b[i];
    aa += a[i] * a[i];
    bb += b[i] * b[i];
  }
  return ab / Math.max(Math.sqrt(aa * bb), 1e-12);
}

/** A dataset of raw images (labels 0) for embedding. */
function imageSet(images: Uint8Array, n: number, shape: ImageShape): Dataset {
  return { name: 'poison-candidates', channels: shape.channels, height: shape.height, width: shape.width, numClasses: 1, images, labels: new Int32Array(n) };
}

/**
 * The surrogate step: embeds x_t, its references and every candidate poison
 * under f_s, scores a candidate p drawn with reference x_r as
 * min(cos(f_s(p), f_s(x_t)), cos(f_s(p), f_s(x_r))), keeps the best per poison.
 */
function surrogatePick(surrogate: Module, target: PoisonTarget, draws: PoisonPlacement[][], shape: ImageShape): { pick: number[]; best: number[] } {
  const per = shape.channels * shape.height * shape.width;
  const anchors = new Uint8Array((1 + target.references.length) * per);
  anchors.set(target.image, 0);
  target.references.forEach((r, k) => anchors.set(r, (1 + k) * per));
  const ea = embedDataset(surrogate, imageSet(anchors, 1 + target.references.length, shape));
  const row = (e: { data: Float32Array; dim: number }, i: number) => e.data.subarray(i * e.dim, (i + 1) * e.dim);
  const flat = draws.flat();
  const cand = new Uint8Array(flat.length * per);
  flat.forEach((pl, i) => cand.set(renderPoison(target, pl, shape), i * per));
  const ec = embedDataset(surrogate, imageSet(cand, flat.length, shape));
  const pick: number[] = [];
  const best: number[] = [];
  let i = 0;
  for (const cands of draws) {
    let bi = 0;
    let bs = -Infinity;
    cands.forEach((pl, k) => {
      const e = row(ec, i + k);
      const s = Math.min(cosine(e, row(ea, 0)), cosine(e, row(ea, 1 + pl.reference)));
      if (s > bs) {
        bs = s;
        bi = k;
      }
    });
    pick.push(bi);
    best.push(bs);
    i += cands.length;
  }
  return { pick, best };
}

/** Number of poisons for rate rho of a clean set of n images: round(rho * n). */
export function poisonCount(rate: number, n: number): number {
  checkNumber(rate, 'rate', { gt: 0, lt: 1 });
  checkInt(n, 'n', { min: 1 });
  return Math.round(rate * n);
}
