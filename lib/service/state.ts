// The service's state file: what a restarted service needs so that no client
// gets a fresh start (query budgets and what each client spent, and the
// defense's per-client state, e.g. b4b's coverage bitsets).
//
// Layout: one header line of JSON, then the state as JSON text:
//     {"format":"encsec-service-state","version":2,"defense":"b4b","bytes":N,"sha256":"..."}\n
//     {"savedAt":...,"budgets":...,"usage":...,"defenseState":...}
// The header names the defense SPEC the state belongs to and the length of
// the state text. Its sha256 is the SHA-256 of the header line without the
// sha256 field (`{"format":...,"version":2,"defense":...,"bytes":N}`), a
// newline, and the state text: the header is covered as well as the state
// (a flipped bit in "defense" must not turn `noise:0.05` into another valid
// spec unnoticed). The header line must be exactly that canonical JSON, so no
// byte of it escapes the digest. A truncated, corrupted or mismatched file is
// refused with an Error that names the file and the problem, before anything
// is restored. Binary per-client data (bitsets) is base64 inside the JSON.
// Written atomically (temporary file, fsync, rename); reading a state file
// removes the temporaries that killed saves of it left (lib/io/atomic.ts).
//
// Version 1 files (whose digest covered the state text only) are still read.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import { describe } from '../core/validate';
import { checkPath, removeStaleTemporaries, writeFileAtomic } from '../io/atomic';

export const SERVICE_STATE_FORMAT = 'encsec-service-state';
export const SERVICE_STATE_VERSION = 2;
/** The earlier version still read: its digest covers the state text only. */
const LEGACY_VERSION = 1;

export interface ServiceStateHeader {
  format: typeof SERVICE_STATE_FORMAT;
  version: number;
  /** Canonical SPEC of the defense the state belongs to. */
  defense: string;
  /** Bytes of the state text after the header line. */
  bytes: number;
  /** SHA-256 (hex) of the header line without this field, a newline and the state text (version 1: of the state text only). */
  sha256: string;
}

export interface ServiceStateBody {
  savedAt: string;
  /** Budgets: null stands for unlimited (JSON has no Infinity). */
  budgets: { default: number | null; clients: [string, number | null][] };
  usage: [string, { used: number; requests: number; refused: number }][];
  /** The defense's exportState(), or null for a stateless defense. */
  defenseState: unknown;
}

/** The canonical header line without its digest: what the digest covers, with the state text. */
function unsignedHeader(defense: string, bytes: number, version = SERVICE_STATE_VERSION): string {
  return JSON.stringify({ format: SERVICE_STATE_FORMAT, version, defense, bytes });
}

function stateDigest(defense: string, text: Uint8Array): string {
  return crypto.createHash('sha256').update(unsignedHeader(defense, text.length) + '\n').update(text).digest('hex');
}

/** Writes the state file atomically. */
export function writeServiceState(file: string, defense: string, body: ServiceStateBody): void {
  checkPath(file);
  if (typeof defense !== 'string' || defense.length === 0) throw new TypeError(`defense must be a non-empty defense SPEC string, got ${typeof defense === 'string' ? 'an empty string' : describe(defense)}`);
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new TypeError(`body must be an object, got ${describe(body)}`);
  let json: string;
  try {
    json = JSON.stringify(body);
  } catch (e) {
    // A BigInt, a cycle, a throwing toJSON: say which argument could not be written.
    throw new TypeError(`body cannot be written as JSON: ${(e as Error)?.message ?? String(e)}`);
  }
  const text = Buffer.from(json, 'utf8');
  const header: ServiceStateHeader = {
    format: SERVICE_STATE_FORMAT,
    version: SERVICE_STATE_VERSION,
    defense,
    bytes: text.length,
    sha256: stateDigest(defense, text),
  };
  writeFileAtomic(file, [Buffer.from(JSON.stringify(header) + '\n', 'utf8'), text]);
}

/** Reads and checks a state file: format, version, length, checksum; returns its header and state. */
export function readServiceState(file: string): { header: ServiceStateHeader; body: ServiceStateBody } {
  // A string path only: fs would take a number as a file descriptor (1 is stdout: a read that never ends).
  checkPath(file);
  removeStaleTemporaries(file);
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    throw new Error(`cannot read service state file ${file}: ${(e as Error).message}`);
  }
  const fail = (problem: string): never => {
    throw new Error(`service state file ${file}: ${problem}`);
  };
  const nl = buf.indexOf(0x0a);
  if (nl < 0) fail(buf.length === 0 ? 'the file is empty' : 'no header line (truncated, or not an encsec service state file)');
  let header: ServiceStateHeader;
  try {
    header = JSON.parse(buf.subarray(0, nl).toString('utf8')) as ServiceStateHeader;
  } catch {
    return fail('the header line is not JSON (not an encsec service state file, or corrupt)');
  }
  if (header === null || typeof header !== 'object' || header.format !== SERVICE_STATE_FORMAT) {
    fail(`not an encsec service state file (format ${JSON.stringify((header as { format?: unknown } | null)?.format ?? null)}, expected "${SERVICE_STATE_FORMAT}")`);
  }
  if (header.version !== SERVICE_STATE_VERSION && header.version !== LEGACY_VERSION) {
    fail(`format version ${JSON.stringify(header.version)}; this encsec reads versions ${LEGACY_VERSION} and ${SERVICE_STATE_VERSION}`);
  }
  if (typeof header.defense !== 'string' || !Number.isSafeInteger(header.bytes) || header.bytes < 0 || typeof header.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(header.sha256)) {
    fail('the header lacks defense, bytes or sha256');
  }
  const line = buf.subarray(0, nl).toString('utf8');
  const canonical = JSON.stringify({ format: header.format, version: header.version, defense: header.defense, bytes: header.bytes, sha256: header.sha256 });
  if (header.version === SERVICE_STATE_VERSION && line !== canonical) fail('corrupt: the header line is not in its canonical form (extra or altered bytes)');
  const text = buf.subarray(nl + 1);
  if (text.length < header.bytes) fail(`truncated: the header announces ${header.bytes} bytes of state, the file has ${text.length}`);
  if (text.length > header.bytes) fail(`${text.length - header.bytes} unexpected bytes after the state (expected ${header.bytes})`);
  const sum = header.version === LEGACY_VERSION ? crypto.createHash('sha256').update(text).digest('hex') : stateDigest(header.defense, text);
  if (sum !== header.sha256) fail(`corrupt: the SHA-256 of the header and state (${sum.slice(0, 12)}...) does not match the header's (${header.sha256.slice(0, 12)}...)`);
  let body: ServiceStateBody;
  try {
    body = JSON.parse(text.toString('utf8')) as ServiceStateBody;
  } catch (e) {
    return fail(`the state is not valid JSON (${(e as Error).message})`);
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) fail('the state is not an object');
  return { header, body };
}
