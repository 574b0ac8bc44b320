// `encsec experiment auth` on a tiny slice: every row of the table is
// produced for both keys and both methods, the authentic target raises no
// false alarm, the tampered rows are flagged, the perturbing service is
// reported as such, and a second run resumes (skips every cell).
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadDataset } from '../../lib/data/builtin';
import { toTensor } from '../../lib/data/tensor';
import { noGrad, tidy } from '../../lib/core/tensor';
import { createEncoder } from '../../lib/nn/encoders';
import { saveEncoder } from '../../lib/io/checkpoint';
import { runAuthGrid, type AuthGridOptions } from '../../lib/experiments/auth';

const cacheDir = process.env.ENCSEC_CACHE ?? path.join(os.tmpdir(), 'encsec-test-cache');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'encsec-auth-exp-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));

const data = loadDataset('fashion-mnist', { split: 'train', limit: 48, cacheDir });
const target = createEncoder('cnn-small', { seed: 5 }).train();
noGrad(() => {
  for (let r = 0; r < 10; r++) tidy(() => target.forward(toTensor(data, Int32Array.from({ length: 48 }, (_, i) => i))));
});
target.eval();
const targetFile = path.join(tmp, 'target.safetensors');
saveEncoder(targetFile, target);
target.dispose();

const options: AuthGridOptions = {
  target: targetFile,
  outDir: path.join(tmp, 'out'),
  limit: 48,
  keySamples: 4,
  pool: 24,
  steps: 200,
  reloads: 2,
  finetuneEpochs: 1,
  finetuneLimit: 32,
  backdoorEpochs: 1,
  backdoorLimit: 16,
  independentEpochs: 1,
  independentLimit: 16,
  stealMethod: 'mse',
  budget: 32,
  stealEpochs: 1,
  evalLimit: 40,
  probeEpochs: 5,
};

t.test('every row, both keys, both methods; resumable', async (t) => {
  const res = await runAuthGrid(options);
  const ids = res.results.cells.map((c) => c.id);
  t.same(ids, ['authentic', 'sgd-step', 'simclr-1ep', 'prune-0.01', 'prune-0.1', 'one-weight-1pct', 'badencoder', 'quantize-8bit', 'independent', 'stolen-mse@32', 'noise-service']);
  const auth = res.results.cells[0];
  t.equal(auth.checks, 4, '2 reloads x 2 thread counts');
  t.same(auth.falseAlarms, { 'sslauth:sensitivity': 0, 'baseline:sensitivity': 0, 'sslauth:random': 0, 'baseline:random': 0 }, 'no false alarm');
  for (const c of res.results.cells.filter((c) => c.expect === 'tampered')) {
    for (const rule of ['sensitivity', 'random']) {
      t.equal(c.scores[rule].verdict, 'tampered', `${c.id} (${rule}): SSL-Auth ${c.scores[rule].noiseRatio?.toFixed(1)}x noise`);
    }
  }
  const bd = res.results.cells.find((c) => c.id === 'badencoder')!;
  t.ok(bd.backdoor && bd.backdoor.attackSuccessRate >= 0 && bd.backdoor.attackSuccessRate <= 1, 'the backdoor row records its success rate');
  const noisy = res.results.cells.find((c) => c.id === 'noise-service')!;
  t.equal(noisy.scores.sensitivity.verdict, 'cannot-authenticate', noisy.scores.sensitivity.reason);
  const md = fs.readFileSync(path.join(options.outDir, 'results.md'), 'utf8');
  t.match(md, /## Key samples: sensitivity/);
  t.match(md, /## Key samples: random/);
  t.match(md, /SSL-Auth, sensitivity key samples: \d+\/9 tampering rows flagged; false alarms 0\/4/);
  t.match(fs.readFileSync(path.join(options.outDir, 'auth.svg'), 'utf8'), /<svg[\s\S]*threshold \(safety 3\)[\s\S]*<\/svg>/, 'chart with the threshold line');
  t.ok(fs.existsSync(path.join(options.outDir, 'keys', 'sensitivity', 'manifest.json')), 'keys kept');

  const again = await runAuthGrid(options);
  t.equal(again.ran, 0, 'resumed: nothing recomputed');
  t.equal(again.skipped, ids.length, 'every cell skipped');
  await t.rejects(runAuthGrid({ ...options, safety: 5 }), /was made with safety=3, this run has 5/);
});
