// The defense experiment: for each defense setting, what it costs an honest
// client (utility) and what it leaves a stealer (security), with the report
// written after every finished piece of work.
//
// Utility: for each evaluation task, one honest client ("honest:<task>")
// queries that task's TRAIN and then TEST images through the defended
// service (so a stateful defense such as b4b sees only that client's own,
// task-shaped queries) and trains the linear probe of lib/eval/probe.ts on
// the answers; its TEST accuracy is the utility.
//
// Security: every attack (method x budget) steals through the defended
// service as its own client, then the stolen encoder is measured against the
// raw target (FidelityEvaluator: probe accuracies, agreement, mean cosine);
// the experimenter's measurement, not the attacker's.
//
// Every piece of work gets a fresh defense (parseDefense of its SPEC, fresh
// state, calibrated on the first task's TRAIN images when it needs it, e.g.
// b4b:center=true), so a cell computed after a restart equals the one an
// uninterrupted run would have computed. Resumable like the steal grid: a
// restart with the same settings skips what results.json already holds; the
// lists of defenses, methods and budgets may grow. The undefended service
// ("none") is always part of the grid, as the reference point.
import * as path from 'node:path';
import { native } from '../core/native';
import type { Encoder } from '../nn/encoders';
import type { Dataset } from '../data/dataset';
import { datasetSize } from '../data/dataset';
import type { TaskData } from '../eval/tasks';
import { FidelityEvaluator } from '../eval/fidelity';
import { linearProbe, type Embeddings } from '../eval/probe';
import { EncoderService } from '../service/service';
import { defenseSpec, parseDefense, type Defense } from '../service/defense';
import { silentProgress, type ProgressSink } from '../report/progress';
import { DEFEND_RESULTS_KIND, UNDEFENDED, readDefendResults, writeDefendReport, type DefendCellResult, type DefendResults, type DefenseUtility } from '../report/defend';
import type { StealMethod } from '../attacks/losses';
import { stealEncoder, type StealConfig } from '../attacks/steal';
import { ATTACK_SETTING_KEYS, attackCell, checkGridAttacks, checkResumable, type GridOptions } from '../attacks/grid';
import { saveSurrogate } from '../attacks/surrogate';
import { CALIBRATION_IMAGES, calibrateDefense } from './calibrate';

export interface DefenseGridOptions extends GridOptions {
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
export async function queryDataset(service: EncoderService, clientId: string, ds: Dataset, batch = 256): Promise<Embeddings> {
  const n = datasetSize(ds);
  let data: Float32Array | null = null;
  let dim = 0;
  for (let s = 0; s < n; s += batch) {
    const e = Math.min(n, s + batch);
    const out = await service.embed(clientId, { dataset: ds, indices: Int32Array.from({ length: e - s }, (_, i) => s + i) });
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
  const log = o.log ?? (() => {});
  const progress = o.progress ?? silentProgress;
  const settings = checkGridAttacks(o);
  if (!Array.isArray(o.defenses)) throw new TypeError('defenses must be an array of SPECs');
  if (!Array.isArray(o.tasks) || o.tasks.length === 0) throw new TypeError('tasks must be a non-empty array');
  const defenses = canonicalDefenses(o.defenses);
  const budgets = [...new Set(o.budgets)].sort((a, b) => a - b);
  const calibrationImages = o.calibrationImages ?? CALIBRATION_IMAGES;
  const probeEpochs = o.probeEpochs ?? 100;
  const tasks = o.tasks.map((t) => t.name);

  const config: DefendResults['config'] = {
    ...settings,
    limit: o.limit ?? null,
    probeEpochs,
    tasks,
    calibrationImages,
    defenses,
    methods: [...o.methods],
    budgets,
  };

  const file = path.join(o.outDir, 'results.json');
  const previous = o.fresh ? null : readDefendResults(file);
  let results: DefendResults;
  if (previous) {
    checkResumable(file, previous.config, config, FIXED_KEYS);
    results = previous;
    results.config.defenses = [...new Set([...previous.config.defenses, ...defenses])];
    results.config.methods = [...new Set([...previous.config.methods, ...config.methods])];
    results.config.budgets = [...new Set([...previous.config.budgets, ...budgets])].sort((a, b) => a - b);
  } else {
    results = {
      kind: DEFEND_RESULTS_KIND,
      version: 1,
      config,
      target: { file: o.targetFile ? path.resolve(o.targetFile) : undefined, arch: o.target.config.arch, accuracy: null },
      tasks,
      utility: [],
      cells: [],
      updatedAt: new Date().toISOString(),
    };
  }

  let ran = 0;
  let skipped = 0;
  let files: string[] = [];
  const write = () => {
    results.updatedAt = new Date().toISOString();
    files = writeDefendReport(o.outDir, results);
  };

  const evaluator = new FidelityEvaluator(o.target, o.tasks, { probeEpochs });
  if (!results.target.accuracy) {
    log('target: linear probes on its raw embeddings');
    results.target.accuracy = evaluator.targetAccuracy();
    write();
  }

  // 1. Utility of every defense (cheap: no training but the probes).
  for (const spec of defenses) {
    if (results.utility.some((u) => u.defense === spec)) {
      skipped++;
      log(`${spec}: utility already in ${file}, skipped`);
      continue;
    }
    log(`${spec}: honest clients (${tasks.join(', ')})`);
    const u = await measureUtility(o.target, spec, o.tasks, { probeEpochs, calibrationImages });
    results.utility.push(u);
    write();
    ran++;
    log(`${spec}: honest accuracy ${tasks.map((t) => `${t} ${(u.accuracy[t] * 100).toFixed(1)}%`).join(', ')}`);
    o.onUtility?.(u);
  }

  // 2. The attacks: budgets ascending, so that the cheap ones fill the chart first.
  for (const budget of budgets) {
    for (const spec of defenses) {
      for (const method of o.methods) {
        if (results.cells.some((c) => c.defense === spec && c.method === method && c.budget === budget)) {
          skipped++;
          log(`${spec} / ${method} @ ${budget}: already in ${file}, skipped`);
          continue;
        }
        const { defense } = freshDefense(spec, o.target, o.tasks[0].train, calibrationImages);
        const clientId = `${method}@${budget}`;
        const service = new EncoderService(o.target, { defaultBudget: 0, budgets: { [clientId]: budget }, defense });
        log(`${spec} / ${method} @ ${budget}: stealing (${settings.epochs} epochs)`);
        const res = await stealEncoder(service, o.queryData, { ...o.steal, method, budget, clientId, progress });
        try {
          log(`${spec} / ${method} @ ${budget}: evaluating`);
          const fid = evaluator.evaluate(res.surrogate);
          let fileName: string | undefined;
          if (o.saveSurrogates) {
            fileName = `stolen-${spec.replace(/[^A-Za-z0-9.=-]+/g, '_')}-${method}-${budget}.safetensors`;
            saveSurrogate(path.join(o.outDir, fileName), res.surrogate, { attack: { ...res.config }, defense: spec, queriesSpent: res.queriesSpent, queryData: o.queryDataName, target: config.targetFile, history: res.history });
          }
          const cell: DefendCellResult = { defense: spec, ...attackCell(method, budget, res, fid, fileName), attackerStats: service.clientStats(clientId) };
          results.cells.push(cell);
          write();
          ran++;
          log(`${spec} / ${method} @ ${budget}: agreement ${(fid.agreement * 100).toFixed(1)}%, stolen accuracy ${Object.entries(fid.stolenAccuracy).map(([k, v]) => `${k} ${(v * 100).toFixed(1)}%`).join(', ')}`);
          o.onCell?.(cell);
        } finally {
          res.surrogate.dispose();
          native.clearCache();
        }
      }
    }
  }
  write();
  return { results, ran, skipped, files };
}
