// The victim encoder as a service: the only thing an attacker touches.
//
// A client sends images and gets their embeddings back (through an optional
// defense). The service counts every image each client sends and refuses a
// request that would take the client past its query budget: the refused
// request is refused whole and counts nothing. Budgets are per client: a
// default for everyone plus per-client overrides.
//
// embed() runs the encoder's compiled inference plan off the event loop (a
// Napi::AsyncWorker), so a server built on this object keeps serving other
// requests meanwhile; embedSync() runs the same plan on the calling thread,
// for training loops. Both run the encoder in eval mode (running BN
// statistics), whatever its train/eval flag.
//
// The count is taken when a request is accepted (before the first await),
// so concurrent async requests cannot together overrun a budget. A request
// that fails inside the service (the encoder rejects the images' shape, the
// defense throws) is refunded: the client received nothing.
//
// saveState(file) / loadState(file) write and restore the budgets, what every
// client spent and the defense's per-client state (lib/service/state.ts), so
// that a restarted service does not give anyone a fresh start.
import { Tensor, keep, noGrad, tidy } from '../core/tensor';
import * as ops from '../core/ops';
import { checkInt, checkObject, checkOptions, describe } from '../core/validate';
import { checkPath } from '../io/atomic';
import { embedAsync, embedSync, type Module } from '../nn/module';
import { defenseSpec, identityDefense, type Defense } from '../defenses/defense';
import { checkClientId, toQueryRequest, type EmbeddingSource, type QueryImages, type SourceDescription } from './source';
import { readServiceState, writeServiceState, type ServiceStateBody } from './state';

export type { QueryImages } from './source';

/** A request refused because it would exceed the client's query budget. */
export class QueryBudgetExceeded extends Error {
  constructor(
    readonly clientId: string,
    readonly budget: number,
    readonly used: number,
    readonly requested: number,
  ) {
    if (typeof clientId !== 'string') throw new TypeError(`clientId must be a string, got ${describe(clientId)}`);
    const count = (v: unknown, name: string, infinite: boolean) => {
      if (typeof v !== 'number') throw new TypeError(`${name} must be a number, got ${describe(v)}`);
      if (Number.isNaN(v) || v < 0 || (!infinite && !Number.isFinite(v))) throw new RangeError(`${name} must be a non-negative ${infinite ? 'number (Infinity for none)' : 'finite number'}, got ${v}`);
    };
    count(budget, 'budget', true);
    count(used, 'used', false);
    count(requested, 'requested', false);
    super(
      `query budget exceeded: client ${JSON.stringify(clientId)} asked for ${requested} embedding(s) ` +
        `with ${used} of its budget of ${budget} images spent (${Math.max(0, budget - used)} left); request refused, nothing counted`,
    );
    this.name = 'QueryBudgetExceeded';
  }
}

export interface EncoderServiceOptions {
  /** Images each client may send in total, unless overridden (default: unlimited). */
  defaultBudget?: number;
  /** Per-client budgets, by client id. */
  budgets?: Readonly<Record<string, number>>;
  /** Applied to every response (default: identity). */
  defense?: Defense;
  /** Largest batch run through the encoder at once; bigger requests are processed in chunks of this size, in order (default 256). */
  maxBatch?: number;
}

export interface ClientUsage {
  used: number;
  budget: number;
  requests: number;
  refused: number;
}

function checkBudget(v: unknown, name: string): number {
  if (v === Infinity) return Infinity;
  return checkInt(v, name, { min: 0, max: Number.MAX_SAFE_INTEGER });
}

export class EncoderService implements EmbeddingSource {
  readonly #encoder: Module;
  readonly #defense: Defense;
  readonly #maxBatch: number;
  #defaultBudget: number;
  readonly #budgets = new Map<string, number>();
  readonly #usage = new Map<string, { used: number; requests: number; refused: number }>();

  constructor(encoder: Module, options: EncoderServiceOptions = {}) {
    if (encoder === null || typeof encoder !== 'object' || typeof (encoder as Module).compile !== 'function') {
      throw new TypeError('encoder must be a Module');
    }
    const o = checkOptions(options, 'options', ['defaultBudget', 'budgets', 'defense', 'maxBatch']);
    this.#encoder = encoder;
    this.#defaultBudget = o.defaultBudget === undefined ? Infinity : checkBudget(o.defaultBudget, 'options.defaultBudget');
    this.#maxBatch = o.maxBatch === undefined ? 256 : checkInt(o.maxBatch, 'options.maxBatch', { min: 1, max: 65536 });
    const d = (o.defense ?? identityDefense) as Defense;
    if (d === null || typeof d !== 'object' || typeof d.apply !== 'function' || typeof d.name !== 'string') {
      throw new TypeError('options.defense must be a Defense ({ name, apply })');
    }
    this.#defense = d;
    if (o.budgets !== undefined) {
      for (const [id, b] of Object.entries(checkObject(o.budgets, 'options.budgets'))) this.setBudget(id, b as number);
    }
  }

  /** The defense applied to every response. */
  get defense(): Defense {
    return this.#defense;
  }

  get defaultBudget(): number {
    return this.#defaultBudget;
  }

  set defaultBudget(b: number) {
    this.#defaultBudget = checkBudget(b, 'defaultBudget');
  }

  /** Sets one client's budget (images in total, Infinity for none); what it already spent still counts. */
  setBudget(clientId: string, budget: number): void {
    this.#budgets.set(checkClientId(clientId), checkBudget(budget, 'budget'));
  }

  budgetOf(clientId: string): number {
    return this.#budgets.get(checkClientId(clientId)) ?? this.#defaultBudget;
  }

  /** Images the client has sent in accepted requests. */
  used(clientId: string): number {
    return this.#usage.get(checkClientId(clientId))?.used ?? 0;
  }

  remaining(clientId: string): number {
    return Math.max(0, this.budgetOf(clientId) - this.used(clientId));
  }

  /** Every client seen or given a budget, with its counts. */
  usage(): Record<string, ClientUsage> {
    const out: Record<string, ClientUsage> = {};
    for (const id of new Set([...this.#budgets.keys(), ...this.#usage.keys()])) {
      const u = this.#usage.get(id) ?? { used: 0, requests: 0, refused: 0 };
      out[id] = { ...u, budget: this.budgetOf(id) };
    }
    return out;
  }

  /** Forgets what a client (or, without an id, every client) has spent. */
  resetUsage(clientId?: string): void {
    if (clientId === undefined) this.#usage.clear();
    else this.#usage.delete(checkClientId(clientId));
  }

  /**
   * Writes the budgets, every client's usage and the defense's per-client
   * state to `file` (atomically; format in lib/service/state.ts).
   */
  saveState(file: string): void {
    checkPath(file);
    const enc = (b: number) => (b === Infinity ? null : b);
    const body: ServiceStateBody = {
      savedAt: new Date().toISOString(),
      budgets: { default: enc(this.#defaultBudget), clients: [...this.#budgets].map(([id, b]) => [id, enc(b)]) },
      usage: [...this.#usage].map(([id, u]) => [id, { ...u }]),
      defenseState: this.#defense.exportState ? this.#defense.exportState() : null,
    };
    writeServiceState(file, defenseSpec(this.#defense), body);
  }

  /**
   * Restores what saveState() wrote: the budgets (default and per client),
   * every client's usage and the defense's state replace the current ones.
   * The file must come from a service with the same defense SPEC. A missing,
   * truncated, corrupt or mismatched file is an Error that names the file and
   * the problem, and then nothing is changed.
   */
  loadState(file: string): void {
    const { header, body } = readServiceState(file);
    const fail = (problem: string): never => {
      throw new Error(`service state file ${file}: ${problem}`);
    };
    const spec = defenseSpec(this.#defense);
    if (header.defense !== spec) fail(`saved by a service with defense ${JSON.stringify(header.defense)}; this service runs ${JSON.stringify(spec)}`);
    const dec = (v: unknown, what: string): number => {
      if (v === null) return Infinity;
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) fail(`${what} must be a non-negative integer or null, got ${JSON.stringify(v)}`);
      return v as number;
    };
    const b = body.budgets;
    if (b === null || typeof b !== 'object' || !Array.isArray(b.clients)) fail('budgets must be { default, clients: [[id, budget], ...] }');
    const defaultBudget = dec(b.default, 'budgets.default');
    const pairs = (v: unknown, what: string): [string, unknown][] => {
      if (!Array.isArray(v)) fail(`${what} must be an array of [clientId, value] pairs`);
      const seen = new Set<string>();
      return (v as unknown[]).map((e, i) => {
        if (!Array.isArray(e) || e.length !== 2 || typeof e[0] !== 'string' || e[0] === '' || e[0].length > 256) fail(`${what}[${i}] must be a [clientId, value] pair`);
        const pair = e as [string, unknown];
        if (seen.has(pair[0])) fail(`${what}: client ${JSON.stringify(pair[0])} appears twice`);
        seen.add(pair[0]);
        return pair;
      });
    };
    const budgets = pairs(b.clients, 'budgets.clients').map(([id, v]) => [id, dec(v, `budget of ${JSON.stringify(id)}`)] as const);
    const usage = pairs(body.usage, 'usage').map(([id, v]) => {
      const u = v as Record<string, unknown> | null;
      if (u === null || typeof u !== 'object') fail(`usage of ${JSON.stringify(id)} must be { used, requests, refused }`);
      const n = (k: string) => {
        const x = u![k];
        if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < 0) fail(`usage of ${JSON.stringify(id)}: ${k} must be a non-negative integer, got ${JSON.stringify(x)}`);
        return x as number;
      };
      return [id, { used: n('used'), requests: n('requests'), refused: n('refused') }] as const;
    });
    const ds = body.defenseState;
    if (this.#defense.importState) {
      if (ds === null || ds === undefined) fail(`no state for defense ${JSON.stringify(spec)}`);
      try {
        this.#defense.importState(ds);
      } catch (e) {
        fail((e as Error).message);
      }
    } else if (ds !== null && ds !== undefined) {
      fail(`the file has defense state, defense ${JSON.stringify(spec)} keeps none`);
    }
    // Everything checked (and the defense's state restored): replace the rest.
    this.#defaultBudget = defaultBudget;
    this.#budgets.clear();
    for (const [id, v] of budgets) this.#budgets.set(id, v);
    this.#usage.clear();
    for (const [id, u] of usage) this.#usage.set(id, { ...u });
  }

  describe(): SourceDescription {
    return { kind: 'service', defense: defenseSpec(this.#defense) };
  }

  /** The defense's numbers about a client (e.g. b4b's coverage and noise scale); {} if it reports none. */
  clientStats(clientId: string): Record<string, number> {
    checkClientId(clientId);
    return this.#defense.clientStats ? this.#defense.clientStats(clientId) : {};
  }

  /** Accepts and counts a request of n images, or throws QueryBudgetExceeded counting nothing. */
  #admit(clientId: string, n: number): void {
    let u = this.#usage.get(clientId);
    if (!u) {
      u = { used: 0, requests: 0, refused: 0 };
      this.#usage.set(clientId, u);
    }
    const budget = this.budgetOf(clientId);
    if (u.used + n > budget) {
      u.refused += 1;
      throw new QueryBudgetExceeded(clientId, budget, u.used, n);
    }
    u.used += n;
    u.requests += 1;
  }

  #refund(clientId: string, n: number): void {
    const u = this.#usage.get(clientId)!;
    u.used -= n;
    u.requests -= 1;
  }

  /** Raw embeddings of one chunk through the defense; the caller owns the result. */
  #defend(clientId: string, raw: Tensor, x: Tensor): Tensor {
    let out: Tensor;
    try {
      out = this.#defense.apply(clientId, raw, x);
    } catch (e) {
      raw.dispose();
      throw e;
    }
    if (!(out instanceof Tensor) || out.disposed || out.ndim !== 2 || out.shape[0] !== raw.shape[0]) {
      raw.dispose();
      throw new TypeError(`defense "${this.#defense.name}" must return a [${raw.shape[0]}, d] tensor`);
    }
    if (out !== raw) raw.dispose();
    return out;
  }

  /**
   * The embeddings [n, d] of the images, computed off the event loop. The
   * caller owns (and disposes) the returned tensor. Throws
   * QueryBudgetExceeded, counting nothing, when the request would take the
   * client past its budget.
   */
  async embed(clientId: string, images: QueryImages): Promise<Tensor> {
    checkClientId(clientId);
    const req = toQueryRequest(images);
    this.#admit(clientId, req.n);
    // The answers of the chunks stay native (one device copy each, joined by
    // concatRows): nothing crosses to JS.
    const parts: Tensor[] = [];
    let only: Tensor | null = null;
    try {
      for (let s = 0; s < req.n; s += this.#maxBatch) {
        const e = Math.min(req.n, s + this.#maxBatch);
        // keep(): this part runs inside the caller's tidy() scope if it has
        // one, and that scope must not free the input before the worker is done.
        const { x, owned } = req.chunk(s, e);
        if (owned) keep(x);
        try {
          const raw = keep(await embedAsync(this.#encoder, x));
          const out = this.#defend(clientId, raw, x);
          if (s === 0 && e === req.n) only = out;
          else parts.push(keep(out));
        } finally {
          if (owned) x.dispose();
        }
      }
    } catch (e) {
      for (const p of parts) p.dispose();
      this.#refund(clientId, req.n);
      throw e;
    }
    if (only) {
      only.kept = false;
      return only;
    }
    return joinParts(parts);
  }

  /** The same as embed(), on the calling thread (for training loops). The caller owns the result. */
  embedSync(clientId: string, images: QueryImages): Tensor {
    checkClientId(clientId);
    const req = toQueryRequest(images);
    this.#admit(clientId, req.n);
    try {
      if (req.n <= this.#maxBatch) {
        return tidy(() => {
          const { x } = req.chunk(0, req.n);
          return this.#defend(clientId, embedSync(this.#encoder, x), x);
        });
      }
      const parts: Tensor[] = [];
      try {
        for (let s = 0; s < req.n; s += this.#maxBatch) {
          const e = Math.min(req.n, s + this.#maxBatch);
          parts.push(
            keep(
              tidy(() => {
                const { x } = req.chunk(s, e);
                return this.#defend(clientId, embedSync(this.#encoder, x), x);
              }),
            ),
          );
        }
      } catch (e) {
        for (const p of parts) p.dispose();
        throw e;
      }
      return joinParts(parts);
    } catch (e) {
      this.#refund(clientId, req.n);
      throw e;
    }
  }
}

/** The chunks' answers as one [n, d] tensor (native concatenation); frees the parts. */
function joinParts(parts: Tensor[]): Tensor {
  try {
    return noGrad(() => ops.concatRows(parts));
  } finally {
    for (const p of parts) p.dispose();
  }
}
