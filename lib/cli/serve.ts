// `encsec serve`: the encoder as an HTTP service (lib/server). Logs one JSON
// line {"event":"listening","url":...} on stderr when ready, serves until
// SIGINT/SIGTERM, then finishes the requests in flight and prints its JSON.
import type { Command } from './command';
import { loadEncoder } from '../io/checkpoint';
import { setDevice } from '../core/backend';
// The server's modules (fastify, SQLite) load only when this command runs:
// `encsec` itself and the library stay light.
const loadServer = () => import('../server');

export const serveCommand: Command = {
  summary: 'serve an encoder over HTTP: API keys, budgets, rate limits, per-key defenses, dynamic batching, audit log, metrics',
  options: {
    encoder: { kind: 'string', help: 'encoder file (safetensors) to serve' },
    port: { kind: 'int', help: 'TCP port (0: a free one)', default: 8080 },
    host: { kind: 'string', help: 'address to listen on', default: '127.0.0.1' },
    db: { kind: 'string', help: 'SQLite database: keys, audit log, budgets (made if missing; `encsec keys add --db` adds keys)' },
    redis: { kind: 'string', help: 'Redis URL: budgets, rate limits and defense state live there, shared by replicas (e.g. redis://127.0.0.1:6379)' },
    'redis-prefix': { kind: 'string', help: 'prefix of every Redis key (default encsec:)' },
    'image-size': { kind: 'int', help: 'input height = width (default 28 for 1-channel encoders, 32 for 3)' },
    'max-batch': { kind: 'int', help: 'most images per native batch (default 256)' },
    'max-delay-ms': { kind: 'number', help: 'longest wait for more requests when a full batch cannot be formed (default 2)' },
    'max-queue': { kind: 'int', help: 'most images waiting; beyond, 503 + Retry-After (default 8192)' },
    'max-request-images': { kind: 'int', help: 'most images in one request (default 1024)' },
    'body-limit': { kind: 'int', help: 'largest request body in bytes; beyond, 413 (default 33554432)' },
    device: { kind: 'string', help: 'cpu | cuda (default: the backend in use)' },
  },
  async run(args, ctx) {
    const { createServer, openServerDb } = await loadServer();
    const file = args.string('encoder');
    if (!file) throw new Error('--encoder FILE is required');
    const dbFile = args.string('db');
    if (!dbFile) throw new Error('--db FILE is required');
    const port = args.number('port')!;
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--port must be in [0, 65535], got ${port}`);
    const device = args.string('device');
    if (device) setDevice(device as 'cpu' | 'cuda');
    const { encoder } = loadEncoder(file);
    const db = openServerDb(dbFile);
    const server = await createServer({
      encoder,
      db,
      redis: args.string('redis'),
      redisPrefix: args.string('redis-prefix'),
      imageSize: args.number('image-size'),
      maxBatch: args.number('max-batch'),
      maxQueueDelayMs: args.number('max-delay-ms'),
      maxQueueImages: args.number('max-queue'),
      maxRequestImages: args.number('max-request-images'),
      bodyLimit: args.number('body-limit'),
    });
    const url = await server.listen(port, args.string('host'));
    const startedAt = new Date().toISOString();
    ctx.log(JSON.stringify({ event: 'listening', url, pid: process.pid, inputShape: [server.inputShape.channels, server.inputShape.height, server.inputShape.width], dim: server.dim, state: server.store.kind }));
    const signal = await new Promise<string>((resolve) => {
      process.once('SIGINT', () => resolve('SIGINT'));
      process.once('SIGTERM', () => resolve('SIGTERM'));
    });
    ctx.log(JSON.stringify({ event: 'stopping', signal }));
    await server.close();
    db.close();
    encoder.dispose();
    return { url, encoder: file, db: dbFile, state: server.store.kind, startedAt, stoppedAt: new Date().toISOString(), signal };
  },
};
