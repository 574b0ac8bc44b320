// No embedding leaves the server without a valid key, on every route that
// answers embeddings (missing, malformed, unknown, wrong-secret and revoked
// keys; non-admin keys on the raw route); budgets refuse with 429 and are
// never over-spent under concurrency; rate limits refuse with 429 and
// Retry-After; metrics label key ids, never keys.
import t from 'tap';
import { startServer, imageRows, postRows } from './fixture';

t.test('every embedding route refuses requests without a valid key', async (t) => {
  const s = await startServer();
  t.teardown(() => s.close());
  const user = s.server.keys.add({ budget: 1000 });
  const admin = s.server.keys.add({ admin: true });
  const revoked = s.server.keys.add({ admin: true });
  s.server.keys.revoke(revoked.record.id);
  // The same id with another secret, and a key of another database.
  const wrongSecret = `esk_${admin.record.id}_${'A'.repeat(43)}`;
  const unknown = `esk_0123456789ab_${'B'.repeat(43)}`;

  // The routes that take images: every POST path of the OpenAPI document (so a new route is covered too).
  const doc = (await (await fetch(s.url + '/v1/openapi.json')).json()) as { paths: Record<string, Record<string, unknown>> };
  const routes = Object.entries(doc.paths)
    .filter(([, ops]) => 'post' in ops)
    .map(([p]) => p);
  t.same(routes.sort(), ['/v1/embed', '/v1/embed/raw']);

  const rows = imageRows(2, 1);
  for (const route of routes) {
    const cases: [string, string | null, Record<string, string> | undefined, number][] = [
      ['no key', null, undefined, 401],
      ['an empty bearer', null, { authorization: 'Bearer ' }, 401],
      ['a malformed key', 'not-a-key', undefined, 401],
      ['an unknown key id', unknown, undefined, 401],
      ['a wrong secret', wrongSecret, undefined, 401],
      ['a revoked key', revoked.key, undefined, 403],
      ['x-api-key with a revoked key', null, { 'x-api-key': revoked.key }, 403],
    ];
    for (const [what, key, headers, status] of cases) {
      for (const binary of [false, true]) {
        const r = await postRows(s.url, key, rows, 2, { route, headers, binary });
        t.equal(r.status, status, `${route} with ${what}${binary ? ' (binary accept)' : ''} -> ${status}`);
        t.notOk(r.json && 'embeddings' in r.json, 'no embeddings in the answer');
        t.not(r.headers.get('content-type'), 'application/octet-stream', 'no binary embeddings either');
      }
    }
  }
  const raw = await postRows(s.url, user.key, rows, 2, { route: '/v1/embed/raw' });
  t.equal(raw.status, 403, 'a user key may not use the raw route');
  t.match(raw.json, { error: 'forbidden' });

  const ok = await postRows(s.url, user.key, rows, 2);
  t.equal(ok.status, 200, 'a valid key gets its embeddings');
  t.equal((ok.json!.embeddings as number[][]).length, 2);
  const okRaw = await postRows(s.url, admin.key, rows, 2, { route: '/v1/embed/raw' });
  t.equal(okRaw.status, 200, 'an admin key gets raw embeddings');
  t.equal(okRaw.headers.get('x-encsec-defense'), 'raw');

  // Revocation takes effect on the next request.
  s.server.keys.revoke(user.record.id);
  t.equal((await postRows(s.url, user.key, rows, 2)).status, 403, 'revoked while serving');

  const audited = s.server.audit.rows();
  t.same(
    audited.map((r) => [r.keyId, r.route, r.images]),
    [
      [user.record.id, '/v1/embed', 2],
      [admin.record.id, '/v1/embed/raw', 2],
    ],
    'only the two answered requests are in the audit log',
  );

  const health = await fetch(s.url + '/v1/health');
  t.equal(health.status, 200, 'health needs no key');
  t.notOk('embeddings' in ((await health.json()) as object));
});

t.test('an exhausted budget is 429, whole, counting nothing', async (t) => {
  const s = await startServer();
  t.teardown(() => s.close());
  const { key, record } = s.server.keys.add({ budget: 5 });
  t.equal((await postRows(s.url, key, imageRows(3, 2), 3)).status, 200);
  const over = await postRows(s.url, key, imageRows(3, 3), 3);
  t.equal(over.status, 429);
  t.match(over.json, { error: 'budget_exceeded', budget: 5, used: 3, requested: 3 });
  const fits = await postRows(s.url, key, imageRows(2, 4), 2);
  t.equal(fits.status, 200, 'the refused request counted nothing: 2 more still fit');
  t.equal(fits.headers.get('x-encsec-used'), '5');
  t.equal((await postRows(s.url, key, imageRows(1, 5), 1)).status, 429);
  t.equal(await s.server.store.used(record.id), 5);
});

t.test('100 concurrent requests against a budget of 10 images: exactly 10 answered', async (t) => {
  const s = await startServer();
  t.teardown(() => s.close());
  const { key, record } = s.server.keys.add({ budget: 10 });
  const rows = imageRows(1, 6);
  const answers = await Promise.all(Array.from({ length: 100 }, () => postRows(s.url, key, rows, 1)));
  const counts = new Map<number, number>();
  for (const a of answers) counts.set(a.status, (counts.get(a.status) ?? 0) + 1);
  t.same(Object.fromEntries(counts), { 200: 10, 429: 90 });
  t.equal(await s.server.store.used(record.id), 10);
  t.equal(s.server.audit.rows().length, 10, 'ten audit rows');
  const persisted = s.db.prepare('SELECT used, requests FROM usage WHERE key_id = ?').get(record.id);
  t.same(persisted, { used: 10, requests: 10 }, 'the answered images are on disk');
});

t.test('a rate limit refuses with 429 and Retry-After', async (t) => {
  const s = await startServer();
  t.teardown(() => s.close());
  // One token, refilled at 0.01/s: of three requests at once exactly one passes.
  const { key } = s.server.keys.add({ rate: 0.01 });
  const answers = await Promise.all([1, 2, 3].map((i) => postRows(s.url, key, imageRows(1, i), 1)));
  const ok = answers.filter((a) => a.status === 200);
  const limited = answers.filter((a) => a.status === 429);
  t.equal(ok.length, 1);
  t.equal(limited.length, 2);
  for (const l of limited) {
    t.match(l.json, { error: 'rate_limited' });
    t.ok(Number(l.headers.get('retry-after')) >= 1, 'Retry-After in seconds');
  }
});

t.test('metrics: requests, batches, images and noise by key id, never a key', async (t) => {
  const s = await startServer();
  t.teardown(() => s.close());
  const { key, record } = s.server.keys.add({ defense: 'noise:0.05' });
  t.equal((await postRows(s.url, key, imageRows(3, 7), 3)).status, 200);
  t.equal((await postRows(s.url, null, imageRows(1, 7), 1)).status, 401);
  const text = await (await fetch(s.url + '/metrics')).text();
  t.match(text, `encsec_images_total{key_id="${record.id}"} 3`);
  t.match(text, `encsec_defense_noise{key_id="${record.id}"} 0.05`);
  t.match(text, 'encsec_http_requests_total{route="/v1/embed",status="200"} 1');
  t.match(text, 'encsec_http_requests_total{route="/v1/embed",status="401"} 1');
  t.match(text, /encsec_batch_images_count 1/);
  t.match(text, /encsec_http_request_duration_seconds_bucket/);
  t.match(text, /encsec_queue_images 0/);
  t.match(text, /encsec_process_resident_memory_bytes/);
  const secret = key.slice('esk_'.length + 12 + 1); // the whole secret (base64url may itself hold '_')
  t.equal(secret.length, 43);
  t.notOk(text.includes(secret), 'the secret never appears');
  t.notOk(text.includes(key), 'nor the key');
});

t.test('a full queue is 503 with Retry-After, and refunds the images', async (t) => {
  // Requests wait up to 10 s for a full batch of 64: three 1-image requests fill the queue.
  const s = await startServer({ maxBatch: 64, maxQueueDelayMs: 10_000, maxQueueImages: 3 });
  const { key, record } = s.server.keys.add({ budget: 100 });
  const waiting = [1, 2, 3].map((i) => postRows(s.url, key, imageRows(1, i), 1));
  while ((await s.server.store.used(record.id)) < 3) await new Promise((r) => setTimeout(r, 5));
  const full = await postRows(s.url, key, imageRows(1, 4), 1);
  t.equal(full.status, 503);
  t.equal(full.headers.get('retry-after'), '1');
  t.match(full.json, { error: 'overloaded' });
  t.equal(await s.server.store.used(record.id), 3, 'the refused request was refunded');
  // Closing runs what waits at once: the three queued requests are answered.
  const closing = s.close();
  t.same((await Promise.all(waiting)).map((r) => r.status), [200, 200, 200]);
  await closing;
});
