// A grid of stealing attacks (methods x budgets) against one target, with
// the report written after every finished cell. Resumable: the results file
// is rewritten atomically after each cell, and a restart skips the cells it
// already holds. A restart must use the same settings (target file and its
// contents, query data, training and evaluation settings), since the cells
// would not be comparable otherwise; the lists of methods and budgets may
// grow (new cells are added).
//
// The attacks reach the target only through an EncoderService: one client
// per cell ("method@budget"), each with that cell's budget; unknown clients
// have budget 0. The evaluation (FidelityEvaluator) is the experimenter's
// measurement and uses the target directly; the target's side is computed
// once for the whole grid.
import * as path from 'node:path';
import { native } from '../core/native';
import type { Encoder } from '../nn/encoders';
import type { Dataset } from '../data/dataset';
import type { TaskData } from '../eval/tasks';
import { FidelityEvaluator, type FidelityReport } from '../eval/fidelity';
import { EncoderService } from '../service/service';
import { identityDefense, type Defense } from '../service/defense';
import { silentProgress, type ProgressSink } from '../report/progress';
import { STEAL_RESULTS_KIND, readStealResults, writeStealReport, type StealCellResult, type StealResults } from '../report/steal';
import { STEAL_METHODS, type StealMethod } from './losses';
import { resolveStealConfig, stealEncoder, type StealConfig, type StealResult } from './steal';
import { saveSurrogate } from './surrogate';

/** What every grid of attacks against one target takes (steal and defend experiments). */
export interface GridOptions {
  /** The victim. */
  target: Encoder;
  /** Recorded in the results (and, with targetSha256, checked on restart). */
  targetFile?: string;
  targetSha256?: string;
  /** The attackers' images. */
  queryData: Dataset;
  /** e.g. "fashion-mnist" (recorded, checked on restart). */
  queryDataName: string;
  /** Evaluation tasks; the first is the in-distribution one. */
  tasks: readonly TaskData[];
  methods: readonly StealMethod[];
  budgets: readonly number[];
  /** Training settings shared by every attack. */
  steal?: Partial<Omit<StealConfig, 'method' | 'budget' | 'clientId'>>;
  /** Evaluation images per split (recorded; the tasks must already be cut to it). */
  limit?: number;
  probeEpochs?: number;
  outDir: string;
  /** Ignore (overwrite) an existing results file instead of resuming it. */
  fresh?: boolean;
  /** Write each stolen encoder to outDir (default: true for the steal grid, false for the defend grid). */
  saveSurrogates?: boolean;
  progress?: ProgressSink;
  log?: (line: string) => void;
}

export interface StealGridOptions extends GridOptions {
  defense?: Defense;
  /** The SPEC the defense was parsed from (recorded). */
  defenseSpec?: string;
  /** Called after each cell is finished and written. */
  onCell?: (cell: StealCellResult) => void;
}

export interface StealGridResult {
  results: StealResults;
  /** Cells computed by this call. */
  ran: number;
  /** Cells found in the results file and skipped. */
  skipped: number;
  files: string[];
}

/** What every attack grid records about its target, query data and attack settings. */
export interface GridAttackSettings {
  targetFile: string | null;
  targetSha256: string | null;
  targetArch: string;
  queryData: string;
  epochs: number;
  batchSize: number;
  lr: number;
  arch: string;
  seed: number;
  lambda: number;
  k: number;
  tau: number;
  selection: string;
}

/** The keys of GridAttackSettings: a resumed grid must match all of them. */
export const ATTACK_SETTING_KEYS = ['targetFile', 'targetSha256', 'targetArch', 'queryData', 'epochs', 'batchSize', 'lr', 'arch', 'seed', 'lambda', 'k', 'tau', 'selection'] as const;

/**
 * Checks a grid's methods and budgets and every cell's attack settings before
 * anything is spent; returns the settings to record (those of the largest
 * budget: the others differ only in the budget).
 */
export function checkGridAttacks(o: GridOptions): GridAttackSettings {
  if (!Array.isArray(o.methods) || o.methods.length === 0) throw new TypeError('methods must be a non-empty array');
  for (const m of o.methods) if (!(STEAL_METHODS as readonly string[]).includes(m)) throw new RangeError(`unknown method ${JSON.stringify(m)}: expected ${STEAL_METHODS.join(', ')}`);
  if (!Array.isArray(o.budgets) || o.budgets.length === 0) throw new TypeError('budgets must be a non-empty array');
  const base = resolveStealConfig({ ...o.steal, method: o.methods[0], budget: Math.max(...o.budgets) });
  for (const b of o.budgets) resolveStealConfig({ ...o.steal, method: o.methods[0], budget: b });
  const n = o.queryData.labels.length;
  const tooBig = o.budgets.filter((b) => b > n);
  if (tooBig.length) throw new RangeError(`budget ${tooBig.join(', ')} is larger than the query set ${o.queryData.name} (${n} images)`);
  return {
    targetFile: o.targetFile ? path.resolve(o.targetFile) : null,
    targetSha256: o.targetSha256 ?? null,
    targetArch: o.target.config.arch,
    queryData: o.queryDataName,
    epochs: base.epochs,
    batchSize: base.batchSize,
    lr: base.lr,
    arch: base.arch,
    seed: base.seed,
    lambda: base.lambda,
    k: base.k,
    tau: base.tau,
    selection: base.selection,
  };
}

/** One attack's figures as a results file records them. */
export function attackCell(method: string, budget: number, res: StealResult, fid: FidelityReport, file: string | undefined): StealCellResult {
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

/** Throws unless a results file's settings match this run's on every key (a resumed grid's cells must be comparable). */
export function checkResumable<C extends object>(file: string, previous: C, current: C, keys: readonly (keyof C)[]): void {
  for (const k of keys) {
    const was = JSON.stringify(previous[k] ?? null);
    const now = JSON.stringify(current[k] ?? null);
    if (was !== now) throw new Error(`${file} was made with ${String(k)}=${was}, this run has ${now}: use the same settings to resume, or another --out-dir`);
  }
}

/** The settings a restart must share with the results file (methods and budgets excluded). */
const FIXED_KEYS = [...ATTACK_SETTING_KEYS, 'defense', 'limit', 'probeEpochs', 'tasks'] as const;

export async function runStealGrid(o: StealGridOptions): Promise<StealGridResult> {
  const log = o.log ?? (() => {});
  const progress = o.progress ?? silentProgress;
  // Validate every cell's settings before spending anything.
  const settings = checkGridAttacks(o);
  const defense = o.defense ?? identityDefense;
  const tasks = o.tasks.map((t) => t.name);

  const config: StealResults['config'] = {
    ...settings,
    defense: o.defenseSpec ?? defense.name,
    limit: o.limit ?? null,
    probeEpochs: o.probeEpochs ?? 100,
    tasks,
    methods: [...o.methods],
    budgets: [...o.budgets].sort((a, b) => a - b),
  };

  const file = path.join(o.outDir, 'results.json');
  const previous = o.fresh ? null : readStealResults(file);
  let results: StealResults;
  if (previous) {
    checkResumable(file, previous.config, config, FIXED_KEYS);
    results = previous;
    results.config.methods = [...new Set([...previous.config.methods, ...config.methods])];
    results.config.budgets = [...new Set([...previous.config.budgets, ...config.budgets])].sort((a, b) => a - b);
  } else {
    results = { kind: STEAL_RESULTS_KIND, version: 1, config, target: { file: o.targetFile ? path.resolve(o.targetFile) : undefined, arch: o.target.config.arch, accuracy: null }, tasks, cells: [], updatedAt: new Date().toISOString() };
  }

  const service = new EncoderService(o.target, { defaultBudget: 0, defense });
  const evaluator = new FidelityEvaluator(o.target, o.tasks, { probeEpochs: o.probeEpochs });
  let ran = 0;
  let skipped = 0;
  let files: string[] = [];
  for (const method of o.methods) {
    for (const budget of config.budgets) {
      if (results.cells.some((c) => c.method === method && c.budget === budget)) {
        skipped++;
        log(`${method} @ ${budget}: already in ${file}, skipped`);
        continue;
      }
      const clientId = `${method}@${budget}`;
      service.setBudget(clientId, budget);
      log(`${method} @ ${budget}: stealing (${settings.epochs} epochs)`);
      const res = await stealEncoder(service, o.queryData, { ...o.steal, method, budget, clientId, progress });
      try {
        log(`${method} @ ${budget}: evaluating`);
        const fid = evaluator.evaluate(res.surrogate);
        let fileName: string | undefined;
        if (o.saveSurrogates !== false) {
          fileName = `stolen-${method}-${budget}.safetensors`;
          saveSurrogate(path.join(o.outDir, fileName), res.surrogate, { attack: { ...res.config }, queriesSpent: res.queriesSpent, queryData: o.queryDataName, target: config.targetFile, history: res.history });
        }
        const cell = attackCell(method, budget, res, fid, fileName);
        results.cells.push(cell);
        results.target.accuracy = fid.targetAccuracy;
        results.updatedAt = new Date().toISOString();
        files = writeStealReport(o.outDir, results);
        ran++;
        log(`${method} @ ${budget}: accuracy ${Object.entries(fid.stolenAccuracy).map(([k, v]) => `${k} ${(v * 100).toFixed(1)}%`).join(', ')}, agreement ${(fid.agreement * 100).toFixed(1)}%`);
        o.onCell?.(cell);
      } finally {
        res.surrogate.dispose();
        // Hand the allocator's cached blocks back: the next cell's batch
        // sizes (budget % batchSize tails) differ, so they would not be reused.
        native.clearCache();
      }
    }
  }
  // Re-render (the cells may all have been there already).
  files = writeStealReport(o.outDir, results);
  return { results, ran, skipped, files };
}
