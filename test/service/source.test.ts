// The embedding-source interface: EncoderSource answers what the encoder
// computes (bitwise equal to embedSync), an EncoderService is a source too,
// stealing takes any source (a raw EncoderSource steals exactly like an
// undefended service with the same client id), and bad requests are refused
// before any work, naming the argument.
import t from 'tap';
import { Tensor, tidy } from '../../lib/core/tensor';
import { createEncoder } from '../../lib/nn/encoders';
import { embedSync } from '../../lib/nn/module';
import type { Dataset } from '../../lib/data/dataset';
import { toTensor } from '../../lib/data/tensor';
import { EncoderService } from '../../lib/service/service';
import { EncoderSource, checkEmbeddingSource, isEmbeddingSource, toQueryRequest } from '../../lib/service/source';
import { parseDefense } from '../../lib/defenses/spec';
import { stealEncoder } from '../../lib/attacks/steal';
import { sameValues } from '../helpers';

const encoder = createEncoder('cnn-small', { seed: 3 }).eval();
t.teardown(() => encoder.dispose());

function tinyDataset(n: number): Dataset {
  const bytes = new Uint8Array(n * 64);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 53 + 7) % 256;
  return { name: 'tiny', channels: 1, height: 8, width: 8, numClasses: 2, images: bytes, labels: Int32Array.from({ length: n }, (_, i) => i % 2) };
}

t.test('EncoderSource answers the raw embeddings, from a tensor or a dataset', async (t) => {
  const src = new EncoderSource(encoder);
  t.same(src.describe(), { kind: 'encoder', defense: 'none' });
  t.ok(isEmbeddingSource(src));
  const x = Tensor.randn([5, 1, 8, 8], { seed: 4 });
  const a = await src.embed('anyone', x);
  const ref = tidy(() => embedSync(encoder, x).toArray());
  t.ok(sameValues(a.toArray(), ref), 'tensor request: bitwise equal to embedSync');
  const ds = tinyDataset(6);
  const b = await src.embed('anyone', { dataset: ds, indices: [5, 0, 2] });
  const ref2 = tidy(() => embedSync(encoder, toTensor(ds, [5, 0, 2])).toArray());
  t.ok(sameValues(b.toArray(), ref2), 'dataset request: rows in the order asked');
  t.notOk(x.disposed, 'the caller keeps its input tensor');
  for (const v of [a, b, x]) v.dispose();
});

t.test('an EncoderService is a source that says which defense it applies', async (t) => {
  const svc = new EncoderService(encoder, { defense: parseDefense('round:2') });
  t.ok(isEmbeddingSource(svc));
  t.same(svc.describe(), { kind: 'service', defense: 'round:2' });
  t.same(new EncoderService(encoder).describe(), { kind: 'service', defense: 'none' });
});

t.test('bad requests are refused, naming the argument', async (t) => {
  const src = new EncoderSource(encoder);
  await t.rejects(src.embed('', Tensor.zeros([1, 1, 8, 8])), { name: 'TypeError', message: /clientId/ });
  await t.rejects(src.embed('a', Tensor.zeros([8, 8])), { message: /images/ });
  await t.rejects(src.embed('a', { dataset: tinyDataset(3), indices: [3] }), { name: 'RangeError', message: /images\.indices\[0\] = 3/ });
  await t.rejects(src.embed('a', { dataset: tinyDataset(3), indices: [] }), { name: 'RangeError', message: /images\.indices is empty/ });
  t.throws(() => toQueryRequest(Tensor.zeros([0, 1, 8, 8])), { name: 'RangeError', message: /images is empty/ });
  t.throws(() => new EncoderSource({} as never), { name: 'TypeError', message: /encoder must be a Module/ });
  t.throws(() => checkEmbeddingSource({ embed() {} }, 'target'), { name: 'TypeError', message: /target must be an EmbeddingSource/ });
  await t.rejects(stealEncoder({} as never, tinyDataset(4), { method: 'mse', budget: 2 }), { name: 'TypeError', message: /source must be an EmbeddingSource/ });
});

t.test('stealing takes any source: a raw encoder equals an undefended service', async (t) => {
  const ds = tinyDataset(24);
  const opts = { method: 'mse' as const, budget: 16, epochs: 2, batchSize: 8, seed: 1, clientId: 'thief' };
  const viaSource = await stealEncoder(new EncoderSource(encoder), ds, opts);
  const viaService = await stealEncoder(new EncoderService(encoder), ds, opts);
  t.equal(viaSource.queriesSpent, 16, 'every queried image counted once');
  t.same(viaSource.history.map((h) => h.loss), viaService.history.map((h) => h.loss), 'identical training losses');
  const probe = Tensor.randn([3, 1, 8, 8], { seed: 9 });
  t.ok(sameValues(tidy(() => embedSync(viaSource.surrogate, probe).toArray()), tidy(() => embedSync(viaService.surrogate, probe).toArray())), 'identical stolen encoders');
  for (const v of [viaSource.surrogate, viaService.surrogate, probe]) v.dispose();
});
