// Argument checks shared by every exported function: each throws a TypeError
// (wrong kind of value) or RangeError (right kind, bad value) that names the
// argument, so a caller sees what to fix, and the native side is never
// reached with input that could crash it.

/**
 * What these checks read of a tensor. tensor.ts's Tensor has all of it; the
 * structural type keeps this file free of an import of tensor.ts (which
 * imports this file), and the brand check below still admits only real
 * tensors at run time.
 */
export interface TensorLike {
  readonly shape: readonly number[];
  readonly ndim: number;
  readonly size: number;
  readonly disposed: boolean;
  readonly device: 'cpu' | 'cuda';
}

export function checkShape(shape: unknown, name: string): asserts shape is readonly number[] {
  if (!Array.isArray(shape)) throw new TypeError(`${name} must be an array of integers, got ${describe(shape)}`);
  if (shape.length > 8) throw new RangeError(`${name} has more than 8 dimensions`);
  for (let i = 0; i < shape.length; i++) {
    const d = shape[i];
    if (typeof d !== 'number' || !Number.isInteger(d) || d < 0 || d >= 2 ** 31) {
      if (typeof d !== 'number') throw new TypeError(`${name}[${i}] must be an integer in [0, 2^31), got ${describe(d)}`);
      throw new RangeError(`${name}[${i}] must be an integer in [0, 2^31), got ${String(d)}`);
    }
  }
}

let isTensorBrand: ((x: unknown) => boolean) | null = null;
/**
 * Called once by tensor.ts to break the import cycle. `isTensor` is a brand
 * check (the private field), so an object made with
 * Object.create(Tensor.prototype) is refused like any other impostor.
 */
export function registerTensorClass(isTensor: (x: unknown) => boolean): void {
  isTensorBrand = isTensor;
}

/** True for a real Tensor (not an object posing as one), disposed or not. */
export function isTensor<T = TensorLike>(x: T | unknown): x is T & TensorLike {
  return isTensorBrand !== null && isTensorBrand(x);
}

export function checkTensor<T>(x: T, name: string): asserts x is T & TensorLike {
  if (!isTensor(x)) {
    const d = describe(x);
    throw new TypeError(`${name} must be a Tensor, got ${d === 'a Tensor' ? 'an object posing as a Tensor (not made by Tensor.from, Tensor.zeros or an op)' : d}`);
  }
  if (x.disposed) throw new TypeError(`${name} has been disposed`);
}

/** A short description of a value for error messages (never throws, whatever the value). */
export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  const t = typeof v;
  if (t === 'object') {
    const ctor = (() => {
      try {
        const p = Object.getPrototypeOf(v);
        return p && typeof p.constructor === 'function' && typeof p.constructor.name === 'string' ? p.constructor.name : '';
      } catch {
        return '';
      }
    })();
    return ctor && ctor !== 'Object' ? `a ${ctor}` : 'an object';
  }
  if (t === 'number' || t === 'boolean' || t === 'undefined') return String(v);
  if (t === 'bigint') return `a bigint (${String(v)}n)`;
  if (t === 'string') return `a string`;
  return `a ${t}`;
}

/**
 * Checks an options argument: undefined gives {}, anything but a plain object
 * is a TypeError, and a key outside `allowed` is a TypeError naming it (a
 * misspelt option, e.g. `momentun`, must not be silently ignored). Returns the
 * object (the caller's own, not a copy).
 */
export function checkOptions<T = Record<string, unknown>>(o: unknown, name: string, allowed: readonly string[]): T & Record<string, unknown> {
  if (o === undefined) return {} as T & Record<string, unknown>;
  if (o === null || typeof o !== 'object' || Array.isArray(o) || isTensor(o)) {
    throw new TypeError(`${name} must be an object, got ${describe(o)}`);
  }
  for (const k of Reflect.ownKeys(o)) {
    if (typeof k === 'symbol') throw new TypeError(`${name} has a symbol key, which is not an option`);
    if (!allowed.includes(k)) {
      const near = allowed.find((a) => editDistance(a, k) <= 2);
      throw new TypeError(
        `${name} has unknown key ${JSON.stringify(k)}${near ? ` (did you mean ${JSON.stringify(near)}?)` : ''}; allowed: ${allowed.length ? allowed.join(', ') : 'none'}`,
      );
    }
  }
  return o as T & Record<string, unknown>;
}

function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 2 || b.length > 64) return 3;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length];
}

/** Hard cap on one allocation, whatever the memory: 2^36 elements (256 GiB of float32). */
export const MAX_ELEMENTS = 2 ** 36;

function formatBytes(b: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];
  let i = 0;
  let v = b;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${b} bytes` : `${v.toFixed(1)} ${units[i]}`;
}

let memoryLimit: (() => { bytes: number; what: string }) | null = null;
/** Set by tensor.ts: how many bytes a new tensor may take on the current device. */
export function registerMemoryLimit(fn: () => { bytes: number; what: string }): void {
  memoryLimit = fn;
}

/**
 * Checks that `count` elements of `bytesPer` bytes can be allocated: at most
 * MAX_ELEMENTS, and no more bytes than the memory there is. A RangeError
 * names `name`, the count and the bytes, before anything is allocated.
 */
export function checkAllocation(count: number, bytesPer: number, name: string): void {
  const bytes = count * bytesPer;
  if (!Number.isFinite(count) || count > MAX_ELEMENTS) {
    throw new RangeError(`${name} asks for ${count} elements (${formatBytes(bytes)}), more than the ${MAX_ELEMENTS} (2^36) allowed in one allocation`);
  }
  const lim = memoryLimit && bytes > 64 * 1024 * 1024 ? memoryLimit() : null;
  if (lim && bytes > lim.bytes) {
    throw new RangeError(`${name} asks for ${count} elements (${formatBytes(bytes)}), more than ${lim.what} (${formatBytes(lim.bytes)})`);
  }
}

/** The number of elements of a (checked) shape. */
export function shapeElements(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** checkShape, plus: a float32 tensor of that shape fits in memory (see checkAllocation). */
export function checkAllocShape(shape: unknown, name: string): asserts shape is readonly number[] {
  checkShape(shape, name);
  checkAllocation(shapeElements(shape), 4, `${name} [${shape.join(', ')}]`);
}

/** Checks x is a tensor with exactly `ndim` dimensions; returns its shape. */
export function checkNdim(x: unknown, ndim: number, name: string, what = ''): readonly number[] {
  checkTensor(x, name);
  if (x.shape.length !== ndim) {
    throw new RangeError(`${name} must be ${ndim}-D${what ? ` ${what}` : ''}, got shape [${x.shape.join(', ')}]`);
  }
  for (let i = 0; i < ndim; i++) {
    if (x.shape[i] === 0) throw new RangeError(`${name} is empty (shape [${x.shape.join(', ')}])`);
  }
  return x.shape;
}

export function checkNonEmpty(x: TensorLike, name: string): void {
  if (x.size === 0) throw new RangeError(`${name} is empty (shape [${x.shape.join(', ')}])`);
}

export function checkSameShape(a: TensorLike, b: TensorLike, aName: string, bName: string): void {
  if (a.shape.length !== b.shape.length || a.shape.some((d, i) => d !== b.shape[i])) {
    throw new RangeError(`${bName} has shape [${b.shape.join(', ')}] but ${aName} has [${a.shape.join(', ')}]`);
  }
}

export function checkSameDevice(a: TensorLike, b: TensorLike, bName: string): void {
  if (a.device !== b.device) throw new RangeError(`${bName} is on ${b.device} but the other input is on ${a.device}`);
}

export interface NumberRange {
  min?: number;
  max?: number;
  /** exclusive lower bound */
  gt?: number;
  /** exclusive upper bound */
  lt?: number;
}

export function checkNumber(v: unknown, name: string, range: NumberRange = {}): number {
  if (typeof v !== 'number') throw new TypeError(`${name} must be a number, got ${describe(v)}`);
  if (!Number.isFinite(v)) throw new RangeError(`${name} must be finite, got ${v}`);
  if (range.min !== undefined && v < range.min) throw new RangeError(`${name} must be >= ${range.min}, got ${v}`);
  if (range.max !== undefined && v > range.max) throw new RangeError(`${name} must be <= ${range.max}, got ${v}`);
  if (range.gt !== undefined && !(v > range.gt)) throw new RangeError(`${name} must be > ${range.gt}, got ${v}`);
  if (range.lt !== undefined && !(v < range.lt)) throw new RangeError(`${name} must be < ${range.lt}, got ${v}`);
  return v;
}

export function checkInt(v: unknown, name: string, range: NumberRange = {}): number {
  checkNumber(v, name, range);
  if (!Number.isInteger(v)) throw new RangeError(`${name} must be an integer, got ${v}`);
  return v as number;
}

export function checkBool(v: unknown, name: string): boolean {
  if (typeof v !== 'boolean') throw new TypeError(`${name} must be a boolean, got ${describe(v)}`);
  return v;
}

/** A seed: an integer in [0, 2^53). */
export function checkSeed(v: unknown, name = 'seed'): number {
  return checkInt(v, name, { min: 0, max: Number.MAX_SAFE_INTEGER });
}

export function checkOneOf<T extends string>(v: unknown, name: string, allowed: readonly T[]): T {
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
    const got = typeof v === 'string' ? JSON.stringify(v) : describe(v);
    const E = typeof v === 'string' ? RangeError : TypeError;
    throw new E(`${name} must be one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}, got ${got}`);
  }
  return v as T;
}

export function checkObject(v: unknown, name: string): Record<string, unknown> {
  if (typeof name !== 'string') throw new TypeError(`name must be a string, got ${describe(name)}`);
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new TypeError(`${name} must be an object, got ${describe(v)}`);
  return v as Record<string, unknown>;
}
