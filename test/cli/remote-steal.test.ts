// `encsec steal --target URL`: a real server on a loopback port (a tiny
// encoder saved to a file and served from that file), queried through the
// CLI. The server's books show exactly --budget images spent; with
// --reference the copy equals, bit for bit, the in-process steal of the same
// file with the same seed (a key without a defense answers the raw rows, so
// the cached embeddings are identical, and so is all that follows); without
// it only the copy's own accuracy is reported; a budget too small, a bad key
// and wrong command lines are refused before anything is queried.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createEncoder } from '../../lib/nn/encoders';
import { loadEncoder, saveEncoder } from '../../lib/io/checkpoint';
import { loadSafetensors } from '../../lib/io/safetensors';
import { USAGE_EXIT_CODE } from '../../lib/cli/args';
import { API_KEY_ENV } from '../../lib/cli/remote';
import { sameValues } from '../helpers';
import { runMain } from './run-main';
import { charged as chargedOn, withKey } from './remote-helpers';
import type { Running } from '../server/fixture';

process.env.ENCSEC_CACHE = process.env.ENCSEC_CACHE ?? path.join(os.tmpdir(), 'encsec-test-cache');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'encsec-remote-steal-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));
delete process.env[API_KEY_ENV];

const targetFile = path.join(tmp, 'target.safetensors');
const enc = createEncoder('cnn-small', { seed: 2 });
saveEncoder(targetFile, enc, {});
enc.dispose();

t.test('the CLI loads no server module until a command is given a URL', (t) => {
  const loaded = Object.keys(require.cache);
  t.ok(loaded.some((f) => /[\\/]lib[\\/]cli[\\/]steal\.ts$/.test(f)), 'the commands are loaded');
  t.notOk(loaded.some((f) => /[\\/]node_modules[\\/]fastify[\\/]/.test(f)), 'no fastify');
  t.notOk(loaded.some((f) => /[\\/]lib[\\/]server[\\/]/.test(f)), 'no lib/server module');
  t.end();
});

let s: Running;
t.before(async () => {
  const { startServer } = await import('../server/fixture');
  // Served from the very file the in-process steal reads; 28x28 like the query data.
  s = await startServer({ encoder: loadEncoder(targetFile).encoder, imageSize: 28 });
});
t.teardown(async () => {
  await s.close();
  s.encoder.dispose();
});


const charged = (id: string) => chargedOn(s, id);

const tiny = ['--method', 'mse', '--budget', '16', '--seed', '3', '--epochs', '1', '--batch', '8', '--limit', '40', '--probe-epochs', '5', '--progress', 'silent'];

t.test('steal --target URL --reference FILE equals the in-process steal of FILE, spending exactly the budget', async (t) => {
  const { key, record } = s.server.keys.add({ budget: 100, label: 'attacker' });
  const viaUrl = path.join(tmp, 'via-url.safetensors');
  const inProcess = path.join(tmp, 'in-process.safetensors');
  const a = await withKey(key, ['steal', '--target', s.url, '--reference', targetFile, ...tiny, '--out', viaUrl]);
  t.equal(a.code, 0, a.err);
  const r = a.last!;
  t.equal(r.queriesSpent, 16);
  t.same(await charged(record.id), { used: 16, audited: 16 }, 'the server charged and audited exactly --budget images');
  t.equal(r.defense, 'none', "the key's defense, as the server reported it");
  t.match(r.remote, { url: s.url, keyId: record.id, inputShape: [1, 28, 28], dim: 128 });
  t.equal(r.reference, targetFile);
  t.equal(r.targetArch, 'cnn-small', "the reference's architecture");
  t.notOk('note' in r, 'no note: agreement was measured');
  t.notMatch(a.out + a.err, new RegExp(key.slice(4)), 'the key is never printed');

  const b = await runMain(['steal', '--target', targetFile, '--defense', 'none', ...tiny, '--out', inProcess]);
  t.equal(b.code, 0, b.err);
  const f = b.last!;
  for (const k of ['agreement', 'meanCosine', 'targetAccuracy', 'stolenAccuracy', 'finalLoss', 'tasks']) t.same(r[k], f[k], `${k}: the same as in process`);
  const losses = (v: unknown) => (v as { loss: number }[]).map((h) => h.loss);
  t.same(losses(r.history), losses(f.history), 'the same training losses');
  // The raw route answers bit for bit what the model computes in process, so the copies are identical.
  const x = loadSafetensors(viaUrl);
  const y = loadSafetensors(inProcess);
  t.same([...x.tensors.keys()].sort(), [...y.tensors.keys()].sort());
  for (const [name, v] of x.tensors) t.ok(sameValues(v.toArray(), y.tensors.get(name)!.toArray()), `${name}: identical bits`);
  for (const m of [x, y]) for (const v of m.tensors.values()) v.dispose();

  // Without --reference: the copy's own accuracy only, the key from --api-key-file, nothing spent beyond --budget.
  const keyFile = path.join(tmp, 'key.txt');
  fs.writeFileSync(keyFile, `${key}\nsecond line ignored\n`);
  const c = await withKey(null, ['steal', '--target', s.url, '--api-key-file', keyFile, ...tiny, '--out', path.join(tmp, 'no-ref.safetensors')]);
  t.equal(c.code, 0, c.err);
  t.same(await charged(record.id), { used: 32, audited: 32 }, 'again exactly --budget images');
  t.equal(c.last!.agreement, null);
  t.equal(c.last!.meanCosine, null);
  t.equal(c.last!.targetAccuracy, null);
  t.match(c.last!.note, /agreement and meanCosine need --reference FILE/);
  t.match(c.err, /agreement and meanCosine need --reference FILE/, 'said in the log too');
  t.same(c.last!.stolenAccuracy, f.stolenAccuracy, 'the same copy, the same probe protocol: the same accuracy');
});

t.test('a budget too small, a bad key, a mismatched reference: refused before any query', async (t) => {
  const small = s.server.keys.add({ budget: 10 });
  const out = path.join(tmp, 'refused.safetensors');
  const r = await withKey(small.key, ['steal', '--target', s.url, ...tiny, '--out', out]);
  t.equal(r.code, 1);
  t.match(r.err, new RegExp(`--budget 16 needs 16 queries but key ${small.record.id} .* has 10 of its budget of 10 images left: nothing was queried`));
  t.same(await charged(small.record.id), { used: 0, audited: 0 });
  t.notOk(fs.existsSync(out));

  const bad = await withKey(`esk_0123456789ab_${'B'.repeat(43)}`, ['steal', '--target', s.url, ...tiny, '--out', out]);
  t.equal(bad.code, 1);
  t.match(bad.err, /HTTP 401/);

  const other = path.join(tmp, 'other.safetensors');
  const rgb = createEncoder('cnn-small', { seed: 1, inChannels: 3 });
  saveEncoder(other, rgb, {});
  rgb.dispose();
  const ok = s.server.keys.add({});
  const mismatch = await withKey(ok.key, ['steal', '--target', s.url, '--reference', other, ...tiny, '--out', out]);
  t.equal(mismatch.code, USAGE_EXIT_CODE);
  t.match(mismatch.err, /--reference .*other\.safetensors is not the encoder the server .* serves/);
  t.same(await charged(ok.record.id), { used: 0, audited: 0 });
});

t.test('usage errors, before any work', async (t) => {
  const { key, record } = s.server.keys.add({});
  const out = path.join(tmp, 'never.safetensors');
  const cases: [string | null, string[], RegExp][] = [
    [null, ['steal', '--target', s.url, ...tiny, '--out', out], /a --target URL needs an API key: set ENCSEC_API_KEY, or give --api-key-file FILE/],
    [key, ['steal', '--target', s.url, '--defense', 'noise:0.1', ...tiny, '--out', out], /--defense cannot be combined with a --target URL/],
    [key, ['steal', '--target', targetFile, '--reference', targetFile, ...tiny, '--out', out], /--reference applies to a --target URL only/],
    [key, ['steal', '--target', targetFile, '--api-key-file', targetFile, ...tiny, '--out', out], /--api-key-file applies to a --target URL only/],
    [null, ['steal', '--target', s.url, '--api-key-file', path.join(tmp, 'missing.txt'), ...tiny, '--out', out], /--api-key-file .*missing\.txt: cannot read it \(ENOENT\)/],
    [key, ['steal', '--target', 'http://[bad', ...tiny, '--out', out], /--target "http:\/\/\[bad" is not a valid URL/],
  ];
  for (const [k, argv, message] of cases) {
    const r = await withKey(k, argv);
    t.equal(r.code, USAGE_EXIT_CODE, `${argv.slice(1, 5).join(' ')}: usage exit code`);
    t.match(r.err, message);
    t.notMatch(r.err, /stealing/, 'no work started');
  }
  t.notOk(fs.existsSync(out));
  t.same(await charged(record.id), { used: 0, audited: 0 }, 'nothing charged');
  const help = await runMain(['steal', '--help']);
  t.match(help.out, /--target <string> .*or the URL of an encsec server/);
  t.match(help.out, /--api-key-file <string> .*ENCSEC_API_KEY/);
  t.match(help.out, /--reference <string> /);
});
