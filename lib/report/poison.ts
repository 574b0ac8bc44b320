// The PoisonedEncoder experiment's report: results.json -> results.md (one
// row per cell: CA and ASR per task, the change of CA against the clean
// encoder, costs) and charts (ASR and CA against the poisoning rate per
// construction; ASR against CA per defense).
import { markdownTable, pct, fixed } from './table';
import { renderLineChart, type ChartSeries } from './svg';
import { readResultsFile, writeReportFolder } from './folder';

export const POISON_RESULTS_KIND = 'encsec-poison-experiment';

export interface PoisonTaskFigures {
  task: string;
  ca: number;
  meanAccuracy: number;
  asr: number;
  hits: number;
  pairs: number;
  /** Mean over targets of cos(f(x_t), class mean of y_t) - cos(f(x_t), class mean of its true class). */
  meanShift: number;
  /** y_t of each target input of the task, in the order of targetPredictions. */
  targetClasses: number[];
  classifiers: { kind: string; seed: number; accuracy: number; targetPredictions: number[] }[];
}

export interface PoisonCellResult {
  key: string;
  /** 'clean' for the reference encoder. */
  construction: string;
  rate: number;
  defense: string;
  tasks: PoisonTaskFigures[];
  /** Pre-training epochs of the measured encoder and their wall time (0 when no pre-training ran for this cell). */
  epochs: number;
  pretrainSeconds: number;
  /** The defense's own cost. */
  defenseSeconds: number;
  defenseCleanImages: number;
  detection?: { poisonsDropped: number; poisons: number; cleanDropped: number; clean: number; threshold: number };
  encoderFile?: string;
  note?: string;
}

export interface PoisonResults {
  kind: typeof POISON_RESULTS_KIND;
  version: 1;
  config: Record<string, unknown> & { rates: number[]; constructions: string[]; defenses: string[] };
  cells: PoisonCellResult[];
  updatedAt: string;
}

/** What each defense trades, for the table. */
export const DEFENSE_TRADE: Record<string, string> = {
  none: 'no defense',
  detect: 'drops images before training: needs a trusted reference encoder; loses the clean images it drops',
  'early-stop': 'fewer epochs: no extra cost, lower CA',
  dp: 'per-group clipping + noise: slower steps, lower CA',
  'local-crop': 'crops of view 2 inside view 1: same cost, changes what is learned',
  'finetune-1': 'fine-tunes on 1% clean data: extra training, needs clean data',
  'finetune-10': 'fine-tunes on 10% clean data: extra training, needs more clean data',
};

function figure(c: PoisonCellResult, task: string): PoisonTaskFigures | undefined {
  return c.tasks.find((t) => t.task === task);
}

export function poisonResultsMarkdown(r: PoisonResults): string {
  const clean = r.cells.find((c) => c.construction === 'clean');
  const tasks = [...new Set(r.cells.flatMap((c) => c.tasks.map((t) => t.task)))];
  const headers = ['construction', 'rho', 'defense', ...tasks.flatMap((t) => [`CA ${t}`, `ASR ${t}`]), 'ΔCA (pts)', 'shift', 'pre-train s', 'defense s', 'clean imgs', 'dropped (poison/clean)', 'trade-off'];
  const rows = r.cells.map((c) => {
    const first = c.tasks[0];
    const base = clean ? figure(clean, first?.task ?? '') : undefined;
    return [
      c.construction,
      c.construction === 'clean' ? '-' : pct(c.rate, 1),
      c.defense,
      ...tasks.flatMap((t) => {
        const f = figure(c, t);
        return [f ? pct(f.ca) : '-', f ? `${pct(f.asr)} (${f.hits}/${f.pairs})` : '-'];
      }),
      base && first ? fixed(100 * (first.ca - base.ca), 1) : '-',
      first ? fixed(first.meanShift, 3) : '-',
      fixed(c.pretrainSeconds, 0),
      fixed(c.defenseSeconds, 0),
      String(c.defenseCleanImages),
      c.detection ? `${c.detection.poisonsDropped}/${c.detection.poisons} · ${c.detection.cleanDropped}/${c.detection.clean}` : '-',
      DEFENSE_TRADE[c.defense] ?? '',
    ];
  });
  const cfg = r.config;
  return [
    '# PoisonedEncoder experiment',
    '',
    `Pre-training protocol (every cell, the clean reference included): ${String(cfg.arch)}, SimCLR, ${String(cfg.epochs)} epochs, batch ${String(cfg.batchSize)}, lr ${String(cfg.lr)}, seed ${String(cfg.seed)}, on ${String(cfg.data)}${cfg.limit ? ` (first ${String(cfg.limit)} images)` : ''}.`,
    `Targets: ${String(cfg.targets)}; ASR over linear probes (seeds ${JSON.stringify(cfg.probeSeeds)}) and one MLP per task. CA: the seed-0 linear probe. ΔCA: first task, against the clean encoder. shift: mean over the first task's targets of cos(f(x_t), mean f of y_t) - cos(f(x_t), mean f of its true class).`,
    '',
    markdownTable(headers, rows),
    '',
  ].join('\n');
}

export function poisonCharts(r: PoisonResults): Record<string, string> {
  const tasks = [...new Set(r.cells.flatMap((c) => c.tasks.map((t) => t.task)))];
  const first = tasks[0];
  if (!first) return {};
  const clean = r.cells.find((c) => c.construction === 'clean');
  const undefended = r.cells.filter((c) => c.construction !== 'clean' && c.defense === 'none');
  const byConstruction = (value: (f: PoisonTaskFigures) => number): ChartSeries[] =>
    [...new Set(undefended.map((c) => c.construction))].map((k) => ({
      name: k,
      points: undefended.filter((c) => c.construction === k && figure(c, first)).map((c) => [c.rate, value(figure(c, first)!)] as const),
    }));
  const refs = (value: (f: PoisonTaskFigures) => number) => (clean && figure(clean, first) ? [{ label: 'clean encoder', y: value(figure(clean, first)!) }] : []);
  const charts: Record<string, string> = {};
  charts['asr-vs-rate.svg'] = renderLineChart({ title: `PoisonedEncoder: ASR against the poisoning rate (${first})`, xLabel: 'poisoning rate', yLabel: 'ASR', series: byConstruction((f) => f.asr), references: refs((f) => f.asr), yFormat: 'percent', xFormat: 'percent' });
  charts['ca-vs-rate.svg'] = renderLineChart({ title: `Clean accuracy against the poisoning rate (${first})`, xLabel: 'poisoning rate', yLabel: 'CA (linear probe)', series: byConstruction((f) => f.ca), references: refs((f) => f.ca), yFormat: 'percent', xFormat: 'percent' });
  const defended = r.cells.filter((c) => c.construction !== 'clean' && figure(c, first));
  const series: ChartSeries[] = [...new Set(defended.map((c) => c.defense))].map((d) => ({
    name: d,
    line: false,
    points: defended.filter((c) => c.defense === d).map((c) => [figure(c, first)!.ca, figure(c, first)!.asr] as const),
    labels: defended.filter((c) => c.defense === d).map((c) => `${c.construction} ${pct(c.rate, 1)}`),
  }));
  charts['asr-vs-ca.svg'] = renderLineChart({ title: `ASR against CA per defense (${first})`, xLabel: 'CA (linear probe)', yLabel: 'ASR', series, yFormat: 'percent', xFormat: 'percent' });
  return charts;
}

export function readPoisonResults(file: string): PoisonResults | null {
  return readResultsFile<PoisonResults>(file, 'poison', (r) => r.kind === POISON_RESULTS_KIND && Array.isArray(r.cells) && typeof r.config === 'object');
}

export function writePoisonReport(dir: string, r: PoisonResults): string[] {
  return writeReportFolder(dir, r, poisonResultsMarkdown(r), poisonCharts(r));
}
