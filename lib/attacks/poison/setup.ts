// The attacker's set-up by name: "fashion-mnist:5,mnist:1" means 5 target
// inputs from Fashion-MNIST TEST and 1 from MNIST TEST, each with up to
// `references` reference images of its target class from the same TEST split.
import { loadTask } from '../../eval/tasks';
import { checkInt, checkOptions, checkSeed, describe } from '../../core/validate';
import { deriveSeed } from '../../data/prng';
import { pickTargets, type PoisonTarget } from './construct';
import { sha256Hex, type PoisonManifest } from '../../data/poisoned';
import type { TargetInput } from './measure';

export const DEFAULT_TARGETS = 'fashion-mnist:5,mnist:1';

/** Parses "task:count,task:count" (count defaults to 1). */
export function parseTargetSpec(spec: string): { task: string; count: number }[] {
  if (typeof spec !== 'string' || spec.trim() === '') throw new TypeError('targets must be a non-empty "task:count,..." string');
  return spec.split(',').map((part) => {
    const [task, n] = part.trim().split(':');
    const count = n === undefined ? 1 : Number(n);
    if (!task || !Number.isInteger(count) || count < 1 || count > 1000) throw new RangeError(`targets: ${JSON.stringify(part)} is not task:count with count in [1, 1000]`);
    return { task, count };
  });
}

/** Picks the target inputs and references for every task of the spec (task t uses seed derived from (seed, t)). */
export async function loadPoisonTargets(spec: string, options: { seed: number; references?: number }): Promise<PoisonTarget[]> {
  if (typeof spec !== 'string') throw new TypeError(`spec must be a target spec string (TASK:COUNT,...), got ${describe(spec)}`);
  if (options === undefined) throw new TypeError('options must be an object { seed, references? }, got undefined');
  const o = checkOptions<{ seed: number; references?: number }>(options, 'options', ['seed', 'references']);
  const seed = checkSeed(o.seed, 'options.seed');
  const refs = o.references === undefined ? undefined : checkInt(o.references, 'options.references', { min: 1, max: 5 });
  const out: PoisonTarget[] = [];
  const parts = parseTargetSpec(spec);
  for (let t = 0; t < parts.length; t++) {
    const task = await loadTask(parts[t].task);
    out.push(...pickTargets(parts[t].task, task.test, parts[t].count, { seed: deriveSeed(seed, t), references: refs }));
  }
  return out;
}

/**
 * The target inputs a manifest names, read back from their tasks' TEST
 * splits; each image's SHA-256 must match the manifest (same data set version).
 */
export async function manifestTargets(manifest: PoisonManifest): Promise<(TargetInput & { task: string })[]> {
  const out: (TargetInput & { task: string })[] = [];
  for (const [i, t] of manifest.targets.entries()) {
    const { test } = await loadTask(t.task);
    const per = test.channels * test.height * test.width;
    if (t.index >= test.labels.length) throw new RangeError(`manifest target ${i}: index ${t.index} is outside ${t.task} TEST`);
    const image = test.images.slice(t.index * per, (t.index + 1) * per);
    if (sha256Hex(image) !== t.imageSha256) throw new Error(`manifest target ${i}: ${t.task} TEST image ${t.index} does not match the manifest's digest (another data set version?)`);
    out.push({ task: t.task, image, trueClass: t.trueClass, targetClass: t.targetClass });
  }
  return out;
}
