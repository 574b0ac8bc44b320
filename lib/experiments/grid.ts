// The resumable report folder every experiment grid writes: results.json
// (rewritten atomically after every finished cell), results.md and charts.
//
// A grid is a list of cells, each identified by its settings (e.g. method and
// budget). ExperimentGrid.open() reads an existing results.json and checks
// that it was made with the same fixed settings (target file and contents,
// query data, training and evaluation settings: the cells would not be
// comparable otherwise); the lists that span the grid (methods, budgets,
// defenses, ...) may grow. grid.run(label, done, compute) skips a cell the
// results already hold, or computes it, rewrites the folder and hands the
// allocator's cached blocks back (the next cell's tensor sizes differ).
//
// The steal, defend, watermark, authentication and poisoning experiments are
// uses of this class; each keeps its own results type and report renderer
// (lib/report).
import * as path from 'node:path';
import { clearCache } from '../core/backend';
import { checkBool, checkOptions, describe } from '../core/validate';
import { checkPath } from '../io/atomic';

/** What every results file holds. */
export interface GridResults {
  kind: string;
  version: number;
  config: object;
  cells: unknown[];
  updatedAt: string;
}

export interface GridFolderOptions<R extends GridResults> {
  outDir: string;
  /** A results object for a run that starts from nothing. */
  create(): R;
  /** Reads `file`: null when it does not exist; throws on a corrupt or foreign file. */
  read(file: string): R | null;
  /** Writes results.json, results.md and the charts into `dir`; returns the paths written. */
  write(dir: string, results: R): string[];
  /** The config keys a resumed run must share with the file. */
  fixedKeys: readonly string[];
  /** Adds this run's lists (methods, budgets, ...) to a resumed file's config. */
  merge?(previous: R, current: R): void;
  /** Start over: replace an existing results file instead of resuming it. */
  fresh?: boolean;
  log?: (line: string) => void;
}

/** Throws unless a results file's settings match this run's on every key (a resumed grid's cells must be comparable). */
export function checkResumable<C extends object>(file: string, previous: C, current: C, keys: readonly (keyof C | string)[]): void {
  if (typeof file !== 'string') throw new TypeError(`file must be a string (the results file, for messages), got ${describe(file)}`);
  if (previous === null || typeof previous !== 'object') throw new TypeError(`previous must be a config object, got ${describe(previous)}`);
  if (current === null || typeof current !== 'object') throw new TypeError(`current must be a config object, got ${describe(current)}`);
  if (!Array.isArray(keys)) throw new TypeError(`keys must be an array of config keys, got ${describe(keys)}`);
  Array.from(keys).forEach((k, i) => {
    if (typeof k !== 'string') throw new TypeError(`keys[${i}] must be a string, got ${describe(k)}`);
  });
  const text = (v: unknown, what: string): string => {
    try {
      return JSON.stringify(v ?? null);
    } catch (e) {
      throw new TypeError(`${what} cannot be compared as JSON: ${(e as Error)?.message ?? String(e)}`);
    }
  };
  for (const k of keys) {
    const was = text((previous as Record<string, unknown>)[k as string], `previous.${String(k)}`);
    const now = text((current as Record<string, unknown>)[k as string], `current.${String(k)}`);
    if (was !== now) throw new Error(`${file} was made with ${String(k)}=${was}, this run has ${now}: use the same settings to resume, or another --out-dir`);
  }
}

/** Union of two lists, in first-seen order. */
export function unionList<T>(a: readonly T[], b: readonly T[]): T[] {
  if (!Array.isArray(a)) throw new TypeError(`a must be an array, got ${describe(a)}`);
  if (!Array.isArray(b)) throw new TypeError(`b must be an array, got ${describe(b)}`);
  return [...new Set([...a, ...b])];
}

export class ExperimentGrid<R extends GridResults> {
  /** results.json's path. */
  readonly file: string;
  readonly results: R;
  /** Cells the file already held when the grid was opened (0 for a fresh run). */
  readonly resumedCells: number;
  /** Cells computed by this run. */
  ran = 0;
  /** Cells found in the results file and skipped. */
  skipped = 0;
  #files: string[] = [];
  readonly #o: GridFolderOptions<R>;

  private constructor(o: GridFolderOptions<R>, file: string, results: R, resumedCells: number) {
    this.#o = o;
    this.file = file;
    this.results = results;
    this.resumedCells = resumedCells;
  }

  /**
   * Opens the report folder: resumes its results.json when it exists (after
   * checking the fixed settings) unless `fresh`, else starts from create().
   * Says which on the log, so that a re-run into the same folder is never a
   * surprise.
   */
  static open<R extends GridResults>(o: GridFolderOptions<R>): ExperimentGrid<R> {
    checkOptions(o, 'o', ['outDir', 'create', 'read', 'write', 'fixedKeys', 'merge', 'fresh', 'log']);
    if (o === undefined) throw new TypeError('o must be an object { outDir, create, read, write, fixedKeys }, got undefined');
    checkPath(o.outDir, 'o.outDir');
    for (const k of ['create', 'read', 'write'] as const) {
      if (typeof o[k] !== 'function') throw new TypeError(`o.${k} must be a function, got ${describe(o[k])}`);
    }
    for (const k of ['merge', 'log'] as const) {
      if (o[k] !== undefined && typeof o[k] !== 'function') throw new TypeError(`o.${k} must be a function, got ${describe(o[k])}`);
    }
    if (!Array.isArray(o.fixedKeys) || !o.fixedKeys.every((k) => typeof k === 'string')) throw new TypeError(`o.fixedKeys must be an array of strings, got ${describe(o.fixedKeys)}`);
    if (o.fresh !== undefined) checkBool(o.fresh, 'o.fresh');
    const log = o.log ?? (() => {});
    const file = path.join(o.outDir, 'results.json');
    const current = o.create();
    if (current === null || typeof current !== 'object' || current.config === null || typeof current.config !== 'object' || !Array.isArray(current.cells)) {
      throw new TypeError(`o.create() must return a results object { kind, version, config, cells, ... }, got ${describe(current)}`);
    }
    const previous = o.read(file);
    if (previous !== null && (typeof previous !== 'object' || previous.config === null || typeof previous.config !== 'object' || !Array.isArray(previous.cells))) {
      throw new TypeError(`o.read() must return null or a results object { kind, version, config, cells, ... }, got ${describe(previous)}`);
    }
    if (previous && !o.fresh) {
      checkResumable(file, previous.config, current.config, o.fixedKeys);
      o.merge?.(previous, current);
      log(`resuming ${file}: ${previous.cells.length} finished cell(s) are kept and skipped`);
      return new ExperimentGrid(o, file, previous, previous.cells.length);
    }
    if (previous) log(`replacing ${file} (${previous.cells.length} cell(s)): --fresh`);
    return new ExperimentGrid(o, file, current, 0);
  }

  /** The files of the last write. */
  get files(): string[] {
    return this.#files;
  }

  /** Rewrites the report folder from the results. */
  write(): string[] {
    this.results.updatedAt = new Date().toISOString();
    this.#files = this.#o.write(this.#o.outDir, this.results);
    return this.#files;
  }

  /**
   * One cell: skipped (and logged) when `done`, else `compute` runs (it adds
   * its results to this.results), the folder is rewritten and the
   * allocator's cache is emptied. Returns true when the cell was computed.
   */
  async run(label: string, done: boolean, compute: () => Promise<void>): Promise<boolean> {
    if (done) {
      this.skipped++;
      (this.#o.log ?? (() => {}))(`${label}: already in ${this.file}, skipped`);
      return false;
    }
    try {
      await compute();
    } finally {
      // The next cell's batch sizes differ: cached blocks would not be reused.
      clearCache();
    }
    this.write();
    this.ran++;
    return true;
  }
}
