// `encsec experiment poison`: PoisonedEncoder constructions x poisoning rates
// x defenses (lib/experiments/poison.ts), resumable into --out-dir.
import * as path from 'node:path';
import type { Command as SubCommand } from './command';
import { progressFrom } from './options';
import { POISON_DEFENSES, runPoisonGrid, type PoisonDefenseName } from '../experiments/poison';
import { POISON_CONSTRUCTIONS, type PoisonConstruction } from '../attacks/poison/construct';
import { DEFAULT_TARGETS } from '../attacks/poison/setup';
import type { Architecture } from '../nn/encoders';
import { info } from '../core/backend';

function numbers(list: string[] | undefined, option: string): number[] {
  return (list ?? []).map((s) => {
    const v = Number(s);
    if (s.trim() === '' || !Number.isFinite(v)) throw new Error(`${option} must list numbers, got ${JSON.stringify(s)}`);
    return v;
  });
}

function oneOf<T extends string>(list: string[] | undefined, option: string, allowed: readonly T[]): T[] {
  return (list ?? []).map((s) => {
    if (!(allowed as readonly string[]).includes(s)) throw new Error(`${option}: unknown ${JSON.stringify(s)}, expected ${allowed.join(', ')}`);
    return s as T;
  });
}

export const poisonExperiment: SubCommand = {
  summary: 'PoisonedEncoder: constructions x poisoning rates x defenses (CA, ASR); resumable',
  options: {
    'out-dir': { kind: 'string', help: 'report folder (results.json, results.md, charts, runs/)', default: 'results/poison' },
    data: { kind: 'string', help: 'clean pre-training set (TRAIN split)', default: 'fashion-mnist' },
    limit: { kind: 'int', help: 'first N clean pre-training images' },
    arch: { kind: 'string', help: 'cnn-small | resnet18-cifar', default: 'cnn-small' },
    epochs: { kind: 'int', help: 'pre-training epochs of every run', default: 10 },
    batch: { kind: 'int', help: 'pre-training batch size', default: 256 },
    lr: { kind: 'number', help: 'Adam learning rate', default: 1e-3 },
    seed: { kind: 'int', help: 'seed of every random choice', default: 0 },
    rates: { kind: 'list', help: 'poisoning rates', default: ['0.005', '0.01', '0.02'] },
    constructions: { kind: 'list', help: POISON_CONSTRUCTIONS.join(','), default: [...POISON_CONSTRUCTIONS] },
    defenses: { kind: 'list', help: POISON_DEFENSES.join(','), default: ['none'] },
    targets: { kind: 'string', help: 'target inputs per task (task:count,...)', default: DEFAULT_TARGETS },
    'eval-limit': { kind: 'int', help: 'first N images per split of the evaluation tasks' },
    'probe-epochs': { kind: 'int', help: 'linear probe epochs', default: 100 },
    'mlp-epochs': { kind: 'int', help: 'MLP classifier epochs', default: 200 },
    'surrogate-images': { kind: 'int', help: "surrogate encoder's public images", default: 2000 },
    'surrogate-epochs': { kind: 'int', help: "surrogate encoder's epochs", default: 3 },
    'finetune-epochs': { kind: 'int', help: 'fine-tuning epochs (finetune-1, finetune-10)', default: 5 },
    'detect-fraction': { kind: 'number', help: 'fraction dropped by the detect defense', default: 0.05 },
    progress: { kind: 'string', help: 'bar | json | silent' },
    fresh: { kind: 'boolean', help: 'start over instead of resuming' },
  },
  async run(args, ctx) {
    const rates = numbers(args.list('rates'), '--rates');
    const constructions = oneOf<PoisonConstruction>(args.list('constructions'), '--constructions', POISON_CONSTRUCTIONS);
    const defenses = oneOf<PoisonDefenseName>(args.list('defenses'), '--defenses', POISON_DEFENSES);
    if (!defenses.includes('none')) defenses.unshift('none');
    const t0 = Date.now();
    const res = await runPoisonGrid({
      outDir: path.resolve(args.string('out-dir')!),
      data: args.string('data'),
      limit: args.number('limit'),
      arch: args.string('arch') as Architecture,
      epochs: args.number('epochs')!,
      batchSize: args.number('batch'),
      lr: args.number('lr'),
      seed: args.number('seed'),
      rates,
      constructions,
      defenses,
      targets: args.string('targets'),
      evalLimit: args.number('eval-limit'),
      probeEpochs: args.number('probe-epochs'),
      mlpEpochs: args.number('mlp-epochs'),
      surrogateImages: args.number('surrogate-images'),
      surrogateEpochs: args.number('surrogate-epochs'),
      finetuneEpochs: args.number('finetune-epochs'),
      detectFraction: args.number('detect-fraction'),
      progress: progressFrom(args),
      fresh: args.bool('fresh'),
      log: ctx.log,
    });
    return {
      outDir: path.resolve(args.string('out-dir')!),
      ran: res.ran,
      skipped: res.skipped,
      cells: res.results.cells.map((c) => ({ key: c.key, tasks: Object.fromEntries(c.tasks.map((t) => [t.task, { ca: t.ca, asr: t.asr }])), pretrainSeconds: c.pretrainSeconds, defenseSeconds: c.defenseSeconds })),
      files: res.files,
      wallSeconds: (Date.now() - t0) / 1000,
      backend: info().backend,
    };
  },
};
