// encsec's run of one real job in a fresh process, for the job rows of the
// harness (benchmarks/jobs.ts spawns it):
//
//   node dist/benchmarks/job_runner.js '{"kind": "steal"|"probe", "params": {...}, "out": FILE}'
//   node dist/benchmarks/job_runner.js '{"kind": "pretrain", "argv": ["pretrain", ...]}'
//
// pretrain: the CLI command itself (lib/cli/main.ts main: what `encsec
//   pretrain` runs in its supervised child process); its result line (with
//   wallSeconds and the epoch's history) is the report.
// steal: what `encsec steal` does before its evaluation (the evaluation is the
//   probe row): Fashion-MNIST TRAIN as the attacker's query set, a cnn-small
//   target behind an EncoderService (no defense), stealEncoder (Q queries,
//   each once, then the surrogate's epochs), the stolen encoder written.
// probe: what `encsec eval --probe linear` does: the embeddings of TRAIN and
//   TEST (embedDataset, batch 512, the compiled eval plan), then linearProbe
//   (standardised features, softmax regression, Adam lr 1e-2, full batch).
// The weights are a seeded initialisation, not a trained encoder: the time of
// these jobs does not depend on the weights' values.
// Progress goes to stderr as `encsec` writes it (--progress json); the last
// stdout line is the job report (benchmarks/jobs.ts JobReport).
import { loadDataset } from '../lib/data/builtin';
import { createEncoder } from '../lib/nn/encoders';
import { EncoderService } from '../lib/service/service';
import { stealEncoder } from '../lib/attacks/steal';
import { saveSurrogate } from '../lib/attacks/surrogate';
import { embedDataset } from '../lib/eval/embed';
import { linearProbe } from '../lib/eval/probe';
import { createProgress } from '../lib/report/progress';
import { setDevice } from '../lib/core/backend';
import { main as cliMain } from '../lib/cli/main';
import type { Architecture } from '../lib/nn/encoders';
import { isStealMethod, type JobReport } from './jobs';

const now = () => Number(process.hrtime.bigint()) / 1e9;

export async function runJob(spec: { kind: string; params: Record<string, number | string>; out?: string }): Promise<JobReport> {
  const p = spec.params;
  const arch = String(p.arch ?? 'cnn-small') as Architecture;
  if (spec.kind === 'steal') {
    const method = p.method;
    if (!isStealMethod(method)) throw new RangeError(`steal job: unknown method ${JSON.stringify(method)}`);
    const queryData = loadDataset('fashion-mnist', { split: 'train' });
    const target = createEncoder(arch, { inChannels: 1, seed: 1 }).eval();
    try {
      const t0 = now();
      const service = new EncoderService(target);
      const res = await stealEncoder(service, queryData, {
        method,
        budget: Number(p.budget),
        epochs: Number(p.epochs),
        batchSize: Number(p.batch),
        arch,
        seed: Number(p.seed),
        progress: createProgress({ mode: 'json' }),
      });
      if (spec.out) saveSurrogate(spec.out, res.surrogate, { attack: { ...res.config } });
      res.surrogate.dispose();
      const jobSeconds = now() - t0;
      return { images: Number(p.budget) * (1 + Number(p.epochs)), jobSeconds, loopSeconds: res.trainSeconds, phases: { query: res.querySeconds, train: res.trainSeconds } };
    } finally {
      target.dispose();
    }
  }
  if (spec.kind === 'probe') {
    const limit = Number(p.limit) > 0 ? Number(p.limit) : undefined;
    const train = loadDataset('fashion-mnist', { split: 'train', limit });
    const test = loadDataset('fashion-mnist', { split: 'test', limit });
    const encoder = createEncoder(arch, { inChannels: 1, seed: Number(p.seed) });
    try {
      const t0 = now();
      const eTrain = embedDataset(encoder, train);
      const eTest = embedDataset(encoder, test);
      const t1 = now();
      const r = linearProbe(eTrain, eTest, { numClasses: train.numClasses, epochs: Number(p.epochs), seed: Number(p.seed) });
      const t2 = now();
      return { images: eTrain.n + eTest.n, jobSeconds: t2 - t0, loopSeconds: 0, phases: { embed: t1 - t0, probe: t2 - t1, accuracy: r.accuracy } };
    } finally {
      encoder.dispose();
    }
  }
  throw new RangeError(`unknown job kind ${JSON.stringify(spec.kind)} (steal | probe)`);
}

if (require.main === module) {
  (async () => {
    const arg = process.argv[2];
    if (!arg) throw new Error('usage: job_runner.js JSON_SPEC');
    setDevice('cpu');
    const spec = JSON.parse(arg) as { kind: string; params: Record<string, number | string>; out?: string; argv?: string[] };
    if (spec.kind === 'pretrain') {
      if (!Array.isArray(spec.argv) || spec.argv[0] !== 'pretrain') throw new Error('pretrain job: argv must be an `encsec pretrain` command line');
      process.exitCode = await cliMain(spec.argv);
      return;
    }
    const r = await runJob(spec);
    process.stdout.write(`${JSON.stringify(r)}\n`);
  })().catch((e: unknown) => {
    process.stderr.write(`job_runner: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  });
}
