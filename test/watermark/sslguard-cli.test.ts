// `encsec watermark embed|verify|calibrate` and `encsec experiment watermark`
// on tiny slices: one JSON object each, the key kept out of the encoder file,
// per-sub-command options, and a resumable experiment folder.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runMain } from '../cli/run-main';
import { createEncoder } from '../../lib/nn/encoders';
import { saveEncoder } from '../../lib/io/checkpoint';
import { loadSafetensors } from '../../lib/io/safetensors';
import { loadKey, disposeKey } from '../../lib/watermark/sslguard';
import { assertInRange } from '../helpers';

process.env.ENCSEC_CACHE = process.env.ENCSEC_CACHE ?? path.join(os.tmpdir(), 'encsec-test-cache');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'encsec-sslguard-cli-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));

const run = runMain;

const F = path.join(tmp, 'f.safetensors');
const other = path.join(tmp, 'other.safetensors');
saveEncoder(F, createEncoder('cnn-small', { seed: 0 }).eval());
saveEncoder(other, createEncoder('cnn-small', { seed: 5 }).eval());

t.test('embed, verify, calibrate', async (t) => {
  const keyDir = path.join(tmp, 'key');
  const fw = path.join(tmp, 'fw.safetensors');
  const e = await run(['watermark', 'embed', '--encoder', F, '--out', fw, '--key', keyDir, '--limit', '300', '--verify-size', '40', '--epochs', '1', '--steps-per-epoch', '2', '--batch', '16', '--progress', 'silent']);
  t.equal(e.code, 0, e.err);
  t.equal(e.last!.epochs, 1);
  assertInRange(t, e.last!.seconds, 0, 3600, 'seconds');
  assertInRange(t, e.last!.wrWatermarked, 0, 1, 'wrWatermarked');
  t.ok(['watermarked', 'not watermarked'].includes(e.last!.verdict as string));
  // The released file holds the encoder's tensors only.
  const { tensors, metadata } = loadSafetensors(fw);
  t.ok([...tensors.keys()].every((k) => k.startsWith('net.')), 'no key tensor in F_w');
  t.notMatch(JSON.stringify(metadata), /sk|trigger|mask|decoder/, 'no key in the metadata');
  for (const v of tensors.values()) v.dispose();
  const key = loadKey(keyDir);
  t.equal(key.verification.indices.length, 40);
  t.equal(key.nullModel.trials, 40, 'a first null model: the clean F');
  disposeKey(key);

  const v = await run(['watermark', 'verify', '--encoder', other, '--key', keyDir]);
  t.equal(v.code, 0, v.err);
  for (const k of ['wr', 'hits', 'n', 'nullRate', 'pValue', 'log10PValue', 'verdict', 'queries']) t.ok(k in v.last!, k);
  t.equal(v.last!.n, 40);
  t.equal(v.last!.queries, 40);

  const c = await run(['watermark', 'calibrate', '--key', keyDir, '--encoders', `${F},${other}`]);
  t.equal(c.code, 0, c.err);
  t.equal(c.last!.nullTrials, 80);
  const k2 = loadKey(keyDir);
  t.equal(k2.nullModel.trials, 80, 'the key now holds the new null model');
  disposeKey(k2);

  const bad = await run(['watermark', 'verify', '--encoder', other, '--key', keyDir, '--epochs', '3']);
  t.equal(bad.code, 2, 'a usage error');
  t.match(bad.err, /--epochs is not an option of `watermark verify`/);
  t.match((await run(['watermark', 'sign'])).err, /usage: encsec watermark embed\|verify\|calibrate/);
  t.match((await run(['watermark', 'verify', '--encoder', other])).err, /--key is required/);
  fs.writeFileSync(path.join(keyDir, 'key.json'), '{"format": "encsec-sslguard-key"');
  t.match((await run(['watermark', 'verify', '--encoder', other, '--key', keyDir])).err, /invalid SSLGuard key .*not JSON/);
});

t.test('experiment watermark: every row kind on a tiny slice, resumable', async (t) => {
  const out = path.join(tmp, 'exp');
  const argv = [
    'experiment', 'watermark', '--target', F, '--out-dir', out, '--limit', '150', '--verify-size', '32', '--epochs', '1',
    '--independent-seeds', '1', '--pretrain-epochs', '1', '--methods', 'mse', '--budgets', '40', '--steal-epochs', '1',
    '--defenses', 'round:1', '--prune-fractions', '0.2', '--finetune-epochs', '1', '--output-noise', '0.05', '--input-noise', '0.1',
    '--eval-limit', '100', '--probe-epochs', '2', '--progress', 'silent',
  ];
  const r = await run(argv);
  t.equal(r.code, 0, r.err);
  const rows = r.last!.rows as { id: string; role: string; n: number; verdict: string | null; accuracy: Record<string, number> | null }[];
  t.same(
    rows.map((x) => x.id),
    // Run order: the rows the decision rests on first, the hours-long ones last.
    ['fw', 'clean', 'prune:0.2', 'output-noise:0.05', 'input-noise:0.1', 'stolen-fw:mse@40', 'stolen-clean:mse@40', 'independent:1', 'finetune:1', 'defended:round:1', 'overwrite'],
  );
  t.ok(rows.every((x) => x.n === 32 && x.verdict !== null));
  t.ok(rows.filter((x) => x.role === 'null').length === 3);
  t.ok(rows.find((x) => x.id === 'fw')!.accuracy!['fashion-mnist'] > 0, 'probe accuracies per row');
  for (const f of ['results.json', 'results.md', 'wr.svg', 'key/key.json', 'runs/fw.safetensors']) t.ok(fs.existsSync(path.join(out, f)), f);
  const md = fs.readFileSync(path.join(out, 'results.md'), 'utf8');
  t.match(md, /\| F_w \(watermarked\)/);
  // The report groups rows by role whatever the run order: the three null rows, then the eight derived ones.
  const roles = md.split('\n').map((l) => /\|\s*(not derived|derived from F_w)\s*\|/.exec(l)?.[1]).filter((role) => role !== undefined).map((role) => (role === 'not derived' ? 'null' : 'derived'));
  t.same(roles, [...Array(3).fill('null'), ...Array(8).fill('derived')]);
  const again = await run(argv);
  t.equal(again.code, 0, again.err);
  t.same([again.last!.ran, again.last!.skipped], [0, 11], 'a second run resumes: every cell skipped');
  const changed = await run(argv.map((a) => (a === '32' ? '33' : a)));
  t.equal(changed.code, 1);
  t.match(changed.err, /was made with verifySize=32, this run has 33/);
});
