// `encsec experiment <sub-command>`: experiment grids with a resumable
// report folder. Sub-commands:
//   steal   methods x budgets of encoder stealing against one target
//   defend  defense settings x (honest utility, methods x budgets of stealing)
// Each sub-command declares its own options (the table below); the command
// accepts their union and refuses an option the chosen sub-command does not
// take. A new sub-command (e.g. `defend`) is one more entry in SUBCOMMANDS.
import * as path from 'node:path';
import type { Command, CommandContext } from './command';
import { ParsedArgs, UsageError, type ArgValue, type OptionSpecs } from './args';
import { ATTACK_OPTIONS, applyDevice, checkStealSettings, defined, parseMethod, progressFrom, stealSettings } from './options';
import { joinDefenseList, listDefenses, parseDefense } from '../defenses/spec';
import { STEAL_METHODS, type StealMethod } from '../attacks/losses';
import type { ProgressSink } from '../report/progress';
import { calibrateDefense, CALIBRATION_IMAGES } from '../defenses/calibrate';
import { DEFAULT_EVAL_TASKS, loadEvalTasks, loadQueryData, loadTarget, type LoadedTarget } from '../experiments/setup';
import type { AttackGridOptions } from '../experiments/attack-settings';
import { runStealGrid } from '../experiments/steal';
import { canonicalDefenses, runDefenseGrid } from '../experiments/defend';
import { cellSummary, stealResultsMarkdown, sortedCells } from '../report/steal';
import { defendResultsMarkdown, defenseOrder, strongestCell } from '../report/defend';
import { info } from '../core/backend';
import { poisonExperiment } from './experiment-poison';
import { watermarkExperiment } from './experiment-watermark';
import { authExperiment } from './experiment-auth';

export interface SubCommand {
  summary: string;
  options: OptionSpecs;
  run(args: ParsedArgs, ctx: CommandContext): Promise<Record<string, unknown>>;
}

function parseBudgets(list: string[]): number[] {
  const out = list.map((s) => {
    const v = Number(s);
    if (!Number.isInteger(v) || v < 2) throw new UsageError(`--budgets must be integers >= 2, got ${JSON.stringify(s)}`);
    return v;
  });
  return [...new Set(out)].sort((a, b) => a - b);
}

/** What both grids parse from the command line before anything is loaded (a bad value fails fast). */
interface GridArgs {
  methods: StealMethod[];
  budgets: number[];
  steal: AttackGridOptions['steal'];
  progress: ProgressSink;
  outDir: string;
}

function gridArgs(args: ParsedArgs): GridArgs {
  const methods = (args.list('methods') ?? []).map((m) => parseMethod(m, '--methods'));
  if (methods.length === 0) throw new UsageError('--methods needs at least one method');
  const budgets = parseBudgets(args.list('budgets') ?? []);
  if (budgets.length === 0) throw new UsageError('--budgets needs at least one budget');
  for (const m of methods) checkStealSettings(stealSettings(args), m, budgets);
  return { methods, budgets, steal: defined(stealSettings(args)), progress: progressFrom(args), outDir: path.resolve(args.string('out-dir')!) };
}

/** Loads the query data and evaluation tasks: the options both grids take. */
async function gridOptions(args: ParsedArgs, ctx: CommandContext, target: LoadedTarget, parsed: GridArgs): Promise<AttackGridOptions> {
  const inC = target.encoder.config.inChannels;
  const queryDataName = args.string('query-data') ?? 'fashion-mnist';
  const queryData = await loadQueryData(queryDataName, inC);
  const limit = args.number('limit');
  const tasks = await loadEvalTasks(args.list('tasks') ?? [...DEFAULT_EVAL_TASKS], limit, inC);
  return {
    ...parsed,
    target: target.encoder,
    targetFile: target.file,
    targetSha256: target.sha256,
    queryData,
    queryDataName,
    tasks,
    limit,
    probeEpochs: args.number('probe-epochs'),
    fresh: args.bool('fresh'),
    log: ctx.log,
  };
}

const stealExperiment: SubCommand = {
  summary: 'grid of stealing attacks (methods x budgets) against one target; resumable',
  options: {
    ...ATTACK_OPTIONS,
    methods: { kind: 'list', help: `attacks, comma-separated (default ${STEAL_METHODS.join(',')})`, default: [...STEAL_METHODS] },
    budgets: { kind: 'list', help: 'query budgets, comma-separated (default 600,3000,12000)', default: ['600', '3000', '12000'] },
    'out-dir': { kind: 'string', help: 'report folder: results.json, results.md, chart*.svg, stolen encoders (default experiments/steal)', default: 'experiments/steal' },
    fresh: { kind: 'boolean', help: 'start over, overwriting results.json, instead of resuming it' },
    'no-save': { kind: 'boolean', help: 'do not write the stolen encoders' },
  },
  async run(args, ctx) {
    const parsed = gridArgs(args);
    const defenseSpec = args.string('defense') ?? 'none';
    let defense;
    try {
      defense = parseDefense(defenseSpec);
    } catch (e) {
      throw new UsageError(`--defense: ${(e as Error).message}`);
    }
    applyDevice(args);
    const target = loadTarget(args.string('target'));
    const t0 = Date.now();
    try {
      const common = await gridOptions(args, ctx, target, parsed);
      const calibrated = calibrateDefense(defense, target.encoder, common.tasks[0].train);
      if (calibrated) ctx.log(`defense calibrated on ${calibrated} ${common.tasks[0].name} train images`);
      const grid = await runStealGrid({ ...common, defense, defenseSpec, saveSurrogates: !args.bool('no-save') });
      ctx.log(stealResultsMarkdown(grid.results));
      const outDir = common.outDir;
      return {
        outDir,
        results: path.join(outDir, 'results.json'),
        ran: grid.ran,
        skipped: grid.skipped,
        targetAccuracy: grid.results.target.accuracy,
        cells: sortedCells(grid.results).map(cellSummary),
        // The report and every stolen encoder the folder holds.
        files: [...grid.files, ...grid.results.cells.filter((c) => c.file).map((c) => path.join(outDir, c.file!))],
        wallSeconds: (Date.now() - t0) / 1000,
        backend: info().backend,
      };
    } finally {
      target.encoder.dispose();
    }
  },
};

/** The attack options of `experiment steal` without --defense (defend takes a list). */
const { defense: _single, ...DEFEND_ATTACK_OPTIONS } = ATTACK_OPTIONS;

export const DEFAULT_DEFENSES = ['noise:0.05', 'noise:0.2', 'noise:0.5', 'topk:8', 'topk:32', 'round:0', 'round:1', 'b4b'];

const defendExperiment: SubCommand = {
  summary: 'defense settings x (honest utility, stealing attacks x budgets) against one target; resumable',
  options: {
    ...DEFEND_ATTACK_OPTIONS,
    defenses: {
      kind: 'list',
      help:
        `defense SPECs, comma-separated; "+" composes stages within one SPEC, a key=value item continues the previous SPEC ` +
        `(default ${DEFAULT_DEFENSES.join(',')}; the undefended service is always included). Known: ${listDefenses().map((d) => d.name).join(', ')}`,
      default: [...DEFAULT_DEFENSES],
    },
    methods: { kind: 'list', help: 'attacks, comma-separated (default stolenencoder,contsteal)', default: ['stolenencoder', 'contsteal'] },
    budgets: { kind: 'list', help: 'query budgets, comma-separated (default 3000,12000)', default: ['3000', '12000'] },
    calibration: { kind: 'int', help: `images of the first task's TRAIN split a defense that needs calibration (b4b:center=true) is fitted on (default ${CALIBRATION_IMAGES})` },
    'out-dir': { kind: 'string', help: 'report folder: results.json, results.md, chart*.svg (default experiments/defend)', default: 'experiments/defend' },
    fresh: { kind: 'boolean', help: 'start over, overwriting results.json, instead of resuming it' },
    save: { kind: 'boolean', help: 'also write the stolen encoders' },
  },
  async run(args, ctx) {
    const parsed = gridArgs(args);
    let defenses: string[];
    try {
      defenses = canonicalDefenses(joinDefenseList(args.list('defenses') ?? []));
    } catch (e) {
      throw new UsageError(`--defenses: ${(e as Error).message}`);
    }
    const calibration = args.number('calibration');
    if (calibration !== undefined && calibration < 1) throw new UsageError(`--calibration must be a positive integer, got ${calibration}`);
    applyDevice(args);
    const target = loadTarget(args.string('target'));
    const t0 = Date.now();
    try {
      const common = await gridOptions(args, ctx, target, parsed);
      const grid = await runDefenseGrid({ ...common, defenses, calibrationImages: calibration, saveSurrogates: args.bool('save') });
      ctx.log(defendResultsMarkdown(grid.results));
      const r = grid.results;
      const outDir = common.outDir;
      return {
        outDir,
        results: path.join(outDir, 'results.json'),
        ran: grid.ran,
        skipped: grid.skipped,
        targetAccuracy: r.target.accuracy,
        defenses: defenseOrder(r).map((d) => {
          const u = r.utility.find((x) => x.defense === d);
          return {
            defense: d,
            honestAccuracy: u ? u.accuracy : null,
            worstAgreement: Object.fromEntries(r.config.budgets.map((b) => [b, strongestCell(r, d, b)?.agreement ?? null])),
          };
        }),
        cells: r.cells.map((c) => ({ defense: c.defense, ...cellSummary(c), attackerStats: c.attackerStats })),
        files: grid.files,
        wallSeconds: (Date.now() - t0) / 1000,
        backend: info().backend,
      };
    } finally {
      target.encoder.dispose();
    }
  },
};

export const SUBCOMMANDS: Record<string, SubCommand> = {
  steal: stealExperiment,
  defend: defendExperiment,
  poison: poisonExperiment,
  watermark: watermarkExperiment,
  auth: authExperiment,
};

/** The union of the sub-commands' options, without defaults (each sub-command applies its own). */
function unionOptions(): OptionSpecs {
  const out: OptionSpecs = {};
  for (const sc of Object.values(SUBCOMMANDS)) {
    for (const [name, spec] of Object.entries(sc.options)) {
      const prev = out[name];
      if (prev && prev.kind !== spec.kind) throw new Error(`experiment sub-commands disagree on the kind of --${name}`);
      out[name] = { kind: spec.kind, help: spec.help };
    }
  }
  return out;
}

const subList = () => Object.entries(SUBCOMMANDS).map(([n, s]) => `${n} (${s.summary})`).join('; ');

export const experimentCommand: Command = {
  summary: `run an experiment grid into a resumable report folder: ${Object.keys(SUBCOMMANDS).join(' | ')}`,
  options: unionOptions(),
  subcommands: SUBCOMMANDS,
  onInterrupt(args) {
    const dir = args.string('out-dir');
    return `Every finished cell is kept in ${dir ? path.join(dir, 'results.json') : 'the report folder\'s results.json'} (rewritten atomically after each cell); the cell in progress is lost. Run the same command again to resume: finished cells are skipped.`;
  },
  async run(args, ctx) {
    const [name, ...extra] = args.positional;
    if (!name) throw new UsageError(`a sub-command is required: ${subList()}`);
    const sc = SUBCOMMANDS[name];
    if (!sc) throw new UsageError(`unknown sub-command ${JSON.stringify(name)}: expected ${subList()}`);
    if (extra.length) throw new UsageError(`unexpected argument ${JSON.stringify(extra[0])}`);
    // Only this sub-command's options, with its defaults.
    const values = new Map<string, ArgValue>();
    for (const opt of Object.keys(unionOptions())) {
      if (args.has(opt) && !(opt in sc.options)) throw new UsageError(`--${opt} is not an option of "experiment ${name}"`);
    }
    for (const [opt, spec] of Object.entries(sc.options)) {
      const v = args.get(opt);
      if (v !== undefined) values.set(opt, v);
      else if (spec.default !== undefined) values.set(opt, spec.default);
    }
    const json = args.get('json');
    if (json !== undefined) values.set('json', json);
    return sc.run(new ParsedArgs(values, []), ctx);
  },
};
