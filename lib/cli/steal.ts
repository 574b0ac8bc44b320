// `encsec steal`: steal a target encoder through the service with one method
// and one query budget, evaluate the stolen encoder against the target and
// write it: one steal cell (lib/experiments/steal-cell.ts).
import * as path from 'node:path';
import type { Command } from './command';
import { UsageError } from './args';
import { checkWritableFile } from './files';
import { ATTACK_OPTIONS, applyDevice, checkStealSettings, defined, parseMethod, progressFrom, stealSettings } from './options';
import { parseDefense } from '../defenses/spec';
import { calibrateDefense } from '../defenses/calibrate';
import { STEAL_METHODS } from '../attacks/losses';
import { FidelityEvaluator } from '../eval/fidelity';
import { DEFAULT_EVAL_TASKS, loadEvalTasks, loadQueryData, loadTarget } from '../experiments/setup';
import { runStealCell } from '../experiments/steal-cell';
import { info } from '../core/backend';

export const stealCommand: Command = {
  summary: 'steal an encoder through its service (one method, one budget) and evaluate the copy',
  options: {
    ...ATTACK_OPTIONS,
    method: { kind: 'string', help: `attack: ${STEAL_METHODS.join(' | ')}`, required: true, choices: STEAL_METHODS },
    budget: { kind: 'int', help: 'query budget: distinct images queried, each once', required: true, min: 2 },
    out: { kind: 'string', help: 'stolen encoder file to write (safetensors)', required: true },
  },
  onInterrupt(args) {
    return `Nothing of this attack was kept (${args.string('out')} is written when it finishes); run the command again to start over.`;
  },
  async run(args, ctx) {
    const out = args.string('out')!;
    checkWritableFile(out, '--out');
    const method = parseMethod(args.string('method'));
    const budget = args.number('budget')!;
    const defenseSpec = args.string('defense') ?? 'none';
    let defense;
    try {
      defense = parseDefense(defenseSpec);
    } catch (e) {
      throw new UsageError(`--defense: ${(e as Error).message}`);
    }
    const settings = defined(stealSettings(args));
    // Every attack setting is checked before anything is loaded or spent.
    checkStealSettings(stealSettings(args), method, [budget]);
    applyDevice(args);
    const progress = progressFrom(args);
    const target = loadTarget(args.string('target'));
    try {
      const inC = target.encoder.config.inChannels;
      const queryName = args.string('query-data') ?? 'fashion-mnist';
      const queryData = await loadQueryData(queryName, inC);
      const taskNames = args.list('tasks') ?? [...DEFAULT_EVAL_TASKS];
      const limit = args.number('limit');
      const tasks = await loadEvalTasks(taskNames, limit, inC);
      const calibrated = calibrateDefense(defense, target.encoder, tasks[0].train);
      if (calibrated) ctx.log(`defense calibrated on ${calibrated} ${tasks[0].name} train images`);
      ctx.log(`stealing ${path.basename(target.file)} with ${method}: ${budget} queries of ${queryData.name}`);
      const evaluator = new FidelityEvaluator(target.encoder, tasks, { probeEpochs: args.number('probe-epochs') });
      const { steal: res, fidelity: fid, attackerStats } = await runStealCell({
        target: target.encoder,
        defense,
        queryData,
        method,
        budget,
        steal: settings,
        clientId: 'attacker',
        evaluator,
        progress,
        log: ctx.log,
        save: {
          file: out,
          metadata: (r, f) => ({ attack: { ...r.config }, queriesSpent: r.queriesSpent, queryData: queryName, target: target.file, defense: defenseSpec, fidelity: { targetAccuracy: f.targetAccuracy, stolenAccuracy: f.stolenAccuracy, agreement: f.agreement, meanCosine: f.meanCosine } }),
        },
      });
      ctx.log(`wrote ${path.resolve(out)}`);
      const last = res.history[res.history.length - 1];
      return {
        out: path.resolve(out),
        target: target.file,
        targetArch: target.encoder.config.arch,
        method,
        queryData: queryName,
        budget,
        queriesSpent: res.queriesSpent,
        arch: res.config.arch,
        epochs: res.config.epochs,
        batchSize: res.config.batchSize,
        lr: res.config.lr,
        seed: res.config.seed,
        lambda: res.config.lambda,
        k: res.config.k,
        tau: res.config.tau,
        selection: res.config.selection,
        defense: defenseSpec,
        defenseStats: attackerStats,
        targetAccuracy: fid.targetAccuracy,
        stolenAccuracy: fid.stolenAccuracy,
        agreement: fid.agreement,
        meanCosine: fid.meanCosine,
        tasks: fid.tasks,
        finalLoss: last ? last.loss : null,
        querySeconds: res.querySeconds,
        trainSeconds: res.trainSeconds,
        wallSeconds: res.wallSeconds,
        evalSeconds: fid.evalSeconds + evaluator.targetSeconds,
        backend: info().backend,
        history: res.history,
      };
    } finally {
      target.encoder.dispose();
    }
  },
};
