// `--target URL`: an encsec server (lib/server, `encsec serve`) as the encoder
// a command queries, through its client RemoteEncoder. The API key comes from
// the environment variable ENCSEC_API_KEY or the first line of
// --api-key-file FILE, never from the command line (other users see command
// lines in `ps`). Before any work the command learns from the server what it
// serves (GET /v1/health) and what the key may spend (GET /v1/key): a bad
// key, a wrong image shape or a budget too small for the job stops it
// before anything is loaded or charged.
import * as fs from 'node:fs';
import { UsageError, type OptionSpec, type ParsedArgs } from './args';
import type { RemoteEncoder, RemoteHealth, RemoteKeyInfo } from '../server/remote';
// Only the client (no fastify, no SQLite) loads, and only for a URL target:
// `encsec` itself stays light.
const loadRemote = () => import('../server/remote');

/** Where a --target URL's API key is read by default. */
export const API_KEY_ENV = 'ENCSEC_API_KEY';

/** --api-key-file, as every command with a --target URL takes it. */
export const API_KEY_FILE_OPTION: OptionSpec = {
  kind: 'string',
  help: `with a --target URL: file whose first line is the API key (default: the environment variable ${API_KEY_ENV}; a key on the command line would show in ps)`,
};

/** True when a --target value is an http(s) URL rather than a file. */
export function isUrl(v: string | undefined): v is string {
  return typeof v === 'string' && /^https?:\/\//i.test(v);
}

/** Checks a --target URL (a UsageError naming the option otherwise) and returns it. */
export function checkTargetUrl(v: string, option = '--target'): string {
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    throw new UsageError(`${option} ${JSON.stringify(v)} is not a valid URL (e.g. http://127.0.0.1:8080)`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new UsageError(`${option} must be an http(s) URL, got ${JSON.stringify(v)}`);
  if (u.search || u.hash) throw new UsageError(`${option} takes the server's base URL (e.g. http://127.0.0.1:8080), without a query or fragment; got ${JSON.stringify(v)}`);
  return v;
}

/**
 * The API key for a --target URL: the first line of --api-key-file, else
 * $ENCSEC_API_KEY. Missing or empty: a UsageError, before any work.
 */
export function apiKeyFrom(args: ParsedArgs, env: NodeJS.ProcessEnv = process.env): string {
  const file = args.string('api-key-file');
  if (file !== undefined) {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (e) {
      throw new UsageError(`--api-key-file ${file}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    const key = text.split(/\r?\n/, 1)[0].trim();
    if (key === '') throw new UsageError(`--api-key-file ${file}: its first line is empty (it must hold the API key, esk_...)`);
    return key;
  }
  const key = (env[API_KEY_ENV] ?? '').trim();
  if (key === '') throw new UsageError(`a --target URL needs an API key: set ${API_KEY_ENV}, or give --api-key-file FILE (its first line is the key)`);
  return key;
}

/** --api-key-file without a --target URL: a UsageError. */
export function checkNoApiKeyFile(args: ParsedArgs, why = 'the target is a file'): void {
  if (args.has('api-key-file')) throw new UsageError(`--api-key-file applies to a --target URL only (${why})`);
}

/** A verify command's suspect: --encoder FILE or --target URL (exactly one, and the API key of a URL), checked before any work. */
export function suspectFrom(args: ParsedArgs): { file: string; url?: undefined; apiKey?: undefined } | { url: string; apiKey: string; file?: undefined } {
  const file = args.string('encoder');
  const url = args.string('target');
  if ((file === undefined) === (url === undefined)) {
    throw new UsageError(`give exactly one of --encoder FILE (the suspect encoder's file) and --target URL (a server serving it)${file !== undefined ? ', not both' : ''}`);
  }
  if (url !== undefined) {
    if (!isUrl(url)) throw new UsageError(`--target takes the URL of an encsec server (e.g. http://127.0.0.1:8080), got ${JSON.stringify(url)}; give a file as --encoder FILE`);
    return { url: checkTargetUrl(url), apiKey: apiKeyFrom(args) };
  }
  checkNoApiKeyFile(args, 'the suspect is --encoder FILE');
  if (file === '') throw new UsageError('--encoder is required');
  return { file: file! };
}

export interface RemoteTarget {
  remote: RemoteEncoder;
  url: string;
  health: RemoteHealth;
  key: RemoteKeyInfo;
}

/**
 * The client of the server at `url`, with what it serves and the key's
 * record (no images sent, nothing charged). A refused key or an unreachable
 * server rejects here, before any work.
 */
export async function connectRemote(url: string, apiKey: string, clientId: string): Promise<RemoteTarget> {
  const { RemoteEncoder } = await loadRemote();
  const remote = new RemoteEncoder({ url, key: apiKey });
  const health = await remote.health();
  const key = await remote.keyInfo(clientId);
  return { remote, url: remote.url, health, key };
}

/** Images the key may still send (Infinity: unlimited). */
export function remaining(key: RemoteKeyInfo): number {
  return key.budget === null ? Infinity : Math.max(0, key.budget - key.used);
}

/** Refuses (before any query) a job that needs more images than the key has left. */
export function checkRemaining(target: RemoteTarget, needed: number, what: string): void {
  const left = remaining(target.key);
  if (left < needed) {
    throw new Error(`${what} needs ${needed} queries but key ${target.key.keyId} at ${target.url} has ${left} of its budget of ${target.key.budget} images left: nothing was queried`);
  }
}

/** Refuses (before any query) a server whose images are not `shape` = [C, H, W]. */
export function checkInputShape(target: RemoteTarget, shape: readonly number[], what: string): void {
  const [C, H, W] = target.health.inputShape;
  if (shape.length !== 3 || shape[0] !== C || shape[1] !== H || shape[2] !== W) {
    throw new Error(`${what} has ${shape.join('x')} images, the server at ${target.url} takes ${C}x${H}x${W}: nothing was queried`);
  }
}
