// The audit log: one row per answered request (key id, time, route, image
// count, a SHA-256 digest of the input bytes, the defense applied and its
// noise level), chained by hash:
//     hash_i = SHA-256(hash_{i-1} || "\n" || JSON([seq, key_id, at, route, images, input_digest, defense, noise]))
// with hash_0 = 64 zeros. Editing a row changes its hash and breaks the link
// to the next row; removing a row breaks the sequence and the link. (Removing
// the LAST rows leaves a valid shorter chain: anchor the head hash that
// verifyAuditChain() returns somewhere else, e.g. in the operator's own logs,
// to detect that too.)
//
// Rows are appended inside the caller's transaction (the one that also
// records the budget spent), which commits before any 200 is sent. With
// several processes on one database the transaction is BEGIN IMMEDIATE, so
// reading the previous hash and appending are one step.
import * as crypto from 'node:crypto';
import type { ServerDb } from './db';

export const AUDIT_GENESIS = '0'.repeat(64);

export interface AuditEntry {
  keyId: string;
  route: string;
  images: number;
  /** SHA-256 (hex) of the request's input bytes as decoded (float32 rows). */
  inputDigest: string;
  defense: string;
  /** The defense's noise level for this answer (e.g. b4b's sigma), null when it has none. */
  noise: number | null;
}

export interface AuditRow extends AuditEntry {
  seq: number;
  at: string;
  prevHash: string;
  hash: string;
}

function rowHash(prev: string, seq: number, e: AuditEntry, at: string): string {
  const body = JSON.stringify([seq, e.keyId, at, e.route, e.images, e.inputDigest, e.defense, e.noise]);
  return crypto.createHash('sha256').update(prev).update('\n').update(body).digest('hex');
}

export class AuditLog {
  readonly #db: ServerDb;
  readonly #last: import('better-sqlite3').Statement<[], { seq: number; hash: string }>;
  readonly #insert: import('better-sqlite3').Statement;

  constructor(db: ServerDb) {
    this.#db = db;
    this.#last = db.prepare('SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1') as import('better-sqlite3').Statement<[], { seq: number; hash: string }>;
    this.#insert = db.prepare(
      'INSERT INTO audit (seq, key_id, at, route, images, input_digest, defense, noise, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
    );
  }

  /** Appends rows; call inside a transaction (they commit with it). Returns their sequence numbers. */
  append(entries: readonly AuditEntry[]): number[] {
    if (!this.#db.inTransaction) throw new Error('AuditLog.append must run inside a transaction');
    const last = this.#last.get();
    let seq = last ? last.seq : 0;
    let prev = last ? last.hash : AUDIT_GENESIS;
    const at = new Date().toISOString();
    const out: number[] = [];
    for (const e of entries) {
      seq += 1;
      const noise = e.noise === null || !Number.isFinite(e.noise) ? null : e.noise;
      const entry = { ...e, noise };
      const hash = rowHash(prev, seq, entry, at);
      this.#insert.run(seq, e.keyId, at, e.route, e.images, e.inputDigest, e.defense, noise, prev, hash);
      prev = hash;
      out.push(seq);
    }
    return out;
  }

  /** Rows with seq > after (at most limit), in order. */
  rows(after = 0, limit = 1000): AuditRow[] {
    return (this.#db.prepare('SELECT * FROM audit WHERE seq > ? ORDER BY seq LIMIT ?').all(after, limit) as Record<string, unknown>[]).map(fromDb);
  }
}

function fromDb(r: Record<string, unknown>): AuditRow {
  return {
    seq: r.seq as number,
    keyId: r.key_id as string,
    at: r.at as string,
    route: r.route as string,
    images: r.images as number,
    inputDigest: r.input_digest as string,
    defense: r.defense as string,
    noise: r.noise as number | null,
    prevHash: r.prev_hash as string,
    hash: r.hash as string,
  };
}

export interface AuditVerification {
  ok: boolean;
  rows: number;
  /** The hash of the last row (AUDIT_GENESIS for an empty log): anchor it elsewhere. */
  head: string;
  /** The first broken row and what is wrong with it. */
  problem?: { seq: number; reason: string };
}

/** Walks the whole chain: sequence numbers 1, 2, 3, ..., each prev_hash the previous hash, each hash recomputed. */
export function verifyAuditChain(db: ServerDb): AuditVerification {
  let prev = AUDIT_GENESIS;
  let expected = 1;
  let rows = 0;
  for (const raw of db.prepare('SELECT * FROM audit ORDER BY seq').iterate() as IterableIterator<Record<string, unknown>>) {
    const r = fromDb(raw);
    const fail = (reason: string): AuditVerification => ({ ok: false, rows, head: prev, problem: { seq: r.seq, reason } });
    if (r.seq !== expected) return fail(`sequence number ${r.seq} where ${expected} was expected (a row was removed)`);
    if (r.prevHash !== prev) return fail('prev_hash does not match the previous row (a row was removed or edited)');
    const h = rowHash(prev, r.seq, r, r.at);
    if (h !== r.hash) return fail('hash does not match the row (the row was edited)');
    prev = h;
    expected += 1;
    rows += 1;
  }
  return { ok: true, rows, head: prev };
}
