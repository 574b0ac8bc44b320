// The fuzz child: runs calls [start, end) of a seeded plan against the whole
// library and reports each on stdout, one line per event, written
// synchronously (so that the parent knows which call was running if the
// process dies):
//   S <i>                     call i starts
//   R <i> <json Outcome>      call i ended (ok / clean / raw, or hang for a promise)
//   U <i> <json Outcome>      an error escaped asynchronously while call i (or after it) ran
// Started by runner.ts as: node -r test/fuzz/ts-require.cjs test/fuzz/child.ts
// with the plan in ENCSEC_FUZZ_PLAN (JSON: seed, start, end, asyncTimeoutMs, dir).
import * as fs from 'node:fs';
import { Tensor, tidy } from '../../lib/core/tensor';
import * as lib from '../../lib/index';
import { type Outcome, type Target, chooseCall, classifyError, listTargets, makePool } from './harness';

interface Plan {
  seed: number;
  start: number;
  end: number;
  asyncTimeoutMs: number;
  dir: string;
}

const plan = JSON.parse(process.env.ENCSEC_FUZZ_PLAN ?? '{}') as Plan;
let current = -1;

function emit(line: string): void {
  fs.writeSync(1, line + '\n');
}

process.on('unhandledRejection', (e) => emit(`U ${current} ${JSON.stringify(classifyError(e))}`));
process.on('uncaughtException', (e) => emit(`U ${current} ${JSON.stringify(classifyError(e))}`));

/** The instances whose methods are fuzzed too. */
export function instanceFactories(): Record<string, () => object> {
  const L = lib as unknown as Record<string, Record<string, new (...a: unknown[]) => object>>;
  return {
    Tensor: () => Tensor.randn([2, 2], { seed: 1 }),
    'data.Prng': () => new L.data.Prng(1),
    'nn.Linear': () => new L.nn.Linear(2, 2),
    'nn.SGD': () => new L.nn.SGD([Tensor.zeros([2]).requiresGrad_()], { lr: 0.1 }),
    'nn.Adam': () => new L.nn.Adam([Tensor.zeros([2]).requiresGrad_()], {}),
    'nn.PlanBuilder': () => new L.nn.PlanBuilder(),
  };
}

/** The fuzzer's own test: one target per outcome (run by test/fuzz/api.test.ts with ENCSEC_FUZZ_SELFTEST=1). */
function selfTestTargets(): Target[] {
  const mk = (path: string, invoke: () => unknown): Target => ({ path, kind: 'call', arity: 1, invoke });
  return [
    mk('selftest.ok', () => 1),
    mk('selftest.clean', () => {
      throw new RangeError('x must be >= 0, got -1');
    }),
    mk('selftest.raw', () => (null as unknown as { a: number }).a),
    mk('selftest.hang', () => {
      for (;;);
    }),
    mk('selftest.crash', () => process.kill(process.pid, 'SIGSEGV')),
    mk('selftest.asyncHang', () => new Promise(() => undefined)),
    mk('selftest.asyncEscape', () => {
      setImmediate(() => {
        throw new TypeError('escaped');
      });
      return new Promise((r) => setTimeout(r, 50));
    }),
  ];
}

function release(v: unknown, depth = 0): void {
  if (depth > 2 || v === null || typeof v !== 'object') return;
  if (Tensor.isTensor(v)) {
    if (!v.kept) v.dispose();
    return;
  }
  if (v instanceof Map) for (const x of v.values()) release(x, depth + 1);
  else if (Array.isArray(v)) for (const x of v) release(x, depth + 1);
  const d = (v as { dispose?: unknown }).dispose;
  if (typeof d === 'function' && v instanceof (lib.nn.Module as unknown as new () => object)) {
    try {
      (d as () => void).call(v);
    } catch {
      // best effort
    }
  }
}

async function runOne(target: Target, args: unknown[]): Promise<Outcome> {
  let result: unknown;
  try {
    result = tidy(() => {
      const r = target.invoke(args);
      return r as never;
    });
  } catch (e) {
    return classifyError(e);
  }
  if (result !== null && typeof result === 'object' && typeof (result as { then?: unknown }).then === 'function') {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<Outcome>((resolve) => {
      timer = setTimeout(() => resolve({ kind: 'hang', detail: `promise not settled after ${plan.asyncTimeoutMs} ms` }), plan.asyncTimeoutMs);
    });
    const settled = (result as Promise<unknown>).then(
      (v): Outcome => {
        release(v);
        return { kind: 'ok' };
      },
      (e): Outcome => classifyError(e),
    );
    const out = await Promise.race([settled, timeout]);
    clearTimeout(timer);
    return out;
  }
  release(result);
  return { kind: 'ok' };
}

async function main(): Promise<void> {
  process.chdir(plan.dir);
  const targets = process.env.ENCSEC_FUZZ_SELFTEST === '1' ? selfTestTargets() : listTargets(lib as unknown as Record<string, unknown>, instanceFactories());
  const pool = makePool(lib as unknown as Record<string, unknown>, { dir: plan.dir });
  if (plan.start === -1) {
    // Listing mode: the parent asks for the targets and the pool labels.
    emit(`L ${JSON.stringify({ targets: targets.map((t) => ({ path: t.path, arity: t.arity })), pool: pool.labels })}`);
    return;
  }
  for (let i = plan.start; i < plan.end; i++) {
    current = i;
    const call = chooseCall(targets, pool, plan.seed, i);
    emit(`S ${i}`);
    let args: unknown[] = [];
    let outcome: Outcome;
    try {
      args = call.args.map((a) => pool.make(a));
      outcome = await runOne(targets[call.target], args);
    } catch (e) {
      outcome = { kind: 'raw', detail: `fuzzer failed to build the arguments: ${(e as Error).message}` };
    }
    emit(`R ${i} ${JSON.stringify(outcome)}`);
    for (const a of args) release(a);
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    emit(`F ${JSON.stringify(String((e as Error)?.stack ?? e))}`);
    process.exit(3);
  },
);
