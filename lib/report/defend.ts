// The report of a defense experiment: results.json (rewritten atomically
// after every finished piece of work), results.md (tables) and the charts of
// the trade-off: chart.svg (x: the honest client's linear-probe accuracy on
// the first task, e.g. Fashion-MNIST, through the defended service; y: the
// stealing agreement of the strongest attack, one point per defense setting
// and budget, joined across budgets by a thin grey line, the undefended
// service as a star), chart-<task>.svg (the same
// against the honest accuracy on each further task, e.g. MNIST) and
// chart-accuracy.svg (y: the stolen encoder's probe accuracy instead).
import * as path from 'node:path';
import { readResultsFile, writeReportFolder } from './folder';
import { markdownTable, pct, fixed, int } from './table';
import { MARKERS, PALETTE, renderLineChart, type ChartSeries } from './svg';
import { baselineTableRows, cellFigureColumns, columnDefinitions, taskTitle, type BaselineRow, type StealCellResult } from './steal';

export const DEFEND_RESULTS_KIND = 'encsec-defend-experiment';

/** What an honest client gets from the defended service, per task. */
export interface DefenseUtility {
  /** The defense's canonical SPEC. */
  defense: string;
  /** Task -> the honest client's linear-probe TEST accuracy on the defended answers. */
  accuracy: Record<string, number>;
  /** Task -> images the honest client sent (its TRAIN and TEST split). */
  queries: Record<string, number>;
  /** Task -> the defense's numbers about that honest client at the end (e.g. coverage, sigma). */
  stats: Record<string, Record<string, number>>;
  /** Images the defense was calibrated on (0: none needed). */
  calibrationImages: number;
  seconds: number;
}

/**
 * One attack against the defended service: a steal cell (agreement is with
 * the undefended target's probe) plus the defense and what it knew about the
 * attacker at the end of its queries.
 */
export interface DefendCellResult extends StealCellResult {
  defense: string;
  attackerStats: Record<string, number>;
}

export interface DefendResults {
  kind: typeof DEFEND_RESULTS_KIND;
  version: 1;
  config: Record<string, unknown> & { defenses: string[]; methods: string[]; budgets: number[] };
  /** accuracy: the target's own probe accuracy per task (raw embeddings). */
  target: { file?: string; arch: string; accuracy: Record<string, number> | null };
  tasks: string[];
  utility: DefenseUtility[];
  cells: DefendCellResult[];
  /** Baseline rows of the undefended target (lib/experiments/baselines.ts), when measured. */
  baselines?: BaselineRow[];
  updatedAt: string;
}

/** The undefended service's SPEC. */
export const UNDEFENDED = 'none';

/** Defenses in the config's order ("none" first), then any others found in the results. */
export function defenseOrder(r: DefendResults): string[] {
  const all = [UNDEFENDED, ...r.config.defenses, ...r.utility.map((u) => u.defense), ...r.cells.map((c) => c.defense)];
  return [...new Set(all)];
}

/** A stat of a client whose key is `name` or ends in ".name" (a composed defense prefixes its stages' names). */
export function statOf(stats: Record<string, number> | undefined, name: string): number | undefined {
  if (!stats) return undefined;
  if (typeof stats[name] === 'number') return stats[name];
  const k = Object.keys(stats).find((key) => key.endsWith(`.${name}`));
  return k === undefined ? undefined : stats[k];
}

/** The cell of the strongest attack (highest agreement) on `defense` at `budget`, or undefined. */
export function strongestCell(r: DefendResults, defense: string, budget: number, value: (c: DefendCellResult) => number = (c) => c.agreement): DefendCellResult | undefined {
  let best: DefendCellResult | undefined;
  for (const c of r.cells) if (c.defense === defense && c.budget === budget && (!best || value(c) > value(best))) best = c;
  return best;
}

/**
 * The settings that dominate `defense` at `budget` on the trade-off between
 * the honest client's accuracy on `task` and the strongest attack's
 * agreement: each gives at least the same utility and at most the same
 * agreement, and is strictly better on one of them. Undefined when
 * `defense` itself lacks the utility or the cells; settings lacking them are
 * not compared.
 */
export function dominatedBy(r: DefendResults, defense: string, budget: number, task: string): string[] | undefined {
  const point = (d: string): [number, number] | undefined => {
    const u = r.utility.find((x) => x.defense === d)?.accuracy[task];
    const c = strongestCell(r, d, budget);
    return u === undefined || !c ? undefined : [u, c.agreement];
  };
  const p = point(defense);
  if (!p) return undefined;
  const out: string[] = [];
  for (const d of defenseOrder(r)) {
    if (d === defense) continue;
    const q = point(d);
    if (q && q[0] >= p[0] && q[1] <= p[1] && (q[0] > p[0] || q[1] < p[1])) out.push(d);
  }
  return out;
}

function describe(r: DefendResults): string {
  const c = r.config;
  const parts = [
    `attacks ${r.config.methods.join(', ')} with ${r.config.budgets.map((b) => int(b)).join(' / ')} queries of ${String(c.queryData ?? '?')} train`,
    `surrogate ${String(c.arch ?? '?')} trained ${String(c.epochs ?? '?')} epochs`,
  ];
  if (c.limit) parts.push(`evaluation and honest clients on ${String(c.limit)} images per split`);
  return parts.join('; ');
}

/** results.md: a summary per defense, then the utility and the security tables in full. */
export function defendResultsMarkdown(r: DefendResults): string {
  const lines: string[] = [];
  const acc = r.target.accuracy;
  const budgets = [...r.config.budgets].sort((a, b) => a - b);
  lines.push(`# Defenses against encoder stealing${r.target.file ? `: ${path.basename(r.target.file)}` : ''}`);
  lines.push('');
  lines.push(`Target: ${r.target.arch}, linear-probe test accuracy ${acc ? r.tasks.map((t) => `${taskTitle(t)} ${pct(acc[t])}`).join(', ') : 'not measured yet'} (raw embeddings).`);
  lines.push(
    `Utility: one honest client per task queries that task's TRAIN and TEST images through the defended service and trains its linear probe on the answers (its defense state grows with its own queries only).`,
  );
  lines.push(`Security: ${describe(r)}. Agreement and mean cosine with the target on ${taskTitle(r.tasks[0])} test images; "worst" is the strongest attack.`);
  lines.push('');
  lines.push('## Summary');
  lines.push('');
  const utilOf = (d: string) => r.utility.find((u) => u.defense === d);
  const sHeaders = ['defense', ...r.tasks.map((t) => `honest acc ${taskTitle(t)}`), ...budgets.map((b) => `worst agreement @${int(b)}`), ...budgets.map((b) => `best stolen acc @${int(b)}`)];
  const sRows = defenseOrder(r).map((d) => [
    d === UNDEFENDED ? 'none (undefended)' : d,
    ...r.tasks.map((t) => pct(utilOf(d)?.accuracy[t])),
    ...budgets.map((b) => {
      const c = strongestCell(r, d, b);
      return c ? `${pct(c.agreement)} (${c.method})` : '–';
    }),
    ...budgets.map((b) => pct(strongestCell(r, d, b, (c) => c.stolenAccuracy[r.tasks[0]])?.stolenAccuracy[r.tasks[0]])),
  ]);
  lines.push(markdownTable(sHeaders, sRows, ['left', ...sHeaders.slice(1).map(() => 'right' as const)]));
  lines.push('## Utility: honest clients');
  lines.push('');
  const uHeaders = ['defense', 'task', 'honest acc', 'vs target', 'queries', 'coverage', 'sigma at end'];
  const uRows: unknown[][] = [];
  for (const d of defenseOrder(r)) {
    const u = utilOf(d);
    if (!u) continue;
    for (const t of r.tasks) {
      const a = u.accuracy[t];
      const base = acc?.[t];
      const cov = statOf(u.stats[t], 'coverage');
      uRows.push([
        d,
        taskTitle(t),
        pct(a),
        a !== undefined && base !== undefined ? `${a - base >= 0 ? '+' : ''}${((a - base) * 100).toFixed(1)} pt` : '–',
        int(u.queries[t]),
        cov === undefined ? '–' : `${cov.toFixed(2)}%`,
        sigmaText(statOf(u.stats[t], 'sigma')),
      ]);
    }
  }
  lines.push(markdownTable(uHeaders, uRows, ['left', 'left', 'right', 'right', 'right', 'right', 'right']));
  lines.push('## Security: attacks through the defended service');
  lines.push('');
  const cHeaders = ['defense', 'method', 'budget', 'queries', ...r.tasks.map((t) => `stolen acc ${taskTitle(t)}`), 'agreement', 'mean cos', 'attacker coverage', 'sigma at end', 'steal s'];
  const order = defenseOrder(r);
  const cells = [...r.cells].sort((a, b) => order.indexOf(a.defense) - order.indexOf(b.defense) || a.method.localeCompare(b.method) || a.budget - b.budget);
  const cRows = cells.map((c) => {
    const cov = statOf(c.attackerStats, 'coverage');
    return [
      c.defense,
      ...cellFigureColumns(c, r.tasks),
      cov === undefined ? '–' : `${cov.toFixed(2)}%`,
      sigmaText(statOf(c.attackerStats, 'sigma')),
      fixed(c.wallSeconds, 1),
    ];
  });
  // What an attacker gets without stealing, in the same columns (when the results have them).
  cRows.unshift(...baselineTableRows(r.baselines, r.tasks, 3).map((row) => ['–', ...row]));
  lines.push(markdownTable(cHeaders, cRows, ['left', 'left', ...cHeaders.slice(2).map(() => 'right' as const)]).trimEnd());
  lines.push('');
  lines.push(columnDefinitions(r.tasks[0], r.baselines));
  lines.push('');
  lines.push('## Trade-off: dominated settings');
  lines.push('');
  lines.push('A setting is dominated when another gives the honest client at least the same accuracy on the task and the strongest attack at most the same agreement (one of them strictly).');
  lines.push('');
  const dHeaders = ['defense', ...budgets.flatMap((b) => r.tasks.map((t) => `@${int(b)}, ${taskTitle(t)} utility`))];
  const dRows = defenseOrder(r).map((d) => [
    d,
    ...budgets.flatMap((b) =>
      r.tasks.map((t) => {
        const by = dominatedBy(r, d, b, t);
        return by === undefined ? '–' : by.length ? `by ${by.join(', ')}` : 'not dominated';
      }),
    ),
  ]);
  lines.push(markdownTable(dHeaders, dRows, ['left', ...dHeaders.slice(1).map(() => 'left' as const)]));
  return lines.join('\n');
}

function sigmaText(v: number | undefined): string {
  if (v === undefined || !Number.isFinite(v)) return '–';
  if (v === 0) return '0';
  return v >= 0.01 && v < 1000 ? (+v.toPrecision(3)).toString() : v.toExponential(2);
}

/** One chart: x = honest accuracy on `xTask`, y = value of the strongest attack per (defense, budget). */
function tradeoffChart(r: DefendResults, xTask: string, yName: string, yLabel: string, value: (c: DefendCellResult) => number, file: string): [string, string] {
  const budgets = [...new Set([...r.config.budgets, ...r.cells.map((c) => c.budget)])].sort((a, b) => a - b);
  const order = defenseOrder(r);
  const utilX = (d: string) => r.utility.find((u) => u.defense === d)?.accuracy[xTask];
  const series: ChartSeries[] = [];
  // A thin connector joins each defense's points across the budgets.
  if (budgets.length > 1) {
    for (const d of order) {
      const x = d === UNDEFENDED ? utilX(UNDEFENDED) ?? r.target.accuracy?.[xTask] : utilX(d);
      const pts = budgets.map((b) => strongestCell(r, d, b, value)).filter((c): c is DefendCellResult => !!c).map((c) => [x ?? NaN, value(c)] as [number, number]);
      if (x !== undefined && pts.length > 1) series.push({ name: `${d} across budgets`, points: pts, color: '#bbbbbb', markerSize: 0, strokeWidth: 1, legend: false });
    }
  }
  budgets.forEach((b, i) => {
    const pts: [number, number][] = [];
    const labels: string[] = [];
    for (const d of order) {
      if (d === UNDEFENDED) continue;
      const x = utilX(d);
      const c = strongestCell(r, d, b, value);
      if (x === undefined || !c) continue;
      pts.push([x, value(c)]);
      // Label each defense once, at its point for the largest budget.
      labels.push(i === budgets.length - 1 ? d : '');
    }
    series.push({ name: `defended, ${int(b)} queries`, points: pts, labels, line: false, color: PALETTE[i % PALETTE.length], marker: MARKERS[i % MARKERS.length], markerSize: 5 });
  });
  // The undefended service last: its stars stay visible over the defended points.
  const basePts: [number, number][] = [];
  const baseLabels: string[] = [];
  budgets.forEach((b, i) => {
    const x = utilX(UNDEFENDED) ?? r.target.accuracy?.[xTask];
    const c = strongestCell(r, UNDEFENDED, b, value);
    if (x === undefined || !c) return;
    basePts.push([x, value(c)]);
    baseLabels.push(i === budgets.length - 1 ? 'undefended' : '');
  });
  if (basePts.length) series.push({ name: 'undefended', points: basePts, labels: baseLabels, line: false, color: '#000000', marker: 'star', markerSize: 7 });
  const methods = r.config.methods.join(', ');
  return [
    file,
    renderLineChart({
      title: `Defenses: honest utility vs ${yName}`,
      subtitle:
        `x: an honest client's ${taskTitle(xTask)} linear-probe accuracy on the defended answers; ` +
        `y: ${yName} of the strongest of ${methods} (one point per defense setting and query budget, labelled at the largest budget); target ${r.target.arch}`,
      xLabel: `honest client's ${taskTitle(xTask)} test accuracy (utility)`,
      yLabel,
      xFormat: 'percent',
      yFormat: 'percent',
      series,
      width: 860,
      height: 560,
    }),
  ];
}

/** The charts of the report: file name -> SVG document. */
export function defendCharts(r: DefendResults): Record<string, string> {
  const out: Record<string, string> = {};
  const first = r.tasks[0];
  const agree = (c: DefendCellResult) => c.agreement;
  const [f0, s0] = tradeoffChart(r, first, 'stealing agreement', `agreement of stolen and target probes (${taskTitle(first)})`, agree, 'chart.svg');
  out[f0] = s0;
  for (const t of r.tasks.slice(1)) {
    const [f, s] = tradeoffChart(r, t, 'stealing agreement', `agreement of stolen and target probes (${taskTitle(first)})`, agree, `chart-${t.replace(/[^a-z0-9-]/gi, '_')}.svg`);
    out[f] = s;
  }
  const [fa, sa] = tradeoffChart(r, first, 'stolen accuracy', `stolen encoder's ${taskTitle(first)} test accuracy`, (c) => c.stolenAccuracy[first] ?? NaN, 'chart-accuracy.svg');
  out[fa] = sa;
  return out;
}

/** Reads a results file; null when it does not exist. */
export function readDefendResults(file: string): DefendResults | null {
  return readResultsFile<DefendResults>(file, 'defend-experiment', (r) => r.kind === DEFEND_RESULTS_KIND && Array.isArray(r.cells) && Array.isArray(r.utility) && !!r.config && Array.isArray(r.tasks));
}

/** Writes results.json first (atomically), then results.md and the charts. Returns the paths written. */
export function writeDefendReport(dir: string, r: DefendResults): string[] {
  return writeReportFolder(dir, r, defendResultsMarkdown(r), defendCharts(r));
}
