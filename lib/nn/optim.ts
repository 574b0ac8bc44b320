// Optimizers with PyTorch's update rules; the update itself is one native
// kernel per parameter. State (momentum, moments, step) can be saved and
// restored for resumable training.
import { Tensor, keep } from '../core/tensor';
import { native } from '../core/native';
import { checkBool, checkInt, checkNumber, checkOptions, checkTensor, describe } from '../core/validate';

/** Checks the shape of an OptimizerState before any of it is used. */
function checkOptimizerState(state: unknown): OptimizerState {
  if (state === null || typeof state !== 'object' || Array.isArray(state)) throw new TypeError(`state must be an OptimizerState { kind, step, tensors }, got ${describe(state)}`);
  const s = state as Record<string, unknown>;
  if (typeof s.kind !== 'string') throw new TypeError(`state.kind must be a string, got ${describe(s.kind)}`);
  checkInt(s.step, 'state.step', { min: 0, max: Number.MAX_SAFE_INTEGER });
  if (!(s.tensors instanceof Map)) throw new TypeError(`state.tensors must be a Map from slot names to Tensors, got ${describe(s.tensors)}`);
  for (const [k, t] of s.tensors) checkTensor(t, `state.tensors.get(${JSON.stringify(k)})`);
  return state as OptimizerState;
}

export interface OptimizerState {
  kind: string;
  step: number;
  /** Per-parameter state tensors, by parameter index and slot name ("0.m", "0.v", ...). */
  tensors: Map<string, Tensor>;
}

export abstract class Optimizer {
  readonly params: Tensor[];
  protected stepCount = 0;
  constructor(params: Tensor[]) {
    if (!Array.isArray(params) || params.length === 0) throw new TypeError(`params must be a non-empty array of tensors, got ${Array.isArray(params) ? 'an empty array' : describe(params)}`);
    params.forEach((p, i) => checkTensor(p, `params[${i}]`));
    this.params = params;
  }

  get steps(): number {
    return this.stepCount;
  }

  zeroGrad(): void {
    for (const p of this.params) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  /**
   * Applies one update from the parameters' .grad. A non-finite gradient
   * anywhere refuses the whole step (no weight is touched) with a RangeError.
   */
  step(): void {
    this.params.forEach((p, i) => {
      if (p.grad && !native.allFinite(p.grad.handle)) {
        throw new RangeError(`gradient of params[${i}] is not finite (NaN/Inf): step refused, weights unchanged`);
      }
    });
    this.stepCount += 1;
    this.params.forEach((p, i) => {
      if (p.grad) this.update(p, p.grad, i);
    });
  }

  protected abstract update(p: Tensor, g: Tensor, index: number): void;

  /** Learning rate (schedulers may change it between steps). */
  abstract lr: number;

  abstract state(): OptimizerState;
  abstract loadState(state: OptimizerState): void;
  /** The optimizer's state kind ("sgd", "adam", "adamw"). */
  protected abstract get kind(): string;
  /** Slot names per parameter ("momentum"; "m", "v"). */
  protected abstract get slotNames(): readonly string[];

  /**
   * The checks of loadState, without changing anything: the kind, the step,
   * and that every state tensor is a known slot of an existing parameter with
   * its number of elements.
   */
  checkState(state: OptimizerState): void {
    checkOptimizerState(state);
    if (state.kind !== this.kind) throw new RangeError(`optimizer state is for "${state.kind}", not "${this.kind}"`);
    for (const [key, t] of state.tensors) {
      const m = /^(\d+)\.(\w+)$/.exec(key);
      const i = m ? Number(m[1]) : -1;
      if (!m || i >= this.params.length || !this.slotNames.includes(m[2])) throw new RangeError(`optimizer state has unexpected entry ${JSON.stringify(key)}`);
      if (t.size !== this.params[i].size) throw new RangeError(`optimizer state "${key}" has ${t.size} elements, expected ${this.params[i].size}`);
    }
  }

  protected slot(store: Map<number, Tensor>, index: number, like: Tensor): [Tensor, boolean] {
    if (!(store instanceof Map)) throw new TypeError(`store must be a Map, got ${describe(store)}`);
    checkInt(index, 'index', { min: 0, max: this.params.length - 1 });
    checkTensor(like, 'like');
    let t = store.get(index);
    const fresh = t === undefined;
    if (!t) {
      t = keep(Tensor.zeros(like.shape));
      store.set(index, t);
    }
    return [t, fresh];
  }

  protected static restoreSlot(state: OptimizerState, key: string, like: Tensor): Tensor {
    checkOptimizerState(state);
    if (typeof key !== 'string') throw new TypeError(`key must be a string, got ${describe(key)}`);
    checkTensor(like, 'like');
    const t = state.tensors.get(key);
    if (!t) throw new RangeError(`optimizer state is missing "${key}"`);
    if (t.size !== like.size) throw new RangeError(`optimizer state "${key}" has ${t.size} elements, expected ${like.size}`);
    return keep(t.clone());
  }
}

export interface SGDOptions {
  lr: number;
  momentum?: number;
  weightDecay?: number;
  nesterov?: boolean;
}

/** torch.optim.SGD (dampening 0). */
export class SGD extends Optimizer {
  lr: number;
  readonly momentum: number;
  readonly weightDecay: number;
  readonly nesterov: boolean;
  private bufs = new Map<number, Tensor>();

  constructor(params: Tensor[], options: SGDOptions) {
    super(params);
    if (options === undefined) throw new TypeError('options.lr is required: new SGD(params, { lr })');
    const o = checkOptions(options, 'options', ['lr', 'momentum', 'weightDecay', 'nesterov']);
    this.lr = checkNumber(o.lr, 'lr', { min: 0 });
    this.momentum = o.momentum === undefined ? 0 : checkNumber(o.momentum, 'momentum', { min: 0, max: 1 });
    this.weightDecay = o.weightDecay === undefined ? 0 : checkNumber(o.weightDecay, 'weightDecay', { min: 0 });
    this.nesterov = o.nesterov === undefined ? false : checkBool(o.nesterov, 'nesterov');
  }

  protected update(p: Tensor, g: Tensor, i: number): void {
    const [buf, fresh] = this.slot(this.bufs, i, p);
    native.sgdUpdate(p.handle, buf.handle, g.handle, this.lr, this.momentum, this.weightDecay, this.nesterov, fresh);
  }

  state(): OptimizerState {
    const tensors = new Map<string, Tensor>();
    for (const [i, t] of this.bufs) tensors.set(`${i}.momentum`, t);
    return { kind: 'sgd', step: this.stepCount, tensors };
  }

  protected get kind(): string {
    return 'sgd';
  }
  protected get slotNames(): readonly string[] {
    return ['momentum'];
  }

  loadState(state: OptimizerState): void {
    this.checkState(state);
    this.bufs.forEach((t) => t.dispose());
    this.bufs.clear();
    this.params.forEach((p, i) => {
      if (state.tensors.has(`${i}.momentum`)) this.bufs.set(i, Optimizer.restoreSlot(state, `${i}.momentum`, p));
    });
    this.stepCount = state.step;
  }
}

export interface AdamOptions {
  lr?: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  /** true: AdamW (decoupled weight decay); false: Adam with L2 in the gradient (PyTorch Adam's weight_decay). */
  decoupled?: boolean;
}

/** torch.optim.Adam, or AdamW with decoupled: true. */
export class Adam extends Optimizer {
  lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  readonly decoupled: boolean;
  private m = new Map<number, Tensor>();
  private v = new Map<number, Tensor>();

  constructor(params: Tensor[], options: AdamOptions = {}) {
    super(params);
    const o = checkOptions(options, 'options', ['lr', 'beta1', 'beta2', 'eps', 'weightDecay', 'decoupled']);
    this.lr = o.lr === undefined ? 1e-3 : checkNumber(o.lr, 'lr', { min: 0 });
    this.beta1 = o.beta1 === undefined ? 0.9 : checkNumber(o.beta1, 'beta1', { min: 0, lt: 1 });
    this.beta2 = o.beta2 === undefined ? 0.999 : checkNumber(o.beta2, 'beta2', { min: 0, lt: 1 });
    this.eps = o.eps === undefined ? 1e-8 : checkNumber(o.eps, 'eps', { gt: 0 });
    this.weightDecay = o.weightDecay === undefined ? 0 : checkNumber(o.weightDecay, 'weightDecay', { min: 0 });
    this.decoupled = o.decoupled === undefined ? false : checkBool(o.decoupled, 'decoupled');
  }

  protected update(p: Tensor, g: Tensor, i: number): void {
    const [m] = this.slot(this.m, i, p);
    const [v] = this.slot(this.v, i, p);
    native.adamUpdate(p.handle, m.handle, v.handle, g.handle, this.lr, this.beta1, this.beta2, this.eps, this.weightDecay, this.decoupled, this.stepCount);
  }

  state(): OptimizerState {
    const tensors = new Map<string, Tensor>();
    for (const [i, t] of this.m) tensors.set(`${i}.m`, t);
    for (const [i, t] of this.v) tensors.set(`${i}.v`, t);
    return { kind: this.decoupled ? 'adamw' : 'adam', step: this.stepCount, tensors };
  }

  protected get kind(): string {
    return this.decoupled ? 'adamw' : 'adam';
  }
  protected get slotNames(): readonly string[] {
    return ['m', 'v'];
  }

  loadState(state: OptimizerState): void {
    this.checkState(state);
    for (const t of [...this.m.values(), ...this.v.values()]) t.dispose();
    this.m.clear();
    this.v.clear();
    this.params.forEach((p, i) => {
      if (state.tensors.has(`${i}.m`)) this.m.set(i, Optimizer.restoreSlot(state, `${i}.m`, p));
      if (state.tensors.has(`${i}.v`)) this.v.set(i, Optimizer.restoreSlot(state, `${i}.v`, p));
    });
    this.stepCount = state.step;
  }
}
