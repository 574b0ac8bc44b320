// Embedding sources: anything that answers "embed this batch of images for
// this client". An encoder in memory (EncoderSource), an EncoderService with
// its budgets and defenses, and a remote encoder over HTTP (lib/server's
// RemoteEncoder) all implement it, so attacks, watermark verification and
// authentication run unchanged against a local model, a defended service or
// a remote API.
import { Tensor, keep, noGrad } from '../core/tensor';
import * as ops from '../core/ops';
import { checkNdim, checkObject, checkOptions, checkTensor } from '../core/validate';
import { embedAsync, type Module } from '../nn/module';
import { checkDataset, datasetSize, type Dataset } from '../data/dataset';
import { toIndexArray, toTensor } from '../data/tensor';

/** What a client sends: an image batch [n, C, H, W] (normalised as toTensor does), or images of a dataset by index. */
export type QueryImages = Tensor | { dataset: Dataset; indices: ArrayLike<number> };

/** What a source says about itself, for reports and for checks that need exact answers. */
export interface SourceDescription {
  /** 'encoder' (a model in memory), 'service' (an EncoderService), 'remote' (over HTTP), or another implementation's word. */
  kind: string;
  /**
   * The canonical SPEC of the defense the source applies to its answers, as
   * far as the source knows ('none' for raw embeddings; null when it cannot
   * tell, e.g. a remote API that does not say).
   */
  defense: string | null;
}

export interface EmbeddingSource {
  /**
   * The embeddings [n, d] of `images` as `clientId` receives them. The caller
   * owns (and disposes) the result. A refused request rejects (e.g. with
   * QueryBudgetExceeded) and counts nothing.
   */
  embed(clientId: string, images: QueryImages): Promise<Tensor>;
  /** Numbers about a client's answers (a defense's noise scale, coverage); {} when there are none. */
  clientStats?(clientId: string): Record<string, number>;
  describe(): SourceDescription;
}

export function checkClientId(v: unknown, name = 'clientId'): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > 256) throw new TypeError(`${name} must be a non-empty string (at most 256 characters)`);
  return v;
}

/** True for an object that implements EmbeddingSource. */
export function isEmbeddingSource(v: unknown): v is EmbeddingSource {
  return v !== null && typeof v === 'object' && typeof (v as EmbeddingSource).embed === 'function' && typeof (v as EmbeddingSource).describe === 'function';
}

export function checkEmbeddingSource(v: unknown, name = 'source'): EmbeddingSource {
  if (!isEmbeddingSource(v)) throw new TypeError(`${name} must be an EmbeddingSource (an object with embed(clientId, images) and describe())`);
  return v;
}

/** A validated request: its size and how to produce the input tensor of rows [start, end). */
export interface QueryRequest {
  n: number;
  /** The chunk's images and whether the caller owns (must dispose) that tensor. */
  chunk(start: number, end: number): { x: Tensor; owned: boolean };
}

/** Checks what a client sent (before any work) and returns how to read it in chunks. */
export function toQueryRequest(images: unknown, name = 'images'): QueryRequest {
  if (images instanceof Tensor) {
    checkTensor(images, name);
    const shape = checkNdim(images, 4, name, '[n, C, H, W]');
    const n = shape[0];
    if (n === 0) throw new RangeError(`${name} is empty: a request needs at least one image`);
    return {
      n,
      chunk(start, end) {
        if (start === 0 && end === n) return { x: images, owned: false };
        return { x: noGrad(() => ops.sliceRows(images, start, end)), owned: true };
      },
    };
  }
  const o = checkObject(images, name);
  checkOptions(o, name, ['dataset', 'indices']);
  const ds = checkDataset(o.dataset, `${name}.dataset`, false);
  const idx = toIndexArray(o.indices as ArrayLike<number>, datasetSize(ds), `${name}.indices`);
  if (idx.length === 0) throw new RangeError(`${name}.indices is empty: a request needs at least one image`);
  return { n: idx.length, chunk: (start, end) => ({ x: toTensor(ds, idx.subarray(start, end)), owned: true }) };
}

/**
 * An encoder in memory as an embedding source: raw embeddings (eval mode,
 * off the event loop), no budget, no defense. What the owner of a model
 * file verifies against; clientId is accepted and ignored.
 */
export class EncoderSource implements EmbeddingSource {
  readonly #encoder: Module;
  constructor(encoder: Module) {
    if (encoder === null || typeof encoder !== 'object' || typeof (encoder as Module).compile !== 'function') throw new TypeError('encoder must be a Module');
    this.#encoder = encoder;
  }

  async embed(clientId: string, images: QueryImages): Promise<Tensor> {
    checkClientId(clientId);
    const req = toQueryRequest(images);
    const { x, owned } = req.chunk(0, req.n);
    // keep(): the caller's tidy() scope must not free the input before the worker is done.
    if (owned) keep(x);
    try {
      return await embedAsync(this.#encoder, x);
    } finally {
      if (owned) x.dispose();
    }
  }

  describe(): SourceDescription {
    return { kind: 'encoder', defense: 'none' };
  }
}
