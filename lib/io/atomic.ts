// Atomic file writes: write a temporary file in the same directory, flush it
// to disk, rename it over the target, then flush the directory (so the rename
// itself survives a power cut). A crash leaves either the old file or the new
// one, never a truncated mix.
//
// Temporaries are named `.<name>.tmp-<pid>-<random>`. A process killed during
// a save (kill -9, OOM killer) leaves its temporary behind; the next save or
// load of the same target removes every `.<name>.tmp-*` whose process is no
// longer alive (removeStaleTemporaries), so they do not pile up.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe } from '../core/validate';

/** Checks a file path argument: a non-empty string without NUL characters. */
export function checkPath(file: unknown, name = 'file'): string {
  if (typeof file !== 'string' || file.length === 0) throw new TypeError(`${name} must be a non-empty path, got ${typeof file === 'string' ? 'an empty string' : describe(file)}`);
  if (file.includes('\0')) throw new TypeError(`${name} must not contain NUL characters`);
  return file;
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** An Error naming the file, keeping the system error's code (ENOSPC, EACCES, ...) and the error itself as its cause. */
function writeError(message: string, cause: unknown): Error {
  const err = new Error(message, { cause }) as NodeJS.ErrnoException;
  const code = (cause as NodeJS.ErrnoException | null)?.code;
  if (typeof code === 'string') err.code = code;
  return err;
}

/**
 * Creates dir and its missing parents, one level at a time (fs.mkdirSync's
 * recursive mode loops forever on some impossible paths on Node 20, e.g.
 * under /proc/self). Any failure is an Error naming the target file and the
 * directory that could not be made.
 */
export function ensureDir(dir: string, forFile: string): void {
  const missing: string[] = [];
  let cur = path.resolve(dir);
  for (let depth = 0; ; depth++) {
    let st: fs.Stats | undefined;
    try {
      st = fs.statSync(cur);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw writeError(`cannot write ${forFile}: cannot access folder ${cur} (${errorText(e)})`, e);
    }
    if (st) {
      if (!st.isDirectory()) throw new Error(`cannot write ${forFile}: ${cur} exists and is not a folder`);
      break;
    }
    const parent = path.dirname(cur);
    if (parent === cur || depth > 4096) throw new Error(`cannot write ${forFile}: no existing folder above ${dir}`);
    missing.push(cur);
    cur = parent;
  }
  for (let i = missing.length - 1; i >= 0; i--) {
    try {
      fs.mkdirSync(missing[i]);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      // Another process may have made it meanwhile: fine if it is a folder now.
      if (code === 'EEXIST' && fs.statSync(missing[i], { throwIfNoEntry: false })?.isDirectory()) continue;
      throw writeError(`cannot write ${forFile}: cannot create folder ${missing[i]} (${errorText(e)})`, e);
    }
  }
}

/** The prefix of the temporaries of `file` (in its folder). */
function tmpPrefix(file: string): string {
  return `.${path.basename(file)}.tmp-`;
}

function processAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: it exists but belongs to someone else.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes the temporaries that saves of `file` left behind when their process
 * died (`.<name>.tmp-<pid>-<random>` with no live process <pid>). Temporaries of
 * live processes (a save in progress) are kept. Returns the paths removed.
 * Never throws: a folder that cannot be listed has nothing to clean here.
 */
export function removeStaleTemporaries(file: string): string[] {
  const abs = path.resolve(checkPath(file));
  const dir = path.dirname(abs);
  const prefix = tmpPrefix(abs);
  const legacy = `.${path.basename(abs)}.`;
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    // Current names, and those of encsec before 0.2 (`.<name>.<pid>.<ms>.tmp`).
    const m = name.startsWith(prefix) ? /^(\d+)-[0-9a-f]+$/.exec(name.slice(prefix.length)) : name.startsWith(legacy) ? /^(\d+)\.\d+\.tmp$/.exec(name.slice(legacy.length)) : null;
    if (!m) continue;
    const pid = Number(m[1]);
    if (!Number.isSafeInteger(pid) || pid <= 0 || processAlive(pid)) continue;
    try {
      fs.rmSync(path.join(dir, name), { force: true });
      removed.push(path.join(dir, name));
    } catch {
      // Not ours to remove (permissions): leave it.
    }
  }
  return removed;
}

/** fsync of a folder, where the platform allows it (not on Windows). */
function fsyncDir(dir: string): void {
  let fd: number;
  try {
    fd = fs.openSync(dir, 'r');
  } catch {
    return;
  }
  try {
    fs.fsyncSync(fd);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EISDIR' && code !== 'EINVAL' && code !== 'EPERM' && code !== 'EBADF') throw e;
  } finally {
    fs.closeSync(fd);
  }
}

export function writeFileAtomic(file: string, data: string | Uint8Array | Uint8Array[]): void {
  checkPath(file);
  if (!(typeof data === 'string' || data instanceof Uint8Array || (Array.isArray(data) && data.every((p) => p instanceof Uint8Array)))) {
    throw new TypeError(`data must be a string, a Uint8Array or an array of Uint8Arrays, got ${describe(data)}`);
  }
  const target = path.resolve(file);
  const dir = path.dirname(target);
  ensureDir(dir, file);
  const st = fs.statSync(target, { throwIfNoEntry: false });
  if (st?.isDirectory()) throw new Error(`cannot write ${file}: it is a folder`);
  removeStaleTemporaries(target);
  const tmp = path.join(dir, `${tmpPrefix(target)}${process.pid}-${crypto.randomBytes(6).toString('hex')}`);
  let fd: number;
  try {
    fd = fs.openSync(tmp, 'wx');
  } catch (e) {
    throw writeError(`cannot write ${file}: cannot create a temporary file in ${dir} (${errorText(e)})`, e);
  }
  try {
    const parts = Array.isArray(data) ? data : [typeof data === 'string' ? Buffer.from(data) : data];
    for (const p of parts) {
      let off = 0;
      while (off < p.length) off += fs.writeSync(fd, p, off, p.length - off);
    }
    fs.fsyncSync(fd);
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw writeError(`cannot write ${file}: ${errorText(e)}`, e);
  }
  fs.closeSync(fd);
  try {
    fs.renameSync(tmp, target);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw writeError(`cannot write ${file}: ${errorText(e)}`, e);
  }
  fsyncDir(dir);
}
