// Tensor: a float32 array in native memory (host or CUDA device) with a shape,
// and the reverse-mode autograd tape that ops record on it.
//
// Memory: a tensor's storage is freed by dispose(), by the end of a tidy()
// scope that created it, or, failing both, by the garbage collector (the
// native side reports its size to V8 so that GC runs under memory pressure).
import * as os from 'node:os';
import { native, type NativeTensorHandle } from './native';
import { checkAllocShape, checkNumber, checkOptions, checkSeed, checkShape, checkTensor, describe, registerMemoryLimit, registerTensorClass } from './validate';

/** Largest finite float32. */
const FLT_MAX = 3.4028234663852886e38;
/** Largest |z| the native Box-Muller can return (sqrt(-2 ln 2^-32) = 6.66), with a margin. */
const NORMAL_MAX_ABS = 8;

/** Backward function of one recorded op: gradients for each input (null where not needed). */
export type BackwardFn = (dout: Tensor, needs: boolean[]) => (Tensor | null)[];

/** A recorded op: its inputs and how to send a gradient back to them. */
export interface GradNode {
  readonly name: string;
  readonly inputs: Tensor[];
  readonly backward: BackwardFn;
  /** Frees tensors the op saved for backward (called once the node is used). */
  readonly release?: () => void;
}

let gradEnabled = true;

/** Runs fn with gradient recording off (inference, evaluation, parameter updates). */
export function noGrad<T>(fn: () => T): T {
  if (typeof fn !== 'function') throw new TypeError(`fn must be a function, got ${describe(fn)}`);
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

export function isGradEnabled(): boolean {
  return gradEnabled;
}

const scopes: Set<Tensor>[] = [];

/**
 * Runs fn and disposes every tensor created inside it, except those in its
 * result (a tensor, or an array / plain object of tensors) and those passed
 * to keep(). Scopes nest; the result moves to the enclosing scope.
 */
export function tidy<T>(fn: () => T): T {
  if (typeof fn !== 'function') throw new TypeError(`fn must be a function, got ${describe(fn)}`);
  const scope = new Set<Tensor>();
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } finally {
    scopes.pop();
  }
  const survivors = new Set<Tensor>();
  collectTensors(result, survivors, 0);
  for (const t of scope) {
    if (survivors.has(t) || t.kept) continue;
    t.dispose();
  }
  const parent = scopes[scopes.length - 1];
  if (parent) for (const t of survivors) if (scope.has(t)) parent.add(t);
  return result;
}

function collectTensors(v: unknown, out: Set<Tensor>, depth: number): void {
  if (depth > 3 || v === null || typeof v !== 'object') return;
  if (v instanceof Tensor) {
    out.add(v);
    return;
  }
  if (Array.isArray(v)) {
    for (const e of v) collectTensors(e, out, depth + 1);
    return;
  }
  if (Object.getPrototypeOf(v) === Object.prototype || v instanceof Map) {
    const values = v instanceof Map ? [...v.values()] : Object.values(v as object);
    for (const e of values) collectTensors(e, out, depth + 1);
  }
}

/** Exempts a tensor from every tidy() scope (parameters, optimizer state, results kept across steps). */
export function keep<T extends Tensor>(t: T): T {
  if (!Tensor.isTensor(t)) checkTensor(t, 't');
  t.kept = true;
  for (const s of scopes) s.delete(t);
  return t;
}

function shapeSize(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export class Tensor {
  #handle: NativeTensorHandle | null;
  /** Dimensions, outermost first (NCHW for images). */
  readonly shape: readonly number[];
  /** Leaf tensors with requiresGrad receive .grad from backward(). */
  requiresGrad = false;
  grad: Tensor | null = null;
  /** The op that produced this tensor, while its graph is alive. */
  node: GradNode | null = null;
  /** Exempt from tidy() scopes. */
  kept = false;

  /** Internal: wraps a native handle. Use Tensor.from / zeros / ops to make tensors. */
  constructor(handle: NativeTensorHandle) {
    if (!(handle instanceof (native.NativeTensor as unknown as new () => object))) {
      throw new TypeError(`handle must be a native tensor handle (use Tensor.from, Tensor.zeros or an op to make a tensor), got ${describe(handle)}`);
    }
    if (handle.disposed) throw new TypeError('handle has been disposed');
    this.#handle = handle;
    this.shape = Object.freeze(handle.shape.slice());
    const scope = scopes[scopes.length - 1];
    if (scope) scope.add(this);
  }

  /** A tensor with a copy of `data` (row-major) and the given shape. */
  static from(data: Float32Array | ArrayLike<number>, shape: readonly number[]): Tensor {
    checkAllocShape(shape, 'shape');
    let arr: Float32Array;
    if (data instanceof Float32Array) arr = data;
    else if (Array.isArray(data) || (ArrayBuffer.isView(data) && !(data instanceof DataView) && !(data instanceof BigInt64Array) && !(data instanceof BigUint64Array))) {
      if (Array.isArray(data)) {
        for (let i = 0; i < data.length; i++) {
          if (typeof data[i] !== 'number') throw new TypeError(`data[${i}] must be a number, got ${describe(data[i])}`);
        }
      }
      arr = Float32Array.from(data as ArrayLike<number>);
    } else throw new TypeError(`data must be a Float32Array or an array of numbers, got ${describe(data)}`);
    if (arr.length !== shapeSize(shape)) {
      throw new RangeError(`data has ${arr.length} elements but shape [${shape.join(', ')}] needs ${shapeSize(shape)}`);
    }
    for (let i = 0; i < arr.length; i++) {
      if (!Number.isFinite(arr[i])) throw new RangeError(`data[${i}] is not finite (${arr[i]})`);
    }
    return new Tensor(new native.NativeTensor(shape.slice(), arr));
  }

  static full(shape: readonly number[], value: number): Tensor {
    checkAllocShape(shape, 'shape');
    checkNumber(value, 'value', { min: -FLT_MAX, max: FLT_MAX });
    const h = new native.NativeTensor(shape.slice());
    native.fillInPlace(h, value);
    return new Tensor(h);
  }

  static zeros(shape: readonly number[]): Tensor {
    return Tensor.full(shape, 0);
  }

  static ones(shape: readonly number[]): Tensor {
    return Tensor.full(shape, 1);
  }

  /**
   * Normal(mean, std) samples from the seeded counter-based RNG (same numbers
   * on CPU and CUDA). options.seed is required (every random choice takes a
   * seed); mean and std must keep every sample a finite float32.
   */
  static randn(shape: readonly number[], opts: { seed: number; offset?: number; mean?: number; std?: number }): Tensor {
    checkShape(shape, 'shape');
    const { seed, offset } = seedOptions(opts, ['mean', 'std']);
    const mean = opts.mean === undefined ? 0 : checkNumber(opts.mean, 'options.mean', { min: -FLT_MAX, max: FLT_MAX });
    const std = opts.std === undefined ? 1 : checkNumber(opts.std, 'options.std', { min: 0, max: FLT_MAX });
    if (Math.abs(mean) + NORMAL_MAX_ABS * std > FLT_MAX) {
      throw new RangeError(`options.mean ${mean} and options.std ${std} would give samples beyond the float32 range (|mean| + ${NORMAL_MAX_ABS} * std must be <= ${FLT_MAX})`);
    }
    checkAllocShape(shape, 'shape');
    const h = new native.NativeTensor(shape.slice());
    native.randNormalInPlace(h, mean, std, seed, offset);
    return new Tensor(h);
  }

  /** Uniform [low, high) samples from the seeded RNG; options.seed is required, low < high, both finite float32. */
  static rand(shape: readonly number[], opts: { seed: number; offset?: number; low?: number; high?: number }): Tensor {
    checkShape(shape, 'shape');
    const { seed, offset } = seedOptions(opts, ['low', 'high']);
    const low = opts.low === undefined ? 0 : checkNumber(opts.low, 'options.low', { min: -FLT_MAX, max: FLT_MAX });
    const high = opts.high === undefined ? 1 : checkNumber(opts.high, 'options.high', { min: -FLT_MAX, max: FLT_MAX });
    if (!(Math.fround(low) < Math.fround(high))) throw new RangeError(`options.low (${low}) must be less than options.high (${high}) (as float32)`);
    if (!Number.isFinite(Math.fround(Math.fround(high) - Math.fround(low)))) {
      throw new RangeError(`options.high - options.low (${high} - ${low}) overflows float32: the samples would not be finite`);
    }
    checkAllocShape(shape, 'shape');
    const h = new native.NativeTensor(shape.slice());
    native.randUniformInPlace(h, low, high, seed, offset);
    return new Tensor(h);
  }

  /** True for a real Tensor (disposed or not); false for anything else, including objects made from Tensor.prototype. */
  static isTensor(x: unknown): x is Tensor {
    return typeof x === 'object' && x !== null && #handle in x;
  }

  /** The native handle; throws if the tensor was disposed. */
  get handle(): NativeTensorHandle {
    if (this.#handle === null || this.#handle.disposed) throw new TypeError('tensor has been disposed');
    return this.#handle;
  }

  get disposed(): boolean {
    return this.#handle === null || this.#handle.disposed;
  }

  get size(): number {
    return shapeSize(this.shape);
  }

  get ndim(): number {
    return this.shape.length;
  }

  get device(): 'cpu' | 'cuda' {
    return this.handle.device as 'cpu' | 'cuda';
  }

  /** A copy of the data on the host. */
  toArray(): Float32Array {
    return this.handle.toArray();
  }

  /** The single value of a one-element tensor. */
  item(): number {
    if (this.size !== 1) throw new RangeError(`item() needs a tensor with one element, this one has ${this.size}`);
    return this.toArray()[0];
  }

  /** Frees the native memory now. Idempotent. */
  dispose(): void {
    if (this.#handle) {
      this.#handle.dispose();
      this.#handle = null;
    }
    this.node = null;
  }

  /** Marks a leaf tensor as a parameter that receives gradients. */
  requiresGrad_(flag = true): this {
    if (typeof flag !== 'boolean') throw new TypeError(`flag must be a boolean, got ${describe(flag)}`);
    if (this.node) throw new TypeError('requiresGrad_ applies to leaf tensors only');
    this.requiresGrad = flag;
    return this;
  }

  /** The same data without the autograd history. */
  detach(): Tensor {
    return new Tensor(this.handle.reshape(this.shape.slice()));
  }

  /** A copy with its own storage. */
  clone(): Tensor {
    const h = new native.NativeTensor(this.shape.slice());
    h.copyFrom(this.handle);
    return new Tensor(h);
  }

  /** Overwrites this tensor's data with src's (same number of elements); no autograd. */
  copy_(src: Tensor): this {
    checkTensor(src, 'src');
    if (src.size !== this.size) throw new RangeError(`src has ${src.size} elements, expected ${this.size}`);
    this.handle.copyFrom(src.handle);
    return this;
  }

  /** A view with another shape (same number of elements); gradients flow through. */
  reshape(shape: readonly number[]): Tensor {
    checkShape(shape, 'shape');
    if (shapeSize(shape) !== this.size) {
      throw new RangeError(`cannot reshape [${this.shape.join(', ')}] to [${shape.join(', ')}]`);
    }
    const out = new Tensor(this.handle.reshape(shape.slice()));
    const inShape = this.shape.slice();
    recordOp(out, 'reshape', [this], (dout) => [new Tensor(dout.handle.reshape(inShape))]);
    return out;
  }

  /** Whether gradients flow to or through this tensor. */
  get tracksGrad(): boolean {
    return this.requiresGrad || this.node !== null;
  }

  /**
   * Reverse-mode differentiation from this tensor. A scalar needs no seed
   * gradient; others take one of the same shape. Leaf tensors with
   * requiresGrad accumulate into .grad (as in PyTorch). The graph is freed
   * afterwards. A non-finite loss is refused before anything is propagated.
   */
  backward(seed?: Tensor): void {
    if (!this.tracksGrad) throw new TypeError('backward() needs a tensor that depends on a tensor with requiresGrad');
    if (!native.allFinite(this.handle)) {
      throw new RangeError(`loss is not finite (${this.size === 1 ? this.item() : 'NaN/Inf present'}): refusing to backpropagate`);
    }
    let g0: Tensor;
    if (seed === undefined) {
      if (this.size !== 1) throw new RangeError('backward() without a seed gradient needs a one-element tensor');
      g0 = noGrad(() => Tensor.ones(this.shape));
    } else {
      checkTensor(seed, 'seed');
      if (seed.size !== this.size) throw new RangeError('seed must have the same shape as the tensor');
      g0 = seed;
    }
    noGrad(() => runBackward(this, g0, seed === undefined));
  }
}

registerTensorClass((x) => Tensor.isTensor(x));

/** Checks the options of rand/randn: an object with a seed (required), an optional offset and the given extra keys. */
function seedOptions(opts: unknown, extra: readonly string[]): { seed: number; offset: number } {
  if (opts === undefined) throw new TypeError('options.seed is required (every random choice takes a seed): pass { seed }');
  const o = checkOptions(opts, 'options', ['seed', 'offset', ...extra]);
  if (o.seed === undefined) throw new TypeError('options.seed is required (every random choice takes a seed)');
  return { seed: checkSeed(o.seed, 'options.seed'), offset: o.offset === undefined ? 0 : checkSeed(o.offset, 'options.offset') };
}

// A new tensor may take at most the memory there is: on the CPU what the OS
// reports available plus the tensor cache; on a CUDA device its memory. Only
// requests over 64 MiB pay for the lookup.
registerMemoryLimit(() => {
  const info = native.info();
  if (info.backend === 'cuda') {
    const dev = info.cudaDevices[0];
    if (dev) return { bytes: dev.memoryBytes, what: `the memory of CUDA device ${dev.index} (${dev.name})` };
  }
  return { bytes: os.freemem() + native.cacheBytes(), what: 'the available host memory' };
});

function topoOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const seen = new Set<Tensor>();
  // Iterative DFS (deep networks would overflow a recursive one).
  const stack: [Tensor, number][] = [[root, 0]];
  seen.add(root);
  while (stack.length) {
    const top = stack[stack.length - 1];
    const [t, i] = top;
    const inputs = t.node ? t.node.inputs : [];
    if (i < inputs.length) {
      top[1] = i + 1;
      const c = inputs[i];
      if (!seen.has(c) && c.tracksGrad) {
        seen.add(c);
        stack.push([c, 0]);
      }
    } else {
      stack.pop();
      order.push(t);
    }
  }
  return order.reverse();
}

function runBackward(root: Tensor, seed: Tensor, ownSeed: boolean): void {
  const order = topoOrder(root);
  const grads = new Map<Tensor, Tensor>();
  const refs = new Map<Tensor, number>();
  const protectedGrads = new Set<Tensor>();
  if (!ownSeed) protectedGrads.add(seed);
  const ref = (g: Tensor, d: number) => refs.set(g, (refs.get(g) ?? 0) + d);
  const dropIfUnused = (g: Tensor) => {
    if ((refs.get(g) ?? 0) <= 0 && !protectedGrads.has(g) && !g.kept) g.dispose();
  };
  grads.set(root, seed);
  ref(seed, 1);

  for (const t of order) {
    const g = grads.get(t);
    if (!g) continue;
    grads.delete(t);
    const node = t.node;
    if (!node) {
      if (t.requiresGrad) {
        if (t.grad && !t.grad.disposed) {
          const sum = new Tensor(native.add(t.grad.handle, g.handle));
          t.grad.dispose();
          t.grad = keep(sum);
        } else {
          // The gradient tensor may be shared (identity backward): give the leaf its own copy.
          t.grad = keep((refs.get(g) ?? 0) > 1 || protectedGrads.has(g) ? g.clone() : g);
          if (t.grad === g) protectedGrads.add(g);
        }
      }
      ref(g, -1);
      dropIfUnused(g);
      continue;
    }
    const needs = node.inputs.map((x) => x.tracksGrad);
    const inGrads = node.backward(g, needs);
    for (let i = 0; i < node.inputs.length; i++) {
      const x = node.inputs[i];
      const gi = inGrads[i];
      if (!gi || !needs[i]) continue;
      const prev = grads.get(x);
      if (prev) {
        const sum = new Tensor(native.add(prev.handle, gi.handle));
        grads.set(x, sum);
        ref(sum, 1);
        ref(prev, -1);
        dropIfUnused(prev);
      } else {
        grads.set(x, gi);
        ref(gi, 1);
      }
    }
    ref(g, -1);
    for (const gi of inGrads) if (gi) dropIfUnused(gi);
    dropIfUnused(g);
    node.release?.();
    t.node = null;
  }
}

/**
 * Records `name` as the producer of `out` when grad mode is on and an input
 * tracks gradients. Ops call this once with their backward function.
 */
export function recordOp(out: Tensor, name: string, inputs: Tensor[], backward: BackwardFn, release?: () => void): Tensor {
  if (gradEnabled && inputs.some((x) => x.tracksGrad)) {
    out.node = { name, inputs, backward, release };
  } else if (release) {
    release();
  }
  return out;
}
