// The victim encoder as a service (query accounting, budgets, defenses, state
// files) and the embedding-source interface every attack and check queries.
export { EncoderService, QueryBudgetExceeded } from './service';
export type { ClientUsage, EncoderServiceOptions } from './service';
export { EncoderSource, checkEmbeddingSource, isEmbeddingSource, toQueryRequest } from './source';
export type { EmbeddingSource, QueryImages, QueryRequest, SourceDescription } from './source';
export { SERVICE_STATE_FORMAT, SERVICE_STATE_VERSION, readServiceState, writeServiceState } from './state';
export type { ServiceStateBody, ServiceStateHeader } from './state';
