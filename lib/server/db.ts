// The server's SQLite database (better-sqlite3): API keys, the audit log, and
// (without Redis) the per-key budget, rate and defense state.
//
// Durability. The database runs in WAL mode with synchronous=FULL: a commit
// returns only after the WAL is fsync'd, so a row committed before its 200 is
// sent survives kill -9 AND a power loss. (NORMAL would survive kill -9 of the
// process, since the WAL is in the OS page cache, but not a power loss; the
// audit log is evidence, so we pay the fsync.) The cost is one fsync per
// answered BATCH, not per request: the server commits every answer of a
// native batch in one transaction (lib/server/app.ts), which is how the
// 1-image-request throughput stays near the batched one.
import Database from 'better-sqlite3';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

export type ServerDb = Database.Database;

export const SCHEMA_VERSION = 1;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS keys (
  id TEXT PRIMARY KEY,
  hash BLOB NOT NULL,
  budget INTEGER,            -- images in total; NULL = unlimited
  rate REAL,                 -- requests per second; NULL = unlimited
  defense TEXT NOT NULL,     -- canonical defense SPEC applied to this key's answers
  admin INTEGER NOT NULL DEFAULT 0,
  label TEXT,
  created_at TEXT NOT NULL,
  revoked_at TEXT
);
CREATE TABLE IF NOT EXISTS usage (
  key_id TEXT PRIMARY KEY,
  used INTEGER NOT NULL,     -- images answered (never decreases)
  requests INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS rate_state (
  key_id TEXT PRIMARY KEY,
  tokens REAL NOT NULL,
  at_ms REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS defense_state (
  key_id TEXT PRIMARY KEY,
  spec TEXT NOT NULL,
  state TEXT NOT NULL        -- the defense's exportState(), JSON
);
CREATE TABLE IF NOT EXISTS audit (
  seq INTEGER PRIMARY KEY,
  key_id TEXT NOT NULL,
  at TEXT NOT NULL,
  route TEXT NOT NULL,
  images INTEGER NOT NULL,
  input_digest TEXT NOT NULL,
  defense TEXT NOT NULL,
  noise REAL,
  prev_hash TEXT NOT NULL,
  hash TEXT NOT NULL
);
`;

/** Opens (creating if needed) the server database at `file`, in WAL mode with synchronous=FULL. */
export function openServerDb(file: string): ServerDb {
  if (typeof file !== 'string' || file.length === 0) throw new TypeError('db must be a file path');
  const dir = path.dirname(path.resolve(file));
  if (!fs.existsSync(dir)) throw new Error(`db ${file}: folder ${dir} does not exist`);
  let db: ServerDb;
  try {
    db = new Database(file);
  } catch (e) {
    throw new Error(`db ${file}: ${(e as Error).message}`);
  }
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    // Several processes (replicas, `encsec keys` while serving) share the file.
    db.pragma('busy_timeout = 5000');
    db.exec(SCHEMA);
    const v = db.prepare("SELECT value FROM meta WHERE name = 'schema'").get() as { value: string } | undefined;
    if (v === undefined) {
      db.prepare("INSERT OR IGNORE INTO meta (name, value) VALUES ('schema', ?)").run(String(SCHEMA_VERSION));
      // The keyed-hash secret of this key store (see keys.ts).
      db.prepare("INSERT OR IGNORE INTO meta (name, value) VALUES ('key_pepper', ?)").run(crypto.randomBytes(32).toString('hex'));
    } else if (v.value !== String(SCHEMA_VERSION)) {
      throw new Error(`schema version ${v.value}, this encsec reads version ${SCHEMA_VERSION}`);
    }
  } catch (e) {
    db.close();
    throw new Error(`db ${file}: ${(e as Error).message}`);
  }
  return db;
}
