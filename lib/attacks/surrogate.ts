// The surrogate (stolen) encoder: a backbone of a chosen architecture and,
// when its embedding size differs from the target's (cnn-small: 128,
// resnet18-cifar: 512), a linear adapter to the target's size. The adapter is
// part of the stolen encoder: the attack copies the target's embedding
// function, so s = adapter(backbone(x)) must live in the target's space.
//
// Files: without an adapter the surrogate is written as a plain encoder file
// (saveEncoder: `encsec eval` and loadEncoder read it); with one, as a
// safetensors file of format "encsec-surrogate" (backbone.* and adapter.*
// tensors) that loadSurrogate reads.
import { Tensor } from '../core/tensor';
import { checkInt, checkObject, checkOptions, checkSeed, describe } from '../core/validate';
import { checkPath } from '../io/atomic';
import { Encoder, ARCHITECTURES, type Architecture } from '../nn/encoders';
import { Linear, Module, type PlanBuilder } from '../nn/module';
import { loadEncoder, saveEncoder, ENCODER_FORMAT } from '../io/checkpoint';
import { loadSafetensors, saveSafetensors } from '../io/safetensors';

export const SURROGATE_FORMAT = 'encsec-surrogate';

export interface SurrogateConfig {
  arch: Architecture;
  inChannels: number;
  /** The target's embedding size; an adapter is added when the backbone's differs. */
  outDim: number;
  seed: number;
}

export class Surrogate extends Module {
  readonly backbone: Encoder;
  readonly adapter: Linear | null;
  constructor(backbone: Encoder, adapter: Linear | null = null) {
    super();
    if (!(backbone instanceof Encoder)) throw new TypeError('backbone must be an Encoder');
    if (adapter !== null && (!(adapter instanceof Linear) || adapter.inFeatures !== backbone.dim)) {
      throw new TypeError(`adapter must be a Linear layer taking the backbone's ${backbone.dim} features`);
    }
    this.backbone = this.registerModule('backbone', backbone);
    this.adapter = adapter ? this.registerModule('adapter', adapter) : null;
  }

  get arch(): Architecture {
    return this.backbone.config.arch;
  }

  /** Embedding size (the target's). */
  get dim(): number {
    return this.adapter ? this.adapter.outFeatures : this.backbone.dim;
  }

  forward(x: Tensor): Tensor {
    const h = this.backbone.forward(x);
    return this.adapter ? this.adapter.forward(h) : h;
  }

  plan(b: PlanBuilder, input: number): number {
    const h = this.backbone.plan(b, input);
    return this.adapter ? this.adapter.plan(b, h) : h;
  }
}

/** A freshly initialised surrogate (seeded). */
export function createSurrogate(config: SurrogateConfig): Surrogate {
  if (config === undefined) throw new TypeError('config must be an object { arch, inChannels, outDim, seed }, got undefined');
  checkOptions(config, 'config', ['arch', 'inChannels', 'outDim', 'seed']);
  const seed = checkSeed(config.seed, 'config.seed');
  const outDim = checkInt(config.outDim, 'config.outDim', { min: 1, max: 1 << 16 });
  const backbone = new Encoder({ arch: config.arch, inChannels: config.inChannels, seed });
  const adapter = backbone.dim === outDim ? null : new Linear(backbone.dim, outDim, { seed, stream: 2000 });
  return new Surrogate(backbone, adapter);
}

/** Writes a surrogate (atomically): a plain encoder file when it has no adapter. */
export function saveSurrogate(file: string, s: Surrogate, extra: Record<string, unknown> = {}): void {
  checkPath(file);
  if (!(s instanceof Surrogate)) throw new TypeError(`s must be a Surrogate, got ${describe(s)}`);
  checkObject(extra, 'extra');
  if (!s.adapter) {
    saveEncoder(file, s.backbone, extra);
    return;
  }
  let config: string;
  try {
    config = JSON.stringify(extra);
  } catch (e) {
    throw new TypeError(`extra cannot be written as JSON: ${(e as Error)?.message ?? String(e)}`);
  }
  saveSafetensors(file, s.stateDict(), {
    format: SURROGATE_FORMAT,
    arch: s.arch,
    inChannels: String(s.backbone.config.inChannels),
    outDim: String(s.dim),
    config,
  });
}

/** Reads a surrogate file, or any encoder file (as a surrogate without adapter). */
export function loadSurrogate(file: string): { surrogate: Surrogate; config: Record<string, unknown> } {
  const { tensors, metadata } = loadSafetensors(file);
  const format = metadata.format;
  if (format !== SURROGATE_FORMAT) {
    for (const t of tensors.values()) t.dispose();
    if (format !== ENCODER_FORMAT) throw new Error(`${file}: not an encsec encoder or surrogate (metadata format ${JSON.stringify(format)})`);
    const { encoder, config } = loadEncoder(file);
    return { surrogate: new Surrogate(encoder).eval(), config };
  }
  try {
    const arch = metadata.arch as Architecture;
    if (!(ARCHITECTURES as readonly string[]).includes(arch)) throw new Error(`${file}: metadata names architecture ${JSON.stringify(arch)}`);
    const inChannels = Number(metadata.inChannels);
    const outDim = Number(metadata.outDim);
    if (!Number.isInteger(inChannels) || inChannels < 1 || inChannels > 4) throw new Error(`${file}: metadata inChannels ${JSON.stringify(metadata.inChannels)} is invalid`);
    if (!Number.isInteger(outDim) || outDim < 1) throw new Error(`${file}: metadata outDim ${JSON.stringify(metadata.outDim)} is invalid`);
    const s = createSurrogate({ arch, inChannels, outDim, seed: 0 });
    try {
      s.loadStateDict(tensors);
    } catch (e) {
      s.dispose();
      throw new Error(`${file}: ${(e as Error).message}`);
    }
    let config: Record<string, unknown> = {};
    try {
      config = JSON.parse(metadata.config ?? '{}') as Record<string, unknown>;
    } catch {
      throw new Error(`${file}: metadata "config" is not JSON`);
    }
    return { surrogate: s.eval(), config };
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
}
