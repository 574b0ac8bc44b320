// The audit log: one row per answered request, with the key id, route,
// image count, the SHA-256 of the input bytes and the defense's noise level,
// chained by hash so that an edited or removed row is found (by
// verifyAuditChain and by `encsec audit verify`).
import t from 'tap';
import * as crypto from 'node:crypto';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { AUDIT_GENESIS, verifyAuditChain } from '../../lib/server/audit';
import { openServerDb } from '../../lib/server/db';
import { startServer, imageRows, postRows } from './fixture';

const bin = path.join(__dirname, '..', '..', 'bin', 'encsec.js');
const sha = (a: Float32Array) => crypto.createHash('sha256').update(Buffer.from(a.buffer, a.byteOffset, a.byteLength)).digest('hex');

t.test('one chained row per answered request; edits and removals are found', async (t) => {
  const s = await startServer();
  const alice = s.server.keys.add({ defense: 'noise:0.1', budget: 100 });
  const owner = s.server.keys.add({ admin: true });
  const sent: [string, string, number, string][] = [];
  for (let i = 0; i < 5; i++) {
    const n = i + 1;
    const rows = imageRows(n, 100 + i);
    const [key, id, route] = i % 2 === 0 ? [alice.key, alice.record.id, '/v1/embed'] : [owner.key, owner.record.id, '/v1/embed/raw'];
    t.equal((await postRows(s.url, key, rows, n, { route })).status, 200);
    sent.push([id, route, n, sha(rows)]);
  }
  t.equal((await postRows(s.url, alice.key, imageRows(200, 1), 200)).status, 429, 'a refused request');
  const rows = s.server.audit.rows();
  t.same(
    rows.map((r) => [r.keyId, r.route, r.images, r.inputDigest]),
    sent,
    'the answered requests, in order, with the digests of what was sent',
  );
  t.same(
    rows.map((r) => [r.defense, r.noise]),
    [
      ['noise:0.1', 0.1],
      ['raw', 0],
      ['noise:0.1', 0.1],
      ['raw', 0],
      ['noise:0.1', 0.1],
    ],
  );
  t.equal(rows[0].prevHash, AUDIT_GENESIS);
  for (let i = 1; i < rows.length; i++) t.equal(rows[i].prevHash, rows[i - 1].hash, `row ${i + 1} links to row ${i}`);
  const ok = verifyAuditChain(s.db);
  t.same(ok, { ok: true, rows: 5, head: rows[4].hash });
  await s.close();

  const cli = (file: string) => spawnSync(process.execPath, [bin, 'audit', 'verify', '--db', file], { encoding: 'utf8' });
  const good = cli(s.dbFile);
  t.equal(good.status, 0, good.stderr);
  t.match(JSON.parse(good.stdout.trim().split('\n').pop()!), { ok: true, rows: 5, head: rows[4].hash });

  const db = openServerDb(s.dbFile);
  t.teardown(() => db.close());
  db.prepare('UPDATE audit SET images = 99 WHERE seq = 3').run();
  t.match(verifyAuditChain(db), { ok: false, rows: 2, problem: { seq: 3, reason: /edited/ } }, 'an edited count');
  db.prepare('UPDATE audit SET images = 3 WHERE seq = 3').run();
  t.match(verifyAuditChain(db), { ok: true }, 'restored');
  db.prepare("UPDATE audit SET key_id = 'someone' WHERE seq = 2").run();
  t.match(verifyAuditChain(db), { ok: false, problem: { seq: 2 } }, 'an edited key id');
  db.prepare('UPDATE audit SET key_id = ? WHERE seq = 2').run(owner.record.id);
  db.prepare('DELETE FROM audit WHERE seq = 4').run();
  t.match(verifyAuditChain(db), { ok: false, rows: 3, problem: { seq: 5, reason: /removed/ } }, 'a removed row');
  // A removal with renumbering is caught by the link.
  db.prepare('UPDATE audit SET seq = 4 WHERE seq = 5').run();
  t.match(verifyAuditChain(db), { ok: false, problem: { seq: 4, reason: /prev_hash/ } }, 'a removed and renumbered row');
  const bad = cli(s.dbFile);
  t.equal(bad.status, 1, 'encsec audit verify fails');
  t.match(bad.stderr, /broken at row 4/);
});
