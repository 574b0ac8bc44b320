// Modules: parameters and buffers with names (for checkpoints), train/eval
// mode, and a compiled inference plan so that `embed()` runs off the event loop.
import { Tensor, isGradEnabled, keep, noGrad, tidy } from '../core/tensor';
import * as ops from '../core/ops';
import { native, type PlanStep } from '../core/native';
import { checkBool, checkInt, checkNdim, checkNumber, checkObject, checkOptions, checkSeed, checkTensor, describe } from '../core/validate';

const PLAN_OPS: readonly string[] = ['conv', 'convBnRelu', 'bn', 'relu', 'maxpool', 'gap', 'linear', 'add'];

/** Builds an inference plan: registers are numbered, 0 is the input. */
export class PlanBuilder {
  readonly steps: PlanStep[] = [];
  private next = 1;

  /** Appends a step reading register `input`; returns the register it writes. */
  add(step: Omit<PlanStep, 'in' | 'out'>, input: number): number {
    const st = checkObject(step, 'step');
    if (typeof st.op !== 'string' || !PLAN_OPS.includes(st.op)) throw new RangeError(`step.op must be one of ${PLAN_OPS.join(', ')}, got ${describe(st.op)}`);
    checkInt(input, 'input', { min: 0, max: this.next - 1 });
    const out = this.next++;
    this.steps.push({ ...step, in: input, out } as PlanStep);
    return out;
  }

  /** Appends an element-wise sum of two registers; returns the register it writes. */
  addSum(a: number, b: number): number {
    checkInt(a, 'a', { min: 0, max: this.next - 1 });
    checkInt(b, 'b', { min: 0, max: this.next - 1 });
    const out = this.next++;
    this.steps.push({ op: 'add', in: a, in2: b, out });
    return out;
  }

  get registers(): number {
    return this.next;
  }
}

function checkName(name: unknown): void {
  if (typeof name !== 'string' || name === '') throw new TypeError(`name must be a non-empty string, got ${describe(name)}`);
}

/** The arguments of Module.plan(builder, input). */
export function checkPlanArgs(b: unknown, input: unknown): void {
  if (!(b instanceof PlanBuilder)) throw new TypeError(`builder must be a PlanBuilder, got ${describe(b)}`);
  checkInt(input, 'input', { min: 0, max: b.registers - 1 });
}

export abstract class Module {
  training = true;

  /** Direct parameters and buffers of this module, by local name. */
  protected params = new Map<string, Tensor>();
  protected buffers = new Map<string, Tensor>();
  protected children = new Map<string, Module>();

  abstract forward(x: Tensor): Tensor;

  /** Adds this module's eval-mode forward to an inference plan; returns the output register. */
  abstract plan(builder: PlanBuilder, input: number): number;

  protected registerParameter(name: string, t: Tensor): Tensor {
    checkName(name);
    checkTensor(t, 't');
    t.requiresGrad_(true);
    keep(t);
    this.params.set(name, t);
    return t;
  }

  protected registerBuffer(name: string, t: Tensor): Tensor {
    checkName(name);
    checkTensor(t, 't');
    keep(t);
    this.buffers.set(name, t);
    return t;
  }

  protected registerModule<M extends Module>(name: string, m: M): M {
    checkName(name);
    if (!(m instanceof Module)) throw new TypeError(`m must be a Module, got ${describe(m)}`);
    this.children.set(name, m);
    return m;
  }

  /** Parameters with dotted names (e.g. "0.weight"), in a stable order. */
  namedParameters(prefix = ''): [string, Tensor][] {
    if (typeof prefix !== 'string') throw new TypeError(`prefix must be a string, got ${describe(prefix)}`);
    const out: [string, Tensor][] = [];
    for (const [n, t] of this.params) out.push([prefix + n, t]);
    for (const [n, m] of this.children) out.push(...m.namedParameters(`${prefix}${n}.`));
    return out;
  }

  namedBuffers(prefix = ''): [string, Tensor][] {
    if (typeof prefix !== 'string') throw new TypeError(`prefix must be a string, got ${describe(prefix)}`);
    const out: [string, Tensor][] = [];
    for (const [n, t] of this.buffers) out.push([prefix + n, t]);
    for (const [n, m] of this.children) out.push(...m.namedBuffers(`${prefix}${n}.`));
    return out;
  }

  parameters(): Tensor[] {
    return this.namedParameters().map(([, t]) => t);
  }

  /** Parameters and buffers: everything a checkpoint holds. */
  stateDict(): Map<string, Tensor> {
    return new Map([...this.namedParameters(), ...this.namedBuffers()]);
  }

  /**
   * Copies tensors into this module's parameters and buffers. Every name must
   * be present with the same shape (strict), so a wrong checkpoint is an error
   * and never half-loaded.
   */
  loadStateDict(state: Map<string, Tensor>): void {
    this.checkStateDict(state);
    const own = this.stateDict();
    for (const [name, t] of own) t.copy_(state.get(name)!);
  }

  /** The checks of loadStateDict, without copying anything: throws if `state` does not fit this module exactly. */
  checkStateDict(state: Map<string, Tensor>): void {
    if (!(state instanceof Map)) throw new TypeError(`state must be a Map from names to Tensors, got ${describe(state)}`);
    const own = this.stateDict();
    for (const [name, t] of own) {
      const src = state.get(name);
      if (!src) throw new RangeError(`state dict is missing "${name}"`);
      checkTensor(src, `state["${name}"]`);
      if (src.shape.length !== t.shape.length || src.shape.some((d, i) => d !== t.shape[i])) {
        throw new RangeError(`state["${name}"] has shape [${src.shape.join(', ')}], expected [${t.shape.join(', ')}]`);
      }
    }
    for (const name of state.keys()) if (!own.has(name)) throw new RangeError(`state dict has unexpected entry ${JSON.stringify(String(name))}`);
  }

  train(flag = true): this {
    checkBool(flag, 'flag');
    this.training = flag;
    for (const m of this.children.values()) m.train(flag);
    return this;
  }

  /** Whether batch norm runs frozen (see freezeBatchNorm). */
  batchNormFrozen = false;

  /**
   * Frozen batch norm, whatever the train/eval flag: BN layers normalise with
   * their running statistics, never update them, and treat their affine
   * parameters as constants, while gradients still flow to the input and to
   * the conv weights (eval-mode BN folded into the preceding conv). For
   * fine-tuning a network whose BN must stay fixed (SSLGuard's F_w) and for
   * gradients w.r.t. the input of a network in eval mode. BN's own
   * parameters receive no gradient in this mode.
   */
  freezeBatchNorm(flag = true): this {
    checkBool(flag, 'flag');
    this.batchNormFrozen = flag;
    for (const m of this.children.values()) m.freezeBatchNorm(flag);
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  zeroGrad(): void {
    for (const p of this.parameters()) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  /** Frees every parameter and buffer. */
  dispose(): void {
    for (const [, t] of this.stateDict()) t.dispose();
  }

  /** Number of scalar parameters. */
  parameterCount(): number {
    return this.parameters().reduce((s, p) => s + p.size, 0);
  }

  /**
   * Eval-mode batch inference off the event loop (a Napi::AsyncWorker): the
   * promise resolves to the output for x, and the event loop keeps serving
   * other work while the kernels run. Uses running BN statistics whatever the
   * module's train/eval flag.
   */
  embed(x: Tensor): Promise<Tensor> {
    return embedAsync(this, x);
  }

  /** The eval-mode forward pass as a native plan (steps + register count). */
  compile(): { steps: PlanStep[]; registers: number; output: number } {
    const b = new PlanBuilder();
    const output = this.plan(b, 0);
    if (b.steps.length === 0) throw new TypeError('module has no steps to compile');
    return { steps: b.steps, registers: b.registers, output };
  }
}

// PyTorch's default init for conv and linear layers (kaiming_uniform with a=sqrt(5)):
// weights and biases uniform in +-1/sqrt(fan_in). Seeded: every layer takes a seed.
function uniformInit(shape: number[], fanIn: number, seed: number, offset: number): Tensor {
  const bound = 1 / Math.sqrt(fanIn);
  return Tensor.rand(shape, { seed, offset, low: -bound, high: bound });
}

export interface InitOptions {
  /** Seed for this layer's initial weights. */
  seed?: number;
  /**
   * Which RNG stream of the seed this layer draws from. Models give each layer
   * its own stream (0, 1, 2, ...), so that the same seed always yields the same
   * weights, however many models the process built before.
   */
  stream?: number;
}

// Weight and bias of one layer draw from disjoint counter ranges of the stream.
function streamOffsets(options: InitOptions): [number, number] {
  const stream = checkInt(options.stream ?? 0, 'options.stream', { min: 0, max: 2 ** 20 });
  return [stream * 2 ** 32, stream * 2 ** 32 + 2 ** 31];
}

export class Conv2d extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    readonly kernelSize: number,
    readonly options: { stride?: number; padding?: number; bias?: boolean } & InitOptions = {},
  ) {
    super();
    checkInt(inChannels, 'inChannels', { min: 1, max: 65536 });
    checkInt(outChannels, 'outChannels', { min: 1, max: 65536 });
    checkInt(kernelSize, 'kernelSize', { min: 1, max: 64 });
    checkOptions(options, 'options', ['stride', 'padding', 'bias', 'seed', 'stream']);
    if (options.stride !== undefined) checkInt(options.stride, 'options.stride', { min: 1, max: 64 });
    if (options.padding !== undefined) checkInt(options.padding, 'options.padding', { min: 0, max: 64 });
    if (options.bias !== undefined) checkBool(options.bias, 'options.bias');
    const seed = checkSeed(options.seed ?? 0, 'options.seed');
    const fanIn = inChannels * kernelSize * kernelSize;
    const [wOff, bOff] = streamOffsets(options);
    this.weight = this.registerParameter('weight', uniformInit([outChannels, inChannels, kernelSize, kernelSize], fanIn, seed, wOff));
    this.bias = options.bias === false ? null : this.registerParameter('bias', uniformInit([outChannels], fanIn, seed, bOff));
  }
  forward(x: Tensor): Tensor {
    return ops.conv2d(x, this.weight, this.bias, { stride: this.options.stride ?? 1, padding: this.options.padding ?? 0 });
  }
  plan(b: PlanBuilder, input: number): number {
    checkPlanArgs(b, input);
    return b.add({ op: 'conv', weight: this.weight.handle, bias: this.bias?.handle ?? null, stride: this.options.stride ?? 1, padding: this.options.padding ?? 0 }, input);
  }
}

export class BatchNorm2d extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;
  readonly runningMean: Tensor;
  readonly runningVar: Tensor;
  constructor(readonly channels: number, readonly options: { momentum?: number; eps?: number } = {}) {
    super();
    checkInt(channels, 'channels', { min: 1, max: 65536 });
    checkOptions(options, 'options', ['momentum', 'eps']);
    if (options.momentum !== undefined) checkNumber(options.momentum, 'options.momentum', { min: 0, max: 1 });
    if (options.eps !== undefined) checkNumber(options.eps, 'options.eps', { gt: 0 });
    this.weight = this.registerParameter('weight', Tensor.ones([channels]));
    this.bias = this.registerParameter('bias', Tensor.zeros([channels]));
    this.runningMean = this.registerBuffer('running_mean', Tensor.zeros([channels]));
    this.runningVar = this.registerBuffer('running_var', Tensor.ones([channels]));
  }
  /** Eval-mode BN as a per-channel affine map y = x * scale + shift (scale = gamma / sqrt(var + eps), shift = beta - mean * scale). */
  frozenAffine(): { scale: Float32Array; shift: Float32Array } {
    const g = this.weight.toArray();
    const b = this.bias.toArray();
    const mean = this.runningMean.toArray();
    const v = this.runningVar.toArray();
    const eps = this.options.eps ?? 1e-5;
    const scale = new Float32Array(this.channels);
    const shift = new Float32Array(this.channels);
    for (let c = 0; c < this.channels; c++) {
      scale[c] = g[c] / Math.sqrt(v[c] + eps);
      shift[c] = b[c] - mean[c] * scale[c];
    }
    return { scale, shift };
  }
  forward(x: Tensor): Tensor {
    if (this.batchNormFrozen && isGradEnabled()) {
      // Differentiable w.r.t. x: the affine map as a 1x1 convolution with a diagonal kernel.
      const { scale, shift } = this.frozenAffine();
      const C = this.channels;
      const diag = new Float32Array(C * C);
      for (let c = 0; c < C; c++) diag[c * C + c] = scale[c];
      return ops.conv2d(x, Tensor.from(diag, [C, C, 1, 1]), Tensor.from(shift, [C]));
    }
    return ops.batchNorm2d(x, this.runningMean, this.runningVar, this.weight, this.bias, {
      training: this.training && !this.batchNormFrozen,
      momentum: this.options.momentum ?? 0.1,
      eps: this.options.eps ?? 1e-5,
    });
  }
  plan(b: PlanBuilder, input: number): number {
    checkPlanArgs(b, input);
    return b.add({ op: 'bn', gamma: this.weight.handle, beta: this.bias.handle, runningMean: this.runningMean.handle, runningVar: this.runningVar.handle, eps: this.options.eps ?? 1e-5 }, input);
  }
}

/** Fused conv + batch norm + ReLU (one native kernel each way). Conv has no bias: BN's beta makes it redundant. */
export class ConvBnReLU extends Module {
  readonly conv: Conv2d;
  readonly bn: BatchNorm2d;
  constructor(inChannels: number, outChannels: number, kernelSize: number, options: { stride?: number; padding?: number } & InitOptions = {}) {
    super();
    checkOptions(options, 'options', ['stride', 'padding', 'seed', 'stream']);
    this.conv = this.registerModule('conv', new Conv2d(inChannels, outChannels, kernelSize, { ...options, bias: false }));
    this.bn = this.registerModule('bn', new BatchNorm2d(outChannels));
  }
  forward(x: Tensor): Tensor {
    if (this.batchNormFrozen && isGradEnabled()) {
      // Frozen BN folded into the conv: relu(conv(x, W * scale[oc]) + shift), differentiable w.r.t. x and W.
      const { scale, shift } = this.bn.frozenAffine();
      const per = this.conv.weight.size / scale.length;
      const s = new Float32Array(this.conv.weight.size);
      for (let i = 0; i < s.length; i++) s[i] = scale[Math.floor(i / per)];
      const w = ops.mul(this.conv.weight, Tensor.from(s, this.conv.weight.shape));
      return ops.relu(ops.conv2d(x, w, Tensor.from(shift, [shift.length]), { stride: this.conv.options.stride ?? 1, padding: this.conv.options.padding ?? 0 }));
    }
    return ops.convBnRelu(x, this.conv.weight, null, this.bn.weight, this.bn.bias, this.bn.runningMean, this.bn.runningVar, {
      stride: this.conv.options.stride ?? 1,
      padding: this.conv.options.padding ?? 0,
      training: this.training && !this.batchNormFrozen,
      momentum: this.bn.options.momentum ?? 0.1,
      eps: this.bn.options.eps ?? 1e-5,
    });
  }
  plan(b: PlanBuilder, input: number): number {
    checkPlanArgs(b, input);
    return b.add(
      {
        op: 'convBnRelu',
        weight: this.conv.weight.handle,
        bias: null,
        gamma: this.bn.weight.handle,
        beta: this.bn.bias.handle,
        runningMean: this.bn.runningMean.handle,
        runningVar: this.bn.runningVar.handle,
        stride: this.conv.options.stride ?? 1,
        padding: this.conv.options.padding ?? 0,
        eps: this.bn.options.eps ?? 1e-5,
      },
      input,
    );
  }
}

export class ReLU extends Module {
  forward(x: Tensor): Tensor {
    return ops.relu(x);
  }
  plan(b: PlanBuilder, input: number): number {
    checkPlanArgs(b, input);
    return b.add({ op: 'relu' }, input);
  }
}

export class MaxPool2d extends Module {
  constructor(readonly kernelSize = 2) {
    super();
    checkInt(kernelSize, 'kernelSize', { min: 1, max: 65536 });
  }
  forward(x: Tensor): Tensor {
    return ops.maxPool2d(x, this.kernelSize);
  }
  plan(b: PlanBuilder, input: number): number {
    checkPlanArgs(b, input);
    return b.add({ op: 'maxpool', kernelSize: this.kernelSize }, input);
  }
}

export class GlobalAvgPool extends Module {
  forward(x: Tensor): Tensor {
    return ops.globalAvgPool(x);
  }
  plan(b: PlanBuilder, input: number): number {
    checkPlanArgs(b, input);
    return b.add({ op: 'gap' }, input);
  }
}

export class Linear extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  constructor(readonly inFeatures: number, readonly outFeatures: number, options: { bias?: boolean } & InitOptions = {}) {
    super();
    checkInt(inFeatures, 'inFeatures', { min: 1, max: 2 ** 31 - 1 });
    checkInt(outFeatures, 'outFeatures', { min: 1, max: 2 ** 31 - 1 });
    checkOptions(options, 'options', ['bias', 'seed', 'stream']);
    if (options.bias !== undefined) checkBool(options.bias, 'options.bias');
    const seed = checkSeed(options.seed ?? 0, 'options.seed');
    const [wOff, bOff] = streamOffsets(options);
    this.weight = this.registerParameter('weight', uniformInit([outFeatures, inFeatures], inFeatures, seed, wOff));
    this.bias = options.bias === false ? null : this.registerParameter('bias', uniformInit([outFeatures], inFeatures, seed, bOff));
  }
  forward(x: Tensor): Tensor {
    return ops.linear(x, this.weight, this.bias);
  }
  plan(b: PlanBuilder, input: number): number {
    checkPlanArgs(b, input);
    return b.add({ op: 'linear', weight: this.weight.handle, bias: this.bias?.handle ?? null }, input);
  }
}

export class Sequential extends Module {
  readonly layers: Module[];
  constructor(...layers: Module[]) {
    super();
    layers.forEach((l, i) => {
      if (!(l instanceof Module)) throw new TypeError(`layers[${i}] must be a Module`);
      this.registerModule(String(i), l);
    });
    this.layers = layers;
  }
  forward(x: Tensor): Tensor {
    let h = x;
    for (const l of this.layers) h = l.forward(h);
    return h;
  }
  plan(b: PlanBuilder, input: number): number {
    checkPlanArgs(b, input);
    let r = input;
    for (const l of this.layers) r = l.plan(b, r);
    return r;
  }
}

/**
 * Eval-mode batch inference off the event loop: resolves to the module's
 * output for x. The event loop stays free while the kernels run.
 */
export async function embedAsync(module: Module, x: Tensor): Promise<Tensor> {
  if (!(module instanceof Module)) throw new TypeError(`module must be a Module, got ${describe(module)}`);
  checkTensor(x, 'x');
  checkNdim(x, 4, 'x', '[N, C, H, W]');
  const { steps, registers } = module.compile();
  const h = await native.runPlanAsync(steps, x.handle, registers);
  return new Tensor(h);
}

/** The same plan, run synchronously (no autograd; eval mode). */
export function embedSync(module: Module, x: Tensor): Tensor {
  if (!(module instanceof Module)) throw new TypeError(`module must be a Module, got ${describe(module)}`);
  checkTensor(x, 'x');
  checkNdim(x, 4, 'x', '[N, C, H, W]');
  const { steps, registers } = module.compile();
  return new Tensor(native.runPlan(steps, x.handle, registers));
}

export { noGrad, tidy };
