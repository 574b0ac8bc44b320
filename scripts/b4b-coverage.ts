// B4B coverage curves: how much of the LSH bucket space a client covers after
// n queries, for the attacker (a seeded random selection of Fashion-MNIST
// TRAIN, as `encsec steal` picks its queries) and for the honest clients of
// `experiment defend` (a task's TRAIN then TEST images), with and without the
// calibrated centre. Only embeddings and hashes: no training, about a minute.
// Used to choose b4b's beta for the defense grid (RESULTS.md).
//   node dist/scripts/b4b-coverage.js runs/target.safetensors [beta ...]
import { selectQueries } from '../lib/attacks/steal';
import { loadDataset } from '../lib/data/builtin';
import { subset, type Dataset } from '../lib/data/dataset';
import { B4bDefense, b4bSigma, B4B_DEFAULTS } from '../lib/defenses/b4b';
import { calibrateDefense } from '../lib/defenses/calibrate';
import { Tensor, tidy } from '../lib/core/tensor';
import { embedDataset } from '../lib/eval/embed';
import { loadEncoder } from '../lib/io/checkpoint';

function concat(a: Dataset, b: Dataset): Dataset {
  const images = new Uint8Array(a.images.length + b.images.length);
  images.set(a.images, 0);
  images.set(b.images, a.images.length);
  const labels = new Int32Array(a.labels.length + b.labels.length);
  labels.set(a.labels, 0);
  labels.set(b.labels, a.labels.length);
  return { ...a, images, labels, name: `${a.name}+${b.name}` };
}

function main(): void {
  const file = process.argv[2] ?? 'runs/target.safetensors';
  const betas = process.argv.slice(3).map(Number);
  const { encoder } = loadEncoder(file);
  const fmTrain = loadDataset('fashion-mnist', { split: 'train' });
  const clients: { name: string; data: Dataset; marks: number[] }[] = [
    { name: 'attacker (fashion-mnist train, random)', data: subset(fmTrain, selectQueries(fmTrain.labels.length, 12000, 'random', 0)), marks: [600, 3000, 12000] },
    { name: 'honest mnist (train+test)', data: concat(loadDataset('mnist', { split: 'train' }), loadDataset('mnist', { split: 'test' })), marks: [10000, 70000] },
    { name: 'honest fashion-mnist (train+test)', data: concat(fmTrain, loadDataset('fashion-mnist', { split: 'test' })), marks: [10000, 70000] },
  ];
  const embedded = clients.map((c) => ({ ...c, e: embedDataset(encoder, c.data) }));
  const rows: Record<string, unknown>[] = [];
  for (const center of [false, true]) {
    const d = new B4bDefense({ center });
    calibrateDefense(d, encoder, fmTrain);
    for (const c of embedded) {
      let done = 0;
      for (const m of c.marks) {
        const n = Math.min(m, c.e.n) - done;
        if (n <= 0) continue;
        tidy(() => d.observe(c.name, Tensor.from(c.e.data.subarray(done * c.e.dim, (done + n) * c.e.dim), [n, c.e.dim])));
        done += n;
        const cov = d.coverageOf(c.name);
        const sig: Record<string, number> = {};
        for (const beta of betas) sig[`sigma@beta=${beta}`] = b4bSigma(cov, { ...B4B_DEFAULTS, beta });
        rows.push({ center, client: c.name, queries: done, coverage: +cov.toFixed(3), ...sig });
      }
    }
  }
  for (const r of rows) process.stdout.write(`${JSON.stringify(r)}\n`);
  encoder.dispose();
}

main();
