// A report folder: results.json (the resumable state of an experiment grid),
// results.md and the SVG charts rendered from it. Shared by the steal and
// defend experiments.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../io/atomic';

/**
 * Reads a results file; null when it does not exist. `valid` checks the
 * parsed object's shape; `what` names the kind of file in the error.
 */
export function readResultsFile<T>(file: string, what: string, valid: (r: T) => boolean): T | null {
  if (!fs.existsSync(file)) return null;
  let r: T;
  try {
    r = JSON.parse(fs.readFileSync(file, 'utf8')) as T;
  } catch (e) {
    throw new Error(`${file} is not valid JSON (${(e as Error).message}); move it away to start over`);
  }
  if (!r || typeof r !== 'object' || !valid(r)) throw new Error(`${file} is not an encsec ${what} results file`);
  return r;
}

/**
 * Writes results.json first (atomically: a crash leaves the previous state,
 * from which the grid resumes), then results.md and the charts. Returns the
 * paths written.
 */
export function writeReportFolder(dir: string, results: unknown, markdown: string, charts: Record<string, string>): string[] {
  fs.mkdirSync(dir, { recursive: true });
  const files: string[] = [];
  const put = (name: string, text: string) => {
    const f = path.join(dir, name);
    writeFileAtomic(f, text);
    files.push(f);
  };
  put('results.json', JSON.stringify(results, null, 2) + '\n');
  put('results.md', markdown);
  for (const [name, svg] of Object.entries(charts)) put(name, svg);
  return files;
}
