// SimCLR pre-training on a small slice: it learns (the loss falls), it is
// reproducible, and an interrupted run resumed from its checkpoint ends with
// exactly the weights of an uninterrupted one.
import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as os from 'node:os';
import { loadDataset } from '../../lib/data/builtin';
import { pretrainSimclr } from '../../lib/ssl/simclr';
import { epochBatches } from '../../lib/data/batching';
import { embedDataset } from '../../lib/eval/embed';
import { linearProbe } from '../../lib/eval/probe';
import { loadEncoder, saveEncoder } from '../../lib/io/checkpoint';
import type { Encoder } from '../../lib/nn/encoders';
import { sameValues } from '../helpers';

const cacheDir = process.env.ENCSEC_CACHE ?? path.join(os.tmpdir(), 'encsec-test-cache');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'encsec-simclr-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));

const train = loadDataset('fashion-mnist', { split: 'train', limit: 96, cacheDir });
const cfg = { arch: 'cnn-small' as const, epochs: 3, batchSize: 32, seed: 5 };

function weights(e: Encoder): Float32Array[] {
  return [...e.stateDict().values()].map((x) => x.toArray());
}

t.test('epoch batches: a seeded permutation, every image once, tiny tails dropped', async (t) => {
  const b0 = epochBatches(10, 4, 1, 0);
  t.same(b0.map((b) => b.length), [4, 4, 2]);
  const all = b0.flatMap((b) => Array.from(b)).sort((a, b) => a - b);
  t.same(all, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  t.same(epochBatches(10, 4, 1, 0), b0, 'same (seed, epoch), same order');
  t.notSame(epochBatches(10, 4, 1, 1), b0, 'another epoch, another order');
  t.same(epochBatches(9, 4, 1, 0).map((b) => b.length), [4, 4], 'a last batch of 1 is dropped');
});

t.test('pre-training lowers the NT-Xent loss and is reproducible', async (t) => {
  const a = pretrainSimclr(train, { ...cfg, epochs: 4 });
  const losses = a.history.map((h) => h.loss);
  t.equal(losses.length, 4);
  t.ok(losses[3] < losses[0], `loss falls: ${losses.map((l) => l.toFixed(3)).join(' -> ')}`);
  const b = pretrainSimclr(train, { ...cfg, epochs: 1 });
  t.equal(b.history[0].loss, a.history[0].loss, 'same seed, same first epoch');
  a.encoder.dispose();
  a.head.dispose();
  b.encoder.dispose();
  b.head.dispose();
});

t.test('interrupt and resume gives the same final weights', async (t) => {
  const full = pretrainSimclr(train, cfg);
  const ckpt = path.join(tmp, 'run.ckpt');
  const part = pretrainSimclr(train, { ...cfg, checkpoint: ckpt, stopAfterEpochs: 1 });
  t.equal(part.epochsDone, 1, 'stopped after one epoch');
  t.ok(fs.existsSync(ckpt), 'checkpoint written');
  part.encoder.dispose();
  part.head.dispose();
  const resumed = pretrainSimclr(train, { ...cfg, checkpoint: ckpt, resume: true });
  t.equal(resumed.resumedFrom, 1, 'resumed from epoch 1');
  t.equal(resumed.history.length, 3, 'history carries over');
  const wa = weights(resumed.encoder);
  const wb = weights(full.encoder);
  t.ok(wa.length === wb.length && wa.every((w, i) => sameValues(w, wb[i])), 'identical encoder weights and BN statistics');
  t.same(resumed.history.map((h) => h.loss), full.history.map((h) => h.loss), 'identical losses');
  t.throws(() => pretrainSimclr(train, { ...cfg, tau: 0.2, checkpoint: ckpt, resume: true }), /tau/, 'a checkpoint of another configuration is refused');
  full.encoder.dispose();
  full.head.dispose();
  resumed.head.dispose();

  // Save, load and embed: the loaded encoder gives the same embeddings.
  const file = path.join(tmp, 'enc.safetensors');
  saveEncoder(file, resumed.encoder, { note: 'test' });
  const loaded = loadEncoder(file);
  t.equal(loaded.config.note, 'test');
  const test = loadDataset('fashion-mnist', { split: 'test', limit: 50, cacheDir });
  const e1 = embedDataset(resumed.encoder, test);
  const e2 = embedDataset(loaded.encoder, test);
  t.ok(sameValues(e1.data, e2.data), 'loaded encoder embeds identically');
  // The tiny end-to-end: a probe on these embeddings beats chance by far.
  const tr = embedDataset(loaded.encoder, train);
  const probe = linearProbe(tr, e1, { numClasses: 10, epochs: 100 });
  t.ok(probe.accuracy > 0.3, `probe accuracy after a tiny pre-training: ${probe.accuracy}`);
  resumed.encoder.dispose();
  loaded.encoder.dispose();
});

t.test('bad configuration', async (t) => {
  t.throws(() => pretrainSimclr(train, { ...cfg, epochs: 0 }), RangeError);
  t.throws(() => pretrainSimclr(train, { ...cfg, batchSize: 1 }), RangeError);
  t.throws(() => pretrainSimclr(train, { ...cfg, tau: -1 }), RangeError);
  t.throws(() => pretrainSimclr(train, { ...cfg, arch: 'vgg' as never }), RangeError);
  t.throws(() => pretrainSimclr({} as never, cfg), TypeError);
});
