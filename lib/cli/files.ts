// Checks of the file options (--json, --out, ...) before any work: a path that
// is a directory, or whose folder cannot be written, gets one clear message
// that names the option instead of a raw EISDIR/EACCES from the final rename.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UsageError } from './args';

/** Throws a UsageError unless `file` can be (over)written as a regular file. */
export function checkWritableFile(file: string, option: string): void {
  const abs = path.resolve(file);
  let st: fs.Stats | undefined;
  try {
    st = fs.statSync(abs);
  } catch {
    st = undefined;
  }
  if (st?.isDirectory()) throw new UsageError(`${option} ${file} is a directory; give a file path (e.g. ${path.join(file, 'out.json')})`);
  if (st && !st.isFile()) throw new UsageError(`${option} ${file} is not a regular file`);
  // The nearest existing folder above it must be a writable directory (the
  // atomic write creates a temporary file there, then renames it).
  let dir = path.dirname(abs);
  while (!fs.existsSync(dir)) dir = path.dirname(dir);
  if (!fs.statSync(dir).isDirectory()) throw new UsageError(`${option} ${file}: ${dir} is not a directory`);
  try {
    fs.accessSync(dir, fs.constants.W_OK);
  } catch {
    throw new UsageError(`${option} ${file}: the folder ${dir} is not writable`);
  }
}
