// The API fuzzer, long runs: every exported function of lib/index.ts called
// with hostile arguments in child processes (see test/fuzz/runner.ts).
//
//   node -r ./test/fuzz/ts-require.cjs scripts/fuzz.ts [--calls 6000] [--seed 1] [--start 0]
//        [--timeout-ms 5000] [--calls-per-child 500] [--json report.json]
//
// Prints progress on stderr and the report (calls, outcomes, every raw engine
// error / hang / crash with its target and arguments) as JSON on stdout.
// Exit code 0 when there was no raw error, hang or crash, 1 otherwise.
import * as fs from 'node:fs';
import { runFuzz } from '../test/fuzz/runner';

function parse(argv: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  const allowed = ['calls', 'seed', 'start', 'timeout-ms', 'calls-per-child', 'json'];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--help' || a === '-h') {
      process.stdout.write('usage: node -r ./test/fuzz/ts-require.cjs scripts/fuzz.ts [--calls N] [--seed S] [--start I] [--timeout-ms MS] [--calls-per-child N] [--json FILE]\n');
      process.exit(0);
    }
    const key = a.startsWith('--') ? a.slice(2) : '';
    if (!allowed.includes(key) || i + 1 >= argv.length) throw new Error(`unknown or incomplete option ${JSON.stringify(a)}; options: ${allowed.map((k) => `--${k}`).join(', ')}`);
    out[key] = argv[++i];
  }
  return out;
}

function int(v: string | undefined, name: string, def: number, min: number): number {
  if (v === undefined) return def;
  if (!/^[0-9]+$/.test(v) || Number(v) < min) throw new Error(`--${name} must be an integer >= ${min}, got ${JSON.stringify(v)}`);
  return Number(v);
}

async function main(): Promise<number> {
  const a = parse(process.argv.slice(2));
  const report = await runFuzz({
    calls: int(a.calls, 'calls', 6000, 1),
    seed: int(a.seed, 'seed', 1, 0),
    start: int(a.start, 'start', 0, 0),
    timeoutMs: int(a['timeout-ms'], 'timeout-ms', 5000, 100),
    callsPerChild: int(a['calls-per-child'], 'calls-per-child', 500, 1),
    log: (l) => process.stderr.write(l + '\n'),
  });
  const text = JSON.stringify(report, null, 1);
  if (a.json) fs.writeFileSync(a.json, text + '\n');
  process.stdout.write(text + '\n');
  const c = report.counts;
  process.stderr.write(
    `calls ${report.calls}, targets ${report.targetsCalled}/${report.targets}: ok ${c.ok}, clean errors ${c.clean}, raw engine errors ${c.raw}, hangs ${c.hang}, crashes ${c.crash} (${report.seconds.toFixed(1)} s)\n`,
  );
  return c.raw + c.hang + c.crash === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`${(e as Error).message}\n`);
    process.exit(2);
  },
);
