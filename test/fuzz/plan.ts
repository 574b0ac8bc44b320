// The seeded plan of the API fuzzer, shared by the child (which makes the
// calls) and the parent (which names them in the report): the outcome kinds,
// an independent PRNG and the choice of call i. No library import here, so
// the parent stays light.

export type OutcomeKind = 'ok' | 'clean' | 'raw' | 'hang' | 'crash';

export interface Outcome {
  kind: OutcomeKind;
  /** Error name and message (clean, raw), or how the process died (crash), or the limit (hang). */
  detail?: string;
  /** For raw errors: the first stack frame inside lib/ (where to fix it). */
  where?: string;
}

export interface Target {
  /** Dotted export path, e.g. "ops.conv2d", "nn.SGD (new)", "Tensor.from", "Tensor#reshape". */
  path: string;
  kind: 'call' | 'construct' | 'method';
  /** Declared parameters (Function.length, at least 1 so that every target gets an argument). */
  arity: number;
  invoke: (args: unknown[]) => unknown;
}

// ------------------------------------------------------------ seeded choices

// mulberry32 (test/helpers.ts): independent of the library's PRNG, so a broken
// Prng cannot break the fuzzer.
import { rng } from '../helpers';
export { rng };

/** The random stream of call i of a run with `seed`. */
export function callRng(seed: number, i: number): () => number {
  return rng((Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(i + 1, 0x85ebca6b)) >>> 0);
}

export interface Pool {
  labels: string[];
  make(index: number): unknown;
}

/** Chooses call i: its target and the pool indices of its arguments. */
export function chooseCall(targets: readonly Target[], pool: Pool, seed: number, i: number): { target: number; args: number[] } {
  const r = callRng(seed, i);
  const target = i % targets.length;
  const arity = targets[target].arity + (r() < 0.3 ? 1 : 0);
  const args: number[] = [];
  for (let k = 0; k < arity; k++) args.push(Math.floor(r() * pool.labels.length));
  return { target, args };
}

