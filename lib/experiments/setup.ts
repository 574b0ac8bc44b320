// What every experiment loads before its first cell: the target encoder (with
// the SHA-256 of its file, which a resumed grid checks), the attacker's query
// images and the evaluation tasks. Each loader fails with an error that names
// the option before anything expensive runs.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { checkInt, describe } from '../core/validate';
import { checkPath } from '../io/atomic';
import { loadEncoder } from '../io/checkpoint';
import { loadTask, type TaskData } from '../eval/tasks';
import type { Encoder } from '../nn/encoders';
import type { Dataset } from '../data/dataset';

/** The evaluation tasks of every experiment unless told otherwise: in distribution first. */
export const DEFAULT_EVAL_TASKS = ['fashion-mnist', 'mnist'] as const;

/** SHA-256 of a file (identifies a target across restarts of an experiment). */
export function fileSha256(file: string): string {
  // A string path only: fs would take a number as a file descriptor (1 is stdout: a read that never ends).
  checkPath(file);
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    throw new Error(`cannot read ${file}: ${(e as Error).message}`, { cause: e });
  }
  return crypto.createHash('sha256').update(buf).digest('hex');
}

export interface LoadedTarget {
  encoder: Encoder;
  /** Absolute path. */
  file: string;
  sha256: string;
}

/** Loads the victim encoder; the caller disposes `encoder`. */
export function loadTarget(file: string | undefined, option = '--target'): LoadedTarget {
  if (typeof option !== 'string') throw new TypeError(`option must be a string (the option's name in messages), got ${describe(option)}`);
  if (!file) throw new Error(`${option} FILE is required`);
  checkPath(file, option);
  if (/^https?:\/\//i.test(file)) throw new Error(`${option} must be an encoder file (safetensors) here, got the URL ${file} (a server is queried by \`encsec steal\`, \`watermark verify\` and \`auth verify\`)`);
  const { encoder } = loadEncoder(file);
  return { encoder, file: path.resolve(file), sha256: fileSha256(file) };
}

function checkChannels(channels: unknown): void {
  if (channels !== 1 && channels !== 3) {
    throw new (typeof channels === 'number' ? RangeError : TypeError)(`channels must be 1 or 3 (the target's input channels), got ${describe(channels)}`);
  }
}

/** The attacker's images: the TRAIN split of a task, with the target's channel count. */
export async function loadQueryData(spec: string, channels: number, option = '--query-data'): Promise<Dataset> {
  if (typeof option !== 'string') throw new TypeError(`option must be a string (the option's name in messages), got ${describe(option)}`);
  if (typeof spec !== 'string') throw new TypeError(`${option} must be a task name or folder (a string), got ${describe(spec)}`);
  checkChannels(channels);
  const task = await loadTask(spec, { channels: channels === 1 ? 1 : 3 });
  if (task.train.channels !== channels) throw new Error(`${option} ${spec} has ${task.train.channels}-channel images, the target expects ${channels}`);
  return task.train;
}

/** Evaluation tasks (first N images per split with `limit`), with the target's channel count. */
export async function loadEvalTasks(names: readonly string[], limit: number | undefined, channels: number): Promise<TaskData[]> {
  if (!Array.isArray(names)) throw new TypeError(`names must be an array of task names, got ${describe(names)}`);
  Array.from(names).forEach((n, i) => {
    if (typeof n !== 'string') throw new TypeError(`names[${i}] must be a task name (a string), got ${describe(n)}`);
  });
  if (limit !== undefined) checkInt(limit, 'limit', { min: 1 });
  checkChannels(channels);
  const out: TaskData[] = [];
  for (const name of names) {
    const task = await loadTask(name, { limit, channels: channels === 1 ? 1 : 3 });
    if (task.train.channels !== channels) throw new Error(`evaluation task ${name} has ${task.train.channels}-channel images, the target expects ${channels}`);
    out.push(task);
  }
  return out;
}
