// The encoder as an HTTP service (fastify): API keys, budgets and rate limits,
// per-key defenses, dynamic batching, a hash-chained audit log, metrics,
// optional Redis for replicas; and RemoteEncoder, its client as an EmbeddingSource.
export { createServer } from './app';
export type { EncsecServer, ServerOptions } from './app';
export { openServerDb, SCHEMA_VERSION } from './db';
export type { ServerDb } from './db';
export { KeyRefused, KeyStore, presentedKey } from './keys';
export type { KeyRecord, NewKeyOptions } from './keys';
export { AUDIT_GENESIS, AuditLog, verifyAuditChain } from './audit';
export type { AuditEntry, AuditRow, AuditVerification } from './audit';
export { DynamicBatcher, QueueFull } from './batcher';
export type { BatchJob, BatcherOptions } from './batcher';
export { BadRequest, decodeImage, decodeRequest, pixelsToRows } from './decode';
export type { InputShape } from './decode';
export { RedisStateStore, SqliteStateStore } from './state';
export type { Admission, StateStore } from './state';
export { ServerMetrics } from './metrics';
export { RemoteEncoder, RemoteError } from './remote';
export type { RemoteEncoderOptions, RemoteHealth, RemoteKeyInfo } from './remote';
