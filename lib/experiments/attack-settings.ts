// What every grid of stealing attacks against one target takes and records
// (the steal and defend experiments, and the stolen rows of the watermark
// experiment): the target, the query data, the evaluation tasks, methods x
// budgets and the attack's training settings, checked before anything is
// spent.
import * as path from 'node:path';
import { checkBool, checkOptions, describe } from '../core/validate';
import { Encoder } from '../nn/encoders';
import { checkDataset, type Dataset } from '../data/dataset';
import { checkPath } from '../io/atomic';
import type { TaskData } from '../eval/tasks';
import { STEAL_METHODS, type StealMethod } from '../attacks/losses';
import { resolveStealConfig, type StealConfig } from '../attacks/steal';
import { checkProgressSink, type ProgressSink } from '../report/progress';

export interface AttackGridOptions {
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

/** What every attack grid records about its target, query data and attack settings. */
export interface AttackSettings {
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

/** The keys of AttackSettings: a resumed grid must match all of them. */
export const ATTACK_SETTING_KEYS = ['targetFile', 'targetSha256', 'targetArch', 'queryData', 'epochs', 'batchSize', 'lr', 'arch', 'seed', 'lambda', 'k', 'tau', 'selection'] as const;

/** The keys of AttackGridOptions. */
export const ATTACK_GRID_KEYS = ['target', 'targetFile', 'targetSha256', 'queryData', 'queryDataName', 'tasks', 'methods', 'budgets', 'steal', 'limit', 'probeEpochs', 'outDir', 'fresh', 'saveSurrogates', 'progress', 'log'] as const;

/**
 * Checks a grid's options (the keys of AttackGridOptions plus the grid's own
 * `extraKeys`), methods and budgets and every cell's attack settings before
 * anything is spent; returns the settings to record (those of the largest
 * budget: the others differ only in the budget).
 */
export function checkAttackGrid(o: AttackGridOptions, extraKeys: readonly string[] = []): AttackSettings {
  if (o === undefined) throw new TypeError('options must be an object { target, queryData, queryDataName, tasks, methods, budgets, outDir, ... }, got undefined');
  if (!Array.isArray(extraKeys) || !extraKeys.every((k) => typeof k === 'string')) throw new TypeError(`extraKeys must be an array of strings, got ${describe(extraKeys)}`);
  checkOptions(o, 'options', [...ATTACK_GRID_KEYS, ...extraKeys]);
  if (!(o.target instanceof Encoder)) throw new TypeError(`options.target must be an Encoder, got ${describe(o.target)}`);
  checkDataset(o.queryData, 'options.queryData', false);
  if (typeof o.queryDataName !== 'string' || o.queryDataName === '') throw new TypeError(`options.queryDataName must be a non-empty string, got ${describe(o.queryDataName)}`);
  if (!Array.isArray(o.tasks) || o.tasks.length === 0) throw new TypeError(`options.tasks must be a non-empty array of evaluation tasks, got ${describe(o.tasks)}`);
  Array.from(o.tasks).forEach((t, i) => {
    if (t === null || typeof t !== 'object' || typeof t.name !== 'string') throw new TypeError(`options.tasks[${i}] must be a task { name, train, test }, got ${describe(t)}`);
  });
  checkPath(o.outDir, 'options.outDir');
  if (o.targetFile !== undefined) checkPath(o.targetFile, 'options.targetFile');
  if (o.targetSha256 !== undefined && typeof o.targetSha256 !== 'string') throw new TypeError(`options.targetSha256 must be a string, got ${describe(o.targetSha256)}`);
  if (o.steal !== undefined && (o.steal === null || typeof o.steal !== 'object' || Array.isArray(o.steal))) throw new TypeError(`options.steal must be an object of attack settings, got ${describe(o.steal)}`);
  if (o.fresh !== undefined) checkBool(o.fresh, 'options.fresh');
  if (o.saveSurrogates !== undefined) checkBool(o.saveSurrogates, 'options.saveSurrogates');
  if (o.progress !== undefined) checkProgressSink(o.progress, 'options.progress');
  if (o.log !== undefined && typeof o.log !== 'function') throw new TypeError(`options.log must be a function, got ${describe(o.log)}`);
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

/** "12.3%" for each task's accuracy, for log lines. */
export function accuracyLine(acc: Record<string, number>): string {
  return Object.entries(acc).map(([k, v]) => `${k} ${(v * 100).toFixed(1)}%`).join(', ');
}
