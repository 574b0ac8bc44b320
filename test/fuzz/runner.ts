// The API fuzzer's parent: runs a seeded plan of calls in child processes
// (child.ts), so that a crash (the child dies, by a signal or otherwise) or a
// hang (a call that does not return within the limit: the child is killed)
// is caught and attributed to the call, and the run goes on with a fresh
// child from the next call. Used by test/fuzz/api.test.ts (a short run in the
// suite) and scripts/fuzz.ts (long runs).
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { type Outcome, type OutcomeKind, chooseCall } from './plan';

export interface FuzzOptions {
  calls: number;
  seed: number;
  /** First call index (default 0): a run can be resumed or split. */
  start?: number;
  /** A call (sync, or a promise) that has not answered after this long is a hang (default 5000 ms). */
  timeoutMs?: number;
  /** Calls per child before it is replaced by a fresh one (bounds what leaks accumulate; default 500). */
  callsPerChild?: number;
  /** Progress lines (default: none). */
  log?: (line: string) => void;
  /** Extra environment for the children (ENCSEC_FUZZ_SELFTEST=1: the fuzzer's own test targets). */
  env?: NodeJS.ProcessEnv;
}

export interface CallRecord {
  i: number;
  target: string;
  args: string[];
  outcome: Outcome;
}

export interface FuzzReport {
  seed: number;
  calls: number;
  targets: number;
  /** Targets that received at least one call. */
  targetsCalled: number;
  counts: Record<OutcomeKind, number>;
  /** Every call that was not ok or clean (raw engine errors, hangs, crashes), plus escaped async errors. */
  problems: CallRecord[];
  seconds: number;
}

/** The package root (this file runs from test/fuzz, or compiled from dist/test/fuzz). */
function packageRoot(): string {
  for (let d = __dirname; ; d = path.dirname(d)) {
    if (fs.existsSync(path.join(d, 'package.json')) && fs.existsSync(path.join(d, 'test', 'fuzz', 'ts-require.cjs'))) return d;
    if (path.dirname(d) === d) throw new Error('cannot find the encsec package root above ' + __dirname);
  }
}
const ROOT = packageRoot();
const LOADER = path.join(ROOT, 'test', 'fuzz', 'ts-require.cjs');
const CHILD = path.join(ROOT, 'test', 'fuzz', 'child.ts');

interface ChildResult {
  lines: string[];
  code: number | null;
  signal: NodeJS.Signals | null;
  killedForHang: boolean;
}

/**
 * Runs one child on [start, end); resolves when it exits. A call that starts
 * and has no result after timeoutMs gets the child killed (SIGKILL).
 */
function runChild(plan: { seed: number; start: number; end: number; asyncTimeoutMs: number; dir: string }, timeoutMs: number, onLine: (l: string) => void, extraEnv: NodeJS.ProcessEnv = {}): Promise<ChildResult> {
  return new Promise((resolve) => {
    // Required from -e (CommonJS), not run as the entry point: test runners add ESM hooks to children,
    // which would not know the .ts extension.
    const child = spawn(process.execPath, ['-r', LOADER, '-e', `require(${JSON.stringify(CHILD)})`], {
      cwd: plan.dir,
      // Without NODE_OPTIONS: a test runner's loaders and coverage hooks are not for the child.
      env: { ...process.env, NODE_OPTIONS: '', ENCSEC_FUZZ_PLAN: JSON.stringify(plan), ENCSEC_THREADS: process.env.ENCSEC_THREADS ?? '1', ...extraEnv },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const lines: string[] = [];
    let buf = '';
    let killedForHang = false;
    let timer: NodeJS.Timeout | null = null;
    // Loading the library can take long on a busy machine: the clock starts with the first call.
    const arm = () => {
      if (timer) clearTimeout(timer);
      timer = setTimeout(() => {
        killedForHang = true;
        child.kill('SIGKILL');
      }, timeoutMs + 1000);
    };
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        lines.push(line);
        onLine(line);
        if (line.startsWith('S ')) arm();
        else if (line.startsWith('R ') && timer) {
          clearTimeout(timer);
          timer = null;
        }
      }
    });
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (c: string) => {
      stderr = (stderr + c).slice(-4000);
    });
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      if (buf) lines.push(buf);
      if (code !== 0 && !killedForHang && process.env.ENCSEC_FUZZ_DEBUG) process.stderr.write(stderr);
      resolve({ lines, code, signal, killedForHang });
    });
  });
}

/** The targets and the pool labels, as the child sees them. */
async function listing(dir: string, env: NodeJS.ProcessEnv): Promise<{ targets: { path: string; arity: number }[]; pool: string[] }> {
  const r = await runChild({ seed: 0, start: -1, end: -1, asyncTimeoutMs: 0, dir }, 600_000, () => undefined, env);
  const line = r.lines.find((l) => l.startsWith('L '));
  if (!line) throw new Error(`fuzz child did not list its targets (exit ${r.code ?? r.signal}): ${r.lines.join('\n').slice(0, 2000)}`);
  return JSON.parse(line.slice(2)) as { targets: { path: string; arity: number }[]; pool: string[] };
}

export async function runFuzz(options: FuzzOptions): Promise<FuzzReport> {
  const t0 = Date.now();
  const timeoutMs = options.timeoutMs ?? 5000;
  const perChild = options.callsPerChild ?? 500;
  const log = options.log ?? (() => undefined);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'encsec-fuzz-'));
  try {
    const listed = await listing(dir, options.env ?? {});
    const pool = listed.pool;
    const targets = listed.targets.map((t) => t.path);
    // The same choice of call as the child's (from the same arities), to name targets and arguments in the report.
    const poolLike = { labels: pool, make: () => undefined };
    const childTargets = listed.targets.map((t) => ({ path: t.path, kind: 'call' as const, arity: t.arity, invoke: () => undefined }));
    const counts: Record<OutcomeKind, number> = { ok: 0, clean: 0, raw: 0, hang: 0, crash: 0 };
    const problems: CallRecord[] = [];
    const called = new Set<string>();
    const describeCall = (i: number, outcome: Outcome): CallRecord => {
      const c = chooseCall(childTargets, poolLike, options.seed, i);
      return { i, target: targets[c.target], args: c.args.map((a) => pool[a]), outcome };
    };
    const start = options.start ?? 0;
    const end = start + options.calls;
    let next = start;
    while (next < end) {
      const stop = Math.min(end, next + perChild);
      let last = -1;
      let lastResult = -1;
      const r = await runChild({ seed: options.seed, start: next, end: stop, asyncTimeoutMs: timeoutMs, dir }, timeoutMs, (line) => {
        const sp = line.indexOf(' ');
        const tag = line.slice(0, sp);
        if (tag === 'S') last = Number(line.slice(2));
        else if (tag === 'R' || tag === 'U') {
          const rest = line.slice(2);
          const sp2 = rest.indexOf(' ');
          const i = Number(rest.slice(0, sp2));
          const outcome = JSON.parse(rest.slice(sp2 + 1)) as Outcome;
          if (tag === 'R') {
            lastResult = i;
            counts[outcome.kind]++;
            called.add(targets[chooseCall(childTargets, poolLike, options.seed, i).target]);
            if (outcome.kind !== 'ok' && outcome.kind !== 'clean') problems.push(describeCall(i, outcome));
          } else {
            // (U lines carry the call that was running, or the last one.)
            // An error that escaped asynchronously: nobody could catch it.
            counts.raw++;
            problems.push(describeCall(Math.max(i, start), { ...outcome, kind: 'raw', detail: `escaped asynchronously: ${outcome.detail}` }));
          }
        }
      }, options.env ?? {});
      if (r.code === 0 && lastResult === stop - 1) {
        next = stop;
      } else {
        // The child stopped early: the call that started without a result hung or crashed it.
        const culprit = last > lastResult ? last : lastResult + 1;
        const outcome: Outcome = r.killedForHang
          ? { kind: 'hang', detail: `no answer after ${timeoutMs} ms` }
          : { kind: 'crash', detail: r.signal ? `child killed by ${r.signal}` : `child exited with code ${r.code}: ${r.lines.filter((l) => l.startsWith('F ')).join(' ').slice(0, 500)}` };
        if (culprit < end) {
          counts[outcome.kind]++;
          called.add(targets[chooseCall(childTargets, poolLike, options.seed, culprit).target]);
          problems.push(describeCall(culprit, outcome));
          log(`call ${culprit}: ${outcome.kind} (${outcome.detail})`);
        }
        next = culprit + 1;
      }
      log(`${Math.min(next, end) - start}/${options.calls} calls, ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    }
    return { seed: options.seed, calls: options.calls, targets: targets.length, targetsCalled: called.size, counts, problems, seconds: (Date.now() - t0) / 1000 };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
