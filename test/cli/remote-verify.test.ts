// `encsec watermark verify --target URL` and `encsec auth verify --target
// URL`: a real server on a loopback port serving a tiny encoder from its
// file. Through the server the verdicts equal those of --encoder FILE on the
// same encoder, spending exactly |D_v| resp. K queries (the key's defense is
// read first, at no cost: a perturbing key makes SSL-Auth refuse with no
// query at all); a budget too small is refused before any query; --encoder
// and --target are exclusive and the API key never comes from argv.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createEncoder } from '../../lib/nn/encoders';
import { loadEncoder, saveEncoder } from '../../lib/io/checkpoint';
import { loadDataset } from '../../lib/data/builtin';
import { USAGE_EXIT_CODE } from '../../lib/cli/args';
import { API_KEY_ENV } from '../../lib/cli/remote';
import { createKey, disposeKey, saveKey } from '../../lib/watermark/sslguard';
import { disposeAuthKey, makeAuthKey, saveAuthKey } from '../../lib/watermark/sslauth';
import { startServer, type Running } from '../server/fixture';
import { runMain } from './run-main';
import { charged as chargedOn, withKey } from './remote-helpers';

const cacheDir = process.env.ENCSEC_CACHE ?? path.join(os.tmpdir(), 'encsec-test-cache');
process.env.ENCSEC_CACHE = cacheDir;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'encsec-remote-verify-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));
delete process.env[API_KEY_ENV];

const encFile = path.join(tmp, 'enc.safetensors');
const enc = createEncoder('cnn-small', { seed: 4 }).eval();
saveEncoder(encFile, enc, {});

// An SSLGuard key (no embedding run: a fresh key and a null model, as sslguard.test.ts builds them).
const wmDir = path.join(tmp, 'wm-key');
const wm = createKey({ dim: 128, seed: 1, verifySize: 40, splitSize: 500 });
wm.nullModel = { hits: 2, trials: 1000, sources: ['test'] };
saveKey(wmDir, wm);
disposeKey(wm);

const authDir = path.join(tmp, 'auth-key');
let s: Running;
t.before(async () => {
  const data = loadDataset('fashion-mnist', { split: 'train', limit: 48, cacheDir });
  const key = await makeAuthKey(enc, data, { keySamples: 4, pool: 24, steps: 150, noiseDraws: 8 });
  saveAuthKey(authDir, key);
  disposeAuthKey(key);
  enc.dispose();
  s = await startServer({ encoder: loadEncoder(encFile).encoder, imageSize: 28 });
});
t.teardown(async () => {
  await s.close();
  s.encoder.dispose();
});



const charged = (id: string) => chargedOn(s, id);

const pick = (o: Record<string, unknown>, keys: string[]) => Object.fromEntries(keys.map((k) => [k, o[k]]));

t.test('watermark verify --target URL: the file verdict, exactly |D_v| queries', async (t) => {
  const file = await runMain(['watermark', 'verify', '--encoder', encFile, '--key', wmDir]);
  t.equal(file.code, 0, file.err);
  const { key, record } = s.server.keys.add({ budget: 40 });
  const url = await withKey(key, ['watermark', 'verify', '--target', s.url, '--key', wmDir]);
  t.equal(url.code, 0, url.err);
  const fields = ['verdict', 'wr', 'hits', 'n', 'nullRate', 'nullHits', 'nullTrials', 'pValue', 'log10PValue', 'alpha', 'meanCos', 'queries'];
  t.same(pick(url.last!, fields), pick(file.last!, fields), 'the same hits, cosines and verdict');
  t.equal(url.last!.queries, 40);
  t.match(url.last!, { target: s.url, keyId: record.id, defense: 'none' });
  t.same(await charged(record.id), { used: 40, audited: 40 }, 'the server charged and audited exactly |D_v|');

  const again = await withKey(key, ['watermark', 'verify', '--target', s.url, '--key', wmDir]);
  t.equal(again.code, 1);
  t.match(again.err, /verification \(\|D_v\| = 40\) needs 40 queries but key .* has 0 of its budget of 40 images left: nothing was queried/);
  t.same(await charged(record.id), { used: 40, audited: 40 }, 'nothing more');
});

t.test('auth verify --target URL: the file verdict, exactly K queries; none through a defense', async (t) => {
  const file = await runMain(['auth', 'verify', '--encoder', encFile, '--key', authDir]);
  t.equal(file.code, 0, file.err);
  t.equal(file.last!.verdict, 'authentic', String(file.last!.reason));
  const { key, record } = s.server.keys.add({ budget: 4 });
  const url = await withKey(key, ['auth', 'verify', '--target', s.url, '--key', authDir]);
  t.equal(url.code, 0, url.err);
  const fields = ['verdict', 'baselineVerdict', 'psnrDb', 'mse', 'ssim', 'bitAgreement', 'baselineDistance', 'noiseRatio', 'baselineNoiseRatio', 'thresholds', 'queries'];
  t.same(pick(url.last!, fields), pick(file.last!, fields), 'the same scores and verdict');
  t.equal(url.last!.queries, 4, 'K queries: the key said its answers are raw');
  t.same(url.last!.source, { kind: 'remote', defense: 'none' });
  t.same(await charged(record.id), { used: 4, audited: 4 }, 'the server charged and audited exactly K');

  const noisy = s.server.keys.add({ defense: 'noise:sigma=0.05' });
  const refused = await withKey(noisy.key, ['auth', 'verify', '--target', s.url, '--key', authDir]);
  t.equal(refused.code, 0, refused.err);
  t.equal(refused.last!.verdict, 'cannot-authenticate');
  t.equal(refused.last!.queries, 0);
  t.match(refused.last!.reason, /perturbs its answers \(defense noise/);
  t.same(await charged(noisy.record.id), { used: 0, audited: 0 }, 'no query spent');
});

t.test('usage errors: --encoder xor --target, the key from the environment or a file', async (t) => {
  const { key, record } = s.server.keys.add({});
  const keyFile = path.join(tmp, 'api-key');
  fs.writeFileSync(keyFile, `${key}\n`);
  for (const [cmd, keyDir] of [['watermark', wmDir], ['auth', authDir]] as const) {
    const cases: [string | null, string[], RegExp][] = [
      [key, ['--encoder', encFile, '--target', s.url], /give exactly one of --encoder FILE .* and --target URL .*, not both/],
      [key, [], /give exactly one of --encoder FILE/],
      [null, ['--target', s.url], /a --target URL needs an API key: set ENCSEC_API_KEY, or give --api-key-file FILE/],
      [key, ['--target', encFile], /--target takes the URL of an encsec server .*give a file as --encoder FILE/],
      [key, ['--encoder', encFile, '--api-key-file', keyFile], /--api-key-file applies to a --target URL only/],
      [key, ['--target', s.url, '--api-key', key], /unknown option --api-key\b/],
    ];
    for (const [k, extra, message] of cases) {
      const r = await withKey(k, [cmd, 'verify', '--key', keyDir, ...extra]);
      t.equal(r.code, USAGE_EXIT_CODE, `${cmd} verify ${extra.join(' ')}: usage exit code`);
      t.match(r.err, message);
    }
    // The key from --api-key-file, with $ENCSEC_API_KEY unset.
    const ok = await withKey(null, [cmd, 'verify', '--key', keyDir, '--target', s.url, '--api-key-file', keyFile]);
    t.equal(ok.code, 0, ok.err);
  }
  t.same(await charged(record.id), { used: 44, audited: 44 }, 'only the two verifications were charged (40 + 4)');
  const verifyHelp = await runMain(['auth', 'verify', '--help']);
  t.match(verifyHelp.out, /--target <string> .*URL of an encsec server/);
});
