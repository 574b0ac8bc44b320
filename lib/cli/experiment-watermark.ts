// `encsec experiment watermark`: SSLGuard's robustness table (lib/experiments/watermark.ts),
// resumable into --out-dir.
import * as path from 'node:path';
import type { Command as SubCommand } from './command';
import { applyDevice, progressFrom } from './options';
import { UsageError } from './args';
import { joinDefenseList } from '../defenses/spec';
import { STEAL_METHODS, type StealMethod } from '../attacks/losses';
import { runWatermarkGrid } from '../experiments/watermark';
import { nullModelOf } from '../report/watermark';
import { ownershipVerdict } from '../watermark/sslguard/verify';
import { EMBED_DEFAULTS } from '../watermark/sslguard/embed';
import { info } from '../core/backend';

function numbers(list: string[] | undefined, option: string, integer = false): number[] {
  return (list ?? []).map((s) => {
    const v = Number(s);
    if (s.trim() === '' || !Number.isFinite(v) || (integer && !Number.isInteger(v))) throw new UsageError(`${option} must list ${integer ? 'integers' : 'numbers'}, got ${JSON.stringify(s)}`);
    return v;
  });
}

export const watermarkExperiment: SubCommand = {
  summary: 'SSLGuard: WR, p-value and verdict of F_w, null encoders and attacked copies (stealing, pruning, fine-tuning, noise, overwriting); resumable',
  options: {
    target: { kind: 'string', help: 'the clean encoder F (safetensors)' },
    'out-dir': { kind: 'string', help: 'report folder (results.json, results.md, wr.svg, key/, runs/)', default: 'results/watermark' },
    epochs: { kind: 'int', help: 'embedding epochs over the public Fashion-MNIST TRAIN images', default: 3 },
    limit: { kind: 'int', help: 'first N Fashion-MNIST TRAIN images for D_v, embedding and independent pre-training (quick runs)' },
    'verify-size': { kind: 'int', help: '|D_v|', default: 1000 },
    'embed-batch': { kind: 'int', help: `embedding batch size (default ${EMBED_DEFAULTS.batchSize})` },
    'steps-per-epoch': { kind: 'int', help: 'embedding: stop each epoch after N steps (default: a full pass)' },
    'lr-watermark': { kind: 'number', help: `embedding: SGD lr of F_w (default ${EMBED_DEFAULTS.lrWatermark}; official 1e-5)` },
    'lr-decoder': { kind: 'number', help: `embedding: SGD lr of the decoder D (default ${EMBED_DEFAULTS.lrDecoder})` },
    'lr-trigger': { kind: 'number', help: `embedding: SGD lr of the trigger T (default ${EMBED_DEFAULTS.lrTrigger})` },
    seed: { kind: 'int', help: 'seed of the key, the embedding and the fine-tuning', default: 0 },
    'independent-seeds': { kind: 'list', help: 'seeds of the independently pre-trained encoders', default: ['1', '2', '3'] },
    'pretrain-epochs': { kind: 'int', help: 'epochs of the independent encoders', default: 10 },
    methods: { kind: 'list', help: `stealing methods (${STEAL_METHODS.join(', ')})`, default: ['mse', 'stolenencoder', 'contsteal'] },
    budgets: { kind: 'list', help: 'query budgets of the stolen copies', default: ['3000', '12000'] },
    'query-data': { kind: 'string', help: "attacker's images (TRAIN split)", default: 'fashion-mnist' },
    'steal-epochs': { kind: 'int', help: 'surrogate training epochs (default: the attack default, 60)' },
    defenses: { kind: 'list', help: 'defended services F_w is stolen through (stolenencoder at the largest budget)', default: ['round:1', 'b4b:center=true', 'beta=30'] },
    'prune-fractions': { kind: 'list', help: 'magnitude-pruning fractions', default: ['0.2', '0.5'] },
    'finetune-epochs': { kind: 'int', help: 'SimCLR fine-tuning epochs on MNIST (0: no row)', default: 5 },
    'output-noise': { kind: 'list', help: 'output noise sigmas', default: ['0.05', '0.2'] },
    'input-noise': { kind: 'list', help: 'Gaussian input noise sigmas (normalised units: 0.1 = 0.05 of the pixel range)', default: ['0.1'] },
    'no-overwrite': { kind: 'boolean', help: 'skip the overwriting row (a second embedding)' },
    'eval-limit': { kind: 'int', help: 'first N images per split of the evaluation tasks' },
    'probe-epochs': { kind: 'int', help: 'linear probe epochs', default: 100 },
    device: { kind: 'string', help: 'cpu | cuda (default: the backend in use)' },
    progress: { kind: 'string', help: 'bar | json | silent' },
    fresh: { kind: 'boolean', help: 'start over instead of resuming' },
  },
  async run(args, ctx) {
    applyDevice(args);
    const methods = (args.list('methods') ?? []).map((m) => {
      if (!(STEAL_METHODS as readonly string[]).includes(m)) throw new UsageError(`--methods: unknown ${JSON.stringify(m)}, expected ${STEAL_METHODS.join(', ')}`);
      return m as StealMethod;
    });
    const limit = args.number('limit');
    const t0 = Date.now();
    const res = await runWatermarkGrid({
      target: args.string('target') ?? '',
      outDir: path.resolve(args.string('out-dir')!),
      embedEpochs: args.number('epochs')!,
      embed: Object.fromEntries(
        (
          [
            ['batchSize', 'embed-batch'],
            ['stepsPerEpoch', 'steps-per-epoch'],
            ['lrWatermark', 'lr-watermark'],
            ['lrDecoder', 'lr-decoder'],
            ['lrTrigger', 'lr-trigger'],
          ] as const
        )
          .filter(([, opt]) => args.has(opt))
          .map(([k, opt]) => [k, args.number(opt)]),
      ),
      embedLimit: limit,
      pretrainLimit: limit,
      finetuneLimit: limit,
      verifySize: args.number('verify-size'),
      seed: args.number('seed'),
      independentSeeds: numbers(args.list('independent-seeds'), '--independent-seeds', true),
      pretrainEpochs: args.number('pretrain-epochs'),
      methods,
      budgets: numbers(args.list('budgets'), '--budgets', true),
      queryData: args.string('query-data'),
      stealEpochs: args.number('steal-epochs'),
      defenses: joinDefenseList(args.list('defenses') ?? []),
      pruneFractions: numbers(args.list('prune-fractions'), '--prune-fractions'),
      finetuneEpochs: args.number('finetune-epochs'),
      outputNoise: numbers(args.list('output-noise'), '--output-noise'),
      inputNoise: numbers(args.list('input-noise'), '--input-noise'),
      overwrite: !args.bool('no-overwrite'),
      evalLimit: args.number('eval-limit'),
      probeEpochs: args.number('probe-epochs'),
      progress: progressFrom(args),
      fresh: args.bool('fresh'),
      log: ctx.log,
    });
    const nm = nullModelOf(res.results);
    const alpha = res.results.config.alpha as number;
    return {
      outDir: path.resolve(args.string('out-dir')!),
      files: res.files,
      ran: res.ran,
      skipped: res.skipped,
      nullHits: nm.hits,
      nullTrials: nm.trials,
      rows: res.results.cells.map((c) => {
        const v = nm.trials > 0 ? ownershipVerdict(c.hits, c.n, nm, { alpha }) : null;
        return { id: c.id, role: c.role, wr: c.wr, hits: c.hits, n: c.n, pValue: v?.pValue ?? null, log10PValue: v?.log10PValue ?? null, verdict: v?.verdict ?? null, accuracy: c.accuracy };
      }),
      wallSeconds: (Date.now() - t0) / 1000,
      backend: info().backend,
    };
  },
};
