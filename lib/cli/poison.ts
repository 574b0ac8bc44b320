// `encsec poison make`: builds a PoisonedEncoder pre-training set (the clean
// TRAIN split with round(rate * N) poisoning inputs planted) and writes it as
// one validated binary with its manifest; `encsec pretrain --data
// poisoned:FILE` trains on it.
import * as path from 'node:path';
import type { Command } from './command';
import { loadTask } from '../eval/tasks';
import { loadEncoder } from '../io/checkpoint';
import { fileSha256 } from '../experiments/setup';
import { makePoisonedDataset } from '../attacks/poison/dataset';
import { POISON_CONSTRUCTIONS, type PoisonConstruction } from '../attacks/poison/construct';
import { DEFAULT_TARGETS, loadPoisonTargets, parseTargetSpec } from '../attacks/poison/setup';
import { writePoisonedDataset } from '../data/poisoned';
import { checkOneOf } from '../core/validate';

export const poisonCommand: Command = {
  summary: 'PoisonedEncoder: `poison make` writes a poisoned pre-training set',
  options: {
    out: { kind: 'string', help: 'poisoned data set file to write (required)' },
    data: { kind: 'string', help: 'clean pre-training set (its TRAIN split)', default: 'fashion-mnist' },
    limit: { kind: 'int', help: 'first N clean images only' },
    rate: { kind: 'number', help: 'poisoning rate rho: round(rho * N) poisons', default: 0.01 },
    construction: { kind: 'string', help: `${POISON_CONSTRUCTIONS.join(' | ')}`, default: 'random' },
    targets: { kind: 'string', help: 'target inputs per task, from TEST', default: DEFAULT_TARGETS },
    references: { kind: 'int', help: 'reference inputs per target class (<= 5)', default: 5 },
    surrogate: { kind: 'string', help: "the attacker's surrogate encoder file (construction surrogate)" },
    candidates: { kind: 'int', help: 'draws scored per poison (construction surrogate)', default: 8 },
    seed: { kind: 'int', help: 'seed of every random choice', default: 0 },
  },
  async run(args, ctx) {
    const [sub, ...extra] = args.positional;
    if (sub !== 'make') throw new Error(`a sub-command is required: make (got ${JSON.stringify(sub ?? null)})`);
    if (extra.length) throw new Error(`unexpected argument ${JSON.stringify(extra[0])}`);
    const out = args.string('out');
    if (!out) throw new Error('--out FILE is required');
    const construction = checkOneOf(args.string('construction'), '--construction', POISON_CONSTRUCTIONS) as PoisonConstruction;
    const rate = args.number('rate')!;
    if (!(rate > 0 && rate < 1)) throw new Error(`--rate must be in (0, 1), got ${rate}`);
    const targetSpec = args.string('targets')!;
    parseTargetSpec(targetSpec);
    const surrogateFile = args.string('surrogate');
    if (construction === 'surrogate' && !surrogateFile) throw new Error('--surrogate FILE is required with --construction surrogate');
    if (construction !== 'surrogate' && surrogateFile) throw new Error('--surrogate is only used with --construction surrogate');
    const seed = args.number('seed')!;
    const t0 = Date.now();
    const clean = (await loadTask(args.string('data')!, { limit: args.number('limit') })).train;
    const targets = await loadPoisonTargets(targetSpec, { seed, references: args.number('references') });
    const surrogate = surrogateFile ? loadEncoder(surrogateFile).encoder : undefined;
    surrogate?.eval();
    const res = makePoisonedDataset(clean, targets, {
      rate,
      construction,
      seed,
      surrogate,
      candidates: args.number('candidates'),
      extra: surrogateFile ? { surrogate: path.resolve(surrogateFile), surrogateSha256: fileSha256(surrogateFile) } : {},
    });
    surrogate?.dispose();
    writePoisonedDataset(out, res.dataset, res.manifest);
    ctx.log(`wrote ${path.resolve(out)}`);
    return {
      out: path.resolve(out),
      base: res.manifest.base,
      cleanImages: res.manifest.cleanImages,
      poisons: res.manifest.poisonIndices.length,
      rate,
      construction,
      seed,
      targets: res.manifest.targets.map((t) => ({ task: t.task, index: t.index, trueClass: t.trueClass, targetClass: t.targetClass, references: t.referenceIndices.length })),
      wallSeconds: (Date.now() - t0) / 1000,
    };
  },
};
