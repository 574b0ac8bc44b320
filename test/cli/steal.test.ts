// The commands `steal`, `experiment steal` and `demo`, run in-process with
// tiny settings: their JSON results and their errors.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from '../../lib/cli/args';
import { commands, type CommandContext } from '../../lib/cli/commands';
import { createEncoder } from '../../lib/nn/encoders';
import { saveEncoder } from '../../lib/io/checkpoint';
import { loadSurrogate } from '../../lib/attacks/surrogate';
import { readStealResults } from '../../lib/report/steal';
import { assertInRange, assertRecordInRange } from '../helpers';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'encsec-steal-cli-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));
const targetFile = path.join(tmp, 'target.safetensors');
const enc = createEncoder('cnn-small', { seed: 2 });
saveEncoder(targetFile, enc, {});
enc.dispose();

const logs: string[] = [];
const ctx: CommandContext = { log: (l) => logs.push(l), isTTY: false };
const run = async (name: string, argv: string[]) => commands[name].run(parseArgs(argv, commands[name].options), ctx);
const tiny = ['--epochs', '1', '--batch', '8', '--limit', '40', '--probe-epochs', '5', '--progress', 'silent'];

t.test('steal: one attack, evaluated, written', async (t) => {
  const out = path.join(tmp, 'stolen.safetensors');
  const r = await run('steal', ['--target', targetFile, '--method', 'stolenencoder', '--budget', '16', '--k', '2', '--lambda', '20', '--defense', 'none', ...tiny, '--out', out]);
  t.equal(r.method, 'stolenencoder');
  t.equal(r.queriesSpent, 16);
  t.equal(r.lambda, 20);
  t.equal(r.k, 2);
  t.equal(r.defense, 'none');
  assertRecordInRange(t, r.stolenAccuracy, ['fashion-mnist', 'mnist'], 0, 1, 'stolenAccuracy');
  assertRecordInRange(t, r.targetAccuracy, ['fashion-mnist', 'mnist'], 0, 1, 'targetAccuracy');
  assertInRange(t, r.agreement, 0, 1, 'agreement');
  assertInRange(t, r.meanCosine, -1, 1, 'meanCosine');
  assertInRange(t, r.wallSeconds, 0, 3600, 'wallSeconds');
  const s = loadSurrogate(out);
  t.equal((s.config.attack as { method: string }).method, 'stolenencoder');
  s.surrogate.dispose();

  await t.rejects(run('steal', ['--target', targetFile, '--method', 'mse', '--budget', '16', '--defense', 'magic:sigma=1', '--out', out]), /unknown defense "magic".*available: none, noise/);
  await t.rejects(run('steal', ['--target', targetFile, '--method', 'mse', '--budget', '16', '--defense', 'noise:sigma=-1', '--out', out]), /sigma must be a number >= 0/);
  await t.rejects(run('steal', ['--target', targetFile, '--method', 'magic', '--budget', '16', '--out', out]), /--method must be one of/);
  await t.rejects(run('steal', ['--target', targetFile, '--method', 'mse', '--out', out]), /--budget/);
  await t.rejects(run('steal', ['--method', 'mse', '--budget', '4', '--out', out]), /--target/);
  await t.rejects(run('steal', ['--target', targetFile, '--method', 'mse', '--budget', '4', '--arch', 'vgg', '--out', out]), /--arch/);
});

t.test('experiment steal: a grid, resumed', async (t) => {
  const dir = path.join(tmp, 'exp');
  const argv = ['steal', '--target', targetFile, '--methods', 'mse,contsteal', '--budgets', '12,8', '--out-dir', dir, '--no-save', ...tiny];
  const a = await run('experiment', argv);
  t.equal(a.ran, 4);
  t.equal((a.cells as unknown[]).length, 4);
  const b = await run('experiment', argv);
  t.equal(b.ran, 0);
  t.equal(b.skipped, 4);
  const r = readStealResults(path.join(dir, 'results.json'))!;
  t.same(r.config.budgets, [8, 12]);
  t.equal(r.config.defense, 'none');
  t.notOk(fs.readdirSync(dir).some((f) => f.startsWith('stolen-')), '--no-save');
  await t.rejects(run('experiment', []), /a sub-command is required: steal/);
  await t.rejects(run('experiment', ['defense']), /unknown sub-command "defense": expected steal \(.*\); defend/);
  await t.rejects(run('experiment', ['steal', 'extra']), /unexpected argument/);
  await t.rejects(run('experiment', ['steal', '--target', targetFile, '--budgets', '1']), /--budgets/);
  await t.rejects(run('experiment', ['steal', '--target', targetFile, '--methods', 'mse,x']), /--methods must be one of/);
});

t.test('demo: pre-train, steal with every method, report', async (t) => {
  const dir = path.join(tmp, 'demo');
  const r = await run('demo', ['--quick', '--target-images', '64', '--target-epochs', '1', '--budgets', '16', '--epochs', '1', '--limit', '40', '--progress', 'silent', '--out-dir', dir]);
  t.same((r.cells as { method: string }[]).map((c) => c.method), ['mse', 'cosine', 'stolenencoder', 'contsteal']);
  assertRecordInRange(t, r.targetAccuracy, ['fashion-mnist', 'mnist'], 0, 1, 'targetAccuracy');
  for (const f of ['target.safetensors', 'results.json', 'results.md', 'chart.svg', 'chart-agreement.svg', 'chart-mnist.svg']) t.ok(fs.existsSync(path.join(dir, f)), f);
  t.ok(logs.some((l) => /\| stolenencoder +\|/.test(l)), 'the table is printed (to the log)');
  t.same((r.baselines as { name: string }[]).map((b) => b.name), ['raw pixels', 'random-init encoder', 'untrained surrogate'], 'baseline rows');
  const files = r.files as string[];
  for (const m of ['mse', 'cosine', 'stolenencoder', 'contsteal']) t.ok(files.includes(path.join(dir, `stolen-${m}-16.safetensors`)), `files lists the stolen ${m} encoder`);
  for (const f of files) t.ok(fs.existsSync(f), `${path.basename(f)} exists`);
  t.same(fs.readdirSync(dir).filter((f) => !f.startsWith('.')).map((f) => path.join(dir, f)).sort(), [...files].sort(), 'files lists every file of the folder');
  logs.length = 0;
  await run('demo', ['--quick', '--target-images', '64', '--target-epochs', '1', '--budgets', '16', '--methods', 'mse', '--epochs', '1', '--limit', '40', '--progress', 'silent', '--out-dir', dir]);
  t.ok(logs.some((l) => /replacing the earlier demo in .*demo \(4 cell\(s\)/.test(l)), 'a re-run says it replaces the earlier demo');
});
