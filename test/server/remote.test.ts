// RemoteEncoder: an encsec server as an EmbeddingSource. The raw route
// answers bit for bit what the model computes in process; the defended route
// what an in-process EncoderService with the same defense answers for a
// client named like the key id; budget refusals come back as
// QueryBudgetExceeded; and a steal through HTTP with b4b sees the same sigma,
// coverage and stolen encoder as the in-process run with the same seed.
// health() and keyInfo() (GET /v1/key) say what is served and what a key may
// spend, charging and auditing nothing.
import t from 'tap';
import { Tensor } from '../../lib/core/tensor';
import { embedSync } from '../../lib/nn/module';
import type { Dataset } from '../../lib/data/dataset';
import { EncoderService, QueryBudgetExceeded } from '../../lib/service/service';
import { EncoderSource } from '../../lib/service/source';
import { parseDefense } from '../../lib/defenses/spec';
import { defenseSpec } from '../../lib/defenses/defense';
import { stealEncoder } from '../../lib/attacks/steal';
import { meanRowCosine } from '../../lib/eval/fidelity';
import { RemoteEncoder, RemoteError } from '../../lib/server/remote';
import { startServer, SIZE, PER } from './fixture';
import { assertClose, sameValues } from '../helpers';

function tinyDataset(n: number, seed: number): Dataset {
  const bytes = new Uint8Array(n * PER);
  let a = seed;
  for (let i = 0; i < bytes.length; i++) {
    a = (a * 1103515245 + 12345) >>> 0;
    bytes[i] = a >>> 24;
  }
  return { name: 'tiny', channels: 1, height: SIZE, width: SIZE, numClasses: 2, images: bytes, labels: Int32Array.from({ length: n }, (_, i) => i % 2) };
}

t.test('the raw route through RemoteEncoder equals the model in process, bit for bit', async (t) => {
  const s = await startServer();
  t.teardown(() => s.close());
  const { key } = s.server.keys.add({ admin: true });
  const remote = new RemoteEncoder({ url: s.url, key, raw: true });
  const local = new EncoderSource(s.encoder);
  const x = Tensor.randn([13, 1, SIZE, SIZE], { seed: 4 });
  t.teardown(() => x.dispose());
  const a = await remote.embed('owner', x);
  const b = await local.embed('owner', x);
  t.same(a.shape, b.shape);
  t.ok(sameValues(a.toArray(), b.toArray()), 'identical bits');
  t.same(remote.describe(), { kind: 'remote', defense: 'none' });
  a.dispose();
  b.dispose();

  // By dataset and indices, in several HTTP requests of at most 5 images.
  const ds = tinyDataset(12, 3);
  const chunked = new RemoteEncoder({ url: s.url, key, raw: true, maxRequestImages: 5 });
  const c = await chunked.embed('owner', { dataset: ds, indices: [0, 2, 4, 6, 8, 10, 1, 3, 5, 7, 9] });
  const d = await local.embed('owner', { dataset: ds, indices: [0, 2, 4, 6, 8, 10, 1, 3, 5, 7, 9] });
  assertClose(t, c.toArray(), d.toArray(), 'chunked: the same embeddings (batch composition may change the last bits)', 1e-6, 1e-5);
  c.dispose();
  d.dispose();
  t.equal(s.server.audit.rows().length, 1 + 3, 'one audit row per HTTP request');
});

t.test('the defended route equals an in-process EncoderService with the same defense', async (t) => {
  const s = await startServer();
  t.teardown(() => s.close());
  const spec = 'noise:sigma=0.05,seed=7';
  const { key, record } = s.server.keys.add({ defense: spec, budget: 20 });
  const remote = new RemoteEncoder({ url: s.url, keys: { alice: key } });
  const service = new EncoderService(s.encoder, { defense: parseDefense(spec), defaultBudget: 20 });
  for (const seed of [1, 2]) {
    const x = Tensor.randn([6, 1, SIZE, SIZE], { seed });
    const a = await remote.embed('alice', x);
    // The server's client is the key id: its noise stream derives from it.
    const b = await service.embed(record.id, x);
    t.ok(sameValues(a.toArray(), b.toArray()), `request ${seed}: identical bits (the noise stream continues across requests)`);
    a.dispose();
    b.dispose();
    x.dispose();
  }
  t.same(remote.describe(), { kind: 'remote', defense: defenseSpec(parseDefense(spec)) }, 'describe() reports the served SPEC');
  const x = Tensor.randn([9, 1, SIZE, SIZE], { seed: 3 });
  t.teardown(() => x.dispose());
  const err = (await remote.embed('alice', x).then(
    () => null,
    (e) => e,
  )) as QueryBudgetExceeded;
  t.ok(err instanceof QueryBudgetExceeded, 'a 429 budget refusal is a QueryBudgetExceeded');
  t.match(err, { clientId: 'alice', budget: 20, used: 12, requested: 9 });
  await t.rejects(remote.embed('bob', x), /no API key for client "bob"/);
  const bad = new RemoteEncoder({ url: s.url, key: 'esk_000000000000_' + 'x'.repeat(43) });
  await t.rejects(bad.embed('eve', x), RemoteError, 'a 401 is a RemoteError');
  t.throws(() => new RemoteEncoder({ url: 'ftp://x', key: 'k' }), TypeError);
  t.throws(() => new RemoteEncoder({ url: s.url }), /exactly one of/);
  t.throws(() => new RemoteEncoder({ url: s.url, key: 'k', retries: 3 } as never), /unknown key "retries"/);
});

t.test('a steal through HTTP with b4b equals the in-process steal with the same seed', async (t) => {
  const s = await startServer();
  t.teardown(() => s.close());
  const spec = 'b4b:beta=40,planes=6,families=3';
  const { key, record } = s.server.keys.add({ defense: spec });
  const remote = new RemoteEncoder({ url: s.url, key });
  const service = new EncoderService(s.encoder, { defense: parseDefense(spec) });
  const data = tinyDataset(48, 9);
  const options = { method: 'mse' as const, budget: 40, epochs: 1, batchSize: 16, queryBatchSize: 10, seed: 5, clientId: record.id };
  const viaHttp = await stealEncoder(remote, data, options);
  const inProcess = await stealEncoder(service, data, options);
  t.teardown(() => {
    viaHttp.surrogate.dispose();
    inProcess.surrogate.dispose();
  });
  const statsHttp = remote.clientStats(record.id);
  const statsLocal = service.clientStats(record.id);
  t.same(statsHttp, statsLocal, 'the same b4b rows, coverage and sigma');
  t.ok(statsLocal.sigma > 0 && statsLocal.coverage > 0, 'and the defense was active');
  t.same(
    viaHttp.history.map((h) => h.loss),
    inProcess.history.map((h) => h.loss),
    'the same training losses',
  );
  // Agreement with the target: mean cosine of the stolen and target embeddings on held-out images.
  const probe = tinyDataset(16, 77);
  const idx = { dataset: probe, indices: Array.from({ length: 16 }, (_, i) => i) };
  const target = await new EncoderSource(s.encoder).embed('owner', idx);
  const agreement = async (m: typeof viaHttp.surrogate) => {
    const e = await new EncoderSource(m).embed('x', idx);
    try {
      return meanRowCosine(e.toArray(), target.toArray(), 16, e.shape[1]);
    } finally {
      e.dispose();
    }
  };
  t.equal(await agreement(viaHttp.surrogate), await agreement(inProcess.surrogate), 'the same agreement');
  target.dispose();
  t.equal(viaHttp.queriesSpent, 40);
});

t.test('health() and keyInfo(): what is served and what the key may spend, nothing charged', async (t) => {
  const s = await startServer();
  t.teardown(() => s.close());
  const spec = 'noise:sigma=0.05,seed=7';
  const { key, record } = s.server.keys.add({ defense: spec, budget: 20 });
  const remote = new RemoteEncoder({ url: s.url, key });
  t.match(await remote.health(), { status: 'ok', inputShape: [1, SIZE, SIZE], dim: 128 });
  t.same(remote.describe(), { kind: 'remote', defense: null }, 'before: the defense is not known');
  const canonical = defenseSpec(parseDefense(spec));
  t.same(await remote.keyInfo('alice'), { keyId: record.id, admin: false, defense: canonical, budget: 20, used: 0 });
  t.same(remote.describe(), { kind: 'remote', defense: canonical }, 'after keyInfo(): known before any query');
  const x = Tensor.randn([6, 1, SIZE, SIZE], { seed: 1 });
  t.teardown(() => x.dispose());
  (await remote.embed('alice', x)).dispose();
  t.match(await remote.keyInfo('alice'), { used: 6 }, 'used follows the answered images');
  t.equal(await s.server.store.used(record.id), 6, 'keyInfo() and health() charged nothing');
  t.equal(s.server.audit.rows().length, 1, 'and are not in the audit log');

  const admin = s.server.keys.add({ admin: true });
  t.match(await new RemoteEncoder({ url: s.url, key: admin.key }).keyInfo('owner'), { admin: true, defense: 'none', budget: null });
  const raw = new RemoteEncoder({ url: s.url, key: admin.key, raw: true });
  await raw.keyInfo('owner');
  t.same(raw.describe(), { kind: 'remote', defense: 'none' }, 'the raw route stays undefended');

  // The route refuses like the embedding routes, and is in the OpenAPI document.
  const bad = new RemoteEncoder({ url: s.url, key: 'esk_000000000000_' + 'x'.repeat(43) });
  await t.rejects(bad.keyInfo('eve'), { name: 'RemoteError', status: 401 });
  s.server.keys.revoke(record.id);
  await t.rejects(remote.keyInfo('alice'), { name: 'RemoteError', status: 403 });
  t.equal((await fetch(s.url + '/v1/key')).status, 401, 'no key: 401');
  const doc = (await (await fetch(s.url + '/v1/openapi.json')).json()) as { paths: Record<string, Record<string, { security?: unknown; responses: Record<string, { content?: Record<string, { schema: { properties: Record<string, unknown> } }> }> }>> };
  const op = doc.paths['/v1/key'].get;
  t.same(op.security, [{ bearer: [] }]);
  t.same(Object.keys(op.responses['200'].content!['application/json'].schema.properties).sort(), ['admin', 'budget', 'defense', 'keyId', 'used']);
  t.same(Object.keys(doc.paths['/v1/health'].get.responses['200'].content!['application/json'].schema.properties).sort(), ['dim', 'inputShape', 'queuedImages', 'state', 'status']);
  await t.rejects(new RemoteEncoder({ url: 'http://127.0.0.1:1', key }).health(), /remote encoder http:\/\/127\.0\.0\.1:1/);
});
