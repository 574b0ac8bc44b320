// Runs a snippet in a child process with a deadline, so that a call that
// never returns fails its test instead of hanging the suite. The snippet
// loads what it needs, then calls ready() and makes the call; the clock
// starts at ready() (loading TypeScript on a busy machine may take long) and
// the child is killed (SIGKILL) when the deadline passes.
import { spawn } from 'node:child_process';
import * as path from 'node:path';

export interface DeadlineResult {
  /** Milliseconds from ready() to the child's exit (or to the kill). */
  elapsedMs: number;
  timedOut: boolean;
  /** The JSON the snippet passed to done(value). */
  value: unknown;
  stdout: string;
  stderr: string;
  code: number | null;
  signal: NodeJS.Signals | null;
}

const LOADER = path.join(__dirname, 'ts-require.cjs');

/**
 * `body` is JavaScript run in the child, with `ready()` and `done(value)` in
 * scope and `lib(rel)` requiring a file of the package (relative to its root,
 * e.g. 'lib/data/prng').
 */
export function runWithDeadline(body: string, deadlineMs: number, env: NodeJS.ProcessEnv = {}): Promise<DeadlineResult> {
  const root = path.join(__dirname, '..', '..');
  const script = `
    const path = require('node:path');
    const lib = (rel) => require(path.join(${JSON.stringify(root)}, rel));
    const ready = () => require('node:fs').writeSync(1, '\\u0001READY\\n');
    const done = (v) => require('node:fs').writeSync(1, '\\u0001DONE ' + JSON.stringify(v) + '\\n');
    (async () => { ${body} })().then(() => process.exit(0), (e) => { done({ threw: { name: e && e.name, message: e && e.message } }); process.exit(0); });
  `;
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['-r', LOADER, '-e', script], { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let start = 0;
    let timedOut = false;
    let timer: NodeJS.Timeout | null = null;
    // Loading must not hang either: a generous limit for it.
    const loadTimer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, 300_000);
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (c: string) => {
      stdout += c;
      if (!start && stdout.includes('\u0001READY\n')) {
        start = Date.now();
        clearTimeout(loadTimer);
        timer = setTimeout(() => {
          timedOut = true;
          child.kill('SIGKILL');
        }, deadlineMs);
      }
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (c: string) => (stderr += c));
    child.on('close', (code, signal) => {
      const elapsedMs = start ? Date.now() - start : -1;
      clearTimeout(loadTimer);
      if (timer) clearTimeout(timer);
      const m = /\u0001DONE (.*)\n/.exec(stdout);
      resolve({ elapsedMs, timedOut, value: m ? JSON.parse(m[1]) : undefined, stdout, stderr, code, signal });
    });
  });
}
