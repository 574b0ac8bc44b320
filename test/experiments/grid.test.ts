// The resumable report folder under every experiment: a fresh run writes the
// folder, a re-run resumes it (skipping finished cells, saying so) unless
// fresh (then it says it replaces the file), a run with other fixed settings
// refuses to resume, naming the setting; the lists that span the grid merge.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ExperimentGrid, checkResumable, unionList, type GridResults } from '../../lib/experiments/grid';
import { writeReportFolder, readResultsFile } from '../../lib/report/folder';

interface ToyResults extends GridResults {
  config: { seed: number; sizes: number[] };
  cells: { size: number; value: number }[];
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'encsec-grid-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));

function open(dir: string, seed: number, sizes: number[], fresh = false, logs: string[] = []) {
  return ExperimentGrid.open<ToyResults>({
    outDir: dir,
    fresh,
    log: (l) => logs.push(l),
    fixedKeys: ['seed'],
    create: () => ({ kind: 'toy', version: 1, config: { seed, sizes }, cells: [], updatedAt: '' }),
    read: (f) => readResultsFile<ToyResults>(f, 'toy', (r) => r.kind === 'toy'),
    write: (d, r) => writeReportFolder(d, r, `# toy\n${r.cells.map((c) => `${c.size}: ${c.value}`).join('\n')}\n`, {}),
    merge(prev, cur) {
      prev.config.sizes = unionList(prev.config.sizes, cur.config.sizes);
    },
  });
}

async function runAll(g: ExperimentGrid<ToyResults>, sizes: number[]) {
  for (const size of sizes) {
    await g.run(`size ${size}`, g.results.cells.some((c) => c.size === size), async () => {
      g.results.cells.push({ size, value: size * size });
    });
  }
  return g.write();
}

t.test('fresh, resumed, grown, replaced', async (t) => {
  const dir = path.join(tmp, 'a');
  const g1 = open(dir, 1, [2, 3]);
  const files = await runAll(g1, [2, 3]);
  t.equal(g1.ran, 2);
  t.equal(g1.resumedCells, 0);
  t.same(files.map((f) => path.basename(f)), ['results.json', 'results.md']);
  const onDisk = JSON.parse(fs.readFileSync(path.join(dir, 'results.json'), 'utf8')) as ToyResults;
  t.same(onDisk.cells, [{ size: 2, value: 4 }, { size: 3, value: 9 }]);
  t.ok(Date.parse(onDisk.updatedAt) > 0, 'updatedAt stamped');

  const logs: string[] = [];
  const g2 = open(dir, 1, [3, 5], false, logs);
  t.equal(g2.resumedCells, 2);
  t.match(logs[0], /^resuming .*results\.json: 2 finished cell\(s\) are kept and skipped/);
  await runAll(g2, [3, 5]);
  t.equal(g2.ran, 1, 'only the new cell ran');
  t.equal(g2.skipped, 1);
  t.match(logs.join('\n'), /size 3: already in .*results\.json, skipped/);
  t.same(g2.results.config.sizes, [2, 3, 5], 'the spanning list grew');
  t.same(g2.results.cells.map((c) => c.size), [2, 3, 5]);

  const logs3: string[] = [];
  const g3 = open(dir, 1, [7], true, logs3);
  t.match(logs3[0], /^replacing .*results\.json \(3 cell\(s\)\): --fresh/);
  t.equal(g3.results.cells.length, 0);
});

t.test('other fixed settings refuse to resume, naming the setting', async (t) => {
  const dir = path.join(tmp, 'b');
  await runAll(open(dir, 1, [2]), [2]);
  t.throws(() => open(dir, 2, [2]), /was made with seed=1, this run has 2: use the same settings to resume, or another --out-dir/);
  t.throws(() => checkResumable('f', { a: [1, 2] }, { a: [1, 3] }, ['a']), /a=\[1,2\], this run has \[1,3\]/);
});

t.test('a failing cell writes nothing and is not counted', async (t) => {
  const dir = path.join(tmp, 'c');
  const g = open(dir, 1, [2]);
  await t.rejects(g.run('size 2', false, async () => {
    throw new Error('boom');
  }), /boom/);
  t.equal(g.ran, 0);
  t.notOk(fs.existsSync(path.join(dir, 'results.json')), 'no results file from a failed cell');
});

t.test('a corrupt results file is an error that says how to start over', async (t) => {
  const dir = path.join(tmp, 'd');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'results.json'), '{"kind":');
  t.throws(() => open(dir, 1, [2]), /results\.json is not valid JSON .*move it away to start over/);
});
