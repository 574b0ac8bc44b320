// Two replicas sharing Redis (and the database file) enforce one budget per
// key under concurrency and keep one b4b state per key: answers alternating
// between the replicas equal an in-process EncoderService's. Needs a
// redis-server: .ci/run starts one and exports ENCSEC_TEST_REDIS_URL;
// without it these tests are skipped (never passed).
import t, { type Test } from 'tap';
import * as crypto from 'node:crypto';
import * as path from 'node:path';
import { Tensor } from '../../lib/core/tensor';
import { createEncoder } from '../../lib/nn/encoders';
import { EncoderService } from '../../lib/service/service';
import { parseDefense } from '../../lib/defenses/spec';
import { startServer, tempDir, imageRows, postRows, floats, SIZE, type Running } from './fixture';
import { sameValues } from '../helpers';

const redisUrl = process.env.ENCSEC_TEST_REDIS_URL;
const skip = redisUrl ? false : 'ENCSEC_TEST_REDIS_URL is not set (.ci/run starts a redis-server and sets it)';

async function replicas(t: Test): Promise<[Running, Running]> {
  const dbFile = path.join(tempDir(), 'serve.sqlite');
  const encoder = createEncoder('cnn-small', { seed: 11 }).eval();
  // One namespace per test run, so runs never see each other's counters.
  const redisPrefix = `encsec-test-${crypto.randomBytes(6).toString('hex')}:`;
  const a = await startServer({ dbFile, encoder, redis: redisUrl, redisPrefix });
  const b = await startServer({ dbFile, encoder, redis: redisUrl, redisPrefix });
  t.teardown(async () => {
    await a.close();
    await b.close();
    encoder.dispose();
  });
  return [a, b];
}

t.test('two replicas enforce one budget: 100 concurrent requests, budget 10 -> exactly 10', { skip }, async (t) => {
  const [a, b] = await replicas(t);
  const { key, record } = a.server.keys.add({ budget: 10 });
  const rows = imageRows(1, 1);
  const answers = await Promise.all(Array.from({ length: 100 }, (_, i) => postRows((i % 2 ? a : b).url, key, rows, 1)));
  const ok = answers.filter((r) => r.status === 200).length;
  const refused = answers.filter((r) => r.status === 429).length;
  t.equal(ok, 10, 'exactly 10 answered');
  t.equal(refused, 90);
  t.equal(await a.server.store.used(record.id), 10, 'the shared counter');
  t.equal(await b.server.store.used(record.id), 10);
  t.equal(a.server.audit.rows().length, 10, 'both replicas wrote to one chained audit log');
  t.equal(a.server.store.kind, 'redis');
  const health = (await (await fetch(b.url + '/v1/health')).json()) as { state: string };
  t.equal(health.state, 'redis');
});

t.test('two replicas keep one b4b state per key: answers equal the in-process service', { skip }, async (t) => {
  const [a, b] = await replicas(t);
  const spec = 'b4b:beta=40,planes=6,families=3';
  const { key, record } = a.server.keys.add({ defense: spec, rate: 1000 });
  const service = new EncoderService(a.encoder, { defense: parseDefense(spec) });
  let last: Record<string, number> = {};
  for (let i = 0; i < 6; i++) {
    const rows = imageRows(4, 50 + i);
    const r = await postRows((i % 2 ? a : b).url, key, rows, 4, { binary: true });
    t.equal(r.status, 200);
    const x = Tensor.from(rows, [4, 1, SIZE, SIZE]);
    const expected = await service.embed(record.id, x);
    t.ok(sameValues(floats(r.bytes), expected.toArray()), `request ${i} (replica ${i % 2 ? 'a' : 'b'}): the in-process answer, bit for bit`);
    expected.dispose();
    x.dispose();
    last = JSON.parse(r.headers.get('x-encsec-stats')!);
  }
  t.same(last, service.clientStats(record.id), 'one coverage and sigma across both replicas');
  t.equal(last.rows, 24);
});
