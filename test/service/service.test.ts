// The encoder service: it counts every image each client sends, refuses a
// request that would exceed the client's budget (whole, counting nothing),
// per client, in the async and the sync path; it applies the defense; and
// parseDefense knows the built-in defenses plus what is registered (the
// defenses themselves are tested in test/defenses).
import t from 'tap';
import { Tensor, tidy } from '../../lib/core/tensor';
import { createEncoder } from '../../lib/nn/encoders';
import { embedSync } from '../../lib/nn/module';
import * as ops from '../../lib/core/ops';
import type { Dataset } from '../../lib/data/dataset';
import { EncoderService, QueryBudgetExceeded } from '../../lib/service/service';
import { identityDefense, type Defense } from '../../lib/defenses/defense';
import { listDefenses, parseDefense, registerDefense } from '../../lib/defenses/spec';
import { sameValues } from '../helpers';

// A small random-init encoder on 8x8 images keeps every call fast.
const encoder = createEncoder('cnn-small', { seed: 11 }).eval();
t.teardown(() => encoder.dispose());

const images = (n: number, seed: number) => Tensor.randn([n, 1, 8, 8], { seed });

function tinyDataset(n: number): Dataset {
  const bytes = new Uint8Array(n * 64);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 37 + 11) % 256;
  return { name: 'tiny', channels: 1, height: 8, width: 8, numClasses: 2, images: bytes, labels: Int32Array.from({ length: n }, (_, i) => i % 2) };
}

t.test('counts images, refuses a request that would exceed the budget, whole', async (t) => {
  const svc = new EncoderService(encoder, { defaultBudget: 10 });
  t.equal(svc.budgetOf('alice'), 10);
  t.equal(svc.used('alice'), 0);
  const a = svc.embedSync('alice', images(4, 1));
  t.same(a.shape, [4, 128], 'embeddings [n, d]');
  a.dispose();
  t.equal(svc.used('alice'), 4);
  t.equal(svc.remaining('alice'), 6);

  const err = t.throws(() => svc.embedSync('alice', images(7, 2)), QueryBudgetExceeded) as unknown as QueryBudgetExceeded;
  t.equal(err.name, 'QueryBudgetExceeded');
  t.equal(err.clientId, 'alice');
  t.equal(err.budget, 10);
  t.equal(err.used, 4);
  t.equal(err.requested, 7);
  t.match(err.message, /alice.*7.*4.*10/, 'the message names client, request, usage and budget');
  t.equal(svc.used('alice'), 4, 'a refused request counts nothing');

  const b = svc.embedSync('alice', images(6, 3));
  b.dispose();
  t.equal(svc.used('alice'), 10, 'a request that exactly fills the budget is accepted');
  t.throws(() => svc.embedSync('alice', images(1, 4)), QueryBudgetExceeded, 'then even one image is refused');
  t.equal(svc.usage().alice.refused, 2);
  t.equal(svc.usage().alice.requests, 2);
});

t.test('budgets are per client: default, overrides, unlimited', async (t) => {
  const svc = new EncoderService(encoder, { defaultBudget: 3, budgets: { big: 20, none: 0 } });
  t.equal(svc.budgetOf('big'), 20);
  t.equal(svc.budgetOf('someone'), 3);
  svc.embedSync('big', images(8, 5)).dispose();
  t.equal(svc.used('big'), 8);
  t.equal(svc.used('someone'), 0, "one client's queries do not count for another");
  t.throws(() => svc.embedSync('someone', images(4, 6)), QueryBudgetExceeded);
  t.throws(() => svc.embedSync('none', images(1, 6)), QueryBudgetExceeded, 'budget 0 refuses everything');
  svc.setBudget('someone', 4);
  svc.embedSync('someone', images(4, 6)).dispose();
  t.equal(svc.used('someone'), 4, 'a raised budget admits the request');
  svc.resetUsage('someone');
  t.equal(svc.used('someone'), 0);

  const open = new EncoderService(encoder);
  t.equal(open.budgetOf('x'), Infinity, 'no default budget: unlimited');
  open.embedSync('x', images(30, 7)).dispose();
  t.equal(open.used('x'), 30);
  t.throws(() => new EncoderService(encoder, { defaultBudget: -1 }), RangeError);
  t.throws(() => new EncoderService(encoder, { budgets: { a: 1.5 } }), RangeError);
  t.throws(() => svc.setBudget('', 3), TypeError, 'client ids are non-empty strings');
});

t.test('async embed: same embeddings as the sync path, same accounting', async (t) => {
  const svc = new EncoderService(encoder, { defaultBudget: 10 });
  const x = images(5, 8);
  const viaAsync = await svc.embed('bob', x);
  const viaSync = svc.embedSync('carol', x);
  const direct = tidy(() => embedSync(encoder, x).toArray());
  t.ok(sameValues(viaAsync.toArray(), direct), 'async = the encoder itself');
  t.ok(sameValues(viaSync.toArray(), direct), 'sync = the encoder itself');
  viaAsync.dispose();
  viaSync.dispose();
  t.equal(svc.used('bob'), 5);
  await t.rejects(svc.embed('bob', images(6, 9)), QueryBudgetExceeded, 'async refusal');
  t.equal(svc.used('bob'), 5, 'refused async request counts nothing');

  // Concurrent requests cannot together overrun the budget: counted on admission.
  const svc2 = new EncoderService(encoder, { defaultBudget: 10 });
  const res = await Promise.allSettled([svc2.embed('dan', images(4, 1)), svc2.embed('dan', images(4, 2)), svc2.embed('dan', images(4, 3))]);
  t.same(res.map((r) => r.status), ['fulfilled', 'fulfilled', 'rejected']);
  t.ok((res[2] as PromiseRejectedResult).reason instanceof QueryBudgetExceeded);
  for (const r of res) if (r.status === 'fulfilled') r.value.dispose();
  t.equal(svc2.used('dan'), 8);

  // Called inside a tidy() scope, the scope must not free the request's input early.
  const inScope = await tidy(() => svc2.embed('erin', { dataset: tinyDataset(3), indices: [0, 1, 2] }));
  t.same(inScope.shape, [3, 128]);
  inScope.dispose();
});

t.test('dataset slices, and requests larger than maxBatch are chunked transparently', async (t) => {
  const ds = tinyDataset(7);
  const idx = [6, 0, 3, 3, 1, 2, 5];
  const whole = new EncoderService(encoder).embedSync('a', { dataset: ds, indices: idx });
  const svc = new EncoderService(encoder, { maxBatch: 3 });
  const chunkedSync = svc.embedSync('a', { dataset: ds, indices: idx });
  const chunkedAsync = await svc.embed('a', { dataset: ds, indices: idx });
  const x = images(7, 12);
  const tensorWhole = new EncoderService(encoder).embedSync('a', x);
  const tensorChunked = await svc.embed('b', x);
  const w = whole.toArray();
  t.ok(sameValues(chunkedSync.toArray(), w), 'sync chunks concatenate to the same embeddings');
  t.ok(sameValues(chunkedAsync.toArray(), w), 'async chunks concatenate to the same embeddings');
  t.ok(sameValues(tensorChunked.toArray(), tensorWhole.toArray()), 'a tensor request in chunks');
  t.equal(svc.used('a'), 14, 'each image of each request counted once (repeats count)');
  t.equal(svc.used('b'), 7);
  for (const e of [whole, chunkedSync, chunkedAsync, tensorWhole, tensorChunked]) e.dispose();
  t.throws(() => svc.embedSync('c', { dataset: ds, indices: [] }), RangeError, 'empty request');
  t.throws(() => svc.embedSync('c', { dataset: ds, indices: [7] }), RangeError, 'index out of range');
  t.throws(() => svc.embedSync('c', Tensor.zeros([2, 64])), RangeError, 'not an image batch');
  t.equal(svc.used('c'), 0, 'invalid requests count nothing');
});

t.test('the defense sees every response, per client', async (t) => {
  const seen: string[] = [];
  const halve: Defense = {
    name: 'halve',
    apply(clientId, emb, q) {
      seen.push(`${clientId}:${emb.shape[0]}:${q ? q.shape.join('x') : '-'}`);
      return ops.scale(emb, 0.5);
    },
  };
  const x = images(3, 13);
  const raw = new EncoderService(encoder).embedSync('a', x).toArray();
  const svc = new EncoderService(encoder, { defense: halve, maxBatch: 2 });
  t.equal(svc.defense.name, 'halve');
  const a = svc.embedSync('eve', x);
  const b = await svc.embed('frank', x);
  t.ok(sameValues(a.toArray(), raw.map((v) => v * 0.5)), 'sync response defended');
  t.ok(sameValues(b.toArray(), raw.map((v) => v * 0.5)), 'async response defended');
  a.dispose();
  b.dispose();
  t.same(seen, ['eve:2:2x1x8x8', 'eve:1:1x1x8x8', 'frank:2:2x1x8x8', 'frank:1:1x1x8x8'], 'chunks in order, with the client id and the query images');

  const broken = new EncoderService(encoder, { defense: { name: 'broken', apply: () => { throw new Error('boom'); } } });
  t.throws(() => broken.embedSync('g', x), /boom/);
  await t.rejects(broken.embed('g', x), /boom/);
  t.equal(broken.used('g'), 0, 'a request the service fails on is refunded');
  const wrong = new EncoderService(encoder, { defense: { name: 'wrong', apply: () => Tensor.zeros([1, 4]) } });
  t.throws(() => wrong.embedSync('h', x), TypeError, 'a defense must return one row per image');
  t.throws(() => new EncoderService(encoder, { defense: {} as Defense }), TypeError);
  x.dispose();
});

t.test('parseDefense: "none" is the identity; unknown names are errors; registry', async (t) => {
  t.equal(parseDefense('none'), identityDefense);
  t.equal(parseDefense(undefined), identityDefense);
  t.equal(parseDefense(''), identityDefense);
  t.throws(() => parseDefense('magic:sigma=0.1'), /unknown defense "magic".*available: none, noise, topk, round, b4b/);
  t.throws(() => parseDefense('none:x=1'), /no parameters/);
  registerDefense('test-scale', (p) => ({ name: 'test-scale', params: { factor: Number(p.factor ?? 1) }, apply: (_c, e) => ops.scale(e, Number(p.factor ?? 1)) }), 'multiply by factor');
  const d = parseDefense('test-scale:factor=3');
  t.equal(d.name, 'test-scale');
  t.same(d.params, { factor: 3 });
  t.throws(() => parseDefense('test-scale:factor'), /key=value/);
  t.throws(() => registerDefense('test-scale', () => identityDefense), /already registered/);
  t.throws(() => registerDefense('Bad Name', () => identityDefense), { name: 'RangeError', message: /^name must match \[a-z\]\[a-z0-9-\]\*, got "Bad Name"$/ });
  t.throws(() => registerDefense(1n as never, () => identityDefense), { name: 'TypeError', message: /^name must be a defense name \(a string matching .*\), got a bigint \(1n\)$/ }, 'a BigInt name is described, not serialised');
  t.throws(() => registerDefense('test-opts', () => identityDefense, '', { positionl: 'x' } as never), { name: 'TypeError', message: /^options has unknown key "positionl" \(did you mean "positional"\?\)/ });
  t.same(listDefenses().map((x) => x.name), ['none', 'noise', 'topk', 'round', 'b4b', 'test-scale']);
  const e = Tensor.from([1, 2, 3, 4], [2, 2]);
  t.equal(identityDefense.apply('x', e), e, 'identity returns its input');
  e.dispose();
});
