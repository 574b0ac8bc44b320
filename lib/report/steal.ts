// The report of an encoder-stealing experiment: results.json (the data,
// rewritten atomically after every finished cell), results.md (a markdown
// table) and the charts: chart.svg (stolen encoder's in-distribution
// probe accuracy against the query budget, one line per method, the
// target's accuracy as a dashed reference line), chart-agreement.svg
// (agreement of the two probes against the budget), chart-cosine.svg (mean
// cosine of the embeddings against the budget) and, when the results
// have a second task, chart-<task>.svg (its accuracy, e.g. MNIST). Baseline
// rows (raw pixels, random-init encoder, untrained surrogate) head the table
// and appear as dashed reference lines.
import * as path from 'node:path';
import { readResultsFile, writeReportFolder } from './folder';
import { markdownTable, pct, fixed, int } from './table';
import { MARKERS, PALETTE, renderLineChart, type ChartSeries } from './svg';

export const STEAL_RESULTS_KIND = 'encsec-steal-experiment';

export interface StealCellResult {
  method: string;
  budget: number;
  queriesSpent: number;
  /** Task name -> stolen encoder's linear-probe TEST accuracy. */
  stolenAccuracy: Record<string, number>;
  /** On the first task's TEST split. */
  agreement: number;
  meanCosine: number | null;
  /** Per task: agreement and mean cosine as well. */
  tasks?: Record<string, { agreement: number; meanCosine: number | null; stolenAccuracy: number; targetAccuracy: number }>;
  finalLoss: number | null;
  querySeconds: number;
  trainSeconds: number;
  /** Querying plus training. */
  wallSeconds: number;
  evalSeconds: number;
  /** The stolen encoder's file, relative to the results folder. */
  file?: string;
  history?: { epoch: number; loss: number; seconds: number }[];
}

/** What an attacker gets without stealing (lib/experiments/baselines.ts), measured like a copy. */
export interface BaselineRow {
  name: 'raw pixels' | 'random-init encoder' | 'untrained surrogate';
  description: string;
  /** Task name -> linear-probe TEST accuracy. */
  stolenAccuracy: Record<string, number>;
  agreement: number;
  /** null when the features' size differs from the target's (raw pixels). */
  meanCosine: number | null;
  evalSeconds: number;
}

export interface StealResults {
  kind: typeof STEAL_RESULTS_KIND;
  version: 1;
  /** Everything that defines a cell (a restart must match it); methods and budgets may grow. */
  config: Record<string, unknown> & { methods: string[]; budgets: number[] };
  target: { file?: string; arch: string; accuracy: Record<string, number> | null };
  /** Task names, first = in distribution (agreement, mean cosine). */
  tasks: string[];
  cells: StealCellResult[];
  /** Baseline rows (absent in files written before they existed). */
  baselines?: BaselineRow[];
  updatedAt: string;
}

const TASK_TITLES: Record<string, string> = { 'fashion-mnist': 'Fashion-MNIST', mnist: 'MNIST' };
export const taskTitle = (t: string): string => TASK_TITLES[t] ?? t;

/** The attacks in their usual order; each keeps its colour and marker in every chart. */
const KNOWN_METHODS = ['mse', 'cosine', 'stolenencoder', 'contsteal'];

/** Cells sorted by method (known attacks in their usual order, then the config's order, then by name) and budget. */
export function sortedCells(r: StealResults): StealCellResult[] {
  const order = (m: string) => {
    const k = KNOWN_METHODS.indexOf(m);
    if (k >= 0) return k;
    const i = r.config.methods.indexOf(m);
    return KNOWN_METHODS.length + (i < 0 ? r.config.methods.length : i);
  };
  return [...r.cells].sort((a, b) => order(a.method) - order(b.method) || a.method.localeCompare(b.method) || a.budget - b.budget);
}

function describeConfig(r: StealResults): string {
  const c = r.config;
  const parts = [
    `surrogate ${String(c.arch ?? '?')} trained ${String(c.epochs ?? '?')} epochs`,
    `queries from ${String(c.queryData ?? '?')} train`,
  ];
  if (c.defense && c.defense !== 'none') parts.push(`defense ${String(c.defense)}`);
  if (c.limit) parts.push(`eval on ${String(c.limit)} images per split`);
  return parts.join('; ');
}

/** results.md: a header with the target's accuracy and the settings, then one row per cell. */
export function stealResultsMarkdown(r: StealResults): string {
  const lines: string[] = [];
  lines.push(`# Encoder stealing${r.target.file ? `: ${path.basename(r.target.file)}` : ''}`);
  lines.push('');
  const acc = r.target.accuracy;
  const accText = acc ? r.tasks.map((t) => `${taskTitle(t)} ${pct(acc[t])}`).join(', ') : 'not measured yet';
  lines.push(`Target: ${r.target.arch}, linear-probe test accuracy ${accText}.`);
  lines.push(`Attack: ${describeConfig(r)}. Agreement and mean cosine on ${taskTitle(r.tasks[0])} test images.`);
  lines.push('');
  const headers = ['method', 'budget', 'queries', ...r.tasks.map((t) => `acc ${taskTitle(t)}`), 'agreement', 'mean cos', 'final loss', 'steal s', 'eval s'];
  const rows = sortedCells(r).map((c) => [
    ...cellFigureColumns(c, r.tasks),
    fixed(c.finalLoss, 4),
    fixed(c.wallSeconds, 1),
    fixed(c.evalSeconds, 1),
  ]);
  rows.unshift(...baselineTableRows(r.baselines, r.tasks, 4));
  if (acc) rows.unshift(['target', '–', '–', ...r.tasks.map((t) => pct(acc[t])), '–', '–', '–', '–', '–']);
  lines.push(markdownTable(headers, rows, ['left', 'right', 'right', ...r.tasks.map(() => 'right' as const), 'right', 'right', 'right', 'right', 'right']).trimEnd());
  lines.push('');
  lines.push(columnDefinitions(r.tasks[0], r.baselines));
  return lines.join('\n');
}

function methodSeries(r: StealResults, value: (c: StealCellResult) => number | null | undefined): ChartSeries[] {
  const methods = [...new Set(sortedCells(r).map((c) => c.method))];
  const others = methods.filter((m) => !KNOWN_METHODS.includes(m));
  return methods.map((m) => {
    const k = KNOWN_METHODS.includes(m) ? KNOWN_METHODS.indexOf(m) : KNOWN_METHODS.length + others.indexOf(m);
    return {
      name: m,
      color: PALETTE[k % PALETTE.length],
      marker: MARKERS[k % MARKERS.length],
      points: r.cells
        .filter((c) => c.method === m)
        .map((c) => [c.budget, value(c)] as [number, number | null | undefined])
        .filter((p): p is [number, number] => typeof p[1] === 'number' && Number.isFinite(p[1])),
    };
  });
}

/** Dashed reference lines for the named baselines (those with a value). */
function baselineReferences(baselines: readonly BaselineRow[] | undefined, value: (b: BaselineRow) => number | null | undefined, format: (v: number) => string, names: readonly BaselineRow['name'][]) {
  return (baselines ?? [])
    .filter((b) => names.includes(b.name))
    .map((b) => ({ b, y: value(b) }))
    .filter((x): x is { b: BaselineRow; y: number } => typeof x.y === 'number' && Number.isFinite(x.y))
    .map(({ b, y }) => ({ label: `${b.name} (${format(y)})`, y }));
}

/** The charts of the report: file name -> SVG document. */
export function stealCharts(r: StealResults): Record<string, string> {
  const out: Record<string, string> = {};
  const budgets = [...new Set([...r.config.budgets, ...r.cells.map((c) => c.budget)])].sort((a, b) => a - b);
  const sub = `target ${r.target.arch}; ${describeConfig(r)}`;
  r.tasks.forEach((task, i) => {
    const tAcc = r.target.accuracy?.[task];
    out[i === 0 ? 'chart.svg' : `chart-${task.replace(/[^a-z0-9-]/gi, '_')}.svg`] = renderLineChart({
      title: `Stolen encoder: ${taskTitle(task)} linear-probe accuracy vs query budget`,
      subtitle: sub,
      xLabel: 'query budget: distinct images queried',
      yLabel: `${taskTitle(task)} test accuracy`,
      xScale: 'log',
      xTicks: budgets,
      yFormat: 'percent',
      series: methodSeries(r, (c) => c.stolenAccuracy[task]),
      references: [
        ...(tAcc === undefined ? [] : [{ label: `target (${pct(tAcc)})`, y: tAcc }]),
        ...baselineReferences(r.baselines, (b) => b.stolenAccuracy[task], pct, ['random-init encoder', 'raw pixels']),
      ],
    });
  });
  out['chart-agreement.svg'] = renderLineChart({
    title: `Stolen vs target: probe agreement vs query budget`,
    subtitle: `share of ${taskTitle(r.tasks[0])} test images on which the two probes predict the same class; ${sub}`,
    xLabel: 'query budget: distinct images queried',
    yLabel: 'agreement with the target',
    xScale: 'log',
    xTicks: budgets,
    yFormat: 'percent',
    series: methodSeries(r, (c) => c.agreement),
    references: [{ label: 'perfect copy (100%)', y: 1 }, ...baselineReferences(r.baselines, (b) => b.agreement, pct, ['untrained surrogate'])],
  });
  if (r.cells.some((c) => typeof c.meanCosine === 'number')) {
    out['chart-cosine.svg'] = renderLineChart({
      title: 'Stolen vs target: mean cosine of the embeddings vs query budget',
      subtitle: `mean over ${taskTitle(r.tasks[0])} test images of cos(stolen(x), target(x)); ${sub}`,
      xLabel: 'query budget: distinct images queried',
      yLabel: 'mean cosine with the target',
      xScale: 'log',
      xTicks: budgets,
      yFormat: 'number',
      series: methodSeries(r, (c) => c.meanCosine),
      references: [{ label: 'identical (1)', y: 1 }, ...baselineReferences(r.baselines, (b) => b.meanCosine, (v) => fixed(v), ['untrained surrogate'])],
    });
  }
  return out;
}

/**
 * The baseline rows of a table whose columns are method, budget, queries,
 * accuracy per task, agreement, mean cosine, then `trailing` more columns.
 */
export function baselineTableRows(baselines: readonly BaselineRow[] | undefined, tasks: readonly string[], trailing: number): string[][] {
  return (baselines ?? []).map((b) => [`baseline: ${b.name}`, '–', '0', ...tasks.map((t) => pct(b.stolenAccuracy[t])), pct(b.agreement), b.meanCosine === null ? 'n/a' : fixed(b.meanCosine), ...Array.from({ length: trailing }, () => '–')]);
}

/** The one line under every stealing table that says what its columns mean. */
export function columnDefinitions(firstTask: string, baselines: readonly BaselineRow[] | undefined): string {
  const t = taskTitle(firstTask);
  let text =
    `Columns: acc = linear-probe test accuracy; agreement = share of ${t} test images on which this encoder's probe predicts the same class as the target's probe; ` +
    `mean cos = mean cosine similarity between this encoder's and the target's embeddings of those images (1 = identical; n/a when the sizes differ).`;
  if (baselines?.length) text += ` Baselines (no stealing): ${baselines.map((b) => `${b.name} = ${b.description}`).join('; ')}. A copy has been stolen where it beats them, above all the untrained surrogate.`;
  return text;
}

/** A cell's method, budget, queries, stolen accuracy per task, agreement and mean cosine, as table cells. */
export function cellFigureColumns(c: StealCellResult, tasks: readonly string[]): string[] {
  return [c.method, int(c.budget), int(c.queriesSpent), ...tasks.map((t) => pct(c.stolenAccuracy[t])), pct(c.agreement), fixed(c.meanCosine)];
}

/** The figures of one attack cell that a command's final JSON line reports. */
export function cellSummary(c: Pick<StealCellResult, 'method' | 'budget' | 'queriesSpent' | 'stolenAccuracy' | 'agreement' | 'meanCosine' | 'wallSeconds'>) {
  return {
    method: c.method,
    budget: c.budget,
    queriesSpent: c.queriesSpent,
    stolenAccuracy: c.stolenAccuracy,
    agreement: c.agreement,
    meanCosine: c.meanCosine,
    wallSeconds: c.wallSeconds,
  };
}

/** Reads a results file; null when it does not exist. */
export function readStealResults(file: string): StealResults | null {
  return readResultsFile<StealResults>(file, 'steal-experiment', (r) => r.kind === STEAL_RESULTS_KIND && Array.isArray(r.cells) && !!r.config && Array.isArray(r.tasks));
}

/** Writes results.json first (atomically), then results.md and the charts. Returns the paths written. */
export function writeStealReport(dir: string, r: StealResults): string[] {
  return writeReportFolder(dir, r, stealResultsMarkdown(r), stealCharts(r));
}
