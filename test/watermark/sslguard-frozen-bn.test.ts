// Frozen batch norm (Module.freezeBatchNorm, used for F_w in SSLGuard): the
// forward equals eval mode, the gradient w.r.t. the input matches finite
// differences, conv weights get gradients, BN's parameters and statistics
// stay as they are.
import t from 'tap';
import { Tensor, noGrad } from '../../lib/core/tensor';
import * as ops from '../../lib/core/ops';
import { createEncoder } from '../../lib/nn/encoders';
import { embedSync } from '../../lib/nn/module';
import { randArray } from '../helpers';

t.test('frozen BN: eval-mode outputs, input gradients by finite differences', async (t) => {
  const enc = createEncoder('cnn-small', { seed: 3 });
  // Non-trivial running statistics: a few train-mode forwards.
  noGrad(() => {
    for (let i = 0; i < 3; i++) enc.forward(Tensor.from(randArray(4 * 784, 10 + i), [4, 1, 28, 28])).dispose();
  });
  enc.freezeBatchNorm(true).train();
  const stats = enc.namedBuffers().map(([k, v]) => [k, v.toArray()] as const);
  const xs = randArray(2 * 784, 99);
  const x = Tensor.from(xs, [2, 1, 28, 28]).requiresGrad_(true);
  const y = enc.forward(x);
  const ref = embedSync(enc, Tensor.from(xs, [2, 1, 28, 28]));
  const a = y.toArray();
  const b = ref.toArray();
  t.ok(a.every((v, i) => Math.abs(v - b[i]) < 1e-4 * (1 + Math.abs(b[i]))), 'forward equals the eval-mode plan');
  // Loss = sum(y * w) for a fixed w: dL/dx by backward and by central differences on a few pixels.
  const w = randArray(y.size, 5);
  ops.sum(ops.mul(y, Tensor.from(w, y.shape))).backward();
  const g = x.grad!.toArray();
  const lossAt = (v: Float32Array) => noGrad(() => embedSync(enc, Tensor.from(v, [2, 1, 28, 28])).toArray().reduce((s, e, i) => s + e * w[i], 0));
  // Directional derivatives along random directions (5%: float32 outputs and the ReLU / max-pool kinks a
  // step of 1e-3 along 1568 pixels crosses; a wrong BN scale would be off by a factor).
  for (const seed of [1, 2, 3]) {
    const d = randArray(xs.length, 1000 + seed);
    const h = 1e-3;
    const fd = (lossAt(xs.map((v, i) => v + h * d[i])) - lossAt(xs.map((v, i) => v - h * d[i]))) / (2 * h);
    const an = g.reduce((s, gi, i) => s + gi * d[i], 0);
    t.ok(Math.abs(fd - an) < 0.05 * Math.abs(an), `direction ${seed}: backward ${an}, finite differences ${fd}`);
  }
  const named = new Map(enc.namedParameters());
  t.ok(named.get('net.0.conv.weight')!.grad !== null, 'conv weights receive gradients');
  t.equal(named.get('net.0.bn.weight')!.grad, null, 'BN affine parameters receive none');
  for (const [k, v] of enc.namedBuffers()) t.same([...v.toArray()], [...stats.find(([n]) => n === k)![1]], `${k} unchanged`);
  enc.dispose();
});
