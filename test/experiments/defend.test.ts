// `encsec experiment defend` on a tiny random target with tiny settings:
// results.json (utility of every defense, one attack per defense), the
// markdown table and the SVG charts; resumed; its errors. And the defend
// report from hand-made results (tables, chart points and labels).
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from '../../lib/cli/args';
import { commands, type CommandContext } from '../../lib/cli/commands';
import { createEncoder } from '../../lib/nn/encoders';
import { saveEncoder } from '../../lib/io/checkpoint';
import { assertInRange, assertRecordInRange } from '../helpers';
import { DEFEND_RESULTS_KIND, defendCharts, dominatedBy, defendResultsMarkdown, readDefendResults, statOf, strongestCell, type DefendResults } from '../../lib/report/defend';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'encsec-defend-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));
const targetFile = path.join(tmp, 'target.safetensors');
const enc = createEncoder('cnn-small', { seed: 4 });
saveEncoder(targetFile, enc, {});
enc.dispose();

const logs: string[] = [];
const ctx: CommandContext = { log: (l) => logs.push(l), isTTY: false };
const run = (argv: string[]) => commands.experiment.run(parseArgs(argv, commands.experiment.options), ctx);
const tiny = ['--epochs', '1', '--batch', '8', '--limit', '30', '--probe-epochs', '3', '--calibration', '30', '--progress', 'silent'];

t.test('experiment defend: utility and attacks per defense, report, resumed', async (t) => {
  const dir = path.join(tmp, 'exp');
  const argv = ['defend', '--target', targetFile, '--defenses', 'noise:0.5,b4b:beta=5,center=true', '--methods', 'mse', '--budgets', '16', '--out-dir', dir, ...tiny];
  const a = await run(argv);
  t.equal(a.ran, 6, '3 utility measurements (none, noise, b4b) + 3 attacks');
  const r = readDefendResults(path.join(dir, 'results.json'))!;
  t.equal(r.kind, DEFEND_RESULTS_KIND);
  t.same(r.config.defenses, ['none', 'noise:0.5', 'b4b:beta=5,center=true'], 'the undefended service comes first');
  t.same(r.tasks, ['fashion-mnist', 'mnist']);
  t.same(Object.keys(r.target.accuracy!), ['fashion-mnist', 'mnist']);
  t.same(r.utility.map((u) => u.defense), ['none', 'noise:0.5', 'b4b:beta=5,center=true']);
  for (const u of r.utility) {
    t.same(u.queries, { 'fashion-mnist': 60, mnist: 60 }, `${u.defense}: each honest client queried its TRAIN and TEST split`);
    assertRecordInRange(t, u.accuracy, r.tasks, 0, 1, `${u.defense}: honest accuracy`);
  }
  t.same(r.utility[0].accuracy, r.target.accuracy, 'undefended: the honest client sees what the target probe sees');
  t.equal(r.utility[2].calibrationImages, 30, 'b4b:center=true calibrated on --calibration images');
  t.equal(r.utility[0].calibrationImages, 0);
  assertInRange(t, statOf(r.utility[2].stats.mnist, 'coverage'), 0, 100, "the honest client's coverage is recorded (percent)");
  t.equal(r.cells.length, 3);
  for (const c of r.cells) {
    t.equal(c.queriesSpent, 16);
    assertInRange(t, c.agreement, 0, 1, `${c.defense}: agreement`);
    assertInRange(t, c.meanCosine, -1, 1, `${c.defense}: meanCosine`);
    assertRecordInRange(t, c.stolenAccuracy, ['fashion-mnist', 'mnist'], 0, 1, `${c.defense}: stolenAccuracy`);
  }
  const b4bCell = r.cells.find((c) => c.defense.startsWith('b4b'))!;
  t.equal(b4bCell.attackerStats.rows, 16, "the attacker's defense state is recorded");
  for (const f of ['results.json', 'results.md', 'chart.svg', 'chart-mnist.svg', 'chart-accuracy.svg']) t.ok(fs.existsSync(path.join(dir, f)), f);
  const md = fs.readFileSync(path.join(dir, 'results.md'), 'utf8');
  t.match(md, /## Summary/);
  t.match(md, /\| none \(undefended\) +\|/);
  t.match(md, /\| b4b:beta=5,center=true +\| mse +\| +16 \|/);
  const svg = fs.readFileSync(path.join(dir, 'chart.svg'), 'utf8');
  t.match(svg, /class="series scatter"/);
  t.match(svg, />noise:0\.5</, 'points labelled with their defense');
  t.match(svg, />undefended</);
  t.ok(logs.some((l) => l.includes('## Summary')), 'the tables are printed (to the log)');

  const b = await run(argv);
  t.equal(b.ran, 0, 'a restart computes nothing');
  t.equal(b.skipped, 6);
  const c = await run(['defend', '--target', targetFile, '--defenses', 'noise:0.5,topk:8', '--methods', 'mse', '--budgets', '16', '--out-dir', dir, ...tiny]);
  t.equal(c.ran, 2, 'a new defense: only its utility and its attack');
  const r2 = readDefendResults(path.join(dir, 'results.json'))!;
  t.same(r2.config.defenses, ['none', 'noise:0.5', 'b4b:beta=5,center=true', 'topk:8']);
  await t.rejects(run(['defend', '--target', targetFile, '--defenses', 'topk:8', '--methods', 'mse', '--budgets', '16', '--out-dir', dir, '--epochs', '2', ...tiny.slice(2)]), /epochs=1, this run has 2/, 'other settings: refused');
});

t.test('steal --defense: a stateful, calibrated defense; its numbers about the attacker', async (t) => {
  const out = path.join(tmp, 'stolen.safetensors');
  const r = await commands.steal.run(
    parseArgs(['--target', targetFile, '--method', 'mse', '--budget', '16', '--defense', 'b4b:center=true,beta=5', '--epochs', '1', '--batch', '8', '--limit', '30', '--probe-epochs', '3', '--progress', 'silent', '--out', out], commands.steal.options),
    ctx,
  );
  t.equal(r.defense, 'b4b:center=true,beta=5');
  const stats = r.defenseStats as Record<string, number>;
  t.equal(stats.rows, 16, 'the defense saw the 16 queries');
  assertInRange(t, stats.coverage, Number.MIN_VALUE, 100, 'coverage');
  t.ok(logs.some((l) => /defense calibrated on 30 fashion-mnist train images/.test(l)), 'calibrated on the first task (cut to --limit)');
});

t.test('experiment defend: errors before any work', async (t) => {
  const dir = path.join(tmp, 'bad');
  await t.rejects(run(['defend', '--target', targetFile, '--defenses', 'noise', '--out-dir', dir]), /--defenses: defense "noise" needs sigma/);
  await t.rejects(run(['defend', '--target', targetFile, '--defenses', 'rotate=true', '--out-dir', dir]), /--defenses: .*must follow a defense name/);
  await t.rejects(run(['defend', '--target', targetFile, '--methods', 'x', '--out-dir', dir]), /--methods must be one of/);
  await t.rejects(run(['defend', '--target', targetFile, '--budgets', '1', '--out-dir', dir]), /--budgets/);
  await t.rejects(run(['defend', '--defense', 'noise:0.1', '--out-dir', dir]), /--defense is not an option of "experiment defend"/);
  await t.rejects(run(['defend', '--out-dir', dir]), /--target FILE is required/);
  await t.rejects(run(['steal', '--save', '--target', targetFile]), /--save is not an option of "experiment steal"/);
  t.notOk(fs.existsSync(dir), 'nothing written');
});

t.test('the defend report from hand-made results', async (t) => {
  const tasks = ['fashion-mnist', 'mnist'];
  const defenses = ['none', 'noise:0.2', 'topk:8', 'b4b'];
  const util = [0.8, 0.78, 0.7, 0.79];
  const r: DefendResults = {
    kind: DEFEND_RESULTS_KIND,
    version: 1,
    config: { defenses, methods: ['stolenencoder', 'contsteal'], budgets: [3000, 12000], arch: 'cnn-small', epochs: 60, queryData: 'fashion-mnist', limit: null },
    target: { arch: 'cnn-small', accuracy: { 'fashion-mnist': 0.8, mnist: 0.7 } },
    tasks,
    utility: defenses.map((d, i) => ({ defense: d, accuracy: { 'fashion-mnist': util[i], mnist: util[i] - 0.1 }, queries: { 'fashion-mnist': 20000, mnist: 10000 }, stats: (d === 'b4b' ? { mnist: { coverage: 1.5, sigma: 2e-6, rows: 10000 } } : {}) as Record<string, Record<string, number>>, calibrationImages: 0, seconds: 1 })),
    cells: defenses.flatMap((d, i) =>
      ['stolenencoder', 'contsteal'].flatMap((m, j) =>
        [3000, 12000].map((b, k) => ({
          defense: d,
          method: m,
          budget: b,
          queriesSpent: b,
          stolenAccuracy: { 'fashion-mnist': 0.6 + 0.02 * k - 0.05 * i, mnist: 0.5 },
          agreement: 0.7 + 0.05 * k + 0.03 * j - 0.1 * i,
          meanCosine: 0.8,
          attackerStats: (d === 'b4b' ? { coverage: 12.5, sigma: 0.3, rows: b } : {}) as Record<string, number>,
          finalLoss: 0.1,
          querySeconds: 1,
          trainSeconds: 9,
          wallSeconds: 10,
          evalSeconds: 2,
        })),
      ),
    ),
    updatedAt: '',
  };
  const best = strongestCell(r, 'topk:8', 12000)!;
  t.equal(best.method, 'contsteal', 'the strongest attack is the one with the highest agreement');
  t.ok(Math.abs(best.agreement - (0.7 + 0.05 + 0.03 - 0.2)) < 1e-12);
  const md = defendResultsMarkdown(r);
  t.match(md, /\| none \(undefended\) +\| +80\.0% \| +70\.0% \| +73\.0% \(contsteal\) \| +78\.0% \(contsteal\) \| +60\.0% \| +62\.0% \|/);
  t.match(md, /\| b4b +\| MNIST +\| +69\.0% \| +-1\.0 pt \| +10,000 \| +1\.50% \| +2\.00e-6 \|/);
  t.match(md, /\| b4b +\| contsteal +\| +12,000 \|.*\| +12\.50% \| +0\.3 \|/);
  const charts = defendCharts(r);
  t.same(Object.keys(charts), ['chart.svg', 'chart-mnist.svg', 'chart-accuracy.svg']);
  const svg = charts['chart.svg'];
  // Three defended points per budget series (2 series), two undefended stars.
  t.equal((svg.match(/<g class="series scatter">/g) ?? []).length, 3);
  const labels = svg.slice(svg.indexOf('<g class="point-labels"'), svg.indexOf('</g>', svg.indexOf('<g class="point-labels"')));
  for (const d of ['noise:0.2', 'topk:8', 'b4b', 'undefended']) t.equal(labels.split(`>${d}</text>`).length - 1, 1, `${d} labelled once`);
  t.equal((labels.match(/<text /g) ?? []).length, 4, 'one label per defense (at the largest budget)');
  t.match(svg, /defended, 3,000 queries/);
  t.match(svg, /defended, 12,000 queries/);
  t.match(svg, />80%</, 'percent tick labels on the x axis');
  t.notMatch(svg, /NaN|undefined/);

  // Dominance at 12,000 on Fashion-MNIST utility (hand-computed from the
  // fixture: utility none .80, noise .78, topk .70, b4b .79; strongest
  // agreement none .78, noise .68, topk .58, b4b .48).
  t.same(dominatedBy(r, 'b4b', 12000, 'fashion-mnist'), [], 'b4b: only none has more utility, and it leaks more');
  t.same(dominatedBy(r, 'none', 12000, 'fashion-mnist'), [], 'the most useful setting is never dominated');
  t.same(dominatedBy(r, 'noise:0.2', 12000, 'fashion-mnist'), ['b4b']);
  t.same(dominatedBy(r, 'topk:8', 12000, 'fashion-mnist'), ['b4b']);
  t.equal(dominatedBy(r, 'round:1', 12000, 'fashion-mnist'), undefined, 'no utility or cells: not judged');
  t.equal(dominatedBy(r, 'b4b', 600, 'fashion-mnist'), undefined, 'no cells at that budget');
  t.match(md, /\| noise:0\.2 +\| by b4b +\|/, 'the table names the dominating setting');
  t.match(md, /\| b4b +\| not dominated +\| not dominated +\| not dominated +\| not dominated +\|/);
  // Equal utility, lower agreement: still dominates; the reverse does not.
  r.utility.find((u) => u.defense === 'topk:8')!.accuracy['fashion-mnist'] = 0.79;
  t.same(dominatedBy(r, 'topk:8', 12000, 'fashion-mnist'), ['b4b']);
  t.same(dominatedBy(r, 'b4b', 12000, 'fashion-mnist'), []);
});
