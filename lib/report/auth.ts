// The SSL-Auth experiment's results: rows, the markdown table and the chart
// (lib/experiments/auth runs the cells; this file only reads and renders).
import * as path from 'node:path';
import type { AuthKey, AuthReport, SelectionRule } from '../watermark/sslauth';
import { markdownTable, pct } from './table';
import { renderLineChart } from './svg';
import { readResultsFile, writeReportFolder } from './folder';
export const AUTH_RESULTS_KIND = 'encsec-auth-experiment';
export const RULES: SelectionRule[] = ['sensitivity', 'random'];

/** One key's figures on one row. */
export interface AuthScore {
  verdict: AuthReport['verdict'];
  baselineVerdict: AuthReport['verdict'];
  psnrDb: number | null;
  ssim: number | null;
  bitAgreement: number | null;
  baselineDistance: number | null;
  noiseRatio: number | null;
  baselineNoiseRatio: number | null;
  psnrThreshold: number;
  baselineThreshold: number;
  reason: string;
}

export interface AuthRow {
  id: string;
  label: string;
  /** What the row should be judged: authentic, tampered, or not judged (a perturbing source). */
  expect: 'authentic' | 'tampered' | 'cannot-authenticate';
  /** By key-sample rule. */
  scores: Record<string, AuthScore>;
  /** Authentic row: verifications run and false alarms (per method and rule). */
  checks?: number;
  falseAlarms?: Record<string, number>;
  /** Backdoor row: BadEncoder's own figures. */
  backdoor?: { attackSuccessRate: number; cleanAccuracy: number; baseRate: number; triggerToReferenceCosine: number; targetClass: number };
  seconds: number;
}

export interface AuthResults {
  kind: string;
  version: number;
  config: Record<string, unknown>;
  /** Per rule: thresholds and calibration of the key. */
  keys: Record<string, { thresholds: AuthKey['thresholds']; calibration: AuthKey['calibration']; indices: number[] }>;
  cells: AuthRow[];
  updatedAt: string;
}
/** A fixed-point figure, or a dash where the row has none. */
export const fixedOrDash = (v: number | null | undefined, d = 2) => (v === null || v === undefined ? '–' : v.toFixed(d));
const sci = (v: number | null | undefined) => (v === null || v === undefined ? '–' : v.toExponential(2));
const mark = (verdict: string, expect: string) => (verdict === expect ? `${verdict}` : `**${verdict}** (expected ${expect})`);

export function authResultsMarkdown(r: AuthResults): string {
  const lines: string[] = [];
  const c = r.config;
  lines.push('# SSL-Auth: integrity verification of an encoder', '');
  lines.push(`Target: \`${path.basename(String(c.targetFile))}\` (sha256 ${String(c.targetSha256).slice(0, 12)}…). K = ${c.keySamples} key samples from ${c.data}; thresholds calibrated on the thread counts ${JSON.stringify(c.threadCounts)} and modelled float32 noise (relative ${c.noiseRel}), safety factor ${c.safety}.`, '');
  lines.push('Margin: how many times the calibrated numerical noise a row\'s change is (SSL-Auth: sqrt of the rebuild-MSE excess ratio; baseline: distance ratio). Tampered when the margin exceeds the safety factor.', '');
  for (const rule of RULES) {
    const k = r.keys[rule];
    if (!k) continue;
    lines.push(`## Key samples: ${rule}`, '');
    lines.push(`PSNR threshold ${k.thresholds.psnrDb.toFixed(2)} dB (authentic ${k.calibration.authentic.psnrDb.toFixed(2)} dB); baseline threshold ${sci(k.thresholds.baselineDistance)}; noise: observed MSE excess ${sci(k.calibration.observedMseExcess)}, modelled ${sci(k.calibration.modelledMseExcess)}; baseline observed ${sci(k.calibration.observedBaselineDistance)}, modelled ${sci(k.calibration.modelledBaselineDistance)}.`, '');
    const rows = r.cells.map((row) => {
      const s = row.scores[rule];
      const extra = row.backdoor ? ` (ASR ${pct(row.backdoor.attackSuccessRate)}, base ${pct(row.backdoor.baseRate)})` : row.checks ? ` (${row.checks} checks, false alarms ${row.falseAlarms?.[`sslauth:${rule}`] ?? 0} / ${row.falseAlarms?.[`baseline:${rule}`] ?? 0})` : '';
      return [
        row.label + extra,
        fixedOrDash(s?.psnrDb),
        fixedOrDash(s?.ssim, 4),
        s?.bitAgreement === null || s?.bitAgreement === undefined ? '–' : pct(s.bitAgreement),
        fixedOrDash(s?.noiseRatio, 1),
        s ? mark(s.verdict, row.expect) : '–',
        sci(s?.baselineDistance),
        fixedOrDash(s?.baselineNoiseRatio, 1),
        s ? mark(s.baselineVerdict, row.expect) : '–',
      ];
    });
    lines.push(markdownTable(['row', 'PSNR dB', 'SSIM', 'bits', 'margin', 'SSL-Auth', 'baseline dist.', 'margin', 'baseline'], rows, ['left', 'right', 'right', 'right', 'right', 'left', 'right', 'right', 'left']), '');
  }
  const summary: string[] = [];
  for (const rule of RULES) {
    for (const method of ['sslauth', 'baseline'] as const) {
      const tam = r.cells.filter((row) => row.expect === 'tampered' && row.scores[rule]);
      const flagged = tam.filter((row) => (method === 'sslauth' ? row.scores[rule].verdict : row.scores[rule].baselineVerdict) === 'tampered').length;
      const auth = r.cells.find((row) => row.expect === 'authentic');
      const fa = auth?.falseAlarms?.[`${method}:${rule}`];
      const ratios = tam.map((row) => (method === 'sslauth' ? row.scores[rule].noiseRatio : row.scores[rule].baselineNoiseRatio)).filter((v): v is number => v !== null);
      summary.push(`- ${method === 'sslauth' ? 'SSL-Auth' : 'baseline'}, ${rule} key samples: ${flagged}/${tam.length} tampering rows flagged; false alarms ${fa ?? '–'}${auth?.checks ? `/${auth.checks}` : ''}; smallest margin ${ratios.length ? Math.min(...ratios).toFixed(1) : '–'}x noise.`);
    }
  }
  lines.push('## Summary', '', ...summary, '');
  return lines.join('\n');
}

function authCharts(r: AuthResults): Record<string, string> {
  const safety = Number(r.config.safety);
  const series = RULES.flatMap((rule, ri) =>
    (['sslauth', 'baseline'] as const).map((method, mi) => ({
      name: `${method === 'sslauth' ? 'SSL-Auth' : 'baseline'} (${rule})`,
      line: false,
      marker: (['circle', 'square', 'triangle', 'diamond'] as const)[ri * 2 + mi],
      points: r.cells
        .map((row, i) => {
          const s = row.scores[rule];
          const v = s ? (method === 'sslauth' ? s.noiseRatio : s.baselineNoiseRatio) : null;
          return v === null || v === undefined ? null : ([i + 1, Math.log10(Math.max(v, 1e-2))] as const);
        })
        .filter((p): p is readonly [number, number] => p !== null),
    })),
  );
  return {
    'auth.svg': renderLineChart({
      title: 'SSL-Auth and baseline: each row\'s change against the threshold',
      subtitle: `x: row of results.md (${r.cells.map((c, i) => `${i + 1} ${c.id}`).join(', ')})`,
      xLabel: 'row',
      yLabel: 'log10(margin: change / numerical noise)',
      series,
      references: [{ label: `threshold (safety ${safety})`, y: Math.log10(safety) }],
    }),
  };
}

export function readAuthResults(file: string): AuthResults | null {
  return readResultsFile<AuthResults>(file, 'auth', (r) => r.kind === AUTH_RESULTS_KIND && Array.isArray(r.cells) && typeof r.config === 'object');
}

export function writeAuthReport(dir: string, r: AuthResults): string[] {
  return writeReportFolder(dir, r, authResultsMarkdown(r), authCharts(r));
}
