// The encoder as an HTTP service (fastify): every answer needs a valid key,
// is charged to the key's budget and rate limit, goes through the key's
// defense and is written to the hash-chained audit log BEFORE its 200 is
// sent.
//
// Routes:
//   POST /v1/embed       embeddings through the key's defense (formats: decode.ts)
//   POST /v1/embed/raw   raw embeddings, admin keys only (the owner's watermark and authentication checks)
//   GET  /v1/health      liveness, the served encoder and input shape (no key, no embeddings)
//   GET  /v1/key         the presented key's own record: id, defense, budget, images used (nothing charged)
//   GET  /metrics        Prometheus text format
//   GET  /v1/openapi.json  the OpenAPI document generated from the route schemas
//
// A request's life: authenticate (onRequest, before the body is read) ->
// decode and check the body -> admit (budget and rate, atomic; 429 refuses
// charging nothing) -> queue for the dynamic batcher (503 + Retry-After when
// full; refunded) -> one native batch with other requests -> the key's
// defense on its own rows -> audit rows, usage and defense state committed in
// one transaction per batch -> reply. A failure after admission refunds the
// images; a crash after admission leaves them charged (never the reverse).
//
// Answers: JSON {"embeddings": [[...], ...], "dim", "defense", "keyId",
// "used", "budget"} or, with Accept: application/octet-stream, n*d
// little-endian float32 with X-Encsec-Shape: n,d. Headers on both:
// X-Encsec-Defense (SPEC), X-Encsec-Stats (JSON: the defense's numbers about
// the key, e.g. b4b's coverage and sigma), X-Encsec-Used, X-Encsec-Budget.
import * as crypto from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import swagger from '@fastify/swagger';
import { Redis } from 'ioredis';
import { Tensor } from '../core/tensor';
import { embedAsync, embedSync, type Module } from '../nn/module';
import { checkInt, checkNumber, checkOptions } from '../core/validate';
import { AuditLog, type AuditEntry } from './audit';
import { DynamicBatcher, QueueFull, type BatchJob } from './batcher';
import { BadRequest, decodeRequest, type InputShape } from './decode';
import type { ServerDb } from './db';
import { KeyRefused, KeyStore, presentedKey, type KeyRecord } from './keys';
import { ServerMetrics } from './metrics';
import { RedisStateStore, SqliteStateStore, type AnsweredRequest, type StateStore } from './state';

export interface ServerOptions {
  /** The served encoder (eval mode is used whatever its flag). */
  encoder: Module;
  /** Input channels (default: encoder.config.inChannels). */
  channels?: 1 | 3;
  /** Input height = width (default 28 for 1 channel, 32 for 3). */
  imageSize?: number;
  /** An open database (openServerDb). */
  db: ServerDb;
  /** Redis URL or a connected ioredis client: budgets, rate limits and defense state then live there (shared by replicas). */
  redis?: string | Redis;
  /** Prefix of every Redis key (default "encsec:"). */
  redisPrefix?: string;
  /** Most images in one native batch (default 256). */
  maxBatch?: number;
  /** How long a request may wait for others when a full batch cannot be formed, ms (default 2). */
  maxQueueDelayMs?: number;
  /** Most images waiting; beyond, 503 + Retry-After (default 8192). */
  maxQueueImages?: number;
  /** Most images in one request (default 1024). */
  maxRequestImages?: number;
  /** Largest request body in bytes; beyond, 413 (default 32 MiB). */
  bodyLimit?: number;
  /** Fastify's logger option (default false). */
  logger?: boolean;
}

const OPTION_KEYS = ['encoder', 'channels', 'imageSize', 'db', 'redis', 'redisPrefix', 'maxBatch', 'maxQueueDelayMs', 'maxQueueImages', 'maxRequestImages', 'bodyLimit', 'logger'];

interface JobMeta {
  key: KeyRecord;
  route: string;
  raw: boolean;
  digest: string;
}

type Answer = { ok: true; data: Float32Array; d: number; defense: string; stats: Record<string, number> } | { ok: false; error: Error };

declare module 'fastify' {
  interface FastifyRequest {
    apiKey?: KeyRecord;
  }
}

/** The numbers of a defense about a key, and the noise level to log (sigma when it has one; 0 for none). */
function noiseOf(defenseSpec: string, stats: Record<string, number>, params: Readonly<Record<string, unknown>> | undefined): number | null {
  if (typeof stats.sigma === 'number') return stats.sigma;
  if (params && typeof params.sigma === 'number') return params.sigma;
  return defenseSpec === 'none' ? 0 : null;
}

export interface EncsecServer {
  readonly app: FastifyInstance;
  readonly keys: KeyStore;
  readonly audit: AuditLog;
  readonly store: StateStore;
  readonly metrics: ServerMetrics;
  readonly inputShape: InputShape;
  /** Embedding dimension of the served encoder. */
  readonly dim: number;
  /** Starts listening; resolves to the base URL (port 0: a free port). */
  listen(port?: number, host?: string): Promise<string>;
  /** Stops accepting, finishes what was accepted, closes Redis (if it opened it). The database stays open (the caller's). */
  close(): Promise<void>;
}

export async function createServer(options: ServerOptions): Promise<EncsecServer> {
  const o = checkOptions<ServerOptions>(options, 'options', OPTION_KEYS);
  const encoder = o.encoder;
  if (encoder === null || typeof encoder !== 'object' || typeof (encoder as Module).compile !== 'function') throw new TypeError('options.encoder must be a Module');
  const cfgChannels = (encoder as Module & { config?: { inChannels?: number } }).config?.inChannels;
  const channels = o.channels ?? cfgChannels ?? 1;
  if (channels !== 1 && channels !== 3) throw new RangeError(`options.channels must be 1 or 3, got ${String(channels)}`);
  const size = o.imageSize === undefined ? (channels === 1 ? 28 : 32) : checkInt(o.imageSize, 'options.imageSize', { min: 4, max: 1024 });
  const maxBatch = o.maxBatch === undefined ? 256 : checkInt(o.maxBatch, 'options.maxBatch', { min: 1, max: 65536 });
  const maxQueueDelayMs = o.maxQueueDelayMs === undefined ? 2 : checkNumber(o.maxQueueDelayMs, 'options.maxQueueDelayMs', { min: 0, max: 10_000 });
  const maxQueueImages = o.maxQueueImages === undefined ? 8192 : checkInt(o.maxQueueImages, 'options.maxQueueImages', { min: 1, max: 1 << 24 });
  const maxRequestImages = o.maxRequestImages === undefined ? 1024 : checkInt(o.maxRequestImages, 'options.maxRequestImages', { min: 1, max: maxQueueImages });
  const bodyLimit = o.bodyLimit === undefined ? 32 << 20 : checkInt(o.bodyLimit, 'options.bodyLimit', { min: 1024, max: 1 << 30 });
  if (!o.db || typeof (o.db as ServerDb).prepare !== 'function') throw new TypeError('options.db must be a database from openServerDb');
  const db = o.db;
  const inputShape: InputShape = { channels, height: size, width: size };
  const per = channels * size * size;

  // The embedding dimension (and a first run that compiles the plan), before serving anything.
  const probe = Tensor.zeros([1, channels, size, size]);
  const dim = (() => {
    const e = embedSync(encoder, probe);
    try {
      return e.shape[1];
    } finally {
      e.dispose();
      probe.dispose();
    }
  })();

  const keys = new KeyStore(db);
  const audit = new AuditLog(db);
  let redisOwned = false;
  let store: StateStore;
  if (o.redis !== undefined) {
    let client: Redis;
    if (typeof o.redis === 'string') {
      client = new Redis(o.redis, { lazyConnect: true, maxRetriesPerRequest: 2 });
      await client.connect();
      redisOwned = true;
    } else client = o.redis;
    store = new RedisStateStore(client, db, { prefix: o.redisPrefix, owned: redisOwned });
  } else store = new SqliteStateStore(db);

  // One transaction per batch: usage, defense state and audit rows commit together.
  const commitBatch = db.transaction((answered: AnsweredRequest[], entries: AuditEntry[]) => {
    store.commitInTransaction(answered);
    audit.append(entries);
  });

  let metrics: ServerMetrics;
  const batcher = new DynamicBatcher<JobMeta, Answer>({
    maxBatch,
    maxQueueDelayMs,
    maxQueueImages,
    imageSize: per,
    async run(x, n) {
      const t = Tensor.from(x, [n, channels, size, size]);
      try {
        const out = await embedAsync(encoder, t);
        try {
          return { data: out.toArray(), d: out.shape[1] };
        } finally {
          out.dispose();
        }
      } finally {
        t.dispose();
      }
    },
    async postprocess(jobs: BatchJob<JobMeta>[], raw: Float32Array[], d: number): Promise<Answer[]> {
      const answers: Answer[] = [];
      const answered: AnsweredRequest[] = [];
      const entries: AuditEntry[] = [];
      for (let i = 0; i < jobs.length; i++) {
        const { key, route, raw: isRaw, digest } = jobs[i].meta;
        try {
          let a: { data: Float32Array; d: number; defense: string; stats: Record<string, number>; noise: number | null };
          if (isRaw || key.defense === 'none') {
            // No defense: the raw rows as they are (no tensor round trip).
            a = { data: raw[i].slice(), d, defense: 'none', stats: {}, noise: 0 };
          } else {
            a = await store.withDefense(key, (defense) => {
              const e = Tensor.from(raw[i], [jobs[i].n, d]);
              let y: Tensor | null = null;
              try {
                y = defense.apply(key.id, e);
                if (!(y instanceof Tensor) || y.ndim !== 2 || y.shape[0] !== jobs[i].n) throw new TypeError(`defense ${key.defense} must return a [${jobs[i].n}, d] tensor`);
                const stats = defense.clientStats ? defense.clientStats(key.id) : {};
                return { data: y.toArray(), d: y.shape[1], defense: key.defense, stats, noise: noiseOf(key.defense, stats, defense.params) };
              } finally {
                if (y && y !== e) y.dispose();
                e.dispose();
              }
            });
          }
          answers.push({ ok: true, data: a.data, d: a.d, defense: a.defense, stats: a.stats });
          answered.push({ keyId: key.id, images: jobs[i].n });
          entries.push({ keyId: key.id, route, images: jobs[i].n, inputDigest: digest, defense: isRaw ? 'raw' : a.defense, noise: a.noise });
          if (a.noise !== null) metrics.noise.set({ key_id: key.id }, a.noise);
        } catch (e) {
          answers.push({ ok: false, error: e as Error });
        }
      }
      if (entries.length > 0) {
        try {
          commitBatch.immediate(answered, entries);
        } catch (e) {
          // Nothing of this batch is on record: nobody gets a 200.
          return jobs.map(() => ({ ok: false, error: new Error(`audit log commit failed: ${(e as Error).message}`) }));
        }
      }
      return answers;
    },
    onBatch(images, requests) {
      metrics.batchImages.observe(images);
      metrics.batchRequests.observe(requests);
    },
  });
  metrics = new ServerMetrics(() => batcher.queuedImages);

  const app = Fastify({ logger: o.logger ?? false, bodyLimit, requestTimeout: 60_000, connectionTimeout: 60_000, return503OnClosing: true });
  app.addContentTypeParser(['application/octet-stream', 'image/png', 'image/jpeg'], { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
  await app.register(swagger, {
    openapi: {
      info: { title: 'encsec encoder service', version: '1', description: 'Embeddings of images by a served encoder, behind API keys, budgets, rate limits, per-key defenses and an audit log.' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'esk_<id>_<secret>, from `encsec keys add`' } } },
    },
  });

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, _req, reply) => {
    if (err instanceof KeyRefused) return reply.code(err.status).send({ error: err.status === 401 ? 'unauthorized' : 'forbidden', message: err.message });
    if (err instanceof BadRequest) return reply.code(err.status).send({ error: 'bad_request', message: err.message });
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500;
    if (status >= 500) app.log.error(err);
    return reply.code(status).send({ error: err.code ?? (status >= 500 ? 'internal' : 'bad_request'), message: status >= 500 && !err.statusCode ? 'internal error' : err.message });
  });

  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url ?? 'unmatched';
    metrics.requests.inc({ route, status: String(reply.statusCode) });
    metrics.latency.observe({ route }, reply.elapsedTime / 1000);
    if (reply.statusCode === 401 || reply.statusCode === 403) metrics.refused.inc({ reason: 'auth' });
    else if (reply.statusCode === 400 || reply.statusCode === 413 || reply.statusCode === 415) metrics.refused.inc({ reason: 'bad_request' });
  });

  const authenticate = (admin: boolean) => async (req: FastifyRequest) => {
    const key = keys.authenticate(presentedKey(req.headers));
    if (admin && !key.admin) throw new KeyRefused(403, `key ${key.id} is not an admin key: the raw route is for the encoder's owner`);
    req.apiKey = key;
  };

  const embedHandler = (raw: boolean) => async (req: FastifyRequest, reply: FastifyReply) => {
    const key = req.apiKey!;
    const { rows, n, bytes } = await decodeRequest(req.headers['content-type'], req.headers, req.body, inputShape, { maxImages: maxRequestImages });
    const admission = await store.admit(key, n);
    if (!admission.ok) {
      if (admission.reason === 'rate') {
        metrics.refused.inc({ reason: 'rate' });
        return reply.code(429).header('retry-after', String(admission.retryAfterS)).send({ error: 'rate_limited', message: `key ${key.id} is over its rate of ${key.rate} requests/s`, retryAfter: admission.retryAfterS });
      }
      metrics.refused.inc({ reason: 'budget' });
      return reply.code(429).send({
        error: 'budget_exceeded',
        message: `query budget exceeded: key ${key.id} asked for ${n} embedding(s) with ${admission.used} of its budget of ${admission.budget} images spent; request refused, nothing counted`,
        budget: admission.budget,
        used: admission.used,
        requested: n,
      });
    }
    const digest = crypto.createHash('sha256').update(bytes).digest('hex');
    let answer: Answer;
    try {
      answer = await batcher.submit(rows, n, { key, route: raw ? '/v1/embed/raw' : '/v1/embed', raw, digest });
    } catch (e) {
      await store.refund(key.id, n);
      if (e instanceof QueueFull) {
        metrics.refused.inc({ reason: 'queue' });
        return reply.code(503).header('retry-after', '1').send({ error: 'overloaded', message: e.message });
      }
      throw e;
    }
    if (!answer.ok) {
      await store.refund(key.id, n);
      throw answer.error;
    }
    metrics.images.inc({ key_id: key.id }, n);
    reply
      .header('x-encsec-defense', raw ? 'raw' : answer.defense)
      .header('x-encsec-stats', JSON.stringify(answer.stats))
      .header('x-encsec-used', String(admission.used))
      .header('x-encsec-budget', key.budget === Infinity ? 'unlimited' : String(key.budget));
    const accept = String(req.headers.accept ?? '');
    if (accept.includes('application/octet-stream')) {
      return reply
        .header('content-type', 'application/octet-stream')
        .header('x-encsec-shape', `${n},${answer.d}`)
        .send(Buffer.from(answer.data.buffer, answer.data.byteOffset, answer.data.byteLength));
    }
    const embeddings: number[][] = [];
    for (let r = 0; r < n; r++) embeddings.push(Array.from(answer.data.subarray(r * answer.d, (r + 1) * answer.d)));
    return reply.send({ embeddings, dim: answer.d, defense: raw ? 'raw' : answer.defense, keyId: key.id, used: admission.used, budget: key.budget === Infinity ? null : key.budget });
  };

  const imageBody = {
    content: {
      'application/json': {
        schema: {
          type: 'object',
          description: 'exactly one of images (base64 PNG/JPEG) or tensor',
          properties: {
            images: { type: 'array', items: { type: 'string', description: 'base64 PNG or JPEG' } },
            tensor: {
              type: 'object',
              properties: {
                dtype: { type: 'string', enum: ['float32', 'uint8'] },
                shape: { type: 'array', items: { type: 'integer' }, minItems: 4, maxItems: 4 },
                data: { type: 'string', description: 'base64 of the little-endian values, NCHW' },
              },
              required: ['dtype', 'shape', 'data'],
            },
          },
        },
      },
      'application/octet-stream': { schema: { type: 'string', format: 'binary', description: 'NCHW values; headers X-Encsec-Shape: n,C,H,W and X-Encsec-Dtype: float32|uint8' } },
      'image/png': { schema: { type: 'string', format: 'binary' } },
      'image/jpeg': { schema: { type: 'string', format: 'binary' } },
    },
  };
  const errorBody = (description: string) => ({
    description,
    type: 'object',
    properties: {
      error: { type: 'string' },
      message: { type: 'string' },
      budget: { type: 'integer' },
      used: { type: 'integer' },
      requested: { type: 'integer' },
      retryAfter: { type: 'integer' },
    },
  });
  const embedResponse = {
    400: errorBody('the body is malformed, of the wrong shape, not finite, or not a PNG/JPEG of the served size'),
    401: errorBody('no API key, or an invalid one'),
    403: errorBody('a revoked key, or a non-admin key on the raw route'),
    413: errorBody('the body or the image count is over the limit'),
    415: errorBody('an unsupported Content-Type'),
    429: errorBody('the budget is exhausted (budget_exceeded: nothing was counted) or the rate limit reached (rate_limited, with Retry-After)'),
    503: errorBody('the queue is full or the server is stopping: retry after Retry-After seconds'),
    200: {
      description: 'the embeddings (JSON, or n*d float32 with Accept: application/octet-stream)',
      type: 'object',
      properties: {
        embeddings: { type: 'array', items: { type: 'array', items: { type: 'number' } } },
        dim: { type: 'integer' },
        defense: { type: 'string' },
        keyId: { type: 'string' },
        used: { type: 'integer' },
        budget: { type: ['integer', 'null'] },
      },
    },
  };
  // The body is checked by decodeRequest (stricter than the schema, with messages that say what is wrong); the schema documents it.
  const noValidation = () => () => true;

  app.post('/v1/embed', {
    schema: { summary: "embeddings through the key's defense", security: [{ bearer: [] }], body: imageBody, response: embedResponse },
    validatorCompiler: noValidation,
    onRequest: authenticate(false),
    handler: embedHandler(false),
  });
  app.post('/v1/embed/raw', {
    schema: { summary: 'raw embeddings (no defense): admin keys only', security: [{ bearer: [] }], body: imageBody, response: embedResponse },
    validatorCompiler: noValidation,
    onRequest: authenticate(true),
    handler: embedHandler(true),
  });
  app.get('/v1/health', {
    schema: {
      summary: 'liveness and what is served',
      response: {
        200: {
          type: 'object',
          properties: {
            status: { type: 'string' },
            inputShape: { type: 'array', items: { type: 'integer' } },
            dim: { type: 'integer' },
            queuedImages: { type: 'integer' },
            state: { type: 'string' },
          },
        },
      },
    },
    handler: async () => ({ status: 'ok', inputShape: [channels, size, size], dim, queuedImages: batcher.queuedImages, state: store.kind }),
  });
  app.get('/v1/key', {
    schema: {
      summary: "the presented key's own record: its defense, budget and images used (no embeddings, nothing charged, not audited)",
      security: [{ bearer: [] }],
      response: {
        401: errorBody('no API key, or an invalid one'),
        403: errorBody('a revoked key'),
        200: {
          description: "what an embedding answer's X-Encsec-Defense, X-Encsec-Used and X-Encsec-Budget headers would say, before any is spent",
          type: 'object',
          properties: {
            keyId: { type: 'string' },
            admin: { type: 'boolean' },
            defense: { type: 'string' },
            budget: { type: ['integer', 'null'] },
            used: { type: 'integer' },
          },
        },
      },
    },
    onRequest: authenticate(false),
    handler: async (req: FastifyRequest) => {
      const key = req.apiKey!;
      return { keyId: key.id, admin: key.admin, defense: key.defense, budget: key.budget === Infinity ? null : key.budget, used: await store.used(key.id) };
    },
  });
  app.get('/metrics', { schema: { summary: 'Prometheus metrics (text format)' } }, async (_req, reply) => {
    reply.header('content-type', metrics.registry.contentType);
    return metrics.registry.metrics();
  });
  app.get('/v1/openapi.json', { schema: { summary: 'this OpenAPI document', hide: true } }, async () => app.swagger());
  await app.ready();

  let closed = false;
  return {
    app,
    keys,
    audit,
    store,
    metrics,
    inputShape,
    dim,
    async listen(port = 0, host = '127.0.0.1') {
      const address = await app.listen({ port, host });
      return address.replace('[::1]', '127.0.0.1');
    },
    async close() {
      if (closed) return;
      closed = true;
      // app.close() stops accepting connections and waits for the requests in
      // flight; drain() runs what waits in the queue at once (no max_queue_delay).
      const stopping = app.close();
      await batcher.drain();
      // Connections busy at close() become idle keep-alive ones once answered: close those too (not after the keep-alive timeout).
      const sweep = setInterval(() => app.server.closeIdleConnections(), 20);
      try {
        await stopping;
      } finally {
        clearInterval(sweep);
      }
      await store.close();
    },
  };
}
