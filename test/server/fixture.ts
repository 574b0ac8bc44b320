// Shared set-up of the server tests: a small random-init encoder on 8x8
// one-channel images, a fresh database in a temp folder, a server on a free
// loopback port, and request helpers.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Tensor } from '../../lib/core/tensor';
import { createEncoder, type Encoder } from '../../lib/nn/encoders';
import { createServer, openServerDb, type EncsecServer, type ServerDb, type ServerOptions } from '../../lib/server';

export const SIZE = 8;
export const PER = SIZE * SIZE;

export function tempDir(prefix = 'encsec-server-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export interface Running {
  server: EncsecServer;
  url: string;
  db: ServerDb;
  dbFile: string;
  encoder: Encoder;
  close(): Promise<void>;
}

export async function startServer(options: Partial<Omit<ServerOptions, 'encoder' | 'db'>> & { dbFile?: string; encoder?: Encoder } = {}): Promise<Running> {
  const { dbFile: given, encoder: givenEncoder, ...rest } = options;
  const dbFile = given ?? path.join(tempDir(), 'serve.sqlite');
  const encoder = givenEncoder ?? createEncoder('cnn-small', { seed: 11 }).eval();
  const db = openServerDb(dbFile);
  const server = await createServer({ encoder, db, imageSize: SIZE, ...rest });
  const url = await server.listen(0);
  return {
    server,
    url,
    db,
    dbFile,
    encoder,
    async close() {
      await server.close();
      db.close();
      if (!givenEncoder) encoder.dispose();
    },
  };
}

/** n normalised images [n, 1, 8, 8] as float32 rows, from a seed. */
export function imageRows(n: number, seed: number): Float32Array {
  const t = Tensor.randn([n, 1, SIZE, SIZE], { seed });
  try {
    return t.toArray();
  } finally {
    t.dispose();
  }
}

/** POST float32 rows to a route; returns status, headers and the body (parsed JSON when it is JSON). */
export async function postRows(
  url: string,
  key: string | null,
  rows: Float32Array,
  n: number,
  opts: { route?: string; binary?: boolean; headers?: Record<string, string> } = {},
): Promise<{ status: number; headers: Headers; json: Record<string, unknown> | null; bytes: Buffer }> {
  const headers: Record<string, string> = {
    'content-type': 'application/octet-stream',
    'x-encsec-shape': `${n},1,${SIZE},${SIZE}`,
    'x-encsec-dtype': 'float32',
    ...(opts.binary ? { accept: 'application/octet-stream' } : {}),
    ...(key !== null ? { authorization: `Bearer ${key}` } : {}),
    ...opts.headers,
  };
  const res = await fetch(url + (opts.route ?? '/v1/embed'), { method: 'POST', headers, body: Buffer.from(rows.buffer, rows.byteOffset, rows.byteLength) });
  return readResponse(res);
}

export async function readResponse(res: Response): Promise<{ status: number; headers: Headers; json: Record<string, unknown> | null; bytes: Buffer }> {
  const bytes = Buffer.from(await res.arrayBuffer());
  let json: Record<string, unknown> | null = null;
  if ((res.headers.get('content-type') ?? '').includes('json')) json = JSON.parse(bytes.toString('utf8'));
  return { status: res.status, headers: res.headers, json, bytes };
}

/** Float32 rows from a binary answer. */
export function floats(bytes: Buffer): Float32Array {
  const out = new Float32Array(bytes.length / 4);
  new Uint8Array(out.buffer).set(bytes);
  return out;
}
