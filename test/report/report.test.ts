// The report: markdown tables and the SVG line chart, from small results.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { markdownTable, pct, fixed, int } from '../../lib/report/table';
import { escapeXml, formatNumber, niceTicks, renderLineChart, wrapText } from '../../lib/report/svg';
import { STEAL_RESULTS_KIND, readStealResults, sortedCells, stealCharts, stealResultsMarkdown, writeStealReport, type StealResults } from '../../lib/report/steal';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'encsec-report-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));

/**
 * A small XML well-formedness check: every tag closes in order, attributes
 * are name="value" with no raw < or unescaped &, text has no unescaped &.
 * Returns the element names in document order.
 */
function checkXml(doc: string): string[] {
  const names: string[] = [];
  const stack: string[] = [];
  const entity = /&(amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);/g;
  const cleanText = (s: string) => !/[<&]/.test(s.replace(entity, ''));
  let i = 0;
  let root = 0;
  while (i < doc.length) {
    const lt = doc.indexOf('<', i);
    const text = lt < 0 ? doc.slice(i) : doc.slice(i, lt);
    if (!cleanText(text)) throw new Error(`bad text ${JSON.stringify(text)}`);
    if (stack.length === 0 && text.trim() !== '') throw new Error(`text outside the root: ${JSON.stringify(text)}`);
    if (lt < 0) break;
    const gt = doc.indexOf('>', lt);
    if (gt < 0) throw new Error('unterminated tag');
    const tag = doc.slice(lt + 1, gt);
    i = gt + 1;
    if (tag.startsWith('?')) {
      if (!tag.endsWith('?') || names.length) throw new Error(`misplaced declaration <${tag}>`);
      continue;
    }
    if (tag.startsWith('/')) {
      const name = tag.slice(1).trim();
      const open = stack.pop();
      if (open !== name) throw new Error(`</${name}> closes <${open}>`);
      continue;
    }
    const selfClosing = tag.endsWith('/');
    const body = selfClosing ? tag.slice(0, -1) : tag;
    const m = /^([A-Za-z][\w:-]*)((?:\s+[A-Za-z][\w:-]*="[^"]*")*)\s*$/.exec(body);
    if (!m) throw new Error(`malformed tag <${tag}>`);
    const attrs = [...m[2].matchAll(/([A-Za-z][\w:-]*)="([^"]*)"/g)];
    const seen = new Set<string>();
    for (const [, k, v] of attrs) {
      if (seen.has(k)) throw new Error(`duplicate attribute ${k} in <${m[1]}>`);
      seen.add(k);
      if (!cleanText(v)) throw new Error(`bad attribute value ${k}=${JSON.stringify(v)}`);
    }
    if (stack.length === 0 && ++root > 1) throw new Error('more than one root element');
    names.push(m[1]);
    if (!selfClosing) stack.push(m[1]);
  }
  if (stack.length) throw new Error(`unclosed <${stack.join('>, <')}>`);
  return names;
}

const count = (names: string[], n: string) => names.filter((x) => x === n).length;

function results(): StealResults {
  const methods = ['mse', 'stolenencoder', 'contsteal'];
  const cells = methods.flatMap((m, i) =>
    [600, 3000].map((b, j) => ({
      method: m,
      budget: b,
      queriesSpent: b,
      stolenAccuracy: { 'fashion-mnist': 0.6 + 0.05 * i + 0.1 * j, mnist: 0.5 + 0.05 * j },
      agreement: 0.7 + 0.1 * j,
      meanCosine: 0.8,
      finalLoss: 0.1234,
      querySeconds: 1,
      trainSeconds: 9,
      wallSeconds: 10,
      evalSeconds: 2,
    })),
  );
  cells.reverse();
  return {
    kind: STEAL_RESULTS_KIND,
    version: 1,
    config: { methods, budgets: [600, 3000], arch: 'cnn-small', epochs: 60, queryData: 'fashion-mnist', defense: 'none', limit: null },
    target: { file: '/somewhere/target.safetensors', arch: 'cnn-small', accuracy: { 'fashion-mnist': 0.853, mnist: 0.9 } },
    tasks: ['fashion-mnist', 'mnist'],
    cells,
    updatedAt: '2024-01-01T00:00:00.000Z',
  };
}

t.test('markdown tables and formats', async (t) => {
  const md = markdownTable(['a', 'long header', 'n'], [['x|y', 'two\nlines', 5], ['z', null, 12345]], ['left', 'center', 'right']);
  const lines = md.trim().split('\n');
  t.equal(lines.length, 4);
  t.match(lines[1], /^\| -+ \| :-+: \| -+: \|$/, 'alignment row');
  t.match(lines[2], /x\\\|y/, 'pipes escaped');
  t.match(lines[2], /two lines/, 'newlines flattened');
  t.ok(lines.every((l) => l.length === lines[0].length), 'columns padded to equal width');
  t.equal(pct(0.8512), '85.1%');
  t.equal(pct(null), '–');
  t.equal(pct(NaN), '–');
  t.equal(fixed(0.12345), '0.123');
  t.equal(int(12000), '12,000');
});

t.test('steal results -> markdown', async (t) => {
  const r = results();
  const md = stealResultsMarkdown(r);
  t.match(md, /^# Encoder stealing: target\.safetensors/);
  t.match(md, /Fashion-MNIST 85\.3%, MNIST 90\.0%/);
  const rows = md.split('\n').filter((l) => l.startsWith('| ') && !/^\| :?-/.test(l));
  t.equal(rows.length, 1 + 1 + 6, 'header, target row, one row per cell');
  t.match(rows[0], /\| method .*\| budget .*acc Fashion-MNIST .*acc MNIST .*agreement .*mean cos/);
  t.match(rows[1], /^\| target /);
  t.same(sortedCells(r).map((c) => `${c.method}@${c.budget}`), ['mse@600', 'mse@3000', 'stolenencoder@600', 'stolenencoder@3000', 'contsteal@600', 'contsteal@3000'], 'sorted by method (the usual order) then budget');
  t.match(rows[2], /^\| mse +\| +600 \| +600 \| +60\.0% \| +50\.0% \| +70\.0% \| +0\.800 \| +0\.1234 \|/);
  const noTarget = stealResultsMarkdown({ ...r, target: { ...r.target, accuracy: null } });
  t.match(noTarget, /not measured yet/);
});

t.test('line chart: well-formed SVG with one polyline per series, legend, reference line', async (t) => {
  const svg = renderLineChart({
    title: 'A <title> & more',
    subtitle: 'a subtitle long enough to wrap onto a second line when the chart is narrow, which this one is',
    xLabel: 'budget',
    yLabel: 'accuracy',
    xScale: 'log',
    yFormat: 'percent',
    width: 500,
    series: [
      { name: 'mse', points: [[3000, 0.7], [600, 0.6], [12000, 0.75]] },
      { name: 'a&b', points: [[600, 0.65], [3000, 0.72]] },
      { name: 'single', points: [[600, 0.5]] },
    ],
    references: [{ label: 'target (85.3%)', y: 0.853 }],
  });
  const names = checkXml(svg);
  t.equal(names[0], 'svg', 'root element');
  t.equal(count(names, 'polyline'), 3, 'one polyline per series');
  t.equal((svg.match(/class="reference"/g) ?? []).length, 1, 'one reference line');
  t.match(svg, /A &lt;title&gt; &amp; more/, 'title escaped');
  t.match(svg, />a&amp;b</, 'series name escaped in the legend');
  for (const label of ['600', '3,000', '12,000']) t.match(svg, new RegExp(`>${label}</text>`), `x tick ${label}`);
  t.match(svg, />target \(85\.3%\)</);
  t.match(svg, /\(log scale\)/);
  t.ok((svg.match(/font-size="12" fill="#555555"/g) ?? []).length >= 2, 'subtitle wrapped');
  // Marker per point: 3 + 2 + 1 data markers, plus one in each series' legend entry.
  const markers = count(names, 'circle') + count(names, 'rect') + count(names, 'path');
  t.equal(markers, 6 + 3 + 1, 'markers (the extra rect is the background)');

  const linear = renderLineChart({ title: 'lin', xLabel: 'x', yLabel: 'y', series: [{ name: 's', points: [[0, 1], [10, 3]] }] });
  const ln = checkXml(linear);
  t.equal(count(ln, 'polyline'), 1);
  t.notMatch(linear, /log scale/);
  // A percent x axis with one point (a defend chart whose first cell is the
  // undefended one) stays inside 0..100% and around the point.
  const one = renderLineChart({ title: 'one', xLabel: 'x', yLabel: 'y', xFormat: 'percent', yFormat: 'percent', series: [{ name: 's', points: [[0.838, 0.945]] }] });
  const xLabels = [...(one.match(/<g class="x-axis"[\s\S]*?<\/g>/)?.[0] ?? '').matchAll(/>(-?[\d.]+)%<\/text>/g)].map((mm) => Number(mm[1]));
  t.ok(xLabels.length >= 2, `x ticks ${xLabels}`);
  t.ok(xLabels.every((v) => v >= 75 && v <= 95), `x ticks around 83.8%, within 0..100%: ${xLabels}`);
  const edge = renderLineChart({ title: 'edge', xLabel: 'x', yLabel: 'y', xFormat: 'percent', series: [{ name: 's', points: [[1, 0.5]] }] });
  const edgeLabels = [...(edge.match(/<g class="x-axis"[\s\S]*?<\/g>/)?.[0] ?? '').matchAll(/>(-?[\d.]+)%<\/text>/g)].map((mm) => Number(mm[1]));
  t.ok(edgeLabels.length >= 2 && Math.max(...edgeLabels) === 100, `a point at 100% keeps the axis at most 100%: ${edgeLabels}`);
  const empty = renderLineChart({ title: 'empty', xLabel: 'x', yLabel: 'y', series: [] });
  t.equal(count(checkXml(empty), 'polyline'), 0, 'no series: still a valid document');
  t.throws(() => checkXml('<svg><g></svg>'), /closes/, 'the checker catches a bad document');
});

t.test('helpers: ticks, numbers, wrapping, escaping', async (t) => {
  t.same(niceTicks(0.62, 0.87, 5), [0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9]);
  t.same(niceTicks(0, 10, 5), [0, 2, 4, 6, 8, 10]);
  t.same(niceTicks(3, 3), [3]);
  t.equal(formatNumber(12000), '12,000');
  t.equal(formatNumber(0.30000000000000004), '0.3');
  t.same(wrapText('aa bb cc dd', 5), ['aa bb', 'cc dd']);
  t.same(wrapText('averylongword x', 4), ['averylongword', 'x']);
  t.equal(escapeXml(`<a href="x">'&'</a>`), '&lt;a href=&quot;x&quot;&gt;&apos;&amp;&apos;&lt;/a&gt;');
});

t.test('steal charts and the report folder', async (t) => {
  const r = results();
  const charts = stealCharts(r);
  t.same(Object.keys(charts).sort(), ['chart-agreement.svg', 'chart-cosine.svg', 'chart-mnist.svg', 'chart.svg']);
  for (const [name, svg] of Object.entries(charts)) {
    const names = checkXml(svg);
    t.equal(count(names, 'polyline'), 3, `${name}: one line per method`);
    for (const m of r.config.methods) t.match(svg, new RegExp(`>${m}</text>`), `${name}: legend has ${m}`);
    t.equal((svg.match(/class="reference"/g) ?? []).length, 1, `${name}: reference line`);
  }
  t.match(charts['chart.svg'], /target \(85\.3%\)/, 'the target accuracy as reference');
  t.match(charts['chart-mnist.svg'], /target \(90\.0%\)/);
  t.match(charts['chart-agreement.svg'], /perfect copy \(100%\)/);
  // Each attack keeps its colour whatever the grid holds: contsteal is the 4th palette colour.
  const onlyContsteal = stealCharts({ ...r, config: { ...r.config, methods: ['contsteal'] }, cells: r.cells.filter((c) => c.method === 'contsteal') });
  t.match(onlyContsteal['chart.svg'], /<polyline fill="none" stroke="#CC79A7"/);
  t.match(charts['chart.svg'], /<polyline fill="none" stroke="#CC79A7"[^>]*><title>contsteal</);
  // Points sit at their budgets: a 600 and a 3,000 tick.
  t.match(charts['chart.svg'], />3,000<\/text>/);

  const dir = path.join(tmp, 'report');
  const files = writeStealReport(dir, r);
  t.same(files.map((f) => path.basename(f)), ['results.json', 'results.md', 'chart.svg', 'chart-mnist.svg', 'chart-agreement.svg', 'chart-cosine.svg']);
  const back = readStealResults(path.join(dir, 'results.json'))!;
  t.same(back, r, 'results.json round trip');
  t.equal(fs.readdirSync(dir).filter((f) => f.endsWith('.tmp')).length, 0, 'no temporary files left');
  t.equal(readStealResults(path.join(dir, 'missing.json')), null);
  fs.writeFileSync(path.join(dir, 'bad.json'), '{"kind": "other"}');
  t.throws(() => readStealResults(path.join(dir, 'bad.json')), /not an encsec steal-experiment/);
  fs.writeFileSync(path.join(dir, 'broken.json'), '{');
  t.throws(() => readStealResults(path.join(dir, 'broken.json')), /not valid JSON/);
});

t.test('steal report: baseline rows under the target, column definitions, baseline reference lines', async (t) => {
  const r = results();
  r.baselines = [
    { name: 'raw pixels', description: 'normalised pixels as features, no encoder', stolenAccuracy: { 'fashion-mnist': 0.812, mnist: 0.889 }, agreement: 0.801, meanCosine: null, evalSeconds: 1 },
    { name: 'random-init encoder', description: 'cnn-small, untrained (seed 1)', stolenAccuracy: { 'fashion-mnist': 0.766, mnist: 0.827 }, agreement: 0.772, meanCosine: 0.361, evalSeconds: 1 },
    { name: 'untrained surrogate', description: "the attacks' starting point", stolenAccuracy: { 'fashion-mnist': 0.77, mnist: 0.83 }, agreement: 0.775, meanCosine: 0.402, evalSeconds: 1 },
  ];
  const md = stealResultsMarkdown(r);
  const rows = md.split('\n').filter((l) => l.startsWith('| ') && !l.startsWith('| method') && !l.startsWith('| -'));
  t.match(rows[0], /^\| target /);
  t.match(rows[1], /^\| baseline: raw pixels +\| +– \| +0 \| +81\.2% \| +88\.9% \| +80\.1% \| +n\/a \|/, 'raw pixels: accuracies, agreement, no cosine (other size)');
  t.match(rows[2], /^\| baseline: random-init encoder .*\| +77\.2% \| +0\.361 \|/);
  t.match(rows[3], /^\| baseline: untrained surrogate .*\| +77\.5% \| +0\.402 \|/);
  t.match(rows[4], /^\| mse /, 'then the attacks');
  const cols = rows[0].split('|').length;
  t.ok(rows.every((l) => l.split('|').length === cols), 'every row has every column');
  const defs = md.split('\n').find((l) => l.startsWith('Columns:'));
  t.ok(defs, 'one line defines the columns');
  t.match(defs!, /agreement = share of Fashion-MNIST test images on which this encoder's probe predicts the same class as the target's probe/);
  t.match(defs!, /mean cos = mean cosine similarity/);
  t.match(defs!, /untrained surrogate = the attacks' starting point/);
  const charts = stealCharts(r);
  t.match(charts['chart-agreement.svg'], /untrained surrogate \(77\.5%\)/, 'agreement chart: the untrained surrogate as a reference line');
  t.match(charts['chart.svg'], /random-init encoder \(76\.6%\)/, 'accuracy chart: the random-init encoder');
  t.match(charts['chart-cosine.svg'], /untrained surrogate \(0\.402\)/, 'cosine chart');
  checkXml(charts['chart-cosine.svg']);
  // A results file written before baselines existed still renders (no baseline rows).
  const old = results();
  t.notMatch(stealResultsMarkdown(old), /baseline:/);
  t.match(stealResultsMarkdown(old), /^Columns: /m);
});
