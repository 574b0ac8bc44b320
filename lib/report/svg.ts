// A small hand-written SVG line chart (no dependencies): title and subtitle,
// axes with ticks, tick labels and axis labels, light grid lines, one
// polyline with markers per series, dashed horizontal reference lines with
// their label, and a legend to the right of the plot. Linear or log x axis.
//
// The output is a standalone SVG document (well-formed XML); every text is
// escaped. Colours: the Okabe-Ito palette (distinguishable with colour-vision
// deficiencies); marker shapes differ per series too, so the chart still
// reads in grey.
//
// Scatter mode: a series with line: false is drawn as markers only (no
// polyline, no sideways dodge), and a series may label its points; labels
// are placed beside their point (right, left, above or below, the first
// place that overlaps no other label or marker).
import { checkOptions, describe } from '../core/validate';

export interface ChartSeries {
  name: string;
  /** [x, y] points; drawn in order of x. */
  points: ReadonlyArray<readonly [number, number]>;
  /** Default: the palette, by series index. */
  color?: string;
  /** Default: by series index. */
  marker?: MarkerShape;
  /** false: markers only, a scatter series (default true). */
  line?: boolean;
  /** A text beside each point, in the order of `points` ('' for none). */
  labels?: readonly string[];
  /** Marker radius in pixels (default 4; 0 draws no markers). */
  markerSize?: number;
  /** Line width (default 2). */
  strokeWidth?: number;
  /** false: not in the legend, and not dodged (e.g. thin connectors between related points). Default true. */
  legend?: boolean;
}

export interface ReferenceLine {
  label: string;
  y: number;
  color?: string;
}

export interface LineChartSpec {
  title: string;
  subtitle?: string;
  xLabel: string;
  yLabel: string;
  series: readonly ChartSeries[];
  references?: readonly ReferenceLine[];
  /** 'log' suits query budgets (600, 3000, 12000). Default 'linear'. */
  xScale?: 'linear' | 'log';
  /** x tick positions; default: the distinct x values of the data on a log axis, round numbers on a linear one. */
  xTicks?: readonly number[];
  /** y range; default: fitted to the data and references, widened to round ticks. */
  yDomain?: readonly [number, number];
  /** 'percent' shows y values in [0, 1] as percentages. */
  yFormat?: 'number' | 'percent';
  /** 'percent' shows x values in [0, 1] as percentages (linear x axis). */
  xFormat?: 'number' | 'percent';
  width?: number;
  height?: number;
}

export const PALETTE = ['#0072B2', '#D55E00', '#009E73', '#CC79A7', '#E69F00', '#56B4E9', '#000000', '#F0E442'];
export const MARKERS = ['circle', 'square', 'triangle', 'diamond'] as const;
/** The default shapes, by series index; 'star' is there to single out a special series (e.g. a baseline). */
export type MarkerShape = (typeof MARKERS)[number] | 'star';

export function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);
}

const fmt = (v: number) => (Math.round(v * 100) / 100).toString();

/** Round tick values covering [lo, hi] (about `count` of them): steps of 1, 2 or 5 times a power of ten. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / Math.max(1, count);
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const r = raw / mag;
  const step = (r <= 1 ? 1 : r <= 2 ? 2 : r <= 5 ? 5 : 10) * mag;
  const start = Math.floor(lo / step + 1e-9) * step;
  const out: number[] = [];
  for (let v = start; v <= hi + step * 1e-9; v += step) out.push(+v.toPrecision(12));
  if (out[out.length - 1] < hi - step * 1e-9) out.push(+(out[out.length - 1] + step).toPrecision(12));
  return out;
}

/** A number as a short tick label: thousands separators, no float noise. */
export function formatNumber(v: number): string {
  if (Number.isInteger(v) && Math.abs(v) >= 1000) return v.toLocaleString('en-US');
  return (+v.toPrecision(6)).toString();
}

function formatPercent(v: number, step: number): string {
  const decimals = step * 100 >= 1 ? 0 : step * 100 >= 0.1 ? 1 : 2;
  return `${(v * 100).toFixed(decimals)}%`;
}

function marker(shape: MarkerShape, x: number, y: number, color: string, r = 4): string {
  const common = `fill="${color}" stroke="#ffffff" stroke-width="1"`;
  switch (shape) {
    case 'circle':
      return `<circle cx="${fmt(x)}" cy="${fmt(y)}" r="${r}" ${common}/>`;
    case 'square':
      return `<rect x="${fmt(x - r)}" y="${fmt(y - r)}" width="${2 * r}" height="${2 * r}" ${common}/>`;
    case 'triangle':
      return `<path d="M${fmt(x)},${fmt(y - r * 1.2)} L${fmt(x + r * 1.1)},${fmt(y + r * 0.8)} L${fmt(x - r * 1.1)},${fmt(y + r * 0.8)} Z" ${common}/>`;
    case 'diamond':
      return `<path d="M${fmt(x)},${fmt(y - r * 1.3)} L${fmt(x + r * 1.1)},${fmt(y)} L${fmt(x)},${fmt(y + r * 1.3)} L${fmt(x - r * 1.1)},${fmt(y)} Z" ${common}/>`;
    case 'star': {
      // Five points, outer radius 1.6 r, inner 0.65 r.
      const pts: string[] = [];
      for (let i = 0; i < 10; i++) {
        const a = -Math.PI / 2 + (i * Math.PI) / 5;
        const rr = i % 2 === 0 ? r * 1.6 : r * 0.65;
        pts.push(`${fmt(x + rr * Math.cos(a))},${fmt(y + rr * Math.sin(a))}`);
      }
      return `<path d="M${pts.join(' L')} Z" ${common}/>`;
    }
  }
}

/** Splits text at spaces into lines of at most maxChars characters (a longer word gets a line of its own). */
export function wrapText(text: string, maxChars: number): string[] {
  const lines: string[] = [];
  let cur = '';
  for (const word of text.split(/\s+/).filter((w) => w.length > 0)) {
    if (cur && cur.length + 1 + word.length > maxChars) {
      lines.push(cur);
      cur = word;
    } else {
      cur = cur ? `${cur} ${word}` : word;
    }
  }
  if (cur) lines.push(cur);
  return lines;
}

/** Renders the chart as a standalone SVG document. */
const SPEC_KEYS = ['title', 'subtitle', 'xLabel', 'yLabel', 'series', 'references', 'xScale', 'xTicks', 'yDomain', 'yFormat', 'xFormat', 'width', 'height'];
const SERIES_KEYS = ['name', 'points', 'color', 'marker', 'line', 'labels', 'markerSize', 'strokeWidth', 'legend'];

export function renderLineChart(spec: LineChartSpec): string {
  if (spec === undefined) throw new TypeError('spec must be an object { title, xLabel, yLabel, series, ... }, got undefined');
  checkOptions(spec, 'spec', SPEC_KEYS);
  const seriesArg: unknown = spec.series;
  if (!Array.isArray(seriesArg)) throw new TypeError(`spec.series must be an array of series, got ${describe(seriesArg)}`);
  (seriesArg as unknown[]).forEach((s, i) => {
    if (s === undefined) throw new TypeError(`spec.series[${i}] must be an object { name, points, ... }, got undefined`);
    const points: unknown = checkOptions<ChartSeries>(s, `spec.series[${i}]`, SERIES_KEYS).points;
    if (!Array.isArray(points)) throw new TypeError(`spec.series[${i}].points must be an array of [x, y] pairs, got ${describe(points)}`);
  });
  const refsArg: unknown = spec.references;
  if (refsArg !== undefined) {
    if (!Array.isArray(refsArg)) throw new TypeError(`spec.references must be an array, got ${describe(refsArg)}`);
    (refsArg as unknown[]).forEach((r, i) => {
      if (r === undefined) throw new TypeError(`spec.references[${i}] must be an object { label, y, color? }, got undefined`);
      checkOptions(r, `spec.references[${i}]`, ['label', 'y', 'color']);
    });
  }
  const W = spec.width ?? 760;
  const H = spec.height ?? 460;
  const series = spec.series.map((s, i) => {
    // Points and their labels, sorted by x together.
    const pl = s.points
      .map((p, k) => ({ p, label: s.labels?.[k] ?? '' }))
      .filter(({ p: [x, y] }) => Number.isFinite(x) && Number.isFinite(y))
      .sort((a, b) => a.p[0] - b.p[0]);
    return {
      ...s,
      color: s.color ?? PALETTE[i % PALETTE.length],
      marker: s.marker ?? MARKERS[i % MARKERS.length],
      points: pl.map((e) => e.p),
      labels: pl.map((e) => e.label),
      line: s.line !== false,
      markerSize: s.markerSize ?? 4,
      strokeWidth: s.strokeWidth ?? 2,
      legend: s.legend !== false,
    };
  });
  const refs = (spec.references ?? []).filter((r) => Number.isFinite(r.y));
  const logX = spec.xScale === 'log';
  const percent = spec.yFormat === 'percent';
  const xPercent = spec.xFormat === 'percent' && !logX;

  // Legend width from the longest name (about 7 px per character at 12 px).
  const legendNames = [...series.filter((s) => s.legend).map((s) => s.name), ...refs.map((r) => r.label)];
  const legendW = legendNames.length ? Math.min(260, 48 + 7 * Math.max(...legendNames.map((n) => n.length))) : 0;
  // The subtitle wraps at the chart's width (at most about 7 px per character at 12 px).
  const subLines = spec.subtitle ? wrapText(spec.subtitle, Math.floor((W - 72 - 12) / 7)) : [];
  const m = { left: 72, right: 24 + legendW, top: 48 + 16 * subLines.length + (subLines.length ? 6 : 0), bottom: 62 };
  const pw = W - m.left - m.right;
  const ph = H - m.top - m.bottom;

  // x domain and ticks.
  const xs = series.flatMap((s) => s.points.map((p) => p[0])).filter((x) => !logX || x > 0);
  let xTicks = spec.xTicks ? [...spec.xTicks].filter((x) => !logX || x > 0) : [];
  let x0: number, x1: number;
  if (logX) {
    if (!spec.xTicks) xTicks = [...new Set(xs)].sort((a, b) => a - b);
    const all = [...xs, ...xTicks];
    const lo = all.length ? Math.min(...all) : 1;
    const hi = all.length ? Math.max(...all) : 10;
    // Half a decade of margin (less when the data spans several) keeps the end markers off the axes.
    const pad = hi > lo ? Math.min(0.5, (Math.log10(hi) - Math.log10(lo)) * 0.12) : 0.5;
    x0 = Math.log10(lo) - pad;
    x1 = Math.log10(hi) + pad;
  } else {
    let lo = xs.length ? Math.min(...xs) : 0;
    let hi = xs.length ? Math.max(...xs) : 1;
    if (lo === hi) {
      // One x value: widen around it (by 5 points on a percent axis, where ±1 would span -50%..150%).
      const pad = xPercent ? 0.05 : 1;
      lo -= pad;
      hi += pad;
    }
    if (xPercent) {
      // A percentage axis never shows values outside 0..100%.
      lo = Math.max(0, Math.min(lo, 1));
      hi = Math.min(1, Math.max(hi, 0));
      if (!(hi > lo)) [lo, hi] = [0, 1];
    }
    if (!spec.xTicks) xTicks = niceTicks(lo, hi, 6).filter((v) => !xPercent || (v >= -1e-12 && v <= 1 + 1e-12));
    const span = Math.max(hi - lo, 1e-12);
    x0 = Math.min(lo - span * 0.05, ...xTicks);
    x1 = Math.max(hi + span * 0.05, ...xTicks);
  }
  const sx = (x: number) => m.left + ((logX ? Math.log10(x) : x) - x0) / (x1 - x0) * pw;
  const xStep = xTicks.length > 1 ? xTicks[1] - xTicks[0] : 0.1;
  const xTickLabel = (v: number) => (xPercent ? formatPercent(v, xStep) : formatNumber(v));

  // y domain and ticks.
  let y0: number, y1: number, yTicks: number[];
  if (spec.yDomain) {
    [y0, y1] = spec.yDomain;
    yTicks = niceTicks(y0, y1, 5).filter((v) => v >= y0 - 1e-12 && v <= y1 + 1e-12);
  } else {
    const ys = [...series.flatMap((s) => s.points.map((p) => p[1])), ...refs.map((r) => r.y)];
    let lo = ys.length ? Math.min(...ys) : 0;
    let hi = ys.length ? Math.max(...ys) : 1;
    const span = hi - lo;
    const pad = span > 0 ? span * 0.1 : Math.max(Math.abs(hi) * 0.05, percent ? 0.05 : 0.5);
    lo -= pad;
    hi += pad;
    if (percent) {
      lo = Math.max(0, lo);
      hi = Math.min(1, hi);
    }
    yTicks = niceTicks(lo, hi, 5);
    y0 = Math.min(lo, yTicks[0]);
    y1 = Math.max(hi, yTicks[yTicks.length - 1]);
  }
  if (!(y1 > y0)) y1 = y0 + 1;
  const sy = (y: number) => m.top + (1 - (y - y0) / (y1 - y0)) * ph;
  const yStep = yTicks.length > 1 ? yTicks[1] - yTicks[0] : 0.1;
  const yLabel = (v: number) => (percent ? formatPercent(v, yStep) : formatNumber(v));

  const out: string[] = [];
  out.push('<?xml version="1.0" encoding="UTF-8"?>');
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">`);
  out.push(`<title>${escapeXml(spec.title)}</title>`);
  out.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="#ffffff"/>`);
  out.push(`<text x="${m.left}" y="24" font-size="16" font-weight="bold" fill="#111111">${escapeXml(spec.title)}</text>`);
  subLines.forEach((line, i) => out.push(`<text x="${m.left}" y="${44 + 16 * i}" font-size="12" fill="#555555">${escapeXml(line)}</text>`));

  // Grid and y ticks.
  out.push('<g class="y-axis" font-size="11" fill="#333333" text-anchor="end">');
  for (const v of yTicks) {
    const y = sy(v);
    out.push(`<line x1="${m.left}" y1="${fmt(y)}" x2="${m.left + pw}" y2="${fmt(y)}" stroke="#e5e5e5" stroke-width="1"/>`);
    out.push(`<line x1="${m.left - 5}" y1="${fmt(y)}" x2="${m.left}" y2="${fmt(y)}" stroke="#333333" stroke-width="1"/>`);
    out.push(`<text x="${m.left - 8}" y="${fmt(y + 4)}">${escapeXml(yLabel(v))}</text>`);
  }
  out.push('</g>');

  // x ticks.
  out.push('<g class="x-axis" font-size="11" fill="#333333" text-anchor="middle">');
  for (const v of xTicks) {
    const x = sx(v);
    if (x < m.left - 0.5 || x > m.left + pw + 0.5) continue;
    out.push(`<line x1="${fmt(x)}" y1="${m.top + ph}" x2="${fmt(x)}" y2="${m.top + ph + 5}" stroke="#333333" stroke-width="1"/>`);
    out.push(`<text x="${fmt(x)}" y="${m.top + ph + 19}">${escapeXml(xTickLabel(v))}</text>`);
  }
  out.push('</g>');

  // Axes and their labels.
  out.push(`<line x1="${m.left}" y1="${m.top + ph}" x2="${m.left + pw}" y2="${m.top + ph}" stroke="#333333" stroke-width="1"/>`);
  out.push(`<line x1="${m.left}" y1="${m.top}" x2="${m.left}" y2="${m.top + ph}" stroke="#333333" stroke-width="1"/>`);
  out.push(`<text x="${fmt(m.left + pw / 2)}" y="${H - 16}" font-size="13" fill="#111111" text-anchor="middle">${escapeXml(spec.xLabel + (logX && new Set(xs).size > 1 ? ' (log scale)' : ''))}</text>`);
  out.push(`<text transform="translate(18 ${fmt(m.top + ph / 2)}) rotate(-90)" font-size="13" fill="#111111" text-anchor="middle">${escapeXml(spec.yLabel)}</text>`);

  // Reference lines. Their labels go at the left end (curves against a
  // budget usually rise, so the left end is the freer one), above the line,
  // or below it when the line runs along the top of the plot; a white halo
  // keeps them legible over a crossing curve. Drawn after the series.
  const refLabels: string[] = [];
  for (const r of refs) {
    const y = sy(r.y);
    const color = r.color ?? '#444444';
    out.push(`<line class="reference" x1="${m.left}" y1="${fmt(y)}" x2="${m.left + pw}" y2="${fmt(y)}" stroke="${color}" stroke-width="1.5" stroke-dasharray="6 4"/>`);
    const ty = y - m.top < 16 ? y + 14 : y - 5;
    refLabels.push(
      `<text x="${m.left + 6}" y="${fmt(ty)}" font-size="11" fill="${color}" stroke="#ffffff" stroke-width="3" stroke-linejoin="round" paint-order="stroke">${escapeXml(r.label)}</text>`,
    );
  }

  // Series. Each line series is nudged sideways by a few pixels (a
  // "dodge"), so that series with equal values at the same x stay visible
  // side by side; scatter series stay where their values put them.
  const lineSeries = series.filter((s) => s.line && s.legend);
  const placed: { x: number; y: number; label: string; r: number }[] = [];
  series.forEach((s) => {
    const li = lineSeries.indexOf(s);
    const dodge = li >= 0 ? (li - (lineSeries.length - 1) / 2) * 5 : 0;
    const keep = s.points.map(([x]) => !logX || x > 0);
    const pts = s.points.filter((_, k) => keep[k]);
    const labels = s.labels.filter((_, k) => keep[k]);
    out.push(`<g class="${s.line ? 'series' : 'series scatter'}">`);
    if (s.line) {
      out.push(`<polyline fill="none" stroke="${s.color}" stroke-width="${s.strokeWidth}" stroke-linejoin="round" points="${pts.map(([x, y]) => `${fmt(sx(x) + dodge)},${fmt(sy(y))}`).join(' ')}"><title>${escapeXml(s.name)}</title></polyline>`);
    }
    pts.forEach(([x, y], k) => {
      const px = sx(x) + dodge;
      const py = sy(y);
      if (s.markerSize > 0) out.push(marker(s.marker, px, py, s.color, s.markerSize));
      if (s.markerSize > 0 || labels[k]) placed.push({ x: px, y: py, label: labels[k], r: s.markerSize });
    });
    out.push('</g>');
  });

  // Point labels: beside their point, at the first of right / left / above /
  // below that overlaps no placed label, no marker and stays in the plot.
  if (placed.some((p) => p.label)) {
    type Box = { x0: number; y0: number; x1: number; y1: number };
    const boxes: Box[] = placed.map((p) => ({ x0: p.x - p.r - 1, y0: p.y - p.r - 1, x1: p.x + p.r + 1, y1: p.y + p.r + 1 }));
    const hit = (a: Box, b: Box) => a.x0 < b.x1 && b.x0 < a.x1 && a.y0 < b.y1 && b.y0 < a.y1;
    const inside = (b: Box) => b.x0 >= m.left && b.x1 <= m.left + pw && b.y0 >= m.top && b.y1 <= m.top + ph;
    out.push('<g class="point-labels" font-size="11" fill="#222222">');
    placed.forEach((p, k) => {
      if (!p.label) return;
      const w = 6.3 * p.label.length;
      const g = p.r + 4;
      // Candidates: the eight directions around the point, then the same
      // further out (with a thin leader line back to the point).
      const dirs = [[1, 0], [-1, 0], [0, -1], [0, 1], [1, -1], [1, 1], [-1, -1], [-1, 1]];
      const options: { box: Box; tx: number; ty: number; anchor: string; far: boolean }[] = [];
      for (const s of [0, 14, 28, 42, 60]) {
        for (const [dx, dy] of dirs) {
          const ax = p.x + dx * (g + s);
          const ay = p.y + dy * (g + s * 0.6);
          const x0 = dx > 0 ? ax : dx < 0 ? ax - w : ax - w / 2;
          const y0 = dy < 0 ? ay - 12 : dy > 0 ? ay : ay - 8;
          options.push({ box: { x0, y0, x1: x0 + w, y1: y0 + 13 }, tx: dx > 0 ? ax : dx < 0 ? ax : ax, ty: y0 + 9.5, anchor: dx > 0 ? 'start' : dx < 0 ? 'end' : 'middle', far: s > 0 });
        }
      }
      const free = (b: Box) => inside(b) && !boxes.some((o, j) => j !== k && hit(o, b));
      const choice = options.find((o) => free(o.box)) ?? options.find((o) => inside(o.box)) ?? options[0];
      boxes.push(choice.box);
      if (choice.far) {
        // From the marker's edge to the nearest point of the label's box.
        const nx = Math.min(Math.max(p.x, choice.box.x0), choice.box.x1);
        const ny = Math.min(Math.max(p.y, choice.box.y0), choice.box.y1);
        const len = Math.hypot(nx - p.x, ny - p.y);
        if (len > p.r + 2) {
          const sx0 = p.x + ((nx - p.x) / len) * (p.r + 1);
          const sy0 = p.y + ((ny - p.y) / len) * (p.r + 1);
          out.push(`<line x1="${fmt(sx0)}" y1="${fmt(sy0)}" x2="${fmt(nx)}" y2="${fmt(ny)}" stroke="#999999" stroke-width="0.8"/>`);
        }
      }
      out.push(
        `<text x="${fmt(choice.tx)}" y="${fmt(choice.ty)}" text-anchor="${choice.anchor}" stroke="#ffffff" stroke-width="3" stroke-linejoin="round" paint-order="stroke">${escapeXml(p.label)}</text>`,
      );
    });
    out.push('</g>');
  }

  out.push(...refLabels);

  // Legend.
  if (legendNames.length) {
    const lx = m.left + pw + 20;
    let ly = m.top + 8;
    out.push(`<g class="legend" font-size="12" fill="#111111">`);
    for (const s of series) {
      if (!s.legend) continue;
      if (s.line) out.push(`<line x1="${lx}" y1="${ly}" x2="${lx + 28}" y2="${ly}" stroke="${s.color}" stroke-width="2"/>`);
      out.push(marker(s.marker, lx + 14, ly, s.color, s.markerSize));
      out.push(`<text x="${lx + 36}" y="${ly + 4}">${escapeXml(s.name)}</text>`);
      ly += 22;
    }
    for (const r of refs) {
      const color = r.color ?? '#444444';
      out.push(`<line x1="${lx}" y1="${ly}" x2="${lx + 28}" y2="${ly}" stroke="${color}" stroke-width="1.5" stroke-dasharray="6 4"/>`);
      out.push(`<text x="${lx + 36}" y="${ly + 4}">${escapeXml(r.label)}</text>`);
      ly += 22;
    }
    out.push('</g>');
  }
  out.push('</svg>');
  return out.join('\n') + '\n';
}
