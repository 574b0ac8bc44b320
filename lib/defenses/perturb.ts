// Output perturbations: the service answers with a degraded embedding.
//
//   noise:SIGMA   y = x / ||x|| + SIGMA * N(0, I)   (per client, seeded)
//   topk:K        keep the K largest-magnitude entries of x, zero the rest
//   round:D       round every entry of x to D decimals
//
// The noise is added to the L2-normalised embedding, so that SIGMA means the
// same thing whatever the encoder's output scale (an entry of a unit vector
// in d dimensions is about 1/sqrt(d), 0.09 for d = 128). Its random stream
// derives from (seed, client id, that client's row counter): row r of client
// c (counting every row the defense has answered for c) always gets the same
// noise, whatever the request sizes, and two clients get independent noise.
// The row counters are the defense's state (saved with the service's).
import { Tensor, noGrad, tidy } from '../core/tensor';
import * as ops from '../core/ops';
import { checkInt, checkNdim, checkNumber, checkOptions, checkSeed } from '../core/validate';
import type { Defense } from './defense';
import { SEED_DOMAIN, clientSeed, specNumber, stateClients, stateCount, stateObject } from './common';

export interface NoiseOptions {
  /** Standard deviation of the noise added to each entry of the unit-norm embedding. */
  sigma: number;
  /** Seed of every client's noise stream (default 0). */
  seed?: number;
}

export class NoiseDefense implements Defense {
  readonly name = 'noise';
  readonly sigma: number;
  readonly seed: number;
  readonly params: Readonly<Record<string, number>>;
  readonly spec: string;
  /** Rows answered so far, per client: where the client's noise stream continues. */
  readonly #rows = new Map<string, number>();

  constructor(options: NoiseOptions) {
    if (options === undefined) throw new TypeError('options must be an object { sigma, seed? }, got undefined');
    const o = checkOptions<NoiseOptions>(options, 'options', ['sigma', 'seed']);
    this.sigma = checkNumber(o.sigma, 'options.sigma', { min: 0 });
    this.seed = checkSeed(o.seed ?? 0, 'options.seed');
    this.params = Object.freeze({ sigma: this.sigma, seed: this.seed });
    this.spec = `noise:${specNumber(this.sigma)}${this.seed !== 0 ? `,seed=${this.seed}` : ''}`;
  }

  apply(clientId: string, embeddings: Tensor): Tensor {
    const [n, d] = checkNdim(embeddings, 2, 'embeddings', '[n, d]');
    const row = this.#rows.get(clientId) ?? 0;
    const out = noGrad(() => tidy(() => ops.gaussianNoise(ops.normalize(embeddings), this.sigma, clientSeed(this.seed, SEED_DOMAIN.noise, clientId), row * d)));
    this.#rows.set(clientId, row + n);
    return out;
  }

  /** Rows answered for the client so far. */
  rowsOf(clientId: string): number {
    return this.#rows.get(clientId) ?? 0;
  }

  clientStats(clientId: string): Record<string, number> {
    return { rows: this.rowsOf(clientId), sigma: this.sigma };
  }

  exportState(): { clients: [string, number][] } {
    return { clients: [...this.#rows] };
  }

  importState(state: unknown): void {
    const where = 'noise state';
    const o = stateObject(state, where);
    const rows = stateClients(o.clients, where).map(([id, v]) => [id, stateCount(v, `${where}, client ${JSON.stringify(id)}`, 'rows')] as const);
    this.#rows.clear();
    for (const [id, r] of rows) this.#rows.set(id, r);
  }
}

export class TopkDefense implements Defense {
  readonly name = 'topk';
  readonly k: number;
  readonly params: Readonly<Record<string, number>>;
  readonly spec: string;

  constructor(k: number) {
    this.k = checkInt(k, 'k', { min: 1, max: 1 << 20 });
    this.params = Object.freeze({ k: this.k });
    this.spec = `topk:${this.k}`;
  }

  apply(_clientId: string, embeddings: Tensor): Tensor {
    checkNdim(embeddings, 2, 'embeddings', '[n, d]');
    return noGrad(() => ops.topkMagnitude(embeddings, this.k));
  }
}

export class RoundDefense implements Defense {
  readonly name = 'round';
  readonly decimals: number;
  readonly params: Readonly<Record<string, number>>;
  readonly spec: string;

  constructor(decimals: number) {
    this.decimals = checkInt(decimals, 'decimals', { min: 0, max: 8 });
    this.params = Object.freeze({ decimals: this.decimals });
    this.spec = `round:${this.decimals}`;
  }

  apply(_clientId: string, embeddings: Tensor): Tensor {
    checkNdim(embeddings, 2, 'embeddings', '[n, d]');
    return noGrad(() => ops.roundDecimals(embeddings, this.decimals));
  }
}
