// `encsec steal`: steal a target encoder with one method and one query
// budget, evaluate the stolen encoder and write it.
//
// --target FILE: the target behind an in-process service with --defense, the
// copy measured against the target (one steal cell, lib/experiments/steal-cell.ts).
// --target URL: an encsec server (`encsec serve`) answers the queries through
// RemoteEncoder, with the defense the server gives the key (so --defense is
// refused). Agreement and cosine need the target's own embeddings: with
// --reference FILE (the served encoder's file, e.g. a researcher attacking
// their own server) they are measured against that file exactly as for a
// file target; without it only the copy's own probe accuracy is reported,
// and no query beyond --budget is spent.
import * as path from 'node:path';
import type { Command, CommandContext } from './command';
import { UsageError, type ParsedArgs } from './args';
import { checkWritableFile } from './files';
import { ATTACK_OPTIONS, applyDevice, checkStealSettings, defined, parseMethod, progressFrom, stealSettings } from './options';
import { API_KEY_ENV, API_KEY_FILE_OPTION, apiKeyFrom, checkInputShape, checkNoApiKeyFile, checkRemaining, checkTargetUrl, connectRemote, isUrl } from './remote';
import { parseDefense } from '../defenses/spec';
import { calibrateDefense } from '../defenses/calibrate';
import { STEAL_METHODS, type StealMethod } from '../attacks/losses';
import { stealEncoder, type StealResult } from '../attacks/steal';
import { saveSurrogate } from '../attacks/surrogate';
import { FidelityEvaluator, probeAccuracies, type FidelityReport } from '../eval/fidelity';
import { DEFAULT_EVAL_TASKS, loadEvalTasks, loadQueryData, loadTarget } from '../experiments/setup';
import { runStealCell } from '../experiments/steal-cell';
import type { ProgressSink } from '../report/progress';
import { info } from '../core/backend';

/** Said in the JSON and the log when a URL target is stolen without --reference. */
export const NO_REFERENCE_NOTE = 'agreement and meanCosine need --reference FILE (the served encoder): measuring them through the server would cost queries beyond --budget, so only the copy\'s own probe accuracy was measured';

export const stealCommand: Command = {
  summary: 'steal an encoder (a file behind a simulated service, or an encsec server by URL) with one method and one budget, and evaluate the copy',
  options: {
    ...ATTACK_OPTIONS,
    target: {
      kind: 'string',
      help: `the victim: an encoder file (safetensors), served in process with --defense; or the URL of an encsec server (http://HOST:PORT), queried with the API key in $${API_KEY_ENV} or --api-key-file`,
      required: true,
    },
    defense: { ...ATTACK_OPTIONS.defense, help: `${ATTACK_OPTIONS.defense.help}; --target FILE only (a server applies the defense of the key)` },
    'api-key-file': API_KEY_FILE_OPTION,
    reference: { kind: 'string', help: 'with a --target URL: the served encoder\'s file, to measure agreement and cosine against (without it: the copy\'s own probe accuracy only)' },
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
    const targetArg = args.string('target')!;
    const url = isUrl(targetArg) ? checkTargetUrl(targetArg) : null;
    let apiKey: string | null = null;
    if (url !== null) {
      if (args.has('defense')) {
        throw new UsageError('--defense cannot be combined with a --target URL: the server applies the defense its key has (encsec keys add --defense); drop --defense, or give --target an encoder file to simulate a defended service');
      }
    } else {
      if (args.has('reference')) throw new UsageError('--reference applies to a --target URL only (a target file is its own reference)');
      checkNoApiKeyFile(args);
    }
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
    if (url !== null) apiKey = apiKeyFrom(args);
    applyDevice(args);
    const progress = progressFrom(args);
    if (url !== null) return stealRemote(args, ctx, { url, apiKey: apiKey!, out, method, budget, settings, progress });
    const target = loadTarget(targetArg);
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
      return stealResult({
        out,
        target: target.file,
        targetArch: target.encoder.config.arch,
        method,
        queryName,
        budget,
        res,
        defense: defenseSpec,
        defenseStats: attackerStats,
        fid,
        evalSeconds: fid.evalSeconds + evaluator.targetSeconds,
      });
    } finally {
      target.encoder.dispose();
    }
  },
};

interface RemoteSteal {
  url: string;
  apiKey: string;
  out: string;
  method: StealMethod;
  budget: number;
  settings: Partial<ReturnType<typeof stealSettings>>;
  progress: ProgressSink;
}

/** --target URL: the queries go to the server; the copy is measured against --reference when given. */
async function stealRemote(args: ParsedArgs, ctx: CommandContext, o: RemoteSteal): Promise<Record<string, unknown>> {
  // What the server serves and what the key may spend, before anything is loaded or queried.
  const target = await connectRemote(o.url, o.apiKey, 'attacker');
  checkRemaining(target, o.budget, `--budget ${o.budget}`);
  const [C, H, W] = target.health.inputShape;
  if (C !== 1 && C !== 3) throw new Error(`the server at ${target.url} takes ${C}-channel images; encsec steal queries 1- or 3-channel images`);
  const refFile = args.string('reference');
  const reference = refFile === undefined ? null : loadTarget(refFile, '--reference');
  try {
    if (reference) {
      const r = reference.encoder;
      if (r.config.inChannels !== C || r.dim !== target.health.dim) {
        throw new UsageError(`--reference ${refFile} is not the encoder the server at ${target.url} serves: it takes ${r.config.inChannels}-channel images and answers ${r.dim}-d embeddings, the server ${C}-channel and ${target.health.dim}-d (nothing was queried)`);
      }
    }
    const queryName = args.string('query-data') ?? 'fashion-mnist';
    const queryData = await loadQueryData(queryName, C);
    checkInputShape(target, [queryData.channels, queryData.height, queryData.width], `--query-data ${queryName}`);
    const taskNames = args.list('tasks') ?? [...DEFAULT_EVAL_TASKS];
    const tasks = await loadEvalTasks(taskNames, args.number('limit'), C);
    const probeEpochs = args.number('probe-epochs');
    const evaluator = reference ? new FidelityEvaluator(reference.encoder, tasks, { probeEpochs }) : null;
    ctx.log(`stealing ${target.url} (key ${target.key.keyId}, defense ${target.key.defense}, ${C}x${H}x${W} images) with ${o.method}: ${o.budget} queries of ${queryData.name}`);
    const { surrogate, ...res } = await stealEncoder(target.remote, queryData, { ...o.settings, method: o.method, budget: o.budget, clientId: 'attacker', progress: o.progress });
    // The defense the server applied, as its answers said.
    const defense = target.remote.describe().defense ?? target.key.defense;
    let fid: FidelityReport | null = null;
    let own: ReturnType<typeof probeAccuracies> | null = null;
    try {
      ctx.log(`${o.method} @ ${o.budget}: evaluating`);
      if (evaluator) fid = evaluator.evaluate(surrogate);
      else {
        own = probeAccuracies(surrogate, tasks, { probeEpochs });
        ctx.log(NO_REFERENCE_NOTE);
      }
      saveSurrogate(o.out, surrogate, {
        attack: { ...res.config },
        queriesSpent: res.queriesSpent,
        queryData: queryName,
        target: target.url,
        reference: reference ? reference.file : null,
        defense,
        fidelity: fid
          ? { targetAccuracy: fid.targetAccuracy, stolenAccuracy: fid.stolenAccuracy, agreement: fid.agreement, meanCosine: fid.meanCosine }
          : { targetAccuracy: null, stolenAccuracy: own!.accuracy, agreement: null, meanCosine: null },
      });
    } finally {
      surrogate.dispose();
    }
    ctx.log(`wrote ${path.resolve(o.out)}`);
    return {
      ...stealResult({
        out: o.out,
        target: target.url,
        targetArch: reference ? reference.encoder.config.arch : null,
        method: o.method,
        queryName,
        budget: o.budget,
        res,
        defense,
        defenseStats: target.remote.clientStats('attacker'),
        fid,
        own,
        evalSeconds: fid ? fid.evalSeconds + evaluator!.targetSeconds : own!.evalSeconds,
      }),
      remote: { url: target.url, keyId: target.key.keyId, inputShape: target.health.inputShape, dim: target.health.dim },
      reference: reference ? reference.file : null,
      ...(fid ? {} : { note: NO_REFERENCE_NOTE }),
    };
  } finally {
    reference?.encoder.dispose();
  }
}

/** The command's JSON object (file or URL target); the fidelity figures are null when there is no reference to measure against. */
function stealResult(r: {
  out: string;
  target: string;
  targetArch: string | null;
  method: StealMethod;
  queryName: string;
  budget: number;
  res: Omit<StealResult, 'surrogate'>;
  defense: string;
  defenseStats: Record<string, number>;
  fid: FidelityReport | null;
  own?: ReturnType<typeof probeAccuracies> | null;
  evalSeconds: number;
}): Record<string, unknown> {
  const { res, fid, own } = r;
  const last = res.history[res.history.length - 1];
  return {
    out: path.resolve(r.out),
    target: r.target,
    targetArch: r.targetArch,
    method: r.method,
    queryData: r.queryName,
    budget: r.budget,
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
    defense: r.defense,
    defenseStats: r.defenseStats,
    targetAccuracy: fid ? fid.targetAccuracy : null,
    stolenAccuracy: fid ? fid.stolenAccuracy : own!.accuracy,
    agreement: fid ? fid.agreement : null,
    meanCosine: fid ? fid.meanCosine : null,
    tasks: fid ? fid.tasks : Object.fromEntries(Object.entries(own!.tasks).map(([k, v]) => [k, { stolenAccuracy: v.accuracy, trainImages: v.trainImages, testImages: v.testImages }])),
    finalLoss: last ? last.loss : null,
    querySeconds: res.querySeconds,
    trainSeconds: res.trainSeconds,
    wallSeconds: res.wallSeconds,
    evalSeconds: r.evalSeconds,
    backend: info().backend,
    history: res.history,
  };
}
