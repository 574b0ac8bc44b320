// RemoteEncoder: an encsec server (lib/server/app.ts) as an EmbeddingSource,
// so stealing, SSLGuard and SSL-Auth verification run against a remote API
// exactly as against a local model or an EncoderService.
//
// The images go as normalised float32 (application/octet-stream), the
// answers come back as float32 (Accept: application/octet-stream): no
// decimal round trip, so the raw route answers bit for bit what the model
// computes in process. A request larger than maxRequestImages is sent in
// several HTTP requests, in order (each is charged and audited on its own; a
// refusal part-way leaves the earlier parts charged, as with any API).
//
// Which key: `key` for every clientId, or `keys` to map clientIds to keys
// (several accounts). The server identifies the client by its key: its key
// id plays the clientId's role on the server (per-key defense state, noise
// streams), whatever clientId the caller passes here.
//
// Before spending anything, health() says what the server serves (input
// shape, embedding size) and keyInfo() what a key may spend and which
// defense its answers get (GET /v1/key: no images, nothing charged); after
// keyInfo(), describe() reports that defense, so a check that needs exact
// answers (SSL-Auth) knows it before its first query.
import { Tensor } from '../core/tensor';
import { checkInt, checkOptions } from '../core/validate';
import { QueryBudgetExceeded } from '../service/service';
import { checkClientId, toQueryRequest, type EmbeddingSource, type QueryImages, type SourceDescription } from '../service/source';

export interface RemoteEncoderOptions {
  /** Base URL of the server, e.g. http://127.0.0.1:8080 */
  url: string;
  /** The API key used for every clientId. */
  key?: string;
  /** API keys by clientId (instead of key). */
  keys?: Readonly<Record<string, string>>;
  /** Use the admin-only raw route (no defense). */
  raw?: boolean;
  /** Most images per HTTP request (default 256). */
  maxRequestImages?: number;
  /** Per HTTP request, ms (default 60000). */
  timeoutMs?: number;
}

/** GET /v1/health: what the server serves. */
export interface RemoteHealth {
  status: string;
  /** [C, H, W] of the images the server takes. */
  inputShape: [number, number, number];
  /** Embedding dimension of the served encoder. */
  dim: number;
}

/** GET /v1/key: the presented key's own record. */
export interface RemoteKeyInfo {
  keyId: string;
  admin: boolean;
  /** Canonical defense SPEC applied to the key's answers on /v1/embed ('none' for raw embeddings). */
  defense: string;
  /** Images the key may send in total (null: unlimited). */
  budget: number | null;
  /** Images charged to the key so far. */
  used: number;
}

/** An answer the server refused with a status other than a budget refusal. */
export class RemoteError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'RemoteError';
  }
}

export class RemoteEncoder implements EmbeddingSource {
  readonly url: string;
  readonly #keys: Map<string, string> | null;
  readonly #key: string | null;
  readonly #raw: boolean;
  readonly #max: number;
  readonly #timeoutMs: number;
  readonly #stats = new Map<string, Record<string, number>>();
  #defense: string | null = null;

  constructor(options: RemoteEncoderOptions) {
    const o = checkOptions<RemoteEncoderOptions>(options, 'options', ['url', 'key', 'keys', 'raw', 'maxRequestImages', 'timeoutMs']);
    let u: URL;
    try {
      u = new URL(String(o.url));
    } catch {
      throw new TypeError(`options.url must be an http(s) URL, got ${JSON.stringify(o.url)}`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new TypeError(`options.url must be an http(s) URL, got ${JSON.stringify(o.url)}`);
    this.url = u.toString().replace(/\/+$/, '');
    if ((o.key === undefined) === (o.keys === undefined)) throw new TypeError('give exactly one of options.key and options.keys');
    if (o.key !== undefined && (typeof o.key !== 'string' || o.key === '')) throw new TypeError('options.key must be a non-empty string');
    this.#key = o.key ?? null;
    if (o.keys !== undefined) {
      if (o.keys === null || typeof o.keys !== 'object') throw new TypeError('options.keys must be an object { clientId: key }');
      this.#keys = new Map(Object.entries(o.keys).map(([id, k]) => {
        if (typeof k !== 'string' || k === '') throw new TypeError(`options.keys[${JSON.stringify(id)}] must be a non-empty string`);
        return [id, k];
      }));
    } else this.#keys = null;
    this.#raw = o.raw === true;
    this.#max = o.maxRequestImages === undefined ? 256 : checkInt(o.maxRequestImages, 'options.maxRequestImages', { min: 1, max: 65536 });
    this.#timeoutMs = o.timeoutMs === undefined ? 60_000 : checkInt(o.timeoutMs, 'options.timeoutMs', { min: 1, max: 3_600_000 });
  }

  #keyOf(clientId: string): string {
    if (this.#key !== null) return this.#key;
    const k = this.#keys!.get(clientId);
    if (k === undefined) throw new RangeError(`no API key for client ${JSON.stringify(clientId)} (options.keys has ${[...this.#keys!.keys()].join(', ')})`);
    return k;
  }

  async embed(clientId: string, images: QueryImages): Promise<Tensor> {
    checkClientId(clientId);
    const key = this.#keyOf(clientId);
    const req = toQueryRequest(images);
    const parts: Float32Array[] = [];
    let d = 0;
    for (let s = 0; s < req.n; s += this.#max) {
      const e = Math.min(req.n, s + this.#max);
      const { x, owned } = req.chunk(s, e);
      let host: Float32Array;
      let shape: readonly number[];
      try {
        host = x.toArray();
        shape = x.shape;
      } finally {
        if (owned) x.dispose();
      }
      const out = await this.#post(clientId, key, host, shape);
      d = out.d;
      parts.push(out.data);
    }
    const all = parts.length === 1 ? parts[0] : concat(parts);
    return Tensor.from(all, [req.n, d]);
  }

  async #post(clientId: string, key: string, x: Float32Array, shape: readonly number[]): Promise<{ data: Float32Array; d: number }> {
    const n = shape[0];
    let res: Response;
    try {
      res = await fetch(`${this.url}/v1/embed${this.#raw ? '/raw' : ''}`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${key}`,
          'content-type': 'application/octet-stream',
          accept: 'application/octet-stream',
          'x-encsec-shape': shape.join(','),
          'x-encsec-dtype': 'float32',
        },
        body: Buffer.from(x.buffer, x.byteOffset, x.byteLength),
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
    } catch (e) {
      throw new Error(`remote encoder ${this.url}: ${(e as Error).message}`);
    }
    const body = Buffer.from(await res.arrayBuffer());
    if (res.status !== 200) {
      const info = errorInfo(body);
      if (res.status === 429 && info.error === 'budget_exceeded') {
        throw new QueryBudgetExceeded(clientId, Number(info.budget), Number(info.used), Number(info.requested ?? n));
      }
      throw this.#refusal(res.status, info, body);
    }
    const dims = (res.headers.get('x-encsec-shape') ?? '').split(',').map(Number);
    if (dims.length !== 2 || dims[0] !== n || !Number.isInteger(dims[1]) || dims[1] < 1 || body.length !== n * dims[1] * 4) {
      throw new Error(`remote encoder ${this.url}: malformed answer (shape ${res.headers.get('x-encsec-shape')}, ${body.length} bytes for ${n} images)`);
    }
    this.#defense = res.headers.get('x-encsec-defense');
    try {
      this.#stats.set(clientId, JSON.parse(res.headers.get('x-encsec-stats') ?? '{}'));
    } catch {
      this.#stats.set(clientId, {});
    }
    const data = new Float32Array(n * dims[1]);
    new Uint8Array(data.buffer).set(body);
    return { data, d: dims[1] };
  }

  #refusal(status: number, info: Record<string, unknown>, body: Buffer): RemoteError {
    return new RemoteError(status, String(info.error ?? 'http_error'), `remote encoder ${this.url}: HTTP ${status}: ${String(info.message ?? body.toString('utf8').slice(0, 200))}`);
  }

  /** GET a JSON route (with the key of clientId, or none); a status other than 200 is a RemoteError. */
  async #getJson(route: string, key: string | null): Promise<Record<string, unknown>> {
    let res: Response;
    try {
      res = await fetch(`${this.url}${route}`, {
        headers: { accept: 'application/json', ...(key === null ? {} : { authorization: `Bearer ${key}` }) },
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
    } catch (e) {
      throw new Error(`remote encoder ${this.url}: ${(e as Error).message}`);
    }
    const body = Buffer.from(await res.arrayBuffer());
    if (res.status !== 200) throw this.#refusal(res.status, errorInfo(body), body);
    let v: unknown;
    try {
      v = JSON.parse(body.toString('utf8'));
    } catch {
      v = null;
    }
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error(`remote encoder ${this.url}: malformed answer of ${route} (not a JSON object)`);
    return v as Record<string, unknown>;
  }

  /** What the server serves: its input shape [C, H, W] and embedding size (GET /v1/health, no key, nothing charged). */
  async health(): Promise<RemoteHealth> {
    const h = await this.#getJson('/v1/health', null);
    const shape = h.inputShape;
    if (!Array.isArray(shape) || shape.length !== 3 || !shape.every((v) => Number.isInteger(v) && v >= 1) || !Number.isInteger(h.dim) || (h.dim as number) < 1) {
      throw new Error(`remote encoder ${this.url}: malformed /v1/health answer (inputShape ${JSON.stringify(shape)}, dim ${JSON.stringify(h.dim)}); is this an encsec server?`);
    }
    return { status: String(h.status), inputShape: [shape[0], shape[1], shape[2]], dim: h.dim as number };
  }

  /**
   * The record of clientId's key: id, defense, budget and images used (GET
   * /v1/key, nothing charged). describe() reports the key's defense from
   * then on (the raw route's 'none' with options.raw).
   */
  async keyInfo(clientId: string): Promise<RemoteKeyInfo> {
    checkClientId(clientId);
    const r = await this.#getJson('/v1/key', this.#keyOf(clientId));
    const budget = r.budget;
    if (typeof r.keyId !== 'string' || typeof r.defense !== 'string' || typeof r.admin !== 'boolean' || !(budget === null || Number.isInteger(budget)) || !Number.isInteger(r.used)) {
      throw new Error(`remote encoder ${this.url}: malformed /v1/key answer ${JSON.stringify(r).slice(0, 200)}`);
    }
    this.#defense = r.defense;
    return { keyId: r.keyId, admin: r.admin, defense: r.defense, budget: budget as number | null, used: r.used as number };
  }

  /** The defense's numbers about the client as the server reported them with its last answer ({} before any). */
  clientStats(clientId: string): Record<string, number> {
    return { ...(this.#stats.get(checkClientId(clientId)) ?? {}) };
  }

  describe(): SourceDescription {
    return { kind: 'remote', defense: this.#raw ? 'none' : this.#defense === 'raw' ? 'none' : this.#defense };
  }
}

/** The JSON error body of a refusal ({} when it is not JSON: the status says it). */
function errorInfo(body: Buffer): Record<string, unknown> {
  try {
    const v: unknown = JSON.parse(body.toString('utf8'));
    return v !== null && typeof v === 'object' ? (v as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

function concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((s, p) => s + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}
