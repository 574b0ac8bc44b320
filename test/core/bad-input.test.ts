// Bad input to every exported op: wrong type, wrong shape, NaN, empty,
// disposed tensor. Each must be a TypeError/RangeError naming the argument,
// and the process must survive. The binding's own guards are checked too, by
// calling the native functions directly with garbage (a caller who bypasses
// lib/ must not be able to crash the process).
import t from 'tap';
import { Tensor, tidy } from '../../lib/core/tensor';
import * as ops from '../../lib/core/ops';
import { native } from '../../lib/core/native';
import { setDevice, setThreads, info } from '../../lib/core/backend';

const z = (...shape: number[]) => Tensor.zeros(shape);
const disposed = () => {
  const d = Tensor.ones([2, 2]);
  d.dispose();
  return d;
};

type Case = [string, () => unknown, ErrorConstructor, RegExp];

t.test('ops reject bad input with errors that name the argument', async (t) => {
  const cases: Case[] = [
    ['conv2d x not a tensor', () => ops.conv2d([1, 2] as never, z(1, 1, 3, 3)), TypeError, /x must be a Tensor/],
    ['conv2d x 3-D', () => ops.conv2d(z(1, 3, 3), z(1, 1, 3, 3)), RangeError, /x must be 4-D/],
    ['conv2d channel mismatch', () => ops.conv2d(z(1, 2, 5, 5), z(1, 3, 3, 3)), RangeError, /input channels/],
    ['conv2d kernel too large', () => ops.conv2d(z(1, 1, 2, 2), z(1, 1, 5, 5)), RangeError, /larger/],
    ['conv2d stride 0', () => ops.conv2d(z(1, 1, 5, 5), z(1, 1, 3, 3), null, { stride: 0 }), RangeError, /stride/],
    ['conv2d padding NaN', () => ops.conv2d(z(1, 1, 5, 5), z(1, 1, 3, 3), null, { padding: NaN }), RangeError, /padding/],
    ['conv2d bias size', () => ops.conv2d(z(1, 1, 5, 5), z(2, 1, 3, 3), z(3)), RangeError, /bias/],
    ['conv2d disposed x', () => ops.conv2d(disposed(), z(1, 1, 3, 3)), TypeError, /x has been disposed/],
    ['conv2d empty x', () => ops.conv2d(z(0, 1, 5, 5), z(1, 1, 3, 3)), RangeError, /x is empty/],
    ['batchNorm2d weight size', () => ops.batchNorm2d(z(2, 3, 2, 2), z(3), z(3), z(4), z(3), { training: true }), RangeError, /weight/],
    ['batchNorm2d momentum', () => ops.batchNorm2d(z(2, 3, 2, 2), z(3), z(3), z(3), z(3), { training: true, momentum: 2 }), RangeError, /momentum/],
    ['batchNorm2d eps', () => ops.batchNorm2d(z(2, 3, 2, 2), z(3), z(3), z(3), z(3), { eps: 0 }), RangeError, /eps/],
    ['batchNorm2d one value per channel', () => ops.batchNorm2d(z(1, 3, 1, 1), z(3), z(3), z(3), z(3), { training: true }), RangeError, /more than one value/],
    ['convBnRelu gamma', () => ops.convBnRelu(z(1, 1, 4, 4), z(2, 1, 3, 3), null, z(1), z(2), z(2), z(2)), RangeError, /gamma/],
    ['relu not a tensor', () => ops.relu({} as never), TypeError, /x must be a Tensor/],
    ['maxPool2d kernel too big', () => ops.maxPool2d(z(1, 1, 2, 2), 3), RangeError, /kernelSize/],
    ['maxPool2d kernel 0', () => ops.maxPool2d(z(1, 1, 2, 2), 0), RangeError, /kernelSize/],
    ['globalAvgPool 2-D', () => ops.globalAvgPool(z(2, 2)), RangeError, /x must be 4-D/],
    ['linear feature mismatch', () => ops.linear(z(2, 3), z(4, 5)), RangeError, /input features/],
    ['linear bias size', () => ops.linear(z(2, 3), z(4, 3), z(5)), RangeError, /bias/],
    ['matmul mismatch', () => ops.matmul(z(2, 3), z(4, 5)), RangeError, /columns/],
    ['add shape mismatch', () => ops.add(z(2, 3), z(3, 2)), RangeError, /shape/],
    ['sub disposed', () => ops.sub(z(2), disposed()), TypeError, /b has been disposed/],
    ['mul not a tensor', () => ops.mul(z(2), 3 as never), TypeError, /b must be a Tensor/],
    ['scale NaN', () => ops.scale(z(2), NaN), RangeError, /s must be finite/],
    ['scale string', () => ops.scale(z(2), '2' as never), TypeError, /s must be a number/],
    ['mean empty', () => ops.mean(z(0)), RangeError, /x is empty/],
    ['normalize 3-D', () => ops.normalize(z(2, 2, 2)), RangeError, /x must be 2-D/],
    ['cosineSimilarity D mismatch', () => ops.cosineSimilarity(z(2, 3), z(2, 4)), RangeError, /columns/],
    ['ntXent odd rows', () => ops.ntXent(z(3, 4)), RangeError, /even/],
    ['ntXent tau 0', () => ops.ntXent(z(4, 4), 0), RangeError, /tau/],
    ['ntXent tau NaN', () => ops.ntXent(z(4, 4), NaN), RangeError, /tau/],
    ['ntXentCross shapes', () => ops.ntXentCross(z(2, 4), z(3, 4)), RangeError, /shape/],
    ['crossEntropy label range', () => ops.crossEntropy(z(2, 3), [0, 3]), RangeError, /labels\[1\]/],
    ['crossEntropy label count', () => ops.crossEntropy(z(2, 3), [0]), RangeError, /labels/],
    ['crossEntropy fractional label', () => ops.crossEntropy(z(2, 3), [0, 1.5]), RangeError, /labels\[1\]/],
    ['crossEntropy labels not array', () => ops.crossEntropy(z(2, 3), 3 as never), TypeError, /labels/],
    ['mseLoss empty', () => ops.mseLoss(z(0), z(0)), RangeError, /a is empty/],
    ['cosineLoss shapes', () => ops.cosineLoss(z(2, 3), z(2, 4)), RangeError, /shape/],
    ['gaussianNoise negative sigma', () => ops.gaussianNoise(z(2), -1, 0), RangeError, /sigma/],
    ['gaussianNoise bad seed', () => ops.gaussianNoise(z(2), 1, -1), RangeError, /seed/],
    ['topkMagnitude negative k', () => ops.topkMagnitude(z(2, 2), -1), RangeError, /k/],
    ['roundDecimals 9 decimals', () => ops.roundDecimals(z(2), 9), RangeError, /decimals/],
    ['Tensor.from NaN', () => Tensor.from([1, NaN], [2]), RangeError, /data\[1\] is not finite/],
    ['Tensor.from size mismatch', () => Tensor.from([1, 2, 3], [2]), RangeError, /shape/],
    ['Tensor.from bad shape', () => Tensor.from([1], [-1]), RangeError, /shape\[0\]/],
    ['Tensor.from not data', () => Tensor.from('abc' as never, [3]), TypeError, /data/],
    ['reshape mismatch', () => z(2, 3).reshape([4]), RangeError, /reshape/],
    ['item of many', () => z(2).item(), RangeError, /one element/],
    ['toArray disposed', () => disposed().toArray(), TypeError, /disposed/],
    ['setDevice bad', () => setDevice('tpu' as never), RangeError, /device/],
    ['setThreads 0', () => setThreads(0), RangeError, /threads/],
  ];
  for (const [name, fn, cls, re] of cases) {
    tidy(() => t.throws(fn, { constructor: cls, message: re }, name));
  }
  t.match(info(), { backend: /^(cpu|cuda)$/ }, 'the process survived and still answers');
});

t.test('setDevice("cuda") without a usable device says why', { skip: info().backend === 'cuda' ? 'a CUDA device is present: there is nothing to refuse on this machine' : false }, async (t) => {
  t.throws(() => setDevice('cuda'), /not usable: .+/);
  setDevice('cpu');
});

t.test('the binding guards catch what bypasses lib/', async (t) => {
  const h = (shape: number[]) => new native.NativeTensor(shape, new Float32Array(shape.reduce((a, b) => a * b, 1)));
  const cases: [string, () => unknown][] = [
    ['no arguments', () => (native.conv2dForward as unknown as () => unknown)()],
    ['a plain object as tensor', () => native.relu({ shape: [2] } as never)],
    ['a number as tensor', () => native.add(3 as never, h([1]))],
    ['size mismatch', () => native.add(h([2]), h([3]))],
    ['conv weight channels', () => native.conv2dForward(h([1, 2, 4, 4]), h([1, 3, 3, 3]), null, 1, 0)],
    ['conv kernel larger than input', () => native.conv2dForward(h([1, 1, 2, 2]), h([1, 1, 5, 5]), null, 1, 0)],
    ['conv negative padding', () => native.conv2dForward(h([1, 1, 4, 4]), h([1, 1, 3, 3]), null, 1, -1)],
    ['conv stride fraction', () => native.conv2dForward(h([1, 1, 4, 4]), h([1, 1, 3, 3]), null, 1.5, 0)],
    ['conv backward dout size', () => native.conv2dBackward(h([5]), h([1, 1, 4, 4]), h([1, 1, 3, 3]), 1, 0, true, true, true)],
    ['bn wrong ndim', () => native.batchNorm2dTrain(h([2, 2]), h([2]), h([2]), h([2]), h([2]), 0.1, 1e-5)],
    ['bn NaN eps', () => native.batchNorm2dEval(h([1, 2, 2, 2]), h([2]), h([2]), h([2]), h([2]), NaN)],
    ['linear mismatch', () => native.linear(h([2, 3]), h([2, 4]), null)],
    ['matmul mismatch', () => native.matmul(h([2, 3]), h([4, 2]))],
    ['maxpool too large', () => native.maxPool2d(h([1, 1, 2, 2]), 4)],
    ['ntXent odd rows', () => native.ntXentZ(h([3, 2]), 0.5, true)],
    ['ntXent negative tau', () => native.ntXentZ(h([4, 2]), -1, true)],
    ['crossEntropy labels type', () => native.crossEntropy(h([2, 3]), [0, 1] as never, false)],
    ['crossEntropy label range', () => native.crossEntropy(h([2, 3]), Int32Array.from([0, 9]), false)],
    ['topk huge k ok? negative k', () => native.topk(h([2, 2]), -5)],
    ['round 99 decimals', () => native.roundDecimals(h([2]), 99)],
    ['noise seed too large', () => native.gaussianNoise(h([2]), 1, 2 ** 60, 0)],
    ['adam step 0', () => native.adamUpdate(h([2]), h([2]), h([2]), h([2]), 1e-3, 0.9, 0.999, 1e-8, 0, false, 0)],
    ['sgd grad size', () => native.sgdUpdate(h([2]), h([2]), h([3]), 0.1, 0, 0, false, true)],
    ['NativeTensor shape not array', () => new native.NativeTensor(5 as never)],
    ['NativeTensor data length', () => new native.NativeTensor([3], new Float32Array(2))],
    ['NativeTensor data type', () => new native.NativeTensor([2], new Float64Array(2) as never)],
    ['NativeTensor huge shape', () => new native.NativeTensor([2 ** 31 - 1, 2 ** 31 - 1, 2 ** 31 - 1])],
    ['reshape mismatch', () => h([4]).reshape([3])],
    ['plan empty', () => native.runPlan([], h([1, 1, 2, 2]), 2)],
    ['plan unknown op', () => native.runPlan([{ op: 'nope' as never, in: 0, out: 1 }], h([1, 1, 2, 2]), 2)],
    ['plan reads unset register', () => native.runPlan([{ op: 'relu', in: 1, out: 2 }], h([1, 1, 2, 2]), 3)],
    ['plan conv weight mismatch', () => native.runPlan([{ op: 'conv', in: 0, out: 1, weight: h([1, 3, 3, 3]) }], h([1, 1, 4, 4]), 2)],
  ];
  for (const [name, fn] of cases) {
    t.throws(fn, name);
  }
  const d = h([2]);
  d.dispose();
  t.throws(() => native.relu(d), /disposed/, 'a disposed handle');
  t.throws(() => d.toArray(), /disposed/, 'toArray on a disposed handle');
  t.match(native.info(), { backend: /^(cpu|cuda)$/ }, 'the process survived');
});
