// Stealing through the service: each attack, run briefly on a small slice
// against a random-init target, brings the surrogate's embeddings closer to
// the target's than they were at the start; the query accounting (each
// selected image queried once, views free, budget enforced by the service);
// reproducibility; surrogate files.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadDataset } from '../../lib/data/builtin';
import { toTensor } from '../../lib/data/tensor';
import { noGrad, tidy } from '../../lib/core/tensor';
import { createEncoder } from '../../lib/nn/encoders';
import { embedDataset } from '../../lib/eval/embed';
import { meanRowCosine } from '../../lib/eval/fidelity';
import { EncoderService, QueryBudgetExceeded } from '../../lib/service/service';
import { STEAL_METHODS } from '../../lib/attacks/losses';
import { selectQueries, stealEncoder } from '../../lib/attacks/steal';
import { Surrogate, loadSurrogate, saveSurrogate } from '../../lib/attacks/surrogate';
import { loadEncoder } from '../../lib/io/checkpoint';
import type { Module } from '../../lib/nn/module';
import { sameValues } from '../helpers';

const cacheDir = process.env.ENCSEC_CACHE ?? path.join(os.tmpdir(), 'encsec-test-cache');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'encsec-steal-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));

const data = loadDataset('fashion-mnist', { split: 'train', limit: 64, cacheDir });
// A random-init target whose batch-norm running statistics are calibrated
// on the data (forward passes in train mode), so that its embeddings have a
// realistic scale rather than the near-zero output of untouched BN buffers.
const target = createEncoder('cnn-small', { seed: 7 }).train();
noGrad(() => {
  for (let r = 0; r < 10; r++) tidy(() => target.forward(toTensor(data, Int32Array.from({ length: 64 }, (_, i) => i))));
});
target.eval();
const targetEmb = embedDataset(target, data);
t.teardown(() => target.dispose());

function mse(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] - b[i]) ** 2;
  return s / a.length;
}

function closeness(m: Module) {
  const e = embedDataset(m, data);
  return { cos: meanRowCosine(e.data, targetEmb.data, e.n, e.dim), mse: mse(e.data, targetEmb.data) };
}

t.test('every attack brings the surrogate closer to the target', async (t) => {
  const svc = new EncoderService(target);
  // epochs 0: the surrogate as initialised; every run below starts from it (same seed and architecture).
  const start = await stealEncoder(svc, data, { method: 'mse', budget: 64, epochs: 0, seed: 3, clientId: 'start' });
  const before = closeness(start.surrogate);
  start.surrogate.dispose();
  for (const method of STEAL_METHODS) {
    const res = await stealEncoder(svc, data, { method, budget: 64, batchSize: 32, seed: 3, lambda: 1, k: 1, tau: 0.5, epochs: 5, clientId: method });
    const after = closeness(res.surrogate);
    t.equal(res.queriesSpent, 64, `${method}: 64 images queried`);
    t.equal(svc.used(method), 64, `${method}: the service counted 64, augmented views are free`);
    t.equal(res.history.length, 5);
    t.ok(res.history[4].loss < res.history[0].loss, `${method}: loss falls ${res.history[0].loss.toFixed(4)} -> ${res.history[4].loss.toFixed(4)}`);
    if (method === 'mse') t.ok(after.mse < before.mse, `mse: embedding MSE ${before.mse.toFixed(4)} -> ${after.mse.toFixed(4)}`);
    else t.ok(after.cos > before.cos, `${method}: mean cosine ${before.cos.toFixed(3)} -> ${after.cos.toFixed(3)}`);
    t.ok(res.wallSeconds >= res.trainSeconds, 'wall time covers the training');
    res.surrogate.dispose();
  }
});

t.test('query selection and accounting', async (t) => {
  const sel = selectQueries(100, 10, 'random', 4);
  t.equal(new Set(sel).size, 10, 'distinct images');
  t.ok(sel.every((i) => i >= 0 && i < 100));
  t.ok(sameValues(selectQueries(100, 10, 'random', 4), sel), 'seeded');
  t.ok(sameValues(selectQueries(100, 30, 'random', 4).subarray(0, 10), sel), 'a smaller budget queries a prefix of a larger one');
  t.same(Array.from(selectQueries(100, 4, 'first', 4)), [0, 1, 2, 3]);
  t.throws(() => selectQueries(10, 11, 'random', 0), /larger than the query set/);

  // k = 3 augmented views per image: still one query per image.
  const svc = new EncoderService(target, { defaultBudget: 0, budgets: { a: 40 } });
  const res = await stealEncoder(svc, data, { method: 'stolenencoder', budget: 40, epochs: 1, batchSize: 20, k: 3, lambda: 2, clientId: 'a', queryBatchSize: 16 });
  t.equal(res.queriesSpent, 40);
  t.equal(svc.usage().a.requests, 3, 'queried in batches of 16: 16 + 16 + 8');
  t.equal(res.queried.length, 40);
  res.surrogate.dispose();

  // The service enforces its budget whatever the attacker asks for.
  await t.rejects(stealEncoder(svc, data, { method: 'mse', budget: 8, epochs: 1, clientId: 'a' }), QueryBudgetExceeded, 'spent client refused');
  await t.rejects(stealEncoder(svc, data, { method: 'mse', budget: 8, epochs: 1, clientId: 'stranger' }), QueryBudgetExceeded, 'default budget 0');
  await t.rejects(stealEncoder(svc, data, { method: 'mse', budget: 65, epochs: 1, clientId: 'a' }), /larger than the query set/);
  await t.rejects(stealEncoder(svc, data, { method: 'steal-all' as never, budget: 8 }), RangeError);
  await t.rejects(stealEncoder(svc, data, { method: 'mse', budget: 8, tau: 0 }), RangeError);
});

t.test('reproducible: same seed, same surrogate', async (t) => {
  const svc = new EncoderService(target);
  const o = { method: 'contsteal' as const, budget: 32, epochs: 1, batchSize: 16, seed: 9 };
  const a = await stealEncoder(svc, data, { ...o, clientId: 'x' });
  const b = await stealEncoder(svc, data, { ...o, clientId: 'y' });
  t.equal(a.history[0].loss, b.history[0].loss);
  const ea = embedDataset(a.surrogate, data).data;
  t.ok(sameValues(ea, embedDataset(b.surrogate, data).data), 'identical weights');
  const c = await stealEncoder(svc, data, { ...o, seed: 10, clientId: 'z' });
  t.not(c.history[0].loss, a.history[0].loss, 'another seed, another run');
  for (const r of [a, b, c]) r.surrogate.dispose();
});

t.test('surrogate files: plain encoder file, or with an adapter to the target size', async (t) => {
  const svc = new EncoderService(target);
  const same = await stealEncoder(svc, data, { method: 'cosine', budget: 16, epochs: 1, batchSize: 8 });
  t.equal(same.surrogate.adapter, null, 'cnn-small copies cnn-small: no adapter');
  const f1 = path.join(tmp, 'plain.safetensors');
  saveSurrogate(f1, same.surrogate, { note: 1 });
  const asEncoder = loadEncoder(f1);
  const e0 = embedDataset(same.surrogate, data).data;
  t.ok(sameValues(embedDataset(asEncoder.encoder, data).data, e0), 'readable as a plain encoder file');
  const back = loadSurrogate(f1);
  t.ok(sameValues(embedDataset(back.surrogate, data).data, e0), 'and by loadSurrogate');
  asEncoder.encoder.dispose();
  back.surrogate.dispose();
  same.surrogate.dispose();

  // resnet18-cifar (512-d) copying cnn-small (128-d): a linear adapter to 128.
  const small = { ...data, images: data.images.subarray(0, 4 * 784), labels: data.labels.subarray(0, 4) };
  const big = await stealEncoder(svc, small, { method: 'mse', budget: 4, epochs: 0, arch: 'resnet18-cifar' });
  t.ok(big.surrogate instanceof Surrogate);
  t.equal(big.surrogate.backbone.dim, 512);
  t.equal(big.surrogate.dim, 128, 'embeddings in the target space');
  const f2 = path.join(tmp, 'adapter.safetensors');
  saveSurrogate(f2, big.surrogate, { note: 2 });
  const loaded = loadSurrogate(f2);
  t.equal(loaded.config.note, 2);
  t.ok(sameValues(embedDataset(loaded.surrogate, small).data, embedDataset(big.surrogate, small).data), 'round trip');
  t.throws(() => loadEncoder(f2), /not an encsec encoder/, 'not a plain encoder file');
  loaded.surrogate.dispose();
  big.surrogate.dispose();
});
