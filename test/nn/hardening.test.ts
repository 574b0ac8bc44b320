// Issue #19 in lib/nn: arguments are checked before use (no "reading 'arch'"
// or "reading 'get'" from V8), option keys are checked, and state that does
// not fit is refused before anything is changed.
import t, { type Test } from 'tap';
import { Tensor } from '../../lib/core/tensor';
import { Encoder, ProjectionHead, createEncoder, projectionDim } from '../../lib/nn/encoders';
import { BatchNorm2d, Conv2d, ConvBnReLU, Linear, MaxPool2d, PlanBuilder, Sequential, embedAsync, embedSync } from '../../lib/nn/module';
import { Adam, SGD } from '../../lib/nn/optim';

type Case = [string, () => unknown, ErrorConstructor, RegExp];
function check(t: Test, cases: Case[]): void {
  for (const [what, fn, type, message] of cases) t.throws(fn, { name: type.name, message }, what);
}

t.test('constructors and factories', async (t) => {
  const p = () => [Tensor.zeros([2]).requiresGrad_()];
  check(t, [
    ['new Encoder(null)', () => new Encoder(null as never), TypeError, /config must be an object, got null/],
    ['new Encoder()', () => new (Encoder as unknown as new () => Encoder)(), TypeError, /config must be an object/],
    ['new Encoder arch', () => new Encoder({ arch: 'vit', inChannels: 1, seed: 0 } as never), RangeError, /config\.arch must be one of "cnn-small", "resnet18-cifar", got "vit"/],
    ['new Encoder arch number', () => new Encoder({ arch: 5, inChannels: 1, seed: 0 } as never), TypeError, /config\.arch must be one of .* got 5/],
    ['new Encoder unknown key', () => new Encoder({ arch: 'cnn-small', inChannels: 1, seed: 0, sed: 1 } as never), TypeError, /config has unknown key "sed" \(did you mean "seed"\?\)/],
    ['new Encoder seed NaN', () => new Encoder({ arch: 'cnn-small', inChannels: 1, seed: NaN }), RangeError, /config\.seed must be finite/],
    ['createEncoder unknown option', () => createEncoder('cnn-small', { sead: 1 } as never), TypeError, /options has unknown key "sead" \(did you mean "seed"\?\)/],
    ['createEncoder arch null', () => createEncoder(null as never), TypeError, /arch must be one of/],
    ['projectionDim("x")', () => projectionDim('x' as never), RangeError, /arch must be one of/],
    ['new ProjectionHead(NaN, 2, 0)', () => new ProjectionHead(NaN, 2, 0), RangeError, /inDim must be finite/],
    ['new SGD momentun', () => new SGD(p(), { lr: 0.1, momentun: 0.9 } as never), TypeError, /options has unknown key "momentun" \(did you mean "momentum"\?\)/],
    ['new SGD no options', () => new (SGD as unknown as new (p: Tensor[]) => SGD)(p()), TypeError, /options\.lr is required/],
    ['new SGD nesterov 1', () => new SGD(p(), { lr: 0.1, nesterov: 1 as never }), TypeError, /nesterov must be a boolean/],
    ['new Adam betas', () => new Adam(p(), { betas: [0.9, 0.99] } as never), TypeError, /options has unknown key "betas"/],
    ['new Adam options 5', () => new Adam(p(), 5 as never), TypeError, /options must be an object, got 5/],
    ['new SGD params null', () => new SGD(null as never, { lr: 1 }), TypeError, /params must be a non-empty array of tensors, got null/],
    ['new Conv2d unknown option', () => new Conv2d(1, 1, 3, { pading: 1 } as never), TypeError, /options has unknown key "pading" \(did you mean "padding"\?\)/],
    ['new Conv2d stride 0', () => new Conv2d(1, 1, 3, { stride: 0 }), RangeError, /options\.stride must be >= 1/],
    ['new Conv2d bias "no"', () => new Conv2d(1, 1, 3, { bias: 'no' as never }), TypeError, /options\.bias must be a boolean/],
    ['new Conv2d kernel 2^40', () => new Conv2d(1, 1, 2 ** 40), RangeError, /kernelSize must be <= 64/],
    ['new BatchNorm2d momentum 2', () => new BatchNorm2d(3, { momentum: 2 }), RangeError, /options\.momentum must be <= 1/],
    ['new BatchNorm2d unknown', () => new BatchNorm2d(3, { epsilon: 1 } as never), TypeError, /options has unknown key "epsilon"/],
    ['new ConvBnReLU unknown', () => new ConvBnReLU(1, 2, 3, { bias: true } as never), TypeError, /options has unknown key "bias"/],
    ['new Linear unknown', () => new Linear(2, 2, { seeed: 1 } as never), TypeError, /options has unknown key "seeed" \(did you mean "seed"\?\)/],
    ['new Linear 2^40 features', () => new Linear(2 ** 40, 2), RangeError, /inFeatures must be <= 2147483647/],
    ['new MaxPool2d(NaN)', () => new MaxPool2d(NaN), RangeError, /kernelSize must be finite/],
    ['new Sequential(5)', () => new Sequential(5 as never), TypeError, /layers\[0\] must be a Module/],
  ]);
});

t.test('module methods', async (t) => {
  const lin = new Linear(2, 2, { seed: 1 });
  const before = lin.weight.toArray();
  check(t, [
    ['loadStateDict(null)', () => lin.loadStateDict(null as never), TypeError, /state must be a Map from names to Tensors, got null/],
    ['loadStateDict({})', () => lin.loadStateDict({} as never), TypeError, /state must be a Map .* got an object/],
    ['loadStateDict posing tensor', () => lin.loadStateDict(new Map([['weight', Object.create(Tensor.prototype)], ['bias', Tensor.zeros([2])]])), TypeError, /state\["weight"\] must be a Tensor, got an object posing as a Tensor/],
    ['loadStateDict extra entry', () => lin.loadStateDict(new Map([['weight', Tensor.ones([2, 2])], ['bias', Tensor.zeros([2])], ['x', Tensor.zeros([1])]])), RangeError, /state dict has unexpected entry "x"/],
    ['train("no")', () => lin.train('no' as never), TypeError, /flag must be a boolean, got a string/],
    ['namedParameters(5)', () => lin.namedParameters(5 as never), TypeError, /prefix must be a string/],
    ['embedSync(null, x)', () => embedSync(null as never, Tensor.zeros([1, 1, 4, 4])), TypeError, /module must be a Module, got null/],
    ['PlanBuilder.add(null)', () => new PlanBuilder().add(null as never, 0), TypeError, /step must be an object, got null/],
    ['PlanBuilder.add bad op', () => new PlanBuilder().add({ op: 'softmax' } as never, 0), RangeError, /step\.op must be one of/],
    ['PlanBuilder.add unknown register', () => new PlanBuilder().add({ op: 'relu' }, 5), RangeError, /input must be <= 0, got 5/],
    ['PlanBuilder.addSum NaN', () => new PlanBuilder().addSum(NaN, 0), RangeError, /a must be finite/],
  ]);
  t.same(Array.from(lin.weight.toArray()), Array.from(before), 'a refused state dict changes nothing');
  await t.rejects(embedAsync({} as never, Tensor.zeros([1, 1, 4, 4])), { name: 'TypeError', message: /module must be a Module, got an object/ });
});

t.test('optimizer state is checked before anything changes', async (t) => {
  const w = Tensor.ones([3]).requiresGrad_();
  const opt = new Adam([w], { lr: 0.1 });
  w.grad = Tensor.ones([3]);
  opt.step();
  const m0 = opt.state().tensors.get('0.m')!.toArray();
  check(t, [
    ['loadState(null)', () => opt.loadState(null as never), TypeError, /state must be an OptimizerState \{ kind, step, tensors \}, got null/],
    ['loadState tensors not a Map', () => opt.loadState({ kind: 'adam', step: 1, tensors: {} } as never), TypeError, /state\.tensors must be a Map/],
    ['loadState step -1', () => opt.loadState({ kind: 'adam', step: -1, tensors: new Map() }), RangeError, /state\.step must be >= 0/],
    ['loadState kind', () => opt.loadState({ kind: 'sgd', step: 1, tensors: new Map() }), RangeError, /optimizer state is for "sgd", not "adam"/],
    ['loadState wrong size', () => opt.loadState({ kind: 'adam', step: 1, tensors: new Map([['0.m', Tensor.zeros([2])]]) }), RangeError, /optimizer state "0\.m" has 2 elements, expected 3/],
    ['loadState unknown slot', () => opt.loadState({ kind: 'adam', step: 1, tensors: new Map([['5.m', Tensor.zeros([3])]]) }), RangeError, /unexpected entry "5\.m"/],
  ]);
  t.same(Array.from(opt.state().tensors.get('0.m')!.toArray()), Array.from(m0), 'the moments are unchanged after refused states');
  t.equal(opt.steps, 1);
});
