// Nothing lost: `encsec serve` killed with SIGKILL under load and restarted
// on the same database. Every request that got a 200 is in the audit log,
// the chain verifies, the budget spent never goes back, and the b4b coverage
// resumes from what was answered (the defense state commits with the audit
// rows, before the 200).
import t from 'tap';
import * as crypto from 'node:crypto';
import * as path from 'node:path';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createEncoder } from '../../lib/nn/encoders';
import { saveEncoder } from '../../lib/io/checkpoint';
import { openServerDb } from '../../lib/server/db';
import { verifyAuditChain } from '../../lib/server/audit';
import { tempDir, imageRows, postRows, SIZE } from './fixture';

const bin = path.join(__dirname, '..', '..', 'bin', 'encsec.js');
const sha = (a: Float32Array) => crypto.createHash('sha256').update(Buffer.from(a.buffer, a.byteOffset, a.byteLength)).digest('hex');

function cli(args: string[]): Record<string, unknown> {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`encsec ${args.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

/** Starts `encsec serve` on a free port; resolves when it logs that it listens. */
function serve(encoderFile: string, dbFile: string): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [bin, 'serve', '--encoder', encoderFile, '--db', dbFile, '--port', '0', '--image-size', String(SIZE), '--max-delay-ms', '1'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new Promise((resolve, reject) => {
    let err = '';
    child.stderr!.on('data', (b: Buffer) => {
      err += b.toString();
      for (const line of err.split('\n')) {
        if (line.startsWith('{') && line.includes('"listening"')) {
          resolve({ child, url: JSON.parse(line).url });
          return;
        }
      }
    });
    child.on('exit', (code) => reject(new Error(`encsec serve exited with ${code}: ${err}`)));
  });
}

t.test('kill -9 under load, restart: every 200 is audited, budgets never go back, b4b resumes', async (t) => {
  const dir = tempDir();
  const encoderFile = path.join(dir, 'enc.safetensors');
  const dbFile = path.join(dir, 'serve.sqlite');
  const enc = createEncoder('cnn-small', { inChannels: 1, seed: 3 });
  saveEncoder(encoderFile, enc);
  enc.dispose();
  const added = cli(['keys', 'add', '--db', dbFile, '--budget', '100000', '--defense', 'b4b:beta=40,planes=6,families=3', '--label', 'load']);
  const key = added.key as string;
  t.match(added, { budget: 100000, defense: 'b4b:beta=40,planes=6,families=3', admin: false });

  const first = await serve(encoderFile, dbFile);
  const answered: { digest: string; n: number; rows: number }[] = [];
  let stop = false;
  let seed = 0;
  // Eight clients sending 2-image requests until the server dies.
  const client = async () => {
    while (!stop) {
      const rows = imageRows(2, 1000 + seed++);
      let r;
      try {
        r = await postRows(first.url, key, rows, 2);
      } catch {
        return; // the connection died with the server
      }
      if (r.status === 200) answered.push({ digest: sha(rows), n: 2, rows: JSON.parse(r.headers.get('x-encsec-stats')!).rows });
    }
  };
  const clients = Array.from({ length: 8 }, client);
  while (answered.length < 40) await new Promise((r) => setTimeout(r, 5));
  first.child.kill('SIGKILL');
  stop = true;
  await Promise.all(clients);
  await new Promise((r) => first.child.exitCode !== null || first.child.signalCode !== null ? r(null) : first.child.once('exit', r));
  t.equal(first.child.signalCode, 'SIGKILL');

  const db = openServerDb(dbFile);
  const audit = db.prepare('SELECT input_digest, images FROM audit ORDER BY seq').all() as { input_digest: string; images: number }[];
  const digests = new Set(audit.map((r) => r.input_digest));
  const missing = answered.filter((a) => !digests.has(a.digest));
  t.equal(missing.length, 0, `all ${answered.length} answered requests are in the audit log (${audit.length} rows)`);
  t.match(verifyAuditChain(db), { ok: true, rows: audit.length }, 'the chain verifies');
  const auditedImages = audit.reduce((s, r) => s + r.images, 0);
  const persisted = (db.prepare('SELECT used FROM usage').get() as { used: number }).used;
  t.equal(persisted, auditedImages, 'the budget spent on disk is exactly what was audited');
  const answeredImages = answered.reduce((s, a) => s + a.n, 0);
  t.ok(persisted >= answeredImages, `spent ${persisted} >= ${answeredImages} images answered with a 200`);
  db.close();

  const second = await serve(encoderFile, dbFile);
  t.teardown(() => {
    if (second.child.exitCode === null) second.child.kill('SIGKILL');
  });
  const r = await postRows(second.url, key, imageRows(2, 1), 2);
  t.equal(r.status, 200);
  t.equal(Number(r.headers.get('x-encsec-used')), persisted + 2, 'the budget resumes where the answered requests left it');
  const stats = JSON.parse(r.headers.get('x-encsec-stats')!);
  t.equal(stats.rows, persisted + 2, 'b4b resumes: its row counter continues from every answered image');
  t.ok(stats.rows > Math.max(...answered.map((a) => a.rows)), 'beyond every answer seen before the kill');
  const stopped = new Promise<number | null>((res) => second.child.once('exit', (code) => res(code)));
  second.child.kill('SIGTERM');
  t.equal(await stopped, 0, 'a clean stop on SIGTERM');
  t.match(cli(['audit', 'verify', '--db', dbFile]), { ok: true, rows: audit.length + 1 });
  const list = cli(['keys', 'list', '--db', dbFile]) as { keys: Record<string, unknown>[] };
  t.match(list.keys, [{ id: added.id, answered: persisted + 2, defense: 'b4b:beta=40,planes=6,families=3' }]);
  t.notOk(JSON.stringify(list).includes(key.slice('esk_'.length + 12 + 1)), 'keys list never shows a secret (the whole secret: base64url may hold "_")');
});
