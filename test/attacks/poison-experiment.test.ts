// `runPoisonGrid` on a tiny slice: the cells and report folder appear, a
// second run skips every finished cell (resume), a run with another protocol
// is refused, and bad options fail before anything is loaded.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runPoisonGrid, resolvePoisonGrid, type PoisonGridOptions } from '../../lib/experiments/poison';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'encsec-poison-exp-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));

const base: PoisonGridOptions = {
  outDir: path.join(tmp, 'grid'),
  limit: 64,
  epochs: 2,
  batchSize: 32,
  rates: [0.05],
  constructions: ['random'],
  defenses: ['none', 'early-stop', 'finetune-1'],
  targets: 'fashion-mnist:2,mnist:1',
  evalLimit: 40,
  probeSeeds: [0, 1],
  probeEpochs: 5,
  mlpEpochs: 5,
  finetuneEpochs: 1,
};

t.test('bad options fail fast, naming the option', async (t) => {
  t.throws(() => resolvePoisonGrid({ ...base, rates: [1.5] }), /rates\[0\] must be < 1/);
  t.throws(() => resolvePoisonGrid({ ...base, constructions: ['clever' as never] }), /constructions\[0\] must be one of/);
  t.throws(() => resolvePoisonGrid({ ...base, defenses: ['magic' as never] }), /defenses\[0\] must be one of/);
  t.throws(() => resolvePoisonGrid({ ...base, targets: 'mnist:0' }), /not task:count/);
  t.throws(() => resolvePoisonGrid({ ...base, earlyStopEpoch: 3 }), /earlyStopEpoch must be <= 2/);
});

t.test('a tiny grid runs, writes its report, and resumes without recomputing', async (t) => {
  const first = await runPoisonGrid(base);
  t.same(first.results.cells.map((c) => c.key), ['clean', 'random@0.05/none', 'random@0.05/early-stop', 'random@0.05/finetune-1']);
  t.equal(first.ran, 4);
  for (const f of ['results.json', 'results.md', 'asr-vs-rate.svg', 'ca-vs-rate.svg', 'asr-vs-ca.svg']) t.ok(fs.existsSync(path.join(base.outDir, f)), f);
  for (const c of first.results.cells) {
    t.same(c.tasks.map((x) => x.task), ['fashion-mnist', 'mnist']);
    const fm = c.tasks[0];
    t.equal(fm.pairs, 2 * 3, '2 targets x (2 probes + 1 MLP)');
    t.equal(c.tasks[1].pairs, 1 * 3);
    t.ok(fm.asr >= 0 && fm.asr <= 1 && fm.ca > 0 && fm.ca <= 1);
    // ASR is the fraction of (target, classifier) pairs at the target class, recounted here.
    const recount = fm.classifiers.reduce((s, k) => s + k.targetPredictions.filter((p, i) => p === fm.targetClasses[i]).length, 0);
    t.equal(fm.hits, recount);
    t.equal(fm.asr, recount / fm.pairs);
    fm.targetClasses.forEach((y) => t.ok(Number.isInteger(y) && y >= 0 && y < 10));
  }
  t.equal(first.results.cells[2].epochs, 1, 'early stopping measures the epoch-1 snapshot');
  t.equal(first.results.cells[3].defenseCleanImages, 2, '1% of 64 images, at least 2');
  const again = await runPoisonGrid(base);
  t.equal(again.ran, 0, 'nothing recomputed');
  t.equal(again.skipped, 4);
  t.same(again.results.cells, first.results.cells);
  await t.rejects(runPoisonGrid({ ...base, epochs: 3 }), /was made with epochs=2, this run has 3/);
});
