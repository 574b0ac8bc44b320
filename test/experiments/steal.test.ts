// The experiment grid: every cell evaluated and written; resumable (an
// interrupted run continues with the cells it lacks; a finished one skips
// them all); a restart with other settings is refused.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadDataset } from '../../lib/data/builtin';
import { createEncoder } from '../../lib/nn/encoders';
import type { TaskData } from '../../lib/eval/tasks';
import { FidelityEvaluator, meanRowCosine } from '../../lib/eval/fidelity';
import { runStealGrid, type StealGridOptions } from '../../lib/experiments/steal';
import { loadSurrogate } from '../../lib/attacks/surrogate';
import { readStealResults } from '../../lib/report/steal';

const cacheDir = process.env.ENCSEC_CACHE ?? path.join(os.tmpdir(), 'encsec-test-cache');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'encsec-grid-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));

const load = (name: 'fashion-mnist' | 'mnist', n: number): TaskData => ({
  name,
  train: loadDataset(name, { split: 'train', limit: n, cacheDir }),
  test: loadDataset(name, { split: 'test', limit: n, cacheDir }),
});
const tasks = [load('fashion-mnist', 40), load('mnist', 40)];
const queryData = loadDataset('fashion-mnist', { split: 'train', limit: 64, cacheDir });
const target = createEncoder('cnn-small', { seed: 5 }).eval();
t.teardown(() => target.dispose());

const base = (outDir: string): StealGridOptions => ({
  target,
  targetFile: 'target.safetensors',
  targetSha256: 'abc',
  queryData,
  queryDataName: 'fashion-mnist',
  tasks,
  methods: ['mse', 'cosine'],
  budgets: [16],
  steal: { epochs: 1, batchSize: 8 },
  probeEpochs: 10,
  limit: 40,
  outDir,
});

t.test('meanRowCosine', async (t) => {
  const a = Float32Array.from([1, 0, 0, 1]);
  const b = Float32Array.from([2, 0, 1, 1]);
  t.ok(Math.abs(meanRowCosine(a, b, 2, 2) - (1 + Math.SQRT1_2) / 2) < 1e-12);
  t.throws(() => meanRowCosine(a, b, 3, 2), RangeError);
});

t.test('a target copied by itself: perfect agreement and cosine', async (t) => {
  const ev = new FidelityEvaluator(target, tasks, { probeEpochs: 10 });
  const r = ev.evaluate(target);
  t.equal(r.agreement, 1);
  t.ok(Math.abs(r.meanCosine! - 1) < 1e-6);
  t.same(r.stolenAccuracy, r.targetAccuracy);
  t.same(Object.keys(r.tasks), ['fashion-mnist', 'mnist']);
  t.equal(r.tasks.mnist.testImages, 40);
});

t.test('grid: cells, report files, resume, refusal of other settings', async (t) => {
  const dir = path.join(tmp, 'grid');
  // Interrupt after the first finished cell.
  let seen = 0;
  await t.rejects(
    runStealGrid({ ...base(dir), onCell: () => { if (++seen === 1) throw new Error('interrupted'); } }),
    /interrupted/,
  );
  const partial = readStealResults(path.join(dir, 'results.json'))!;
  t.equal(partial.cells.length, 1, 'the finished cell was written before the interruption');

  const logs: string[] = [];
  const resumed = await runStealGrid({ ...base(dir), log: (l) => logs.push(l) });
  t.equal(resumed.skipped, 1);
  t.equal(resumed.ran, 1);
  t.ok(logs.some((l) => /mse @ 16: already in/.test(l)));
  const r = readStealResults(path.join(dir, 'results.json'))!;
  t.same(r.cells.map((c) => `${c.method}@${c.budget}`).sort(), ['cosine@16', 'mse@16']);
  for (const c of r.cells) {
    t.equal(c.queriesSpent, 16);
    t.ok(c.agreement >= 0 && c.agreement <= 1);
    t.ok(c.meanCosine !== null && c.meanCosine > -1 && c.meanCosine <= 1);
    t.same(Object.keys(c.stolenAccuracy), ['fashion-mnist', 'mnist']);
    t.ok(fs.existsSync(path.join(dir, c.file!)), 'stolen encoder written');
  }
  t.ok(r.target.accuracy && r.target.accuracy['fashion-mnist'] > 0);
  for (const f of ['results.json', 'results.md', 'chart.svg', 'chart-agreement.svg', 'chart-mnist.svg']) t.ok(fs.existsSync(path.join(dir, f)), f);
  const s = loadSurrogate(path.join(dir, r.cells[0].file!));
  t.equal(s.config.queriesSpent, 16);
  s.surrogate.dispose();

  // Done: everything skipped. A larger grid adds only the new cells.
  const again = await runStealGrid(base(dir));
  t.equal(again.ran, 0);
  t.equal(again.skipped, 2);
  const grown = await runStealGrid({ ...base(dir), budgets: [16, 24], saveSurrogates: false });
  t.equal(grown.ran, 2);
  t.equal(grown.skipped, 2);
  t.same(grown.results.config.budgets, [16, 24]);
  t.equal(grown.results.cells.length, 4);

  await t.rejects(runStealGrid({ ...base(dir), steal: { epochs: 2, batchSize: 8 } }), /epochs=1, this run has 2/, 'other settings refused');
  await t.rejects(runStealGrid({ ...base(dir), targetSha256: 'def' }), /targetSha256/, 'another target refused');
  const fresh = await runStealGrid({ ...base(dir), methods: ['contsteal'], fresh: true, saveSurrogates: false });
  t.equal(fresh.ran, 1, '--fresh starts over');
  t.equal(fresh.results.cells.length, 1);

  await t.rejects(runStealGrid({ ...base(dir), budgets: [100] }), /larger than the query set/);
  await t.rejects(runStealGrid({ ...base(dir), methods: ['nope' as never] }), /unknown method/);
});
