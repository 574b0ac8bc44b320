// Issue #19, section 3, in lib/core: inputs that used to be accepted (or fail
// deep inside with a V8 message) are refused up front with a TypeError or
// RangeError that names the argument.
import t, { type Test } from 'tap';
import { Tensor, keep, noGrad, tidy } from '../../lib/core/tensor';
import * as ops from '../../lib/core/ops';
import { MAX_ELEMENTS, checkOptions } from '../../lib/core/validate';

const z = (...shape: number[]) => Tensor.zeros(shape);

type Case = [string, () => unknown, ErrorConstructor, RegExp];

function check(t: Test, cases: Case[]): void {
  for (const [what, fn, type, message] of cases) t.throws(fn, { name: type.name, message }, what);
}

t.test('checkOptions: unknown keys are refused by name, with a suggestion', async (t) => {
  const allowed = ['lr', 'momentum'];
  t.same(checkOptions(undefined, 'options', allowed), {}, 'undefined: no options');
  const o = { lr: 1 };
  t.equal(checkOptions(o, 'options', allowed), o, 'returns the object itself');
  t.throws(() => checkOptions({ lr: 0.1, momentun: 0.9 }, 'options', allowed), { name: 'TypeError', message: /options has unknown key "momentun" \(did you mean "momentum"\?\); allowed: lr, momentum/ });
  t.throws(() => checkOptions({ zzz: 1 }, 'opts', allowed), { name: 'TypeError', message: /^opts has unknown key "zzz"; allowed/ }, 'no suggestion when nothing is close');
  t.throws(() => checkOptions(null, 'options', allowed), { name: 'TypeError', message: /options must be an object, got null/ });
  t.throws(() => checkOptions([1], 'options', allowed), { name: 'TypeError', message: /options must be an object, got an array/ });
  t.throws(() => checkOptions(5, 'options', allowed), { name: 'TypeError', message: /options must be an object, got 5/ });
  t.throws(() => checkOptions({ [Symbol('s')]: 1 }, 'options', allowed), { name: 'TypeError', message: /options has a symbol key/ });
});

t.test('Tensor.rand / randn: finite float32 samples only, and a seed is required', async (t) => {
  check(t, [
    ['rand high 1e39', () => Tensor.rand([3], { seed: 1, high: 1e39 }), RangeError, /options\.high must be <= 3\.40\d*e\+38, got 1e\+39/],
    ['rand low -1e39', () => Tensor.rand([3], { seed: 1, low: -1e39 }), RangeError, /options\.low must be >= -3\.40\d*e\+38/],
    ['rand low > high', () => Tensor.rand([3], { seed: 1, low: 5, high: -5 }), RangeError, /options\.low \(5\) must be less than options\.high \(-5\)/],
    ['rand low == high', () => Tensor.rand([3], { seed: 1, low: 2, high: 2 }), RangeError, /options\.low \(2\) must be less than options\.high/],
    ['rand span overflows', () => Tensor.rand([3], { seed: 1, low: -3e38, high: 3e38 }), RangeError, /options\.high - options\.low .* overflows float32/],
    ['rand high NaN', () => Tensor.rand([3], { seed: 1, high: NaN }), RangeError, /options\.high must be finite/],
    ['rand high string', () => Tensor.rand([3], { seed: 1, high: '2' as never }), TypeError, /options\.high must be a number/],
    ['randn std 1e39', () => Tensor.randn([3], { seed: 1, std: 1e39 }), RangeError, /options\.std must be <= 3\.40\d*e\+38/],
    ['randn std -1', () => Tensor.randn([3], { seed: 1, std: -1 }), RangeError, /options\.std must be >= 0/],
    ['randn samples beyond float32', () => Tensor.randn([3], { seed: 1, std: 1e38 }), RangeError, /options\.mean 0 and options\.std 1e\+38 would give samples beyond the float32 range/],
    ['randn mean Infinity', () => Tensor.randn([3], { seed: 1, mean: Infinity }), RangeError, /options\.mean must be finite/],
    ['randn without options', () => (Tensor.randn as (s: number[]) => Tensor)([3]), TypeError, /options\.seed is required/],
    ['rand without options', () => (Tensor.rand as (s: number[]) => Tensor)([3]), TypeError, /options\.seed is required/],
    ['randn without seed', () => Tensor.randn([3], {} as { seed: number }), TypeError, /options\.seed is required/],
    ['randn seed -1', () => Tensor.randn([3], { seed: -1 }), RangeError, /options\.seed must be >= 0/],
    ['randn offset NaN', () => Tensor.randn([3], { seed: 1, offset: NaN }), RangeError, /options\.offset must be finite/],
    ['randn unknown key', () => Tensor.randn([3], { seed: 1, sdt: 2 } as never), TypeError, /options has unknown key "sdt" \(did you mean "std"\?\)/],
    ['rand options null', () => Tensor.rand([3], null as never), TypeError, /options must be an object, got null/],
  ]);
  // What is accepted still works, and the extremes stay finite.
  tidy(() => {
    const a = Tensor.rand([1000], { seed: 3, low: -3.4e38, high: 0 }).toArray();
    t.ok(a.every((v) => Number.isFinite(v) && v >= -3.4e38 && v <= 0), 'rand at the float32 edge: every sample finite and in range');
    const b = Tensor.randn([1000], { seed: 4, std: 3e37 }).toArray();
    t.ok(b.every(Number.isFinite), 'randn with a large std: every sample finite');
  });
});

t.test('batch norm: booleans must be booleans; training needs two values per channel, fused or not', async (t) => {
  const x = z(2, 3, 2, 2);
  const c = (v: number) => Tensor.full([3], v);
  check(t, [
    ['batchNorm2d training "no"', () => ops.batchNorm2d(x, c(0), c(1), c(1), c(0), { training: 'no' as never }), TypeError, /options\.training must be a boolean, got a string/],
    ['batchNorm2d training 1', () => ops.batchNorm2d(x, c(0), c(1), c(1), c(0), { training: 1 as never }), TypeError, /options\.training must be a boolean, got 1/],
    ['batchNorm2d unknown key', () => ops.batchNorm2d(x, c(0), c(1), c(1), c(0), { trainig: true } as never), TypeError, /options has unknown key "trainig" \(did you mean "training"\?\)/],
    ['conv2d unknown key', () => ops.conv2d(z(1, 1, 4, 4), z(1, 1, 3, 3), null, { padd: 1 } as never), TypeError, /options has unknown key "padd"/],
    ['conv2d BN key', () => ops.conv2d(z(1, 1, 4, 4), z(1, 1, 3, 3), null, { training: true } as never), TypeError, /unknown key "training"/],
    ['normalize unknown key', () => ops.normalize(z(2, 2), { epsilon: 1 } as never), TypeError, /options has unknown key "epsilon"/],
    ['cosineSimilarity unknown key', () => ops.cosineSimilarity(z(2, 2), z(2, 2), { eps: 1e-8, x: 1 } as never), TypeError, /unknown key "x"/],
    ['cosineLoss unknown key', () => ops.cosineLoss(z(2, 2), z(2, 2), { esp: 1 } as never), TypeError, /unknown key "esp" \(did you mean "eps"\?\)/],
  ]);
  // convBnRelu in training mode: x [1,1,3,3] with a 3x3 kernel, no padding -> one value per channel.
  const rv = Tensor.ones([2]);
  const before = rv.toArray();
  t.throws(
    () => ops.convBnRelu(z(1, 1, 3, 3), Tensor.randn([2, 1, 3, 3], { seed: 1 }), null, Tensor.ones([2]), z(2), z(2), rv, { training: true }),
    { name: 'RangeError', message: /convBnRelu in training mode needs more than one value per channel \(the convolution gives 1\)/ },
    'convBnRelu refuses one value per channel, like batchNorm2d',
  );
  t.same(Array.from(rv.toArray()), Array.from(before), 'and the running variance is untouched');
  t.throws(() => ops.convBnRelu(z(2, 1, 3, 3), z(2, 1, 3, 3), null, Tensor.ones([2]), z(2), z(2), rv, { training: 'yes' as never }), { name: 'TypeError', message: /options\.training must be a boolean/ });
  // Eval mode with one value per channel is fine (no batch statistics).
  noGrad(() => t.same(ops.convBnRelu(z(1, 1, 3, 3), z(2, 1, 3, 3), null, Tensor.ones([2]), z(2), z(2), rv).shape, [1, 2, 1, 1], 'eval mode: one value per channel is fine'));
  // Two values per channel (batch of 2) train.
  t.same(ops.convBnRelu(z(2, 1, 3, 3), z(2, 1, 3, 3), null, Tensor.ones([2]), z(2), z(2), Tensor.ones([2]), { training: true }).shape, [2, 2, 1, 1]);
});

t.test('objects posing as tensors, and handles that are not handles', async (t) => {
  const posing = Object.create(Tensor.prototype) as Tensor;
  const fake = { shape: [2, 2], size: 4, disposed: false, handle: {} } as unknown as Tensor;
  check(t, [
    ['relu(Object.create(Tensor.prototype))', () => ops.relu(posing), TypeError, /x must be a Tensor, got an object posing as a Tensor/],
    ['add(real, fake)', () => ops.add(z(2, 2), fake), TypeError, /b must be a Tensor, got an object/],
    ['copy_(posing)', () => z(2).copy_(posing), TypeError, /src must be a Tensor, got an object posing as a Tensor/],
    ['backward(posing seed)', () => {
      const p = z(2).requiresGrad_();
      ops.scale(p, 2).backward(posing);
    }, TypeError, /seed must be a Tensor/],
    ['keep(fake)', () => keep(fake), TypeError, /t must be a Tensor, got an object/],
    ['new Tensor(null)', () => new Tensor(null as never), TypeError, /handle must be a native tensor handle .* got null/],
    ['new Tensor({shape})', () => new Tensor({ shape: [1] } as never), TypeError, /handle must be a native tensor handle/],
    ['tidy(5)', () => tidy(5 as never), TypeError, /fn must be a function, got 5/],
    ['noGrad(null)', () => noGrad(null as never), TypeError, /fn must be a function, got null/],
    ['requiresGrad_("yes")', () => z(2).requiresGrad_('yes' as never), TypeError, /flag must be a boolean/],
    ['Tensor.from(BigInt64Array)', () => Tensor.from(new BigInt64Array(2) as never, [2]), TypeError, /data must be a Float32Array or an array of numbers, got a BigInt64Array/],
    ['Tensor.from([1n])', () => Tensor.from([1n, 2n] as never, [2]), TypeError, /data\[0\] must be a number, got a bigint/],
    ['Tensor.from(["1"])', () => Tensor.from(['1'] as never, [1]), TypeError, /data\[0\] must be a number, got a string/],
    ['Tensor.full value Symbol', () => Tensor.full([1], Symbol('s') as never), TypeError, /value must be a number, got a symbol/],
    ['Tensor.full value 1e39', () => Tensor.full([1], 1e39), RangeError, /value must be <= 3\.40\d*e\+38/],
  ]);
  t.equal(Tensor.isTensor(posing), false, 'isTensor is a brand check');
  t.equal(Tensor.isTensor(z(1)), true);
});

t.test('allocations beyond memory are refused with their size, before native code', async (t) => {
  const GiB = 2 ** 30;
  check(t, [
    ['zeros 2^40 elements', () => Tensor.zeros([2 ** 20, 2 ** 20]), RangeError, /shape \[1048576, 1048576\] asks for 1099511627776 elements \(4\.0 TiB\), more than the 68719476736 \(2\^36\) allowed/],
    ['ones 2^40 as [2^10]x4', () => Tensor.ones([1024, 1024, 1024, 1024]), RangeError, /asks for 1099511627776 elements \(4\.0 TiB\)/],
    ['randn 2^40', () => Tensor.randn([2 ** 20, 2 ** 20], { seed: 1 }), RangeError, /asks for 1099511627776 elements/],
    ['rand 2^40', () => Tensor.rand([2 ** 20, 2 ** 20], { seed: 1 }), RangeError, /asks for 1099511627776 elements/],
    ['from with a huge shape', () => Tensor.from([1], [2 ** 30, 2 ** 10]), RangeError, /shape \[1073741824, 1024\] asks for/],
  ]);
  t.ok(MAX_ELEMENTS === 2 ** 36);
  // Under the hard cap but over the memory there is: 2^35 elements = 128 GiB (more than this machine or the GPU has).
  const os = await import('node:os');
  if (os.totalmem() < 120 * GiB) {
    t.throws(() => Tensor.zeros([2 ** 15, 2 ** 20]), { name: 'RangeError', message: /shape \[32768, 1048576\] asks for 34359738368 elements \(128\.0 GiB\), more than the (available host memory|memory of CUDA device)/ });
  }
  t.equal(Tensor.zeros([1024, 1024]).size, 2 ** 20, 'a normal allocation still works');
});
