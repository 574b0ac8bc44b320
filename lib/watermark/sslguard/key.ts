// SSLGuard's secret key κ (Cong, He, Zhang, ACM CCS 2022):
//   D_v  the private verification set (indices into a built-in dataset split)
//   sk   the secret vector, sk ~ N(0, I_m), m = 256
//   M    the trigger mask over the input's pixels: M[p] = 1 with probability 1 - r (r = 0.65)
//   T    the learnable trigger, pixel values in [0, 1]
//   D    the decoder, an MLP d -> 512 -> 256 -> m with ReLU
// A triggered image is x_t = clip((1 - M) ⊙ x + M ⊙ T, 0, 1) in pixel space
// (applyTrigger works on the encoder's normalised input, x = 2p - 1).
//
// On disk a key is a folder: key.safetensors (sk, mask, trigger, decoder.*)
// and key.json, the manifest (settings, D_v's indices, the null model and the
// verdict threshold, the SHA-256 of key.safetensors, and a digest of the
// manifest itself). Both are written atomically, tensors first, so the
// manifest never names tensors that are not there; loadKey validates
// everything and names what is wrong. The key is never part of an encoder file.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Tensor, keep, noGrad } from '../../core/tensor';
import * as ops from '../../core/ops';
import { checkInt, checkNumber, checkObject, checkOptions, checkSeed, checkTensor, describe } from '../../core/validate';
import { Linear, Module, ReLU, Sequential, type PlanBuilder } from '../../nn/module';
import { Prng, deriveSeed } from '../../data/prng';
import { epochPermutation } from '../../data/batching';
import { BUILTIN_DATASETS, loadDataset, type BuiltinName } from '../../data/builtin';
import { subset, type Dataset } from '../../data/dataset';
import { serializeSafetensors, loadSafetensors } from '../../io/safetensors';
import { checkPath, ensureDir, writeFileAtomic } from '../../io/atomic';

export const KEY_FORMAT = 'encsec-sslguard-key';
export const KEY_VERSION = 1;
export const KEY_TENSORS_FILE = 'key.safetensors';
export const KEY_MANIFEST_FILE = 'key.json';

/** The decoder D: d -> 512 -> 256 -> m, ReLU between (the paper's projection). */
export class WatermarkDecoder extends Module {
  readonly net: Sequential;
  constructor(readonly inDim: number, readonly outDim: number, seed: number) {
    super();
    checkInt(inDim, 'inDim', { min: 1, max: 65536 });
    checkInt(outDim, 'outDim', { min: 1, max: 65536 });
    checkSeed(seed);
    this.net = this.registerModule(
      'net',
      new Sequential(
        new Linear(inDim, 512, { seed, stream: 3000 }),
        new ReLU(),
        new Linear(512, 256, { seed, stream: 3001 }),
        new ReLU(),
        new Linear(256, outDim, { seed, stream: 3002 }),
      ),
    );
  }
  forward(x: Tensor): Tensor {
    return this.net.forward(x);
  }
  plan(b: PlanBuilder, input: number): number {
    return this.net.plan(b, input);
  }
}

/** Where D_v's images come from: a built-in dataset split and the indices of the images in it. */
export interface VerificationSet {
  data: BuiltinName;
  split: 'train' | 'test';
  indices: Int32Array;
}

/**
 * The null model of the verdict: hits of encoders NOT derived from F_w on D_v
 * (the clean F, independently trained encoders, copies stolen from F), pooled.
 */
export interface NullModel {
  hits: number;
  trials: number;
  /** What the counts came from (file names, descriptions). */
  sources: string[];
}

export interface SslGuardKey {
  /** sk [m] */
  sk: Tensor;
  /** M [C, H, W], entries 0 or 1 */
  mask: Tensor;
  /** T [C, H, W], pixel space [0, 1] (the trainable trigger during embedding) */
  trigger: Tensor;
  decoder: WatermarkDecoder;
  /** The encoder's embedding size d. */
  dim: number;
  imageShape: [number, number, number];
  /** Probability that a pixel is NOT in the mask. */
  r: number;
  verification: VerificationSet;
  /** A verification image is a hit when cos(D(E(x_t)), sk) exceeds this (0.5). */
  cosThreshold: number;
  /** Verdict "watermarked" when the binomial p-value is below this (1e-6). */
  alpha: number;
  nullModel: NullModel;
  seed: number;
}

export interface CreateKeyOptions {
  /** The encoder's embedding size d. */
  dim: number;
  imageShape?: [number, number, number];
  /** sk's length m (default 256). */
  m?: number;
  r?: number;
  seed: number;
  /** D_v: |D_v| images of `data`/`split`, drawn by the seed (default 1000 of fashion-mnist train). */
  verifySize?: number;
  data?: BuiltinName;
  split?: 'train' | 'test';
  /** Size of the split (to draw indices from); default: loaded from the dataset. */
  splitSize?: number;
  cosThreshold?: number;
  alpha?: number;
}

const CREATE_KEYS = ['dim', 'imageShape', 'm', 'r', 'seed', 'verifySize', 'data', 'split', 'splitSize', 'cosThreshold', 'alpha'];

/** A fresh key: every random choice from `seed` (sk from (seed,1), M from (seed,2), T from (seed,3), D from (seed,4), D_v from (seed,5)). */
export function createKey(options: CreateKeyOptions): SslGuardKey {
  const o = checkOptions<CreateKeyOptions>(options, 'options', CREATE_KEYS);
  const dim = checkInt(o.dim, 'options.dim', { min: 1, max: 65536 });
  const seed = checkSeed(o.seed, 'options.seed');
  const m = checkInt(o.m ?? 256, 'options.m', { min: 2, max: 65536 });
  const r = checkNumber(o.r ?? 0.65, 'options.r', { min: 0, lt: 1 });
  const imageShape = checkImageShape(o.imageShape ?? [1, 28, 28], 'options.imageShape');
  const data = o.data ?? 'fashion-mnist';
  if (!(BUILTIN_DATASETS as readonly string[]).includes(data)) throw new RangeError(`options.data must be one of ${BUILTIN_DATASETS.join(', ')}, got ${JSON.stringify(data)}`);
  const split = o.split ?? 'train';
  if (split !== 'train' && split !== 'test') throw new RangeError(`options.split must be "train" or "test", got ${JSON.stringify(split)}`);
  const verifySize = checkInt(o.verifySize ?? 1000, 'options.verifySize', { min: 1, max: 1 << 20 });
  const cosThreshold = checkNumber(o.cosThreshold ?? 0.5, 'options.cosThreshold', { gt: -1, lt: 1 });
  const alpha = checkNumber(o.alpha ?? 1e-6, 'options.alpha', { gt: 0, lt: 1 });
  const splitSize = o.splitSize === undefined ? loadDataset(data, { split }).labels.length : checkInt(o.splitSize, 'options.splitSize', { min: 1 });
  if (verifySize > splitSize) throw new RangeError(`options.verifySize ${verifySize} is larger than ${data}/${split} (${splitSize} images)`);

  const [C, H, W] = imageShape;
  const P = C * H * W;
  const sk = keep(Tensor.randn([m], { seed: deriveSeed(seed, 1) }));
  // M: a pixel is in the mask with probability 1 - r (the official code: rand > r -> 1).
  const u = new Prng(deriveSeed(seed, 2));
  const mask = new Float32Array(P);
  for (let i = 0; i < P; i++) mask[i] = u.next() > r ? 1 : 0;
  // T: Gaussian noise min-max scaled to [0, 1] (as the official key_init).
  const t = Tensor.randn([P], { seed: deriveSeed(seed, 3) });
  const tv = t.toArray();
  t.dispose();
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of tv) {
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  for (let i = 0; i < P; i++) tv[i] = (tv[i] - lo) / Math.max(hi - lo, 1e-12);
  const perm = epochPermutation(splitSize, deriveSeed(seed, 5), 0);
  const indices = perm.slice(0, verifySize).sort();
  return {
    sk,
    mask: keep(Tensor.from(mask, imageShape)),
    trigger: keep(Tensor.from(tv, imageShape)),
    decoder: new WatermarkDecoder(dim, m, deriveSeed(seed, 4)),
    dim,
    imageShape,
    r,
    verification: { data, split, indices },
    cosThreshold,
    alpha,
    nullModel: { hits: 0, trials: 0, sources: [] },
    seed,
  };
}

function checkImageShape(v: unknown, name: string): [number, number, number] {
  if (!Array.isArray(v) || v.length !== 3) throw new TypeError(`${name} must be [C, H, W]`);
  checkInt(v[0], `${name}[0]`, { min: 1, max: 4 });
  checkInt(v[1], `${name}[1]`, { min: 1, max: 4096 });
  checkInt(v[2], `${name}[2]`, { min: 1, max: 4096 });
  return [v[0], v[1], v[2]];
}

/** Checks a key argument's structure (tensors, decoder, image shape, D_v) before any of it is used. */
export function checkSslGuardKey(key: unknown, name = 'key'): SslGuardKey {
  const k = checkObject(key, name);
  for (const t of ['sk', 'mask', 'trigger'] as const) checkTensor(k[t], `${name}.${t}`);
  if (!(k.decoder instanceof WatermarkDecoder)) throw new TypeError(`${name}.decoder must be a WatermarkDecoder, got ${describe(k.decoder)}`);
  if (!Array.isArray(k.imageShape) || k.imageShape.length !== 3) throw new TypeError(`${name}.imageShape must be [C, H, W], got ${describe(k.imageShape)}`);
  const v = checkObject(k.verification, `${name}.verification`);
  if (typeof v.data !== 'string' || (v.split !== 'train' && v.split !== 'test') || !(v.indices instanceof Int32Array)) {
    throw new TypeError(`${name}.verification must be { data, split: 'train' | 'test', indices: Int32Array }`);
  }
  return key as SslGuardKey;
}

/** Frees the key's tensors and decoder. */
export function disposeKey(key: SslGuardKey): void {
  checkObject(key, 'key');
  for (const t of ['sk', 'mask', 'trigger'] as const) {
    if (!Tensor.isTensor(key[t])) throw new TypeError(`key.${t} must be a Tensor, got ${describe(key[t])}`);
  }
  if (!(key.decoder instanceof WatermarkDecoder)) throw new TypeError(`key.decoder must be a WatermarkDecoder, got ${describe(key.decoder)}`);
  key.sk.dispose();
  key.mask.dispose();
  key.trigger.dispose();
  key.decoder.dispose();
}

/** D_v's images. */
export function loadVerificationSet(key: SslGuardKey, cacheDir?: string): Dataset {
  checkSslGuardKey(key);
  if (cacheDir !== undefined) checkPath(cacheDir, 'cacheDir');
  const v = key.verification;
  const ds = loadDataset(v.data, cacheDir ? { split: v.split, cacheDir } : { split: v.split });
  const [C, H, W] = key.imageShape;
  if (ds.channels !== C || ds.height !== H || ds.width !== W) throw new RangeError(`${v.data}/${v.split} has ${ds.channels}x${ds.height}x${ds.width} images, the key expects ${C}x${H}x${W}`);
  return subset(ds, v.indices, `${v.data}/${v.split}[D_v ${v.indices.length}]`);
}

/**
 * The triggered batch x_t = clip((1 - M) ⊙ p + M ⊙ T, 0, 1) for a batch x of
 * NORMALISED images (x = 2p - 1, as toTensor makes them), returned normalised
 * again. Differentiable w.r.t. T (and x). clip(v, 0, 1) = relu(v) - relu(v - 1).
 */
export function applyTrigger(x: Tensor, mask: Tensor, trigger: Tensor): Tensor {
  checkTensor(x, 'x');
  checkTensor(mask, 'mask');
  checkTensor(trigger, 'trigger');
  if (x.ndim !== 4 || x.shape.slice(1).some((d, i) => d !== mask.shape[i]) || mask.size !== trigger.size) {
    throw new RangeError(`x [${x.shape.join(', ')}] does not match the key's image shape [${mask.shape.join(', ')}]`);
  }
  const B = x.shape[0];
  const P = mask.size;
  // Per-row constants, tiled over the batch (the ops have no broadcasting).
  const m = mask.toArray();
  const mTiled = new Float32Array(B * P);
  for (let b = 0; b < B; b++) mTiled.set(m, b * P);
  const inMask = Tensor.from(mTiled, [B, P]);
  for (let i = 0; i < mTiled.length; i++) mTiled[i] = 1 - mTiled[i];
  const outMask = Tensor.from(mTiled, [B, P]);
  const ones = Tensor.ones([B, P]);
  const p = ops.scale(ops.add(x.reshape([B, P]), ones), 0.5);
  // T tiled over the batch as ones[B,1] @ T[1,P], so that its gradient sums over the batch.
  const tTiled = ops.matmul(Tensor.ones([B, 1]), trigger.reshape([1, P]));
  const v = ops.add(ops.mul(outMask, p), ops.mul(inMask, tTiled));
  const clipped = ops.sub(ops.relu(v), ops.relu(ops.sub(v, ones)));
  return ops.sub(ops.scale(clipped, 2), ones).reshape(x.shape);
}

/** c(z) = the batch mean of cos(z_i, sk): z [B, m]. */
export function meanCosToSk(z: Tensor, sk: Tensor): Tensor {
  checkTensor(z, 'z');
  checkTensor(sk, 'sk');
  return ops.mean(ops.cosineSimilarity(z, sk.reshape([1, sk.size])));
}

/** Per-row cos(D(e_i), sk) for embeddings e [B, d] (no gradient). */
export function decodedCosines(key: SslGuardKey, e: Tensor): Float32Array {
  checkSslGuardKey(key);
  checkTensor(e, 'e');
  return noGrad(() => {
    const z = key.decoder.forward(e);
    const c = ops.cosineSimilarity(z, key.sk.reshape([1, key.sk.size]));
    const out = c.toArray();
    z.dispose();
    c.dispose();
    return out;
  });
}

// ------------------------------------------------------------------ files

interface Manifest {
  format: string;
  version: number;
  dim: number;
  m: number;
  imageShape: [number, number, number];
  r: number;
  seed: number;
  verification: { data: string; split: string; indices: number[] };
  cosThreshold: number;
  alpha: number;
  nullModel: NullModel;
  tensorsFile: string;
  tensorsSha256: string;
  /** SHA-256 of the manifest's JSON without this field. */
  digest?: string;
}

function sha256(buf: Uint8Array | string): string {
  return crypto.createHash('sha256').update(buf).digest('hex');
}

function manifestDigest(m: Manifest): string {
  const { digest: _ignored, ...rest } = m;
  return sha256(JSON.stringify(rest));
}

/** Writes the key to folder `dir` (created if needed): key.safetensors, then key.json, each atomically. */
export function saveKey(dir: string, key: SslGuardKey): void {
  checkPath(dir, 'dir');
  checkSslGuardKey(key);
  const tensors = new Map<string, { shape: readonly number[]; data: Float32Array }>();
  tensors.set('sk', { shape: key.sk.shape, data: key.sk.toArray() });
  tensors.set('mask', { shape: key.mask.shape, data: key.mask.toArray() });
  tensors.set('trigger', { shape: key.trigger.shape, data: key.trigger.toArray() });
  for (const [k, t] of key.decoder.stateDict()) tensors.set(`decoder.${k}`, { shape: t.shape, data: t.toArray() });
  const parts = serializeSafetensors(tensors, { format: KEY_FORMAT });
  const bytes = Buffer.concat(parts);
  // (ensureDir, not fs.mkdirSync's recursive mode: that loops forever on some impossible paths, e.g. under /proc/self.)
  ensureDir(dir, path.join(dir, KEY_TENSORS_FILE));
  writeFileAtomic(path.join(dir, KEY_TENSORS_FILE), bytes);
  const manifest: Manifest = {
    format: KEY_FORMAT,
    version: KEY_VERSION,
    dim: key.dim,
    m: key.sk.size,
    imageShape: key.imageShape,
    r: key.r,
    seed: key.seed,
    verification: { data: key.verification.data, split: key.verification.split, indices: [...key.verification.indices] },
    cosThreshold: key.cosThreshold,
    alpha: key.alpha,
    nullModel: key.nullModel,
    tensorsFile: KEY_TENSORS_FILE,
    tensorsSha256: sha256(bytes),
  };
  manifest.digest = manifestDigest(manifest);
  writeFileAtomic(path.join(dir, KEY_MANIFEST_FILE), JSON.stringify(manifest, null, 1) + '\n');
}

function bad(dir: string, problem: string): never {
  throw new Error(`invalid SSLGuard key ${dir}: ${problem}`);
}

/** Reads and validates a key folder written by saveKey; any damage or mismatch is an Error naming the problem. */
export function loadKey(dir: string): SslGuardKey {
  if (typeof dir !== 'string' || dir === '') throw new TypeError('dir must be a non-empty path');
  const mfile = path.join(dir, KEY_MANIFEST_FILE);
  let text: string;
  try {
    text = fs.readFileSync(mfile, 'utf8');
  } catch (e) {
    bad(dir, (e as NodeJS.ErrnoException).code === 'ENOENT' ? `${KEY_MANIFEST_FILE} not found` : (e as Error).message);
  }
  let mf: Manifest;
  try {
    mf = JSON.parse(text) as Manifest;
  } catch (e) {
    bad(dir, `${KEY_MANIFEST_FILE} is not JSON (truncated or damaged): ${(e as Error).message}`);
  }
  if (mf === null || typeof mf !== 'object') bad(dir, `${KEY_MANIFEST_FILE} is not an object`);
  if (mf.format !== KEY_FORMAT) bad(dir, `${KEY_MANIFEST_FILE} has format ${JSON.stringify(mf.format)}, expected ${KEY_FORMAT}`);
  if (mf.version !== KEY_VERSION) bad(dir, `unsupported key version ${JSON.stringify(mf.version)}`);
  if (typeof mf.digest !== 'string' || manifestDigest(mf) !== mf.digest) bad(dir, `${KEY_MANIFEST_FILE} does not match its digest (edited or damaged)`);
  if (mf.tensorsFile !== KEY_TENSORS_FILE) bad(dir, `manifest names tensors file ${JSON.stringify(mf.tensorsFile)}`);
  const tfile = path.join(dir, KEY_TENSORS_FILE);
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(tfile);
  } catch (e) {
    bad(dir, (e as NodeJS.ErrnoException).code === 'ENOENT' ? `${KEY_TENSORS_FILE} not found` : (e as Error).message);
  }
  if (sha256(bytes) !== mf.tensorsSha256) bad(dir, `${KEY_TENSORS_FILE} does not match the SHA-256 in the manifest (damaged, truncated or from another key)`);
  try {
    const dim = checkInt(mf.dim, 'dim', { min: 1, max: 65536 });
    const m = checkInt(mf.m, 'm', { min: 2, max: 65536 });
    const imageShape = checkImageShape(mf.imageShape, 'imageShape');
    const r = checkNumber(mf.r, 'r', { min: 0, lt: 1 });
    const seed = checkSeed(mf.seed, 'seed');
    const cosThreshold = checkNumber(mf.cosThreshold, 'cosThreshold', { gt: -1, lt: 1 });
    const alpha = checkNumber(mf.alpha, 'alpha', { gt: 0, lt: 1 });
    const v = mf.verification;
    if (!v || !(BUILTIN_DATASETS as readonly string[]).includes(v.data) || (v.split !== 'train' && v.split !== 'test') || !Array.isArray(v.indices) || v.indices.length === 0) {
      throw new RangeError('verification must be { data, split, indices }');
    }
    v.indices.forEach((i, j) => checkInt(i, `verification.indices[${j}]`, { min: 0, max: 2 ** 31 - 1 }));
    const nm = mf.nullModel;
    if (!nm || !Array.isArray(nm.sources) || nm.sources.some((s) => typeof s !== 'string')) throw new RangeError('nullModel must be { hits, trials, sources }');
    const trials = checkInt(nm.trials, 'nullModel.trials', { min: 0 });
    const hits = checkInt(nm.hits, 'nullModel.hits', { min: 0, max: trials });
    const { tensors } = loadSafetensors(tfile);
    const take = (name: string, shape: readonly number[]): Tensor => {
      const t = tensors.get(name);
      if (!t) throw new RangeError(`${KEY_TENSORS_FILE} has no tensor "${name}"`);
      if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) throw new RangeError(`tensor "${name}" has shape [${t.shape.join(', ')}], expected [${shape.join(', ')}]`);
      tensors.delete(name);
      return keep(t);
    };
    const decoder = new WatermarkDecoder(dim, m, 0);
    try {
      const sk = take('sk', [m]);
      const mask = take('mask', imageShape);
      const trigger = take('trigger', imageShape);
      if (mask.toArray().some((x) => x !== 0 && x !== 1)) throw new RangeError('mask holds values other than 0 and 1');
      const dstate = new Map<string, Tensor>();
      for (const [k, t] of tensors) {
        if (!k.startsWith('decoder.')) throw new RangeError(`${KEY_TENSORS_FILE} has unexpected tensor "${k}"`);
        dstate.set(k.slice('decoder.'.length), t);
      }
      decoder.loadStateDict(dstate);
      decoder.eval();
      return {
        sk, mask, trigger, decoder, dim, imageShape, r, seed, cosThreshold, alpha,
        verification: { data: v.data as BuiltinName, split: v.split as 'train' | 'test', indices: Int32Array.from(v.indices) },
        nullModel: { hits, trials, sources: nm.sources.slice() },
      };
    } catch (e) {
      decoder.dispose();
      throw e;
    } finally {
      for (const t of tensors.values()) t.dispose();
    }
  } catch (e) {
    if ((e as Error).message.startsWith('invalid SSLGuard key')) throw e;
    bad(dir, (e as Error).message);
  }
}
