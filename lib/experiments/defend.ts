// The defense experiment: for each defense setting, what it costs an honest
// client (utility) and what it leaves a stealer (security), resumable
// (ExperimentGrid).
//
// Utility: for each evaluation task, one honest client ("honest:<task>")
// queries that task's TRAIN and then TEST images through the defended
// service (so a stateful defense such as b4b sees only that client's own,
// task-shaped queries) and trains the linear probe of lib/eval/probe.ts on
// the answers; its TEST accuracy is the utility.
//
// Security: every attack (method x budget) is a steal cell (steal-cell.ts)
// through the defended service, measured against the raw target.
//
// Every piece of work gets a fresh defense (parseDefense of its SPEC, fresh
// state, calibrated on the first task's TRAIN images when it needs it, e.g.
// b4b:center=true), so a cell computed after a restart equals the one an
// uninterrupted run would have computed. The lists of defenses, methods and
// budgets may grow on a restart. The undefended service ("none") is always
// part of the grid, as the reference point.
import * as path from 'node:path';
import { checkInt, checkOptions, describe } from '../core/validate';
import { Encoder } from '../nn/encoders';
import type { Dataset } from '../data/dataset';
import { checkDataset, datasetSize } from '../data/dataset';
import type { TaskData } from '../eval/tasks';
import { FidelityEvaluator } from '../eval/fidelity';
import { linearProbe, type Embeddings } from '../eval/probe';
import { EncoderService } from '../service/service';
import { checkEmbeddingSource, type EmbeddingSource } from '../service/source';
import { defenseSpec, type Defense } from '../defenses/defense';
import { parseDefense } from '../defenses/spec';
import { CALIBRATION_IMAGES, calibrateDefense } from '../defenses/calibrate';
import { silentProgress } from '../report/progress';
import { DEFEND_RESULTS_KIND, UNDEFENDED, readDefendResults, writeDefendReport, type DefendCellResult, type DefendResults, type DefenseUtility } from '../report/defend';
import { ExperimentGrid, unionList } from './grid';
import { ATTACK_SETTING_KEYS, accuracyLine, checkAttackGrid, type AttackGridOptions } from './attack-settings';
import { runGridStealCell } from './steal-cell';

export interface DefenseGridOptions extends AttackGridOptions {
  /** Defense SPECs (parseDefense); "none" is added first if missing. The tasks are the honest clients' too. */
  defenses: readonly string[];
  /** Images of the first task's TRAIN split a defense that needs it is calibrated on (default 2000). */
  calibrationImages?: number;
  /** Called after each utility measurement / attack is finished and written. */
  onUtility?: (u: DefenseUtility) => void;
  onCell?: (cell: DefendCellResult) => void;
}

export interface DefenseGridResult {
  results: DefendResults;
  /** Utility measurements and attacks computed by this call. */
  ran: number;
  /** Found in the results file and skipped. */
  skipped: number;
  files: string[];
}

/** The settings a restart must share with the results file (defenses, methods and budgets excluded). */
const FIXED_KEYS = [...ATTACK_SETTING_KEYS, 'limit', 'probeEpochs', 'tasks', 'calibrationImages'] as const;

/** Canonical SPECs, "none" first, duplicates dropped; each SPEC is parsed (a bad one fails before any work). */
export function canonicalDefenses(specs: readonly string[]): string[] {
  if (!Array.isArray(specs)) throw new TypeError(`specs must be an array of defense SPECs, got ${describe(specs)}`);
  Array.from(specs).forEach((s, i) => {
    if (typeof s !== 'string') throw new TypeError(`specs[${i}] must be a defense SPEC string, got ${describe(s)}`);
  });
  const out = [UNDEFENDED];
  for (const s of specs) {
    const c = defenseSpec(parseDefense(s));
    if (!out.includes(c)) out.push(c);
  }
  return out;
}

/** A fresh defense for one piece of work, calibrated if it needs it; returns it with the images used. */
function freshDefense(spec: string, target: Encoder, calibration: Dataset, images: number): { defense: Defense; calibrationImages: number } {
  const defense = parseDefense(spec);
  return { defense, calibrationImages: calibrateDefense(defense, target, calibration, images) };
}

/** All images of `ds`, queried by `clientId` in batches; the answers as Embeddings. */
export async function queryDataset(source: EmbeddingSource, clientId: string, ds: Dataset, batch = 256): Promise<Embeddings> {
  checkEmbeddingSource(source, 'source');
  if (typeof clientId !== 'string' || clientId === '') throw new TypeError(`clientId must be a non-empty string, got ${typeof clientId === 'string' ? 'an empty string' : describe(clientId)}`);
  checkDataset(ds, 'ds', false);
  checkInt(batch, 'batch', { min: 1, max: 65536 });
  const n = datasetSize(ds);
  let data: Float32Array | null = null;
  let dim = 0;
  for (let s = 0; s < n; s += batch) {
    const e = Math.min(n, s + batch);
    const out = await source.embed(clientId, { dataset: ds, indices: Int32Array.from({ length: e - s }, (_, i) => s + i) });
    try {
      if (!data) {
        dim = out.shape[1];
        data = new Float32Array(n * dim);
      }
      data.set(out.toArray(), s * dim);
    } finally {
      out.dispose();
    }
  }
  return { data: data!, n, dim, labels: ds.labels.slice() };
}

/**
 * The honest clients' utility under one defense: per task, a client queries
 * TRAIN then TEST through the defended service and trains its probe.
 */
export async function measureUtility(
  target: Encoder,
  spec: string,
  tasks: readonly TaskData[],
  options: { probeEpochs?: number; calibrationImages?: number } = {},
): Promise<DefenseUtility> {
  if (!(target instanceof Encoder)) throw new TypeError(`target must be an Encoder, got ${describe(target)}`);
  if (typeof spec !== 'string') throw new TypeError(`spec must be a defense SPEC string, got ${describe(spec)}`);
  if (!Array.isArray(tasks) || tasks.length === 0) throw new TypeError(`tasks must be a non-empty array of evaluation tasks, got ${describe(tasks)}`);
  Array.from(tasks).forEach((t, i) => {
    if (t === null || typeof t !== 'object' || typeof t.name !== 'string') throw new TypeError(`tasks[${i}] must be a task { name, train, test }, got ${describe(t)}`);
    checkDataset(t.train, `tasks[${i}].train`, false);
    checkDataset(t.test, `tasks[${i}].test`, false);
  });
  options = checkOptions<{ probeEpochs?: number; calibrationImages?: number }>(options, 'options', ['probeEpochs', 'calibrationImages']);
  if (options.calibrationImages !== undefined) checkInt(options.calibrationImages, 'options.calibrationImages', { min: 1 });
  const t0 = Date.now();
  const { defense, calibrationImages } = freshDefense(spec, target, tasks[0].train, options.calibrationImages ?? CALIBRATION_IMAGES);
  const service = new EncoderService(target, { defense });
  const u: DefenseUtility = { defense: defenseSpec(defense), accuracy: {}, queries: {}, stats: {}, calibrationImages, seconds: 0 };
  for (const task of tasks) {
    const client = `honest:${task.name}`;
    const train = await queryDataset(service, client, task.train);
    const test = await queryDataset(service, client, task.test);
    const res = linearProbe(train, test, { numClasses: task.train.numClasses, epochs: options.probeEpochs ?? 100, seed: 0 });
    u.accuracy[task.name] = res.accuracy;
    u.queries[task.name] = service.used(client);
    u.stats[task.name] = service.clientStats(client);
  }
  u.seconds = (Date.now() - t0) / 1000;
  return u;
}

export async function runDefenseGrid(o: DefenseGridOptions): Promise<DefenseGridResult> {
  const settings = checkAttackGrid(o, ['defenses', 'calibrationImages', 'onUtility', 'onCell']);
  if (!Array.isArray(o.defenses)) throw new TypeError(`options.defenses must be an array of SPECs, got ${describe(o.defenses)}`);
  if (o.calibrationImages !== undefined) checkInt(o.calibrationImages, 'options.calibrationImages', { min: 1 });
  for (const k of ['onUtility', 'onCell'] as const) {
    if (o[k] !== undefined && typeof o[k] !== 'function') throw new TypeError(`options.${k} must be a function, got ${describe(o[k])}`);
  }
  const log = o.log ?? (() => {});
  const progress = o.progress ?? silentProgress;
  const defenses = canonicalDefenses(o.defenses);
  const budgets = [...new Set(o.budgets)].sort((a, b) => a - b);
  const calibrationImages = o.calibrationImages ?? CALIBRATION_IMAGES;
  const probeEpochs = o.probeEpochs ?? 100;
  const tasks = o.tasks.map((t) => t.name);
  const config: DefendResults['config'] = { ...settings, limit: o.limit ?? null, probeEpochs, tasks, calibrationImages, defenses, methods: [...o.methods], budgets };

  const grid = ExperimentGrid.open<DefendResults>({
    outDir: o.outDir,
    fresh: o.fresh,
    log,
    fixedKeys: FIXED_KEYS,
    create: () => ({
      kind: DEFEND_RESULTS_KIND,
      version: 1,
      config,
      target: { file: o.targetFile ? path.resolve(o.targetFile) : undefined, arch: o.target.config.arch, accuracy: null },
      tasks,
      utility: [],
      cells: [],
      updatedAt: new Date().toISOString(),
    }),
    read: readDefendResults,
    write: writeDefendReport,
    merge(previous) {
      previous.config.defenses = unionList(previous.config.defenses, defenses);
      previous.config.methods = unionList(previous.config.methods, config.methods);
      previous.config.budgets = unionList(previous.config.budgets, budgets).sort((a, b) => a - b);
    },
  });
  const results = grid.results;

  const evaluator = new FidelityEvaluator(o.target, o.tasks, { probeEpochs });
  const cellOptions = { target: o.target, queryData: o.queryData, queryDataName: o.queryDataName, steal: o.steal, evaluator, progress, log, targetFile: config.targetFile as string | null };
  if (!results.target.accuracy) {
    log('target: linear probes on its raw embeddings');
    results.target.accuracy = evaluator.targetAccuracy();
    grid.write();
  }

  // 1. Utility of every defense (cheap: no training but the probes).
  for (const spec of defenses) {
    const done = results.utility.some((u) => u.defense === spec);
    const ran = await grid.run(`${spec}: utility`, done, async () => {
      log(`${spec}: honest clients (${tasks.join(', ')})`);
      const u = await measureUtility(o.target, spec, o.tasks, { probeEpochs, calibrationImages });
      results.utility.push(u);
      log(`${spec}: honest accuracy ${tasks.map((t) => `${t} ${(u.accuracy[t] * 100).toFixed(1)}%`).join(', ')}`);
    });
    if (ran) o.onUtility?.(results.utility[results.utility.length - 1]);
  }

  // 2. The attacks: budgets ascending, so that the cheap ones fill the chart first.
  for (const budget of budgets) {
    for (const spec of defenses) {
      for (const method of o.methods) {
        const label = `${spec} / ${method} @ ${budget}`;
        const done = results.cells.some((c) => c.defense === spec && c.method === method && c.budget === budget);
        const ran = await grid.run(label, done, async () => {
          const { defense } = freshDefense(spec, o.target, o.tasks[0].train, calibrationImages);
          log(`${label}: stealing (${settings.epochs} epochs)`);
          const saveAs = o.saveSurrogates ? path.join(o.outDir, `stolen-${spec.replace(/[^A-Za-z0-9.=-]+/g, '_')}-${method}-${budget}.safetensors`) : undefined;
          const out = await runGridStealCell(cellOptions, { method, budget, defense, saveAs, record: { defense: spec } });
          results.cells.push({ defense: spec, ...out.cell, attackerStats: out.attackerStats });
          log(`${label}: agreement ${(out.fidelity.agreement * 100).toFixed(1)}%, stolen accuracy ${accuracyLine(out.fidelity.stolenAccuracy)}`);
        });
        if (ran) o.onCell?.(results.cells[results.cells.length - 1]);
      }
    }
  }
  const files = grid.write();
  return { results, ran: grid.ran, skipped: grid.skipped, files };
}
