// The SSLGuard experiment's results: rows, the null model of the rows not
// derived from F_w, the markdown table and the WR chart (lib/experiments/watermark
// runs the cells; this file only reads and renders what they wrote).
import * as path from 'node:path';
import { ownershipVerdict } from '../watermark/sslguard/verify';
import { markdownTable, pct } from './table';
import { renderLineChart } from './svg';
import { readResultsFile, writeReportFolder } from './folder';
export const WATERMARK_RESULTS_KIND = 'encsec-watermark-experiment';

export interface WatermarkRow {
  /** Stable cell id, e.g. "stolen-fw:contsteal@12000". */
  id: string;
  label: string;
  /** null: not derived from F_w (counts in the null model); derived: should verify. */
  role: 'null' | 'derived';
  hits: number;
  n: number;
  wr: number;
  meanCos: number;
  /** Task -> linear-probe TEST accuracy (null where the row is an embedding source, not an encoder). */
  accuracy: Record<string, number> | null;
  seconds: number;
  note?: string;
}

export interface WatermarkResults {
  kind: string;
  version: number;
  config: Record<string, unknown>;
  cells: WatermarkRow[];
  updatedAt: string;
}
/** The rows grouped by role, the null rows first, each group in run order (rows run in priority order, not report order). */
function byRole(cells: WatermarkRow[]): WatermarkRow[] {
  return [...cells.filter((c) => c.role === 'null'), ...cells.filter((c) => c.role !== 'null')];
}

/** The null model of the rows present: pooled hits of the null rows. */
export function nullModelOf(r: WatermarkResults): { hits: number; trials: number; sources: string[] } {
  const rows = r.cells.filter((c) => c.role === 'null');
  return { hits: rows.reduce((s, c) => s + c.hits, 0), trials: rows.reduce((s, c) => s + c.n, 0), sources: rows.map((c) => c.id) };
}

export function watermarkResultsMarkdown(r: WatermarkResults): string {
  const nm = nullModelOf(r);
  const alpha = (r.config.alpha as number) ?? 1e-6;
  const tasks = (r.config.evalTasks as string[]) ?? [];
  const lines = [
    '# SSLGuard: watermark verification under attacks',
    '',
    `Target F: \`${path.basename(String(r.config.targetFile))}\` (sha256 ${String(r.config.targetSha256).slice(0, 12)}…). |D_v| = ${String(r.config.verifySize)}; a hit is cos(D(E(x_t)), sk) > 0.5. ` +
      `Null model: ${nm.hits} hits in ${nm.trials} trials over ${r.cells.filter((c) => c.role === 'null').length} encoders not derived from F_w ` +
      `(one-sided 95% upper bound as the null rate); verdict "watermarked" when p < ${alpha}.`,
    '',
  ];
  if (nm.trials === 0) {
    lines.push('No null rows yet: no verdicts.', '');
  }
  const headers = ['encoder', 'role', 'WR', 'hits', 'p-value', 'verdict', ...tasks.map((t) => `${t} probe`), 'seconds'];
  const rows = byRole(r.cells).map((c) => {
    const v = nm.trials > 0 ? ownershipVerdict(c.hits, c.n, nm, { alpha }) : null;
    return [
      c.label + (c.note ? ` (${c.note})` : ''),
      c.role === 'null' ? 'not derived' : 'derived from F_w',
      pct(c.wr, 1),
      `${c.hits}/${c.n}`,
      v ? (v.pValue > 0 ? v.pValue.toExponential(2) : `1e${v.log10PValue.toFixed(0)}`) : '-',
      v ? v.verdict : '-',
      ...tasks.map((t) => (c.accuracy && c.accuracy[t] !== undefined ? pct(c.accuracy[t], 2) : '-')),
      c.seconds.toFixed(0),
    ];
  });
  lines.push(markdownTable(headers, rows), '');
  return lines.join('\n');
}

export function watermarkCharts(r: WatermarkResults): Record<string, string> {
  if (r.cells.length === 0) return {};
  const nm = nullModelOf(r);
  const n = r.cells[0].n;
  const alpha = (r.config.alpha as number) ?? 1e-6;
  // The smallest WR that verifies at this null rate: the verdict threshold on WR.
  let kMin = n + 1;
  if (nm.trials > 0) for (let k = 0; k <= n; k++) if (ownershipVerdict(k, n, nm, { alpha }).verdict === 'watermarked') { kMin = k; break; }
  const cells = byRole(r.cells);
  const series = (['null', 'derived'] as const).map((role) => ({
    name: role === 'null' ? 'not derived from F_w' : 'derived from F_w',
    line: false,
    points: cells.map((c, i) => [i + 1, c.wr] as const).filter((_, i) => cells[i].role === role),
    labels: cells.filter((c) => c.role === role).map((c) => c.label),
  }));
  return {
    'wr.svg': renderLineChart({
      title: 'SSLGuard: WR per encoder against the verdict threshold',
      subtitle: 'x: row of results.md',
      xLabel: 'row',
      yLabel: 'WR on D_v',
      series,
      references: kMin <= n ? [{ label: `verdict threshold (p < ${alpha})`, y: kMin / n }] : [],
      yDomain: [0, 1],
      yFormat: 'percent',
    }),
  };
}

export function readWatermarkResults(file: string): WatermarkResults | null {
  return readResultsFile<WatermarkResults>(file, 'watermark', (r) => r.kind === WATERMARK_RESULTS_KIND && Array.isArray(r.cells) && typeof r.config === 'object');
}

export function writeWatermarkReport(dir: string, r: WatermarkResults): string[] {
  return writeReportFolder(dir, r, watermarkResultsMarkdown(r), watermarkCharts(r));
}
