// Per-key state of the server: the images spent against the key's budget,
// its request-rate bucket and its defense's state (e.g. b4b's coverage).
// Two stores implement one contract:
//
// SqliteStateStore (one server process). Admission is in memory (the event
// loop makes check-and-add atomic); what was answered is persisted with the
// audit rows in the batch's transaction (commit()), so after kill -9 a
// restart resumes from exactly the answered requests: budgets never go back
// and every 200 is counted. Each key's defense lives in memory, its state
// loaded from the database on first use and written back at commit.
//
// RedisStateStore (several replicas). Admission is one Lua script (rate bucket
// and budget checked and charged together, atomically across replicas), so
// the images are counted when admitted: a request in flight when a replica
// dies stays counted (budgets never go back; a client can lose at most what
// it had in flight). A stateful defense runs under a per-key Redis lock:
// load the state, apply, store it, unlock; so the replicas see one coverage
// per key, in the order the requests were answered.
import type { Redis } from 'ioredis';
import { checkOptions, describe } from '../core/validate';
import type { Defense } from '../defenses/defense';
import { parseDefense } from '../defenses/spec';
import type { ServerDb } from './db';
import type { KeyRecord } from './keys';

export type Admission =
  | { ok: true; used: number }
  | { ok: false; reason: 'budget'; used: number; budget: number }
  | { ok: false; reason: 'rate'; retryAfterS: number };

/** What commit() records of one answered request. */
export interface AnsweredRequest {
  keyId: string;
  images: number;
}

export interface StateStore {
  readonly kind: 'sqlite' | 'redis';
  /** Checks the key's rate bucket and budget and charges both, atomically; or refuses charging nothing. */
  admit(key: KeyRecord, n: number): Promise<Admission>;
  /** Gives back what admit() charged, for a request that failed before it was answered. */
  refund(keyId: string, n: number): Promise<void>;
  /** Images charged to the key so far. */
  used(keyId: string): Promise<number>;
  /** Runs fn with the key's defense (its state loaded), and keeps the state fn leaves. Calls for one key must not overlap. */
  withDefense<T>(key: KeyRecord, fn: (d: Defense) => T): Promise<T>;
  /** Inside the caller's transaction: records answered requests (and dirty in-memory state). */
  commitInTransaction(answered: readonly AnsweredRequest[]): void;
  close(): Promise<void>;
}

/** Token bucket: capacity max(1, rate) (one second's worth), refilled at `rate` tokens a second. */
function refill(tokens: number, atMs: number, rate: number, nowMs: number): number {
  const cap = Math.max(1, rate);
  return Math.min(cap, tokens + ((nowMs - atMs) / 1000) * rate);
}

export class SqliteStateStore implements StateStore {
  readonly kind = 'sqlite';
  readonly #db: ServerDb;
  /** Images charged (answered + in flight), by key. */
  readonly #used = new Map<string, number>();
  readonly #rate = new Map<string, { tokens: number; atMs: number }>();
  readonly #defenses = new Map<string, { spec: string; defense: Defense }>();
  readonly #dirtyDefense = new Set<string>();
  readonly #dirtyRate = new Set<string>();

  constructor(db: ServerDb) {
    this.#db = db;
  }

  #usedOf(keyId: string): number {
    let u = this.#used.get(keyId);
    if (u === undefined) {
      const r = this.#db.prepare('SELECT used FROM usage WHERE key_id = ?').get(keyId) as { used: number } | undefined;
      u = r ? r.used : 0;
      this.#used.set(keyId, u);
    }
    return u;
  }

  async admit(key: KeyRecord, n: number): Promise<Admission> {
    const used = this.#usedOf(key.id);
    if (used + n > key.budget) return { ok: false, reason: 'budget', used, budget: key.budget };
    if (key.rate !== Infinity) {
      const now = Date.now();
      let b = this.#rate.get(key.id);
      if (!b) {
        const r = this.#db.prepare('SELECT tokens, at_ms FROM rate_state WHERE key_id = ?').get(key.id) as { tokens: number; at_ms: number } | undefined;
        b = r ? { tokens: r.tokens, atMs: r.at_ms } : { tokens: Math.max(1, key.rate), atMs: now };
        this.#rate.set(key.id, b);
      }
      const tokens = refill(b.tokens, b.atMs, key.rate, now);
      if (tokens < 1) return { ok: false, reason: 'rate', retryAfterS: Math.max(1, Math.ceil((1 - tokens) / key.rate)) };
      b.tokens = tokens - 1;
      b.atMs = now;
      this.#dirtyRate.add(key.id);
    }
    this.#used.set(key.id, used + n);
    return { ok: true, used: used + n };
  }

  async refund(keyId: string, n: number): Promise<void> {
    this.#used.set(keyId, this.#usedOf(keyId) - n);
  }

  async used(keyId: string): Promise<number> {
    return this.#usedOf(keyId);
  }

  async withDefense<T>(key: KeyRecord, fn: (d: Defense) => T): Promise<T> {
    let e = this.#defenses.get(key.id);
    if (!e || e.spec !== key.defense) {
      const defense = parseDefense(key.defense);
      if (defense.importState) {
        const r = this.#db.prepare('SELECT spec, state FROM defense_state WHERE key_id = ?').get(key.id) as { spec: string; state: string } | undefined;
        if (r && r.spec === key.defense) defense.importState(JSON.parse(r.state));
      }
      e = { spec: key.defense, defense };
      this.#defenses.set(key.id, e);
    }
    const out = fn(e.defense);
    if (e.defense.exportState) this.#dirtyDefense.add(key.id);
    return out;
  }

  commitInTransaction(answered: readonly AnsweredRequest[]): void {
    const up = this.#db.prepare(
      'INSERT INTO usage (key_id, used, requests) VALUES (?, ?, 1) ON CONFLICT(key_id) DO UPDATE SET used = used + excluded.used, requests = requests + 1',
    );
    for (const a of answered) up.run(a.keyId, a.images);
    const ds = this.#db.prepare('INSERT INTO defense_state (key_id, spec, state) VALUES (?, ?, ?) ON CONFLICT(key_id) DO UPDATE SET spec = excluded.spec, state = excluded.state');
    for (const id of this.#dirtyDefense) {
      const e = this.#defenses.get(id)!;
      ds.run(id, e.spec, JSON.stringify(e.defense.exportState!()));
    }
    this.#dirtyDefense.clear();
    const rs = this.#db.prepare('INSERT INTO rate_state (key_id, tokens, at_ms) VALUES (?, ?, ?) ON CONFLICT(key_id) DO UPDATE SET tokens = excluded.tokens, at_ms = excluded.at_ms');
    for (const id of this.#dirtyRate) {
      const b = this.#rate.get(id)!;
      rs.run(id, b.tokens, b.atMs);
    }
    this.#dirtyRate.clear();
  }

  async close(): Promise<void> {}
}

// KEYS: used, rate bucket. ARGV: n, budget (-1: none), rate (-1: none), now_ms.
// Returns {1, used} | {0, used, budget} (budget) | {-1, retry_after_ms} (rate).
const ADMIT_LUA = `
local n = tonumber(ARGV[1])
local budget = tonumber(ARGV[2])
local rate = tonumber(ARGV[3])
local now = tonumber(ARGV[4])
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if budget >= 0 and used + n > budget then return {0, used, budget} end
local tokens = 0
if rate > 0 then
  local cap = math.max(1, rate)
  local b = redis.call('HMGET', KEYS[2], 'tokens', 'at')
  tokens = tonumber(b[1] or cap)
  local at = tonumber(b[2] or now)
  tokens = math.min(cap, tokens + (now - at) / 1000 * rate)
  if tokens < 1 then return {-1, math.ceil((1 - tokens) / rate * 1000)} end
  redis.call('HSET', KEYS[2], 'tokens', tostring(tokens - 1), 'at', tostring(now))
end
return {1, redis.call('INCRBY', KEYS[1], n)}
`;

const UNLOCK_LUA = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end`;

export class RedisStateStore implements StateStore {
  readonly kind = 'redis';
  readonly #redis: Redis;
  readonly #db: ServerDb;
  readonly #prefix: string;
  readonly #owned: boolean;

  /** `redis`: a connected ioredis client; `prefix` namespaces the keys (tests use one per run). */
  constructor(redis: Redis, db: ServerDb, options: { prefix?: string; owned?: boolean } = {}) {
    const o = checkOptions<{ prefix?: string; owned?: boolean }>(options, 'options', ['prefix', 'owned']);
    if (redis === null || typeof redis !== 'object' || typeof (redis as { defineCommand?: unknown }).defineCommand !== 'function') throw new TypeError(`redis must be a connected ioredis client, got ${describe(redis)}`);
    if (o.prefix !== undefined && typeof o.prefix !== 'string') throw new TypeError(`options.prefix must be a string, got ${describe(o.prefix)}`);
    if (o.owned !== undefined && typeof o.owned !== 'boolean') throw new TypeError(`options.owned must be a boolean, got ${describe(o.owned)}`);
    this.#redis = redis;
    this.#db = db;
    this.#prefix = o.prefix ?? 'encsec:';
    this.#owned = o.owned ?? false;
    redis.defineCommand('encsecAdmit', { numberOfKeys: 2, lua: ADMIT_LUA });
    redis.defineCommand('encsecUnlock', { numberOfKeys: 1, lua: UNLOCK_LUA });
  }

  async admit(key: KeyRecord, n: number): Promise<Admission> {
    const p = this.#prefix;
    const r = (await (this.#redis as unknown as { encsecAdmit(...a: (string | number)[]): Promise<number[]> }).encsecAdmit(
      `${p}used:${key.id}`,
      `${p}rate:${key.id}`,
      n,
      key.budget === Infinity ? -1 : key.budget,
      key.rate === Infinity ? -1 : key.rate,
      Date.now(),
    )) as number[];
    if (r[0] === 1) return { ok: true, used: r[1] };
    if (r[0] === 0) return { ok: false, reason: 'budget', used: r[1], budget: r[2] };
    return { ok: false, reason: 'rate', retryAfterS: Math.max(1, Math.ceil(r[1] / 1000)) };
  }

  async refund(keyId: string, n: number): Promise<void> {
    await this.#redis.decrby(`${this.#prefix}used:${keyId}`, n);
  }

  async used(keyId: string): Promise<number> {
    return Number((await this.#redis.get(`${this.#prefix}used:${keyId}`)) ?? 0);
  }

  async withDefense<T>(key: KeyRecord, fn: (d: Defense) => T): Promise<T> {
    const defense = parseDefense(key.defense);
    if (!defense.exportState) return fn(defense);
    const lock = `${this.#prefix}lock:${key.id}`;
    const token = `${process.pid}:${Math.random()}`;
    // Spin on the per-key lock (held for one request's defense, milliseconds);
    // it expires by itself if its holder dies.
    for (let i = 0; ; i++) {
      if ((await this.#redis.set(lock, token, 'PX', 10_000, 'NX')) === 'OK') break;
      if (i > 2000) throw new Error(`could not lock the defense state of key ${key.id}`);
      await new Promise((r) => setTimeout(r, 2));
    }
    try {
      const stateKey = `${this.#prefix}defense:${key.id}`;
      const saved = await this.#redis.hmget(stateKey, 'spec', 'state');
      if (saved[0] === key.defense && saved[1] !== null) defense.importState!(JSON.parse(saved[1]));
      const out = fn(defense);
      await this.#redis.hset(stateKey, 'spec', key.defense, 'state', JSON.stringify(defense.exportState()));
      return out;
    } finally {
      await (this.#redis as unknown as { encsecUnlock(k: string, t: string): Promise<number> }).encsecUnlock(lock, token);
    }
  }

  commitInTransaction(answered: readonly AnsweredRequest[]): void {
    // The budget lives in Redis; the database keeps the answered totals for the record.
    const up = this.#db.prepare(
      'INSERT INTO usage (key_id, used, requests) VALUES (?, ?, 1) ON CONFLICT(key_id) DO UPDATE SET used = used + excluded.used, requests = requests + 1',
    );
    for (const a of answered) up.run(a.keyId, a.images);
  }

  async close(): Promise<void> {
    if (this.#owned) await this.#redis.quit();
  }
}
