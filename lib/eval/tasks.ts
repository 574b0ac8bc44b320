// Downstream tasks by name: "fashion-mnist", "mnist", "cifar10:PATH",
// "folder:PATH". Each gives a TRAIN and a TEST split.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadDataset, BUILTIN_DATASETS, type BuiltinName } from '../data/builtin';
import { loadCifar10 } from '../data/cifar';
import { loadImageFolder } from '../data/folder';
import { readPoisonedDataset } from '../data/poisoned';
import { subset, datasetSize, type Dataset } from '../data/dataset';
import { checkInt, checkOptions, describe } from '../core/validate';

export interface TaskData {
  name: string;
  train: Dataset;
  test: Dataset;
}

export interface TaskOptions {
  /** First N images per split. */
  limit?: number;
  /** Image side for folder tasks (default 32) and channels (default 3). */
  size?: number;
  channels?: 1 | 3;
}

export async function loadTask(spec: string, options: TaskOptions = {}): Promise<TaskData> {
  if (typeof spec !== 'string' || spec === '') throw new TypeError(`spec must be a non-empty string (the task), got ${describe(spec)}`);
  checkOptions(options, 'options', ['limit', 'size', 'channels']);
  const limit = options.limit === undefined ? undefined : checkInt(options.limit, 'options.limit', { min: 1 });
  if ((BUILTIN_DATASETS as readonly string[]).includes(spec)) {
    const name = spec as BuiltinName;
    return { name, train: loadDataset(name, { split: 'train', limit }), test: loadDataset(name, { split: 'test', limit }) };
  }
  const colon = spec.indexOf(':');
  const kind = colon > 0 ? spec.slice(0, colon) : '';
  const where = colon > 0 ? spec.slice(colon + 1) : '';
  if (kind === 'cifar10' && where) {
    return { name: 'cifar10', train: loadCifar10(where, { split: 'train', limit }), test: loadCifar10(where, { split: 'test', limit }) };
  }
  if (kind === 'folder' && where) {
    const opts = { size: options.size ?? 32, channels: options.channels ?? 3, limit };
    const trainDir = path.join(where, 'train');
    const testDir = path.join(where, 'test');
    if (fs.existsSync(trainDir) && fs.existsSync(testDir)) {
      return { name: `folder:${where}`, train: await loadImageFolder(trainDir, opts), test: await loadImageFolder(testDir, opts) };
    }
    // One folder: every fifth image (in the class-interleaved order) is TEST.
    const all = await loadImageFolder(where, { ...opts, limit: undefined });
    const n = datasetSize(all);
    const trainIdx: number[] = [];
    const testIdx: number[] = [];
    for (let i = 0; i < n; i++) (i % 5 === 4 ? testIdx : trainIdx).push(i);
    const cut = (a: number[]) => (limit ? a.slice(0, limit) : a);
    return { name: `folder:${where}`, train: subset(all, cut(trainIdx), `${all.name}/train`), test: subset(all, cut(testIdx), `${all.name}/test`) };
  }
  if (kind === 'poisoned' && where) {
    // A poisoned pre-training set (lib/data/poisoned.ts): TRAIN is the whole
    // file (a limit would change the poisoning rate), TEST the clean TEST
    // split of its base when that is a built-in dataset, else the file itself.
    const { dataset, manifest } = readPoisonedDataset(where);
    const base = manifest.base.split('/')[0];
    const test = (BUILTIN_DATASETS as readonly string[]).includes(base) ? loadDataset(base as BuiltinName, { split: 'test', limit }) : dataset;
    return { name: `poisoned:${where}`, train: dataset, test };
  }
  throw new RangeError(`unknown task ${JSON.stringify(spec)}: expected fashion-mnist, mnist, cifar10:PATH, folder:PATH or poisoned:PATH`);
}
