// One stealing cell, the unit of the steal and defend grids, of `encsec
// steal`, and of the watermark experiment's "stolen from F_w" rows: put the
// target behind an EncoderService (one client with the cell's budget, the
// given defense), steal it, measure the copy against the raw target
// (FidelityEvaluator: the experimenter's measurement, not the attacker's),
// optionally save the copy, and free it.
import * as path from 'node:path';
import { checkInt, checkObject, checkOptions, describe } from '../core/validate';
import { Encoder } from '../nn/encoders';
import { checkDataset, type Dataset } from '../data/dataset';
import { FidelityEvaluator, type FidelityReport } from '../eval/fidelity';
import { checkPath } from '../io/atomic';
import { EncoderService } from '../service/service';
import { identityDefense, type Defense } from '../defenses/defense';
import type { StealMethod } from '../attacks/losses';
import { stealEncoder, type StealConfig, type StealResult } from '../attacks/steal';
import { saveSurrogate, type Surrogate } from '../attacks/surrogate';
import { checkProgressSink, type ProgressSink } from '../report/progress';
import type { StealCellResult } from '../report/steal';

export interface StealCellOptions {
  /** The victim. */
  target: Encoder;
  /** The service's defense (default: none). A stateful one keeps its state per client. */
  defense?: Defense;
  /** The attacker's images. */
  queryData: Dataset;
  method: StealMethod;
  budget: number;
  /** Training settings of the attack (its defaults otherwise). */
  steal?: Partial<Omit<StealConfig, 'method' | 'budget' | 'clientId'>>;
  /** The attacker's client id at the service (the noise streams of some defenses depend on it). */
  clientId: string;
  evaluator: FidelityEvaluator;
  /** Where to write the stolen encoder, and what to record in it. */
  save?: { file: string; metadata(steal: Omit<StealResult, 'surrogate'>, fidelity: FidelityReport): Record<string, unknown> };
  progress?: ProgressSink;
  log?: (line: string) => void;
  /** Looks at the stolen encoder before it is freed (e.g. a watermark check); its result is returned as `inspected`. */
  inspect?: (surrogate: Surrogate) => unknown | Promise<unknown>;
}

export interface StealCellOutcome {
  cell: StealCellResult;
  fidelity: FidelityReport;
  /** The defense's numbers about the attacker at the end of its queries. */
  attackerStats: Record<string, number>;
  /** The attack's record, without the (freed) surrogate. */
  steal: Omit<StealResult, 'surrogate'>;
  inspected?: unknown;
}

/** One attack's figures as a results file records them. */
export function attackCell(method: string, budget: number, res: Omit<StealResult, 'surrogate'>, fid: FidelityReport, file: string | undefined): StealCellResult {
  if (typeof method !== 'string' || method === '') throw new TypeError(`method must be a non-empty string, got ${describe(method)}`);
  checkInt(budget, 'budget', { min: 0, max: Number.MAX_SAFE_INTEGER });
  checkObject(res, 'res');
  if (!Array.isArray(res.history)) throw new TypeError(`res.history must be an array of epochs, got ${describe(res.history)}`);
  res.history.forEach((h, i) => {
    if (h === null || typeof h !== 'object' || typeof h.loss !== 'number') throw new TypeError(`res.history[${i}] must be an epoch record { epoch, loss, seconds }, got ${describe(h)}`);
  });
  for (const k of ['queriesSpent', 'querySeconds', 'trainSeconds', 'wallSeconds'] as const) {
    if (typeof res[k] !== 'number') throw new TypeError(`res.${k} must be a number, got ${describe(res[k])}`);
  }
  checkObject(fid, 'fid');
  if (fid.tasks === null || typeof fid.tasks !== 'object') throw new TypeError(`fid.tasks must be an object of per-task figures, got ${describe(fid.tasks)}`);
  for (const [k, v] of Object.entries(fid.tasks)) {
    if (v === null || typeof v !== 'object') throw new TypeError(`fid.tasks.${k} must be an object of figures, got ${describe(v)}`);
  }
  if (file !== undefined && typeof file !== 'string') throw new TypeError(`file must be a string or undefined, got ${describe(file)}`);
  const last = res.history[res.history.length - 1];
  return {
    method,
    budget,
    queriesSpent: res.queriesSpent,
    stolenAccuracy: fid.stolenAccuracy,
    agreement: fid.agreement,
    meanCosine: fid.meanCosine,
    tasks: Object.fromEntries(
      Object.entries(fid.tasks).map(([k, v]) => [k, { agreement: v.agreement, meanCosine: v.meanCosine, stolenAccuracy: v.stolenAccuracy, targetAccuracy: v.targetAccuracy }]),
    ),
    finalLoss: last ? last.loss : null,
    querySeconds: res.querySeconds,
    trainSeconds: res.trainSeconds,
    wallSeconds: res.wallSeconds,
    evalSeconds: fid.evalSeconds,
    file,
    history: res.history,
  };
}

const STEAL_CELL_KEYS = ['target', 'defense', 'queryData', 'method', 'budget', 'steal', 'clientId', 'evaluator', 'save', 'progress', 'log', 'inspect'];

function checkStealCell(o: StealCellOptions): void {
  if (o === undefined) throw new TypeError('o must be an object { target, queryData, method, budget, clientId, evaluator, ... }, got undefined');
  checkOptions(o, 'o', STEAL_CELL_KEYS);
  if (!(o.target instanceof Encoder)) throw new TypeError(`o.target must be an Encoder, got ${describe(o.target)}`);
  if (o.defense !== undefined && (o.defense === null || typeof o.defense !== 'object' || typeof o.defense.apply !== 'function')) throw new TypeError(`o.defense must be a Defense ({ name, apply }), got ${describe(o.defense)}`);
  checkDataset(o.queryData, 'o.queryData', false);
  if (typeof o.clientId !== 'string' || o.clientId === '') throw new TypeError(`o.clientId must be a non-empty string, got ${describe(o.clientId)}`);
  if (!(o.evaluator instanceof FidelityEvaluator)) throw new TypeError(`o.evaluator must be a FidelityEvaluator, got ${describe(o.evaluator)}`);
  if (o.steal !== undefined && (o.steal === null || typeof o.steal !== 'object' || Array.isArray(o.steal))) throw new TypeError(`o.steal must be an object of attack settings, got ${describe(o.steal)}`);
  if (o.save !== undefined) {
    const s = checkOptions<NonNullable<StealCellOptions['save']>>(o.save, 'o.save', ['file', 'metadata']);
    checkPath(s.file, 'o.save.file');
    if (typeof s.metadata !== 'function') throw new TypeError(`o.save.metadata must be a function, got ${describe(s.metadata)}`);
  }
  if (o.progress !== undefined) checkProgressSink(o.progress, 'o.progress');
  for (const k of ['log', 'inspect'] as const) {
    if (o[k] !== undefined && typeof o[k] !== 'function') throw new TypeError(`o.${k} must be a function, got ${describe(o[k])}`);
  }
}

export async function runStealCell(o: StealCellOptions): Promise<StealCellOutcome> {
  checkStealCell(o);
  const log = o.log ?? (() => {});
  const service = new EncoderService(o.target, { defaultBudget: 0, budgets: { [o.clientId]: o.budget }, defense: o.defense ?? identityDefense });
  const res = await stealEncoder(service, o.queryData, { ...o.steal, method: o.method, budget: o.budget, clientId: o.clientId, progress: o.progress });
  const { surrogate, ...steal } = res;
  try {
    log(`${o.method} @ ${o.budget}: evaluating`);
    const fidelity = o.evaluator.evaluate(surrogate);
    if (o.save) saveSurrogate(o.save.file, surrogate, o.save.metadata(steal, fidelity));
    const inspected = o.inspect ? await o.inspect(surrogate) : undefined;
    const cell = attackCell(o.method, o.budget, steal, fidelity, o.save ? path.basename(o.save.file) : undefined);
    return { cell, fidelity, attackerStats: service.clientStats(o.clientId), steal, inspected };
  } finally {
    surrogate.dispose();
  }
}

/** A grid's view of one cell: the grid's shared settings plus this cell's method, budget and defense. */
export interface GridCellOptions {
  target: Encoder;
  queryData: Dataset;
  queryDataName: string;
  steal?: StealCellOptions['steal'];
  evaluator: FidelityEvaluator;
  progress?: ProgressSink;
  log?: (line: string) => void;
  /** Recorded in the saved copy. */
  targetFile: string | null;
}

/**
 * The cell of a stealing grid: client "method@budget", the copy saved as
 * `saveAs` (when given) with the attack's settings, the query data, the
 * target and `record` in its metadata.
 */
export function runGridStealCell(
  g: GridCellOptions,
  cell: { method: StealMethod; budget: number; defense?: Defense; saveAs?: string; record?: Record<string, unknown> },
): Promise<StealCellOutcome> {
  if (g === undefined) throw new TypeError('g must be an object { target, queryData, queryDataName, evaluator, targetFile, ... }, got undefined');
  checkOptions(g, 'g', ['target', 'queryData', 'queryDataName', 'steal', 'evaluator', 'progress', 'log', 'targetFile']);
  if (typeof g.queryDataName !== 'string') throw new TypeError(`g.queryDataName must be a string, got ${describe(g.queryDataName)}`);
  if (g.targetFile !== null && typeof g.targetFile !== 'string') throw new TypeError(`g.targetFile must be a string or null, got ${describe(g.targetFile)}`);
  if (cell === undefined) throw new TypeError('cell must be an object { method, budget, defense?, saveAs?, record? }, got undefined');
  checkOptions(cell, 'cell', ['method', 'budget', 'defense', 'saveAs', 'record']);
  if (typeof cell.method !== 'string') throw new TypeError(`cell.method must be a steal method name, got ${describe(cell.method)}`);
  checkInt(cell.budget, 'cell.budget', { min: 1, max: 2 ** 31 - 1 });
  if (cell.saveAs !== undefined) checkPath(cell.saveAs, 'cell.saveAs');
  if (cell.record !== undefined) checkObject(cell.record, 'cell.record');
  return runStealCell({
    target: g.target,
    defense: cell.defense,
    queryData: g.queryData,
    method: cell.method,
    budget: cell.budget,
    steal: g.steal,
    clientId: `${cell.method}@${cell.budget}`,
    evaluator: g.evaluator,
    progress: g.progress,
    log: g.log,
    save: cell.saveAs
      ? {
          file: cell.saveAs,
          metadata: (res) => ({ attack: { ...res.config }, ...cell.record, queriesSpent: res.queriesSpent, queryData: g.queryDataName, target: g.targetFile, history: res.history }),
        }
      : undefined,
  });
}

