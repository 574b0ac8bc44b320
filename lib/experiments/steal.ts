// The steal experiment: a grid of stealing attacks (methods x budgets)
// against one target, resumable (ExperimentGrid). The attacks reach the
// target only through an EncoderService, one client per cell
// ("method@budget") with that cell's budget; the evaluation
// (FidelityEvaluator) is the experimenter's measurement and uses the target
// directly; the target's side is computed once for the whole grid.
import * as path from 'node:path';
import { FidelityEvaluator } from '../eval/fidelity';
import { identityDefense, type Defense } from '../defenses/defense';
import { STEAL_RESULTS_KIND, readStealResults, writeStealReport, type StealCellResult, type StealResults } from '../report/steal';
import { silentProgress } from '../report/progress';
import { describe } from '../core/validate';
import { ExperimentGrid, unionList } from './grid';
import { ATTACK_SETTING_KEYS, accuracyLine, checkAttackGrid, type AttackGridOptions } from './attack-settings';
import { runGridStealCell } from './steal-cell';
import { measureBaselines } from './baselines';
import type { Architecture } from '../nn/encoders';

export interface StealGridOptions extends AttackGridOptions {
  /** The service's defense, shared by the cells (a stateful one keeps its state per client). */
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

/** The settings a restart must share with the results file (methods and budgets excluded). */
const FIXED_KEYS = [...ATTACK_SETTING_KEYS, 'defense', 'limit', 'probeEpochs', 'tasks'] as const;

export async function runStealGrid(o: StealGridOptions): Promise<StealGridResult> {
  // Validate the options and every cell's settings before spending anything.
  const settings = checkAttackGrid(o, ['defense', 'defenseSpec', 'onCell']);
  if (o.defense !== undefined && (o.defense === null || typeof o.defense !== 'object' || typeof o.defense.apply !== 'function')) throw new TypeError(`options.defense must be a Defense ({ name, apply }), got ${describe(o.defense)}`);
  if (o.defenseSpec !== undefined && typeof o.defenseSpec !== 'string') throw new TypeError(`options.defenseSpec must be a string, got ${describe(o.defenseSpec)}`);
  if (o.onCell !== undefined && typeof o.onCell !== 'function') throw new TypeError(`options.onCell must be a function, got ${describe(o.onCell)}`);
  const log = o.log ?? (() => {});
  const progress = o.progress ?? silentProgress;
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
  const grid = ExperimentGrid.open<StealResults>({
    outDir: o.outDir,
    fresh: o.fresh,
    log,
    fixedKeys: FIXED_KEYS,
    create: () => ({ kind: STEAL_RESULTS_KIND, version: 1, config, target: { file: o.targetFile ? path.resolve(o.targetFile) : undefined, arch: o.target.config.arch, accuracy: null }, tasks, cells: [], updatedAt: new Date().toISOString() }),
    read: readStealResults,
    write: writeStealReport,
    merge(previous) {
      previous.config.methods = unionList(previous.config.methods, config.methods);
      previous.config.budgets = unionList(previous.config.budgets, config.budgets).sort((a, b) => a - b);
    },
  });
  const results = grid.results;

  const evaluator = new FidelityEvaluator(o.target, o.tasks, { probeEpochs: o.probeEpochs });
  if (!results.baselines) {
    // What an attacker gets without stealing: every copy is read against these rows.
    log('baselines: raw pixels, random-init encoder, untrained surrogate');
    results.baselines = measureBaselines(evaluator, {
      targetArch: o.target.config.arch,
      inChannels: o.target.config.inChannels,
      targetDim: o.target.dim,
      surrogateArch: settings.arch as Architecture,
      seed: settings.seed,
    });
    results.target.accuracy = evaluator.targetAccuracy();
    grid.write();
  }
  const cellOptions = { target: o.target, queryData: o.queryData, queryDataName: o.queryDataName, steal: o.steal, evaluator, progress, log, targetFile: config.targetFile as string | null };
  for (const method of o.methods) {
    for (const budget of config.budgets) {
      const label = `${method} @ ${budget}`;
      const done = results.cells.some((c) => c.method === method && c.budget === budget);
      await grid.run(label, done, async () => {
        log(`${label}: stealing (${settings.epochs} epochs)`);
        const saveAs = o.saveSurrogates !== false ? path.join(o.outDir, `stolen-${method}-${budget}.safetensors`) : undefined;
        const out = await runGridStealCell(cellOptions, { method, budget, defense, saveAs });
        results.cells.push(out.cell);
        results.target.accuracy = out.fidelity.targetAccuracy;
        log(`${label}: accuracy ${accuracyLine(out.fidelity.stolenAccuracy)}, agreement ${(out.fidelity.agreement * 100).toFixed(1)}%`);
      });
      if (!done) o.onCell?.(results.cells[results.cells.length - 1]);
    }
  }
  // Re-render (the cells may all have been there already).
  const files = grid.write();
  return { results, ran: grid.ran, skipped: grid.skipped, files };
}
