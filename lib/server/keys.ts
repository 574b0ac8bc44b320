// API keys. A key is "esk_<id>_<secret>": the id (12 hex digits) is public and
// names the key in logs, metrics labels and the audit log; the secret (32
// random bytes, base64url) is shown once, when the key is made, and stored
// only as HMAC-SHA-256(pepper, id || secret), the pepper being a random
// 32-byte value of this database. The secret has 256 bits of entropy, so a
// fast keyed hash is enough (a slow KDF protects guessable passwords, not
// random keys); the pepper keeps a leaked key table from being checked
// offline without the database's meta row as well. Comparison uses
// crypto.timingSafeEqual, and an unknown id costs the same HMAC as a known one.
import * as crypto from 'node:crypto';
import { checkInt, checkNumber, checkOptions } from '../core/validate';
import { defenseSpec } from '../defenses/defense';
import { parseDefense } from '../defenses/spec';
import type { ServerDb } from './db';

export interface KeyRecord {
  id: string;
  /** Images in total (Infinity: unlimited). */
  budget: number;
  /** Requests per second (Infinity: unlimited). */
  rate: number;
  /** Canonical defense SPEC applied to this key's answers. */
  defense: string;
  /** Admin keys may use the raw route (no defense). */
  admin: boolean;
  label: string | null;
  createdAt: string;
  revokedAt: string | null;
}

export interface NewKeyOptions {
  budget?: number;
  rate?: number;
  defense?: string;
  admin?: boolean;
  label?: string;
}

const KEY_RE = /^esk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$/;

interface KeyRow {
  id: string;
  hash: Buffer;
  budget: number | null;
  rate: number | null;
  defense: string;
  admin: number;
  label: string | null;
  created_at: string;
  revoked_at: string | null;
}

function toRecord(r: KeyRow): KeyRecord {
  return {
    id: r.id,
    budget: r.budget === null ? Infinity : r.budget,
    rate: r.rate === null ? Infinity : r.rate,
    defense: r.defense,
    admin: r.admin === 1,
    label: r.label,
    createdAt: r.created_at,
    revokedAt: r.revoked_at,
  };
}

/** Why a presented key was refused (401: no or unknown key; 403: revoked). */
export class KeyRefused extends Error {
  constructor(
    readonly status: 401 | 403,
    message: string,
  ) {
    super(message);
    this.name = 'KeyRefused';
  }
}

export class KeyStore {
  readonly #db: ServerDb;
  readonly #pepper: Buffer;
  readonly #byId: import('better-sqlite3').Statement<[string], KeyRow>;
  /** Compared against when the id is unknown, so that the timing does not tell. */
  readonly #dummy = crypto.randomBytes(32);

  constructor(db: ServerDb) {
    this.#db = db;
    const p = db.prepare("SELECT value FROM meta WHERE name = 'key_pepper'").get() as { value: string } | undefined;
    if (!p) throw new Error('the database has no key pepper (not made by openServerDb)');
    this.#pepper = Buffer.from(p.value, 'hex');
    this.#byId = db.prepare('SELECT * FROM keys WHERE id = ?') as import('better-sqlite3').Statement<[string], KeyRow>;
  }

  #hash(id: string, secret: string): Buffer {
    return crypto.createHmac('sha256', this.#pepper).update(id).update('\0').update(secret).digest();
  }

  /** Makes a key; returns its record and the full key string (the only time the secret exists in clear). */
  add(options: NewKeyOptions = {}): { key: string; record: KeyRecord } {
    const o = checkOptions<NewKeyOptions>(options, 'options', ['budget', 'rate', 'defense', 'admin', 'label']);
    const budget = o.budget === undefined || o.budget === Infinity ? null : checkInt(o.budget, 'budget', { min: 0, max: Number.MAX_SAFE_INTEGER });
    const rate = o.rate === undefined || o.rate === Infinity ? null : checkNumber(o.rate, 'rate', { min: 1e-6, max: 1e9 });
    // Canonical SPEC, and a defense the server can run without calibration data.
    const d = parseDefense(o.defense === undefined ? 'none' : String(o.defense));
    if (d.needsCalibration) throw new RangeError(`defense ${JSON.stringify(defenseSpec(d))} needs calibration on the owner's data, which the server does not do; use a defense without center=true`);
    const defense = defenseSpec(d);
    if (o.label !== undefined && (typeof o.label !== 'string' || o.label.length > 200)) throw new TypeError('label must be a string of at most 200 characters');
    const id = crypto.randomBytes(6).toString('hex');
    const secret = crypto.randomBytes(32).toString('base64url');
    const createdAt = new Date().toISOString();
    this.#db
      .prepare('INSERT INTO keys (id, hash, budget, rate, defense, admin, label, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
      .run(id, this.#hash(id, secret), budget, rate, defense, o.admin ? 1 : 0, (o.label as string | undefined) ?? null, createdAt);
    return { key: `esk_${id}_${secret}`, record: this.get(id)! };
  }

  get(id: string): KeyRecord | null {
    const r = this.#byId.get(id);
    return r ? toRecord(r) : null;
  }

  list(): KeyRecord[] {
    return (this.#db.prepare('SELECT * FROM keys ORDER BY created_at, id').all() as KeyRow[]).map(toRecord);
  }

  /** Revokes a key (it stays listed, and in the audit log). Returns false if it was already revoked; throws for an unknown id. */
  revoke(id: string): boolean {
    if (!this.#byId.get(id)) throw new RangeError(`no key with id ${JSON.stringify(id)}`);
    return this.#db.prepare('UPDATE keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL').run(new Date().toISOString(), id).changes === 1;
  }

  /** The record of a presented key, or KeyRefused (401 missing/malformed/unknown/wrong secret, 403 revoked). */
  authenticate(presented: string | undefined): KeyRecord {
    if (presented === undefined || presented === '') throw new KeyRefused(401, 'an API key is required (Authorization: Bearer KEY)');
    const m = KEY_RE.exec(presented);
    if (!m) throw new KeyRefused(401, 'invalid API key');
    const [, id, secret] = m;
    const row = this.#byId.get(id);
    const digest = this.#hash(id, secret);
    const ok = crypto.timingSafeEqual(digest, row ? row.hash : this.#dummy);
    if (!row || !ok) throw new KeyRefused(401, 'invalid API key');
    if (row.revoked_at !== null) throw new KeyRefused(403, `API key ${id} was revoked`);
    return toRecord(row);
  }
}

/** The key from an Authorization header ("Bearer KEY") or an x-api-key header. */
export function presentedKey(headers: Record<string, string | string[] | undefined>): string | undefined {
  const auth = headers.authorization;
  if (typeof auth === 'string') {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    return m ? m[1] : '';
  }
  const x = headers['x-api-key'];
  return typeof x === 'string' ? x : undefined;
}
