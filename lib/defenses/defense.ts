// The Defense contract: a transformation of the embeddings an encoder
// service returns, per client (a defense may keep state per client, e.g. to
// watch how much of the embedding space its queries cover). This file holds
// only the interface and the identity default: the service depends on it
// alone, the implementations (perturb.ts, b4b.ts, compose.ts) implement it,
// and spec.ts builds them from a `--defense SPEC`.
import { Tensor } from '../core/tensor';
import { checkNdim, describe } from '../core/validate';

export interface Defense {
  /** Short name, e.g. "none", as written in a SPEC. */
  readonly name: string;
  /** The parameters it was made with (reported in results). */
  readonly params?: Readonly<Record<string, string | number | boolean>>;
  /**
   * The canonical SPEC: parseDefense(spec) makes an equal defense (same
   * configuration, fresh state). State files record it; default: name.
   */
  readonly spec?: string;
  /**
   * The embeddings to return for one request of `clientId`: `embeddings` is
   * [n, d], the encoder's raw output for `queryImages` [n, C, H, W]. Returns a
   * new tensor [n, d'] that the caller owns, or `embeddings` itself (the
   * service then hands that tensor over); it must not dispose its inputs.
   */
  apply(clientId: string, embeddings: Tensor, queryImages?: Tensor): Tensor;
  /** A stateful defense: its per-client state as JSON data (what importState takes back). */
  exportState?(): unknown;
  /**
   * Restores what exportState() returned. Checks all of it first and throws
   * an Error saying what is wrong, changing nothing; on success it replaces
   * the whole state.
   */
  importState?(state: unknown): void;
  /**
   * True while the defense must see embeddings of the operator's own data
   * (calibrate) before it can serve, e.g. b4b:center=true.
   */
  readonly needsCalibration?: boolean;
  /** Fits data-dependent settings on the encoder's raw embeddings [n, d] of the operator's own data. */
  calibrate?(embeddings: Tensor): void;
  /** Numbers about one client (e.g. b4b's coverage and current noise scale), for reports. */
  clientStats?(clientId: string): Record<string, number>;
}

/** Returns the embeddings unchanged. */
export const identityDefense: Defense = Object.freeze({
  name: 'none',
  spec: 'none',
  apply(_clientId: string, embeddings: Tensor): Tensor {
    checkNdim(embeddings, 2, 'embeddings', '[n, d]');
    return embeddings;
  },
});

/** The canonical SPEC of a defense. */
export function defenseSpec(d: Defense): string {
  if (d === null || typeof d !== 'object') throw new TypeError(`d must be a Defense ({ name, apply }), got ${describe(d)}`);
  const spec = d.spec ?? d.name;
  if (typeof spec !== 'string' || spec.length === 0) throw new TypeError(`d must be a Defense with a non-empty string spec or name, got ${describe(spec)}`);
  return spec;
}

