// Pieces shared by the defenses: per-client seeds, the parsing of a
// defense's SPEC parameters (strings) into checked numbers, and the checks
// of a saved per-client state.
import * as crypto from 'node:crypto';
import { checkInt, checkSeed, describe } from '../core/validate';
import { deriveSeed } from '../data/prng';

/**
 * Domains of the seeds a defense derives from its own seed, so that the
 * noise of a client, the LSH hyperplanes and the client's rotation never
 * share a random stream.
 */
export const SEED_DOMAIN = { noise: 1, hyperplanes: 2, rotation: 3 } as const;

/** A 48-bit integer that stands for a client id (the first 6 bytes of its SHA-256). */
export function clientHash(clientId: string): number {
  if (typeof clientId !== 'string') throw new TypeError(`clientId must be a string, got ${describe(clientId)}`);
  const h = crypto.createHash('sha256').update(clientId, 'utf8').digest();
  return h.readUIntBE(0, 6);
}

/** The seed of one client's stream in one domain: depends on (seed, domain, client id) only. */
export function clientSeed(seed: number, domain: number, clientId: string): number {
  checkSeed(seed, 'seed');
  checkInt(domain, 'domain', { min: 0, max: Number.MAX_SAFE_INTEGER });
  return deriveSeed(seed, domain, clientHash(clientId));
}

/** Reads a defense's SPEC parameters, refusing keys it does not know. */
export class SpecParams {
  readonly #used = new Set<string>();
  constructor(
    readonly defense: string,
    readonly raw: Readonly<Record<string, string>>,
    readonly known: readonly string[],
  ) {
    for (const k of Object.keys(raw)) {
      if (!known.includes(k)) {
        const accepted = known.length ? `accepted: ${known.join(', ')}` : 'it takes no parameters';
        throw new RangeError(`defense "${defense}": unknown parameter ${JSON.stringify(k)} (${accepted})`);
      }
    }
  }

  has(key: string): boolean {
    return this.raw[key] !== undefined;
  }

  number(key: string, def: number | undefined, range: { min?: number; max?: number; gt?: number } = {}): number {
    const s = this.raw[key];
    this.#used.add(key);
    if (s === undefined) {
      if (def === undefined) throw new RangeError(`defense "${this.defense}" needs ${key}, e.g. ${this.defense}:${key}=...`);
      return def;
    }
    const v = Number(s);
    const bounds = [
      range.gt !== undefined ? `> ${range.gt}` : '',
      range.min !== undefined ? `>= ${range.min}` : '',
      range.max !== undefined ? `<= ${range.max}` : '',
    ].filter(Boolean);
    const what = `a number${bounds.length ? ` ${bounds.join(' and ')}` : ''}`;
    if (s.trim() === '' || !Number.isFinite(v)) throw new RangeError(`defense "${this.defense}": ${key} must be ${what}, got ${JSON.stringify(s)}`);
    if ((range.gt !== undefined && !(v > range.gt)) || (range.min !== undefined && v < range.min) || (range.max !== undefined && v > range.max)) {
      throw new RangeError(`defense "${this.defense}": ${key} must be ${what}, got ${s}`);
    }
    return v;
  }

  int(key: string, def: number | undefined, range: { min?: number; max?: number } = {}): number {
    const v = this.number(key, def, range);
    if (!Number.isInteger(v)) throw new RangeError(`defense "${this.defense}": ${key} must be an integer, got ${this.raw[key]}`);
    return v;
  }

  bool(key: string, def: boolean): boolean {
    const s = this.raw[key];
    if (s === undefined) return def;
    if (['true', '1', 'yes', 'on'].includes(s.toLowerCase())) return true;
    if (['false', '0', 'no', 'off'].includes(s.toLowerCase())) return false;
    throw new RangeError(`defense "${this.defense}": ${key} must be true or false, got ${JSON.stringify(s)}`);
  }
}

/** A number without float noise in a SPEC ("0.05", "1e-6"). */
export function specNumber(v: number): string {
  return String(v);
}

/** Throws an Error about a saved state; `where` names the part (e.g. "b4b state, client \"x\""). */
export function stateError(where: string, problem: string): never {
  throw new Error(`${where}: ${problem}`);
}

/** Checks a saved state is a plain object; returns it. */
export function stateObject(v: unknown, where: string): Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) stateError(where, 'expected an object');
  return v as Record<string, unknown>;
}

/** Checks a saved per-client list: an array of [clientId, value] pairs with distinct, non-empty ids. */
export function stateClients(v: unknown, where: string): [string, unknown][] {
  if (!Array.isArray(v)) stateError(where, 'clients must be an array of [clientId, state] pairs');
  const seen = new Set<string>();
  return v.map((e, i) => {
    if (!Array.isArray(e) || e.length !== 2 || typeof e[0] !== 'string' || e[0] === '') stateError(where, `clients[${i}] must be a [clientId, state] pair`);
    if (seen.has(e[0])) stateError(where, `client ${JSON.stringify(e[0])} appears twice`);
    seen.add(e[0]);
    return [e[0], e[1]];
  });
}

/** A saved count: a non-negative safe integer. */
export function stateCount(v: unknown, where: string, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) stateError(where, `${what} must be a non-negative integer, got ${JSON.stringify(v)}`);
  return v;
}
