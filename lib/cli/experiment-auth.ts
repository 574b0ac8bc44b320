// `encsec experiment auth`: SSL-Auth and the stored-embedding baseline on the
// authentic target and on tampered copies (lib/experiments/auth.ts),
// resumable into --out-dir.
import * as path from 'node:path';
import type { Command as SubCommand } from './command';
import { applyDevice, progressFrom } from './options';
import { STEAL_METHODS, type StealMethod } from '../attacks/losses';
import { runAuthGrid } from '../experiments/auth';
import { info } from '../core/backend';

export const authExperiment: SubCommand = {
  summary: 'SSL-Auth: verdicts and margins of the authentic target (reloads, thread counts) and of tampered copies, beside the stored-embedding baseline; resumable',
  options: {
    target: { kind: 'string', help: 'the released encoder (safetensors)' },
    'out-dir': { kind: 'string', help: 'report folder (results.json, results.md, auth.svg, keys/, runs/)', default: 'results/auth' },
    limit: { kind: 'int', help: 'first N Fashion-MNIST TRAIN images: key-sample pool, SGD step and default fine-tuning data' },
    k: { kind: 'int', help: 'key samples K', default: 16 },
    pool: { kind: 'int', help: 'candidates the key samples are chosen from', default: 512 },
    steps: { kind: 'int', help: 'generator training steps', default: 1500 },
    'noise-rel': { kind: 'number', help: 'modelled relative float32 noise of the calibration', default: 1e-6 },
    safety: { kind: 'number', help: 'margin factor over the calibrated noise', default: 3 },
    seed: { kind: 'int', help: 'seed of the keys and of every tampering', default: 0 },
    reloads: { kind: 'int', help: 'reloads of the authentic target (each checked under every thread count)', default: 20 },
    'finetune-epochs': { kind: 'int', help: 'SimCLR fine-tuning epochs (0: no row)', default: 1 },
    'finetune-limit': { kind: 'int', help: 'first N TRAIN images for the fine-tuning (default: --limit)' },
    'backdoor-epochs': { kind: 'int', help: 'BadEncoder epochs (0: no row)', default: 5 },
    'backdoor-lr': { kind: 'number', help: 'BadEncoder Adam learning rate', default: 1e-3 },
    'backdoor-limit': { kind: 'int', help: 'first N TRAIN images as BadEncoder shadow data (default: --limit)' },
    independent: { kind: 'string', help: 'an independently trained encoder file (default: pre-train one here, seed+1)' },
    'independent-epochs': { kind: 'int', help: 'epochs of the independent encoder pre-trained here', default: 10 },
    'independent-limit': { kind: 'int', help: 'first N TRAIN images for that pre-training (default: --limit)' },
    'steal-method': { kind: 'string', help: `method of the stolen copy (${STEAL_METHODS.join(', ')})`, default: 'contsteal' },
    budget: { kind: 'int', help: 'query budget of the stolen copy (0: no row)', default: 12000 },
    'steal-epochs': { kind: 'int', help: 'surrogate training epochs (default: the attack default)' },
    'eval-limit': { kind: 'int', help: 'first N images per split of the evaluation tasks (backdoor success, stolen copy)' },
    'probe-epochs': { kind: 'int', help: 'linear probe epochs' },
    device: { kind: 'string', help: 'cpu | cuda (default: the backend in use)' },
    progress: { kind: 'string', help: 'bar | json | silent' },
    fresh: { kind: 'boolean', help: 'start over instead of resuming' },
  },
  async run(args, ctx) {
    applyDevice(args);
    const method = args.string('steal-method')!;
    if (!(STEAL_METHODS as readonly string[]).includes(method)) throw new Error(`--steal-method must be one of ${STEAL_METHODS.join(', ')}, got ${JSON.stringify(method)}`);
    const t0 = Date.now();
    const limit = args.number('limit');
    const res = await runAuthGrid({
      target: args.string('target') ?? '',
      outDir: path.resolve(args.string('out-dir')!),
      limit,
      keySamples: args.number('k'),
      pool: args.number('pool'),
      steps: args.number('steps'),
      noiseRel: args.number('noise-rel'),
      safety: args.number('safety'),
      seed: args.number('seed'),
      reloads: args.number('reloads'),
      finetuneEpochs: args.number('finetune-epochs'),
      finetuneLimit: args.number('finetune-limit') ?? limit,
      backdoorEpochs: args.number('backdoor-epochs'),
      backdoorLr: args.number('backdoor-lr'),
      backdoorLimit: args.number('backdoor-limit') ?? limit,
      independent: args.string('independent'),
      independentEpochs: args.number('independent-epochs'),
      independentLimit: args.number('independent-limit') ?? limit,
      stealMethod: method as StealMethod,
      budget: args.number('budget'),
      stealEpochs: args.number('steal-epochs'),
      evalLimit: args.number('eval-limit'),
      probeEpochs: args.number('probe-epochs'),
      progress: progressFrom(args),
      fresh: args.bool('fresh'),
      log: ctx.log,
    });
    const r = res.results;
    return {
      outDir: path.resolve(args.string('out-dir')!),
      files: res.files,
      ran: res.ran,
      skipped: res.skipped,
      thresholds: Object.fromEntries(Object.entries(r.keys).map(([rule, k]) => [rule, k.thresholds])),
      rows: r.cells.map((c) => ({
        id: c.id,
        expect: c.expect,
        ...Object.fromEntries(Object.entries(c.scores).map(([rule, s]) => [rule, { verdict: s.verdict, psnrDb: s.psnrDb, ssim: s.ssim, bitAgreement: s.bitAgreement, noiseRatio: s.noiseRatio, baselineVerdict: s.baselineVerdict, baselineDistance: s.baselineDistance, baselineNoiseRatio: s.baselineNoiseRatio }])),
        ...(c.falseAlarms ? { checks: c.checks, falseAlarms: c.falseAlarms } : {}),
        ...(c.backdoor ? { backdoor: c.backdoor } : {}),
      })),
      wallSeconds: (Date.now() - t0) / 1000,
      backend: info().backend,
    };
  },
};
