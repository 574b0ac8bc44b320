// Command-line pieces the stealing commands share (`steal`, `experiment
// steal|defend`, `demo`): the attack's option table, and the readers of the
// progress, device, method and attack-setting options.
import { UsageError, type OptionSpec, type OptionSpecs, type ParsedArgs } from './args';
import { STEAL_METHODS, type StealMethod } from '../attacks/losses';
import { STEAL_DEFAULTS, resolveStealConfig } from '../attacks/steal';
import { createProgress, type ProgressSink } from '../report/progress';
import { setDevice } from '../core/backend';

/** --device, as every command takes it. */
export const DEVICE_OPTION: OptionSpec = { kind: 'string', help: 'cpu | cuda (default: the backend in use)', choices: ['cpu', 'cuda'] };
/** --progress, as every command with long work takes it. */
export const PROGRESS_OPTION: OptionSpec = { kind: 'string', help: 'bar | json | silent (default: bar on a terminal, else json)', choices: ['bar', 'json', 'silent'] };

/** Options shared by `steal` and `experiment steal`: the attack's training and the evaluation. */
export const ATTACK_OPTIONS: OptionSpecs = {
  target: { kind: 'string', help: 'target encoder file (safetensors), the victim behind the service', required: true },
  'query-data': { kind: 'string', help: "attacker's images: the TRAIN split of fashion-mnist (in distribution) | mnist (out of distribution) | cifar10:PATH | folder:PATH" },
  epochs: { kind: 'int', help: `surrogate training epochs over the queried images (default ${STEAL_DEFAULTS.epochs})`, min: 1 },
  arch: { kind: 'string', help: `surrogate architecture: cnn-small | resnet18-cifar (default ${STEAL_DEFAULTS.arch})`, choices: ['cnn-small', 'resnet18-cifar'] },
  batch: { kind: 'int', help: `training batch size (default ${STEAL_DEFAULTS.batchSize})`, min: 2 },
  lr: { kind: 'number', help: `Adam learning rate (default ${STEAL_DEFAULTS.lr})` },
  seed: { kind: 'int', help: 'seed of the query selection, initial weights, batches and augmentations (default 0)', min: 0 },
  lambda: { kind: 'number', help: `stolenencoder: weight of the augmented-view term (default ${STEAL_DEFAULTS.lambda}; the paper's code used 20)` },
  k: { kind: 'int', help: `stolenencoder: augmented views per image (default ${STEAL_DEFAULTS.k})`, min: 0 },
  tau: { kind: 'number', help: `contsteal: NT-Xent temperature (default ${STEAL_DEFAULTS.tau})` },
  selection: { kind: 'string', help: 'which images to query: random (first BUDGET of a seeded permutation, default) | first (first BUDGET in dataset order)', choices: ['random', 'first'] },
  defense: {
    kind: 'string',
    help: 'defense of the service: SPEC, e.g. noise:0.05 | topk:32 | round:1 | b4b[:beta=60,rotate=true,center=true] | stages joined by "+" or "," (default none)',
  },
  limit: { kind: 'int', help: 'evaluation: first N images per split (quick runs)', min: 1 },
  tasks: { kind: 'list', help: 'evaluation tasks, in-distribution first (default fashion-mnist,mnist)' },
  'probe-epochs': { kind: 'int', help: 'linear probe epochs (default 100)', min: 1 },
  device: DEVICE_OPTION,
  progress: PROGRESS_OPTION,
};

export function progressFrom(args: ParsedArgs): ProgressSink {
  const mode = args.string('progress');
  if (mode !== undefined && !['bar', 'json', 'silent'].includes(mode)) throw new UsageError(`--progress must be bar, json or silent, got ${JSON.stringify(mode)}`);
  return createProgress({ mode: mode as 'bar' | 'json' | 'silent' | undefined });
}

export function applyDevice(args: ParsedArgs): void {
  const device = args.string('device');
  if (device) setDevice(device as 'cpu' | 'cuda');
}

export function parseMethod(v: string | undefined, name = '--method'): StealMethod {
  if (!v || !(STEAL_METHODS as readonly string[]).includes(v)) throw new UsageError(`${name} must be one of ${STEAL_METHODS.join(', ')}, got ${JSON.stringify(v ?? '')}`);
  return v as StealMethod;
}

/** The attack's training settings from the shared options (undefined = the attack's default). */
export function stealSettings(args: ParsedArgs) {
  const selection = args.string('selection');
  if (selection !== undefined && selection !== 'random' && selection !== 'first') throw new UsageError(`--selection must be random or first, got ${JSON.stringify(selection)}`);
  const arch = args.string('arch');
  if (arch !== undefined && arch !== 'cnn-small' && arch !== 'resnet18-cifar') throw new UsageError(`--arch must be cnn-small or resnet18-cifar, got ${JSON.stringify(arch)}`);
  return {
    epochs: args.number('epochs'),
    batchSize: args.number('batch'),
    lr: args.number('lr'),
    arch: arch as 'cnn-small' | 'resnet18-cifar' | undefined,
    seed: args.number('seed'),
    lambda: args.number('lambda'),
    k: args.number('k'),
    tau: args.number('tau'),
    selection: selection as 'random' | 'first' | undefined,
  };
}

/** Drops undefined entries (so that the attack's defaults apply). */
export function defined<T extends Record<string, unknown>>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}


/** The attack's option names in StealConfig -> the flags that set them. */
const STEAL_FLAGS: Record<string, string> = { method: '--method', budget: '--budget', epochs: '--epochs', batchSize: '--batch', lr: '--lr', arch: '--arch', seed: '--seed', lambda: '--lambda', k: '--k', tau: '--tau', selection: '--selection' };

/**
 * Checks the attack's settings for every budget of a command line before
 * anything is loaded or spent; a bad value is a UsageError naming the flag.
 */
export function checkStealSettings(settings: ReturnType<typeof stealSettings>, method: StealMethod, budgets: readonly number[]): void {
  for (const budget of budgets) {
    try {
      resolveStealConfig({ ...defined(settings), method, budget });
    } catch (e) {
      const msg = (e as Error).message;
      const key = /^(\w+)/.exec(msg)?.[1];
      throw new UsageError(key && STEAL_FLAGS[key] ? `${STEAL_FLAGS[key]}${msg.slice(key.length)}` : msg);
    }
  }
}
