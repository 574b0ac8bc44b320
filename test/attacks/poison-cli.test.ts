// `encsec poison make` writes a poisoned set that `--data poisoned:FILE`
// (loadTask) reads back with the exact rate; `encsec pretrain` trains on it;
// bad flags fail with a message naming the option.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runMain } from '../cli/run-main';
import { loadTask } from '../../lib/eval/tasks';
import { readPoisonedDataset } from '../../lib/data/poisoned';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'encsec-poison-cli-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));
process.env.ENCSEC_CACHE = process.env.ENCSEC_CACHE ?? path.join(os.tmpdir(), 'encsec-test-cache');

const run = runMain;

t.test('poison make -> poisoned:FILE -> pretrain', async (t) => {
  const file = path.join(tmp, 'p.bin');
  const r = await run(['poison', 'make', '--out', file, '--limit', '150', '--rate', '0.02', '--targets', 'fashion-mnist:2,mnist:1', '--seed', '3']);
  t.equal(r.code, 0, r.err);
  t.equal(r.last?.poisons, 3, 'round(0.02 * 150)');
  const task = await loadTask(`poisoned:${file}`, { limit: 20 });
  t.equal(task.train.labels.length, 153, 'the whole file, whatever the limit');
  t.equal(task.test.labels.length, 20, 'the clean fashion-mnist TEST split');
  const { manifest } = readPoisonedDataset(file);
  t.same(manifest.targets.map((x) => x.task), ['fashion-mnist', 'fashion-mnist', 'mnist']);
  t.equal(manifest.poisonIndices.length, 3);
  const enc = path.join(tmp, 'enc.safetensors');
  const p = await run(['pretrain', '--data', `poisoned:${file}`, '--epochs', '1', '--batch', '64', '--out', enc, '--progress', 'silent']);
  t.equal(p.code, 0, p.err);
  t.equal(p.last?.data, `poisoned:${file}`);
  t.ok(fs.existsSync(enc));
});

t.test('bad flags name the option', async (t) => {
  const file = path.join(tmp, 'q.bin');
  t.match((await run(['poison', 'make', '--out', file, '--rate', '1.5'])).err, /--rate must be in \(0, 1\)/);
  t.match((await run(['poison', 'make', '--out', file, '--construction', 'surrogate'])).err, /--surrogate FILE is required/);
  t.match((await run(['poison', 'make', '--out', file, '--construction', 'nope'])).err, /--construction must be one of/);
  t.match((await run(['poison', 'brew', '--out', file])).err, /a sub-command is required: make/);
  t.match((await run(['poison', 'make'])).err, /--out FILE is required/);
  t.notOk(fs.existsSync(file), 'nothing written');
});
