// The API fuzzer's pieces that run inside the child process: the list of
// targets (every function, class and static method exported by lib/index.ts,
// found by walking the exports, plus the methods of a few instances), the
// pool of hostile arguments, the deterministic choice of call i from a seed,
// and the classification of one call's outcome.
//
// Outcomes:
//   ok      the call returned (or its promise resolved)
//   clean   it threw an Error whose message says what is wrong (the goal for bad input)
//   raw     it threw an engine or Node error that names none of our arguments
//           ("Cannot read properties of ...", "is not a function", "is not
//           iterable", "private member", ERR_INVALID_ARG_TYPE, ...), or
//           something that is not an Error
//   hang    no answer within the time limit (decided by the parent for sync calls)
//   crash   the child process died (decided by the parent)
import { Tensor } from '../../lib/core/tensor';

import { type Outcome, type Pool, type Target } from './plan';

export type { Outcome, OutcomeKind, Pool, Target } from './plan';
export { callRng, chooseCall, rng } from './plan';

// ------------------------------------------------------------ targets

function isClass(f: unknown): f is new (...args: unknown[]) => unknown {
  return typeof f === 'function' && /^class[\s{]/.test(Function.prototype.toString.call(f));
}

/**
 * Every callable reachable from the library's exports: functions, classes
 * (called with new) and their static methods, walking namespaces (ops, nn,
 * data, ...) to any depth. Sorted by path, so that call i names the same
 * target in every process.
 */
export function listTargets(lib: Record<string, unknown>, instances: Record<string, () => object> = {}): Target[] {
  const out: Target[] = [];
  const seen = new Set<unknown>();
  const walk = (obj: Record<string, unknown>, prefix: string, depth: number) => {
    for (const key of Object.keys(obj).sort()) {
      const v = obj[key];
      const p = prefix ? `${prefix}.${key}` : key;
      if (typeof v === 'function') {
        if (seen.has(v)) continue;
        seen.add(v);
        if (isClass(v)) {
          const cls = v;
          out.push({ path: `${p} (new)`, kind: 'construct', arity: Math.max(1, cls.length), invoke: (args) => new cls(...args) });
          for (const s of Object.getOwnPropertyNames(cls).sort()) {
            if (['length', 'name', 'prototype'].includes(s)) continue;
            const d = Object.getOwnPropertyDescriptor(cls, s);
            if (d && typeof d.value === 'function') {
              const fn = d.value as (...a: unknown[]) => unknown;
              out.push({ path: `${p}.${s}`, kind: 'call', arity: Math.max(1, fn.length), invoke: (args) => fn.apply(cls, args) });
            }
          }
        } else {
          const fn = v as (...a: unknown[]) => unknown;
          out.push({ path: p, kind: 'call', arity: Math.max(1, fn.length), invoke: (args) => fn(...args) });
        }
      } else if (v !== null && typeof v === 'object' && !Array.isArray(v) && depth < 4 && !seen.has(v) && !ArrayBuffer.isView(v)) {
        seen.add(v);
        walk(v as Record<string, unknown>, p, depth + 1);
      }
    }
  };
  walk(lib, '', 0);
  // Instance methods, on fresh instances made by the given factories.
  for (const name of Object.keys(instances).sort()) {
    const make = instances[name];
    const sample = make();
    const names = new Set<string>();
    for (let proto = Object.getPrototypeOf(sample); proto && proto !== Object.prototype; proto = Object.getPrototypeOf(proto)) {
      for (const m of Object.getOwnPropertyNames(proto)) {
        const d = Object.getOwnPropertyDescriptor(proto, m);
        if (m !== 'constructor' && d && typeof d.value === 'function') names.add(m);
      }
    }
    disposeDeep(sample);
    for (const m of [...names].sort()) {
      const probe = (Object.getPrototypeOf(sample) as Record<string, unknown>)[m];
      const arity = typeof probe === 'function' ? Math.max(1, probe.length) : 1;
      out.push({
        path: `${name}#${m}`,
        kind: 'method',
        arity,
        invoke: (args) => {
          const obj = make() as Record<string, (...a: unknown[]) => unknown>;
          return obj[m](...args);
        },
      });
    }
  }
  return out;
}

function disposeDeep(v: unknown): void {
  const d = (v as { dispose?: unknown } | null)?.dispose;
  if (typeof d === 'function') {
    try {
      (d as () => void).call(v);
    } catch {
      // best effort
    }
  }
}

// ------------------------------------------------------------ hostile values

/**
 * The argument pool: hostile values (wrong kinds, NaN, infinities, negative,
 * huge, empty, null, disposed tensors, objects posing as tensors, unknown
 * option keys, BigInt, symbols) and some plausible ones (small tensors, a
 * tiny dataset, an encoder, option objects with a seed), so that calls also
 * get past the first check and reach the deeper ones. Values are made fresh
 * for every call (calls may dispose or change them).
 */
export function makePool(lib: Record<string, unknown>, files: { dir: string }): Pool {
  const nn = lib.nn as Record<string, (...a: unknown[]) => unknown>;
  const z = (...shape: number[]) => Tensor.zeros(shape);
  const tinyDataset = (labels = [0, 1], h = 8) => ({
    name: 'tiny',
    channels: 1 as const,
    height: h,
    width: h,
    numClasses: 2,
    images: new Uint8Array(labels.length * h * h).map((_, i) => (i * 37) % 256),
    labels: Int32Array.from(labels),
  });
  const entries: [string, () => unknown][] = [
    ['undefined', () => undefined],
    ['null', () => null],
    ['NaN', () => NaN],
    ['Infinity', () => Infinity],
    ['-Infinity', () => -Infinity],
    ['-1', () => -1],
    ['0', () => 0],
    ['-0', () => -0],
    ['1', () => 1],
    ['2', () => 2],
    ['3', () => 3],
    ['0.5', () => 0.5],
    ['2^31', () => 2 ** 31],
    ['2^40', () => 2 ** 40],
    ['2^53', () => 2 ** 53],
    ['1e39', () => 1e39],
    ['-1e39', () => -1e39],
    ['5e-324', () => 5e-324],
    ['true', () => true],
    ['false', () => false],
    ['1n', () => 1n],
    ['Symbol', () => Symbol('fuzz')],
    ["''", () => ''],
    ["'x'", () => 'x'],
    ["'cnn-small'", () => 'cnn-small'],
    ["'train'", () => 'train'],
    ["'noise:0.05'", () => 'noise:0.05'],
    ["'f.safetensors'", () => 'f.safetensors'],
    ["'sub/d/f.st'", () => 'sub/d/f.st'],
    ["'/proc/self/x/y.st'", () => '/proc/self/x/y.st'],
    ["'nul\\0'", () => 'a\0b'],
    ['tmp dir', () => files.dir],
    ['[]', () => []],
    ['[NaN]', () => [NaN]],
    ['[2,2]', () => [2, 2]],
    ['[-1]', () => [-1]],
    ['[2^40]', () => [2 ** 40]],
    ['[2^20,2^20]', () => [2 ** 20, 2 ** 20]],
    ['[[1]]', () => [[1]]],
    ['sparse array', () => new Array(3)],
    ['[0,1]', () => [0, 1]],
    ['{}', () => ({})],
    ['{seed:1}', () => ({ seed: 1 })],
    ['{seed:NaN}', () => ({ seed: NaN })],
    ['{szie:4}', () => ({ szie: 4 })],
    ['{seed:1,bogus:1}', () => ({ seed: 1, bogus: 1 })],
    ['{lr:0.1,momentun:0.9}', () => ({ lr: 0.1, momentun: 0.9 })],
    ['{numClasses:2}', () => ({ numClasses: 2 })],
    ['{training:"no"}', () => ({ training: 'no' })],
    ['{batchSize:2,seed:1}', () => ({ batchSize: 2, seed: 1 })],
    ['Object.create(null)', () => Object.create(null)],
    ['{length:2^40}', () => ({ length: 2 ** 40 })],
    ['{length:-1}', () => ({ length: -1 })],
    ['{then:fn}', () => ({ then: 5 })],
    ['Float32Array(0)', () => new Float32Array(0)],
    ['Float32Array[NaN,1]', () => Float32Array.of(NaN, 1)],
    ['Float32Array(14)', () => new Float32Array(14)],
    ['Int32Array[0,-1]', () => Int32Array.of(0, -1)],
    ['Int32Array[0,1]', () => Int32Array.of(0, 1)],
    ['Uint8Array(64)', () => new Uint8Array(64)],
    ['Float64Array(3)', () => new Float64Array(3)],
    ['BigInt64Array(2)', () => new BigInt64Array(2)],
    ['Buffer junk', () => Buffer.from('not a safetensors file at all, sorry')],
    ['tensor [2,2]', () => z(2, 2)],
    ['tensor [0]', () => z(0)],
    ['tensor []', () => Tensor.from([3], [])],
    ['tensor [1,1,4,4]', () => z(1, 1, 4, 4)],
    ['tensor [2,1,8,8]', () => Tensor.randn([2, 1, 8, 8], { seed: 1 })],
    ['tensor [4,8]', () => Tensor.randn([4, 8], { seed: 2 })],
    ['tensor [3]', () => Tensor.ones([3])],
    ['disposed tensor', () => {
      const d = z(2, 2);
      d.dispose();
      return d;
    }],
    ['Object.create(Tensor.prototype)', () => Object.create(Tensor.prototype)],
    ['fake tensor', () => ({ shape: [2, 2], size: 4, ndim: 2, disposed: false, handle: {}, toArray: () => new Float32Array(4) })],
    ['Map(w: tensor)', () => new Map([['w', z(2)]])],
    ['Map()', () => new Map()],
    ['Map(w: 1)', () => new Map([['w', 1]])],
    ['fn', () => () => undefined],
    ['throwing fn', () => () => {
      throw new Error('callback failed (fuzz)');
    }],
    ['tiny dataset', () => tinyDataset()],
    ['dataset labels out of range', () => tinyDataset([0, 7])],
    ['dataset short images', () => ({ ...tinyDataset(), images: new Uint8Array(3) })],
    ['embeddings', () => ({ data: Float32Array.of(1, 0, 0, 1), n: 2, dim: 2, labels: Int32Array.of(0, 1) })],
    ['embeddings bad labels', () => ({ data: Float32Array.of(1, 0, 0, 1), n: 2, dim: 2, labels: Int32Array.of(0, 9) })],
    ['encoder cnn-small', () => nn.createEncoder('cnn-small', { seed: 0 })],
    ['Linear(2,2)', () => new (nn.Linear as unknown as new (a: number, b: number) => unknown)(2, 2)],
    ['Date', () => new Date(0)],
    ['RegExp', () => /x/],
    ['Promise', () => Promise.resolve(1)],
    ['frozen {}', () => Object.freeze({ seed: 1 })],
  ];
  return { labels: entries.map(([l]) => l), make: (i) => entries[i][1]() };
}

// ------------------------------------------------------------ outcomes

/** Messages of engine (V8) or Node errors that say nothing about which argument is wrong. */
export const RAW_PATTERNS: readonly RegExp[] = [
  /Cannot read propert/,
  /Cannot set propert/,
  /Cannot create property/,
  /Cannot add property/,
  /Cannot assign to read only property/,
  /Cannot define property/,
  /Cannot destructure/,
  /is not a function/,
  /is not a constructor/,
  /is not iterable/,
  /private member/,
  /Cannot convert/,
  /Cannot mix BigInt/,
  /Do not know how to serialize a BigInt/,
  /Converting circular structure/,
  /Invalid typed array length/,
  /Invalid array length/,
  /Invalid string length/,
  /Array buffer allocation failed/,
  /Maximum call stack/,
  /bad_alloc/,
  /Reduce of empty array/,
  /is not defined/,
  /before initialization/,
  /object is not extensible/,
  /^undefined is not/,
  /^null is not/,
  /Offset is outside the bounds/,
  /outside the bounds of the DataView/,
  /out of memory/i,
];

export function classifyError(e: unknown): Outcome {
  if (!(e instanceof Error)) return { kind: 'raw', detail: `threw a non-Error: ${safeString(e)}` };
  const detail = `${e.name}: ${e.message}`;
  const code = (e as NodeJS.ErrnoException).code;
  const raw =
    e.message.trim() === '' ||
    RAW_PATTERNS.some((p) => p.test(e.message)) ||
    (typeof code === 'string' && code.startsWith('ERR_') && code !== 'ERR_ASSERTION');
  if (!raw) return { kind: 'clean', detail };
  const where = (e.stack ?? '')
    .split('\n')
    .slice(1)
    .find((l) => /[\\/]lib[\\/]/.test(l) && !/node_modules/.test(l));
  return { kind: 'raw', detail, where: where?.trim() };
}

function safeString(v: unknown): string {
  try {
    return String(v).slice(0, 200);
  } catch {
    return typeof v;
  }
}
