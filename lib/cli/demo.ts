// `encsec demo`: the whole story in one command. Pre-trains a cnn-small
// target with SimCLR on Fashion-MNIST, puts it behind an EncoderService,
// steals it with each attack at one query budget, evaluates every copy
// against the target (linear probes on Fashion-MNIST and MNIST, agreement,
// mean cosine) and writes the report folder (results.json, results.md,
// chart*.svg). `--quick` shrinks everything to run in about a minute on two
// CPU cores; its numbers only show that the pipeline works.
import * as path from 'node:path';
import type { Command } from './commands';
import { applyDevice, fileSha256, loadEvalTasks, progressFrom } from './steal';
import { loadDataset } from '../data/builtin';
import { pretrainSimclr } from '../ssl/simclr';
import { saveEncoder } from '../io/checkpoint';
import { STEAL_METHODS } from '../attacks/losses';
import { runStealGrid } from '../attacks/grid';
import { cellSummary, stealResultsMarkdown, sortedCells } from '../report/steal';
import { info } from '../core/backend';
import { native } from '../core/native';

export const DEMO_SETTINGS = {
  quick: { targetImages: 2048, targetEpochs: 1, budget: 500, epochs: 3, limit: 1000 },
  full: { targetImages: 60000, targetEpochs: 5, budget: 3000, epochs: 20, limit: undefined as number | undefined },
};

export const demoCommand: Command = {
  summary: 'pre-train a small target, steal it with every attack, write a report (--quick: about a minute)',
  options: {
    quick: { kind: 'boolean', help: `tiny settings: target ${DEMO_SETTINGS.quick.targetImages} images x ${DEMO_SETTINGS.quick.targetEpochs} epoch, budget ${DEMO_SETTINGS.quick.budget}, ${DEMO_SETTINGS.quick.epochs} epochs, eval on ${DEMO_SETTINGS.quick.limit} images per split` },
    'out-dir': { kind: 'string', help: 'report folder (default encsec-demo, or encsec-demo-quick with --quick)' },
    budget: { kind: 'int', help: `query budget of every attack (default ${DEMO_SETTINGS.full.budget})` },
    epochs: { kind: 'int', help: `surrogate training epochs (default ${DEMO_SETTINGS.full.epochs})` },
    'target-epochs': { kind: 'int', help: `SimCLR epochs of the target (default ${DEMO_SETTINGS.full.targetEpochs})` },
    'target-images': { kind: 'int', help: `Fashion-MNIST TRAIN images the target is trained on (default ${DEMO_SETTINGS.full.targetImages})` },
    limit: { kind: 'int', help: 'evaluation: first N images per split (default: all)' },
    seed: { kind: 'int', help: 'seed of everything', default: 0 },
    device: { kind: 'string', help: 'cpu | cuda (default: the backend in use)' },
    progress: { kind: 'string', help: 'bar | json | silent (default: bar on a terminal, else json)' },
  },
  async run(args, ctx) {
    applyDevice(args);
    const quick = args.bool('quick');
    const d = quick ? DEMO_SETTINGS.quick : DEMO_SETTINGS.full;
    const s = {
      targetImages: args.number('target-images') ?? d.targetImages,
      targetEpochs: args.number('target-epochs') ?? d.targetEpochs,
      budget: args.number('budget') ?? d.budget,
      epochs: args.number('epochs') ?? d.epochs,
      limit: args.number('limit') ?? d.limit,
      seed: args.number('seed')!,
    };
    const outDir = path.resolve(args.string('out-dir') ?? (quick ? 'encsec-demo-quick' : 'encsec-demo'));
    const progress = progressFrom(args);
    const t0 = Date.now();
    const cpu0 = process.cpuUsage();

    // 1. The victim: SimCLR on Fashion-MNIST.
    ctx.log(`pre-training the target (cnn-small, SimCLR, ${s.targetImages} Fashion-MNIST images x ${s.targetEpochs} epoch(s))`);
    const train = loadDataset('fashion-mnist', { split: 'train', limit: s.targetImages });
    const pre = pretrainSimclr(train, { arch: 'cnn-small', epochs: s.targetEpochs, seed: s.seed, progress });
    pre.head.dispose();
    const target = pre.encoder;
    const targetFile = path.join(outDir, 'target.safetensors');
    saveEncoder(targetFile, target, { task: 'fashion-mnist', trainImages: s.targetImages, epochs: s.targetEpochs, seed: s.seed, history: pre.history });
    const pretrainSeconds = (Date.now() - t0) / 1000;
    native.clearCache(); // pre-training's (large) cached blocks are not reused by the attacks
    try {
      // 2. The attacks, through the service; 3. the evaluation and the report.
      const queryData = loadDataset('fashion-mnist', { split: 'train' });
      const tasks = await loadEvalTasks(['fashion-mnist', 'mnist'], s.limit, 1);
      const grid = await runStealGrid({
        target,
        targetFile,
        targetSha256: fileSha256(targetFile),
        queryData,
        queryDataName: 'fashion-mnist',
        tasks,
        methods: [...STEAL_METHODS],
        budgets: [s.budget],
        steal: { epochs: s.epochs, seed: s.seed },
        limit: s.limit,
        outDir,
        fresh: true,
        progress,
        log: ctx.log,
      });
      ctx.log('');
      ctx.log(stealResultsMarkdown(grid.results));
      ctx.log(`report: ${outDir}`);
      const cpu = process.cpuUsage(cpu0);
      return {
        outDir,
        quick,
        settings: s,
        targetAccuracy: grid.results.target.accuracy,
        cells: sortedCells(grid.results).map(cellSummary),
        files: [targetFile, ...grid.files],
        pretrainSeconds,
        wallSeconds: (Date.now() - t0) / 1000,
        cpuSeconds: (cpu.user + cpu.system) / 1e6,
        backend: info().backend,
      };
    } finally {
      target.dispose();
    }
  },
};
