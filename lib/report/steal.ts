// The report of an encoder-stealing experiment: results.json (the data,
// rewritten atomically after every finished cell), results.md (a markdown
// table) and the charts: chart.svg (stolen encoder's in-distribution
// probe accuracy against the query budget, one line per method, the
// target's accuracy as a dashed reference line), chart-agreement.svg
// (agreement of the two probes against the budget) and, when the results
// have a second task, chart-<task>.svg (its accuracy, e.g. MNIST).
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

export interface StealResults {
  kind: typeof STEAL_RESULTS_KIND;
  version: 1;
  /** Everything that defines a cell (a restart must match it); methods and budgets may grow. */
  config: Record<string, unknown> & { methods: string[]; budgets: number[] };
  target: { file?: string; arch: string; accuracy: Record<string, number> | null };
  /** Task names, first = in distribution (agreement, mean cosine). */
  tasks: string[];
  cells: StealCellResult[];
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
  if (acc) rows.unshift(['target', '–', '–', ...r.tasks.map((t) => pct(acc[t])), '–', '–', '–', '–', '–']);
  lines.push(markdownTable(headers, rows, ['left', 'right', 'right', ...r.tasks.map(() => 'right' as const), 'right', 'right', 'right', 'right', 'right']));
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
      references: tAcc === undefined ? [] : [{ label: `target (${pct(tAcc)})`, y: tAcc }],
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
    references: [{ label: 'perfect copy (100%)', y: 1 }],
  });
  return out;
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
