// Encoder files and training checkpoints, as safetensors.
//
// An encoder file holds the backbone's parameters and BN buffers under their
// module names, with __metadata__ {format: "encsec-encoder", arch,
// inChannels, config (JSON)}. A training checkpoint adds the projection head
// ("head." prefix), the optimizer's moments ("optim." prefix) and the progress
// (epoch, step) so that a run can resume exactly where it stopped.
import { Tensor } from '../core/tensor';
import { checkInt, checkObject, describe } from '../core/validate';
import { Encoder, ARCHITECTURES, type Architecture } from '../nn/encoders';
import { Module } from '../nn/module';
import { Optimizer, type OptimizerState } from '../nn/optim';
import { checkPath } from './atomic';
import { loadSafetensors, saveSafetensors } from './safetensors';

/** JSON text of a value that must survive a round trip through JSON (no BigInt, no cycles, no functions at the top). */
function toJson(v: unknown, name: string): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(v);
  } catch (e) {
    throw new TypeError(`${name} cannot be stored as JSON: ${(e as Error).message}`);
  }
  if (text === undefined) throw new TypeError(`${name} cannot be stored as JSON (got ${describe(v)})`);
  return text;
}

function checkEncoder(encoder: unknown, name = 'encoder'): asserts encoder is Encoder {
  if (!(encoder instanceof Encoder)) throw new TypeError(`${name} must be an Encoder, got ${describe(encoder)}`);
}

export const ENCODER_FORMAT = 'encsec-encoder';
export const CHECKPOINT_FORMAT = 'encsec-checkpoint';

/** Writes an encoder (atomically) with its architecture and any extra metadata. */
export function saveEncoder(file: string, encoder: Encoder, extra: Record<string, unknown> = {}): void {
  checkPath(file);
  checkEncoder(encoder);
  checkObject(extra, 'extra');
  const config = toJson(extra, 'extra');
  const metadata: Record<string, string> = {
    format: ENCODER_FORMAT,
    arch: encoder.config.arch,
    inChannels: String(encoder.config.inChannels),
    config,
  };
  saveSafetensors(file, encoder.stateDict(), metadata);
}

export interface LoadedEncoder {
  encoder: Encoder;
  metadata: Record<string, string>;
  /** The parsed `config` metadata (training configuration, results). */
  config: Record<string, unknown>;
  /** True when the file's encsec digest was present and matched; false for a file without one (written elsewhere or by an older encsec). */
  verified: boolean;
}

function parseArch(meta: Record<string, string>, file: string): { arch: Architecture; inChannels: number } {
  const arch = meta.arch;
  if (!(ARCHITECTURES as readonly string[]).includes(arch)) {
    throw new Error(`${file}: metadata names architecture ${JSON.stringify(arch)}, expected one of ${ARCHITECTURES.join(', ')}`);
  }
  const inChannels = Number(meta.inChannels);
  if (!Number.isInteger(inChannels) || inChannels < 1 || inChannels > 4) throw new Error(`${file}: metadata inChannels ${JSON.stringify(meta.inChannels)} is invalid`);
  return { arch: arch as Architecture, inChannels };
}

function parseConfig(meta: Record<string, string>, file: string): Record<string, unknown> {
  if (meta.config === undefined) return {};
  try {
    const c = JSON.parse(meta.config);
    if (c === null || typeof c !== 'object' || Array.isArray(c)) throw new Error('not an object');
    return c as Record<string, unknown>;
  } catch (e) {
    throw new Error(`${file}: metadata "config" is not a JSON object (${(e as Error).message})`);
  }
}

/** Keeps the entries with a prefix, without it. */
function withPrefix(tensors: Map<string, Tensor>, prefix: string): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [k, v] of tensors) if (k.startsWith(prefix)) out.set(k.slice(prefix.length), v);
  return out;
}

/**
 * Loads an encoder file (or the encoder part of a training checkpoint). The
 * architecture comes from the metadata; every tensor must be present with its
 * exact shape, so a wrong or damaged file is an error, never garbage weights.
 */
export function loadEncoder(file: string): LoadedEncoder {
  checkPath(file);
  const { tensors, metadata, verified } = loadSafetensors(file);
  try {
    const isCheckpoint = metadata.format === CHECKPOINT_FORMAT;
    if (metadata.format !== ENCODER_FORMAT && !isCheckpoint) {
      throw new Error(`${file}: not an encsec encoder (metadata format ${JSON.stringify(metadata.format)})`);
    }
    const { arch, inChannels } = parseArch(metadata, file);
    const encoder = new Encoder({ arch, inChannels, seed: 0 });
    const state = isCheckpoint ? withPrefix(tensors, 'encoder.') : tensors;
    try {
      encoder.loadStateDict(state);
    } catch (e) {
      encoder.dispose();
      throw new Error(`${file}: ${(e as Error).message}`);
    }
    encoder.eval();
    let config: Record<string, unknown>;
    try {
      config = parseConfig(metadata, file);
    } catch (e) {
      encoder.dispose();
      throw e;
    }
    return { encoder, metadata, config, verified };
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
}

export interface TrainingState {
  epoch: number;
  step: number;
  config: Record<string, unknown>;
  history: unknown[];
}

/** Saves everything needed to resume: modules, optimizer moments and progress. */
export function saveCheckpoint(file: string, encoder: Encoder, head: Module, optimizer: Optimizer, state: TrainingState): void {
  checkPath(file);
  checkEncoder(encoder);
  if (!(head instanceof Module)) throw new TypeError(`head must be a Module, got ${describe(head)}`);
  if (!(optimizer instanceof Optimizer)) throw new TypeError(`optimizer must be an Optimizer, got ${describe(optimizer)}`);
  checkObject(state, 'state');
  checkInt(state.epoch, 'state.epoch', { min: 0, max: Number.MAX_SAFE_INTEGER });
  checkInt(state.step, 'state.step', { min: 0, max: Number.MAX_SAFE_INTEGER });
  checkObject(state.config, 'state.config');
  if (!Array.isArray(state.history)) throw new TypeError(`state.history must be an array, got ${describe(state.history)}`);
  const configJson = toJson(state.config, 'state.config');
  const historyJson = toJson(state.history, 'state.history');
  const tensors = new Map<string, Tensor>();
  for (const [k, v] of encoder.stateDict()) tensors.set(`encoder.${k}`, v);
  for (const [k, v] of head.stateDict()) tensors.set(`head.${k}`, v);
  const os = optimizer.state();
  for (const [k, v] of os.tensors) tensors.set(`optim.${k}`, v);
  saveSafetensors(file, tensors, {
    format: CHECKPOINT_FORMAT,
    arch: encoder.config.arch,
    inChannels: String(encoder.config.inChannels),
    config: configJson,
    optimizer: os.kind,
    optimizerStep: String(os.step),
    epoch: String(state.epoch),
    step: String(state.step),
    history: historyJson,
  });
}

/**
 * Restores a checkpoint into freshly built modules and optimizer (which must
 * match its architecture); returns the progress to continue from.
 */
export function loadCheckpoint(file: string, encoder: Encoder, head: Module, optimizer: Optimizer): TrainingState & { verified: boolean } {
  checkPath(file);
  checkEncoder(encoder);
  if (!(head instanceof Module)) throw new TypeError(`head must be a Module, got ${describe(head)}`);
  if (!(optimizer instanceof Optimizer)) throw new TypeError(`optimizer must be an Optimizer, got ${describe(optimizer)}`);
  const { tensors, metadata, verified } = loadSafetensors(file);
  try {
    if (metadata.format !== CHECKPOINT_FORMAT) throw new Error(`${file}: not an encsec training checkpoint (format ${JSON.stringify(metadata.format)})`);
    const { arch } = parseArch(metadata, file);
    if (arch !== encoder.config.arch) throw new Error(`${file}: checkpoint is for ${arch}, the run uses ${encoder.config.arch}`);
    const num = (k: string) => {
      const text = metadata[k];
      const v = typeof text === 'string' && /^[0-9]{1,16}$/.test(text) ? Number(text) : NaN;
      if (!Number.isSafeInteger(v)) throw new Error(`${file}: metadata ${k} ${JSON.stringify(text ?? null)} is invalid (expected a non-negative integer)`);
      return v;
    };
    // Everything is checked before anything is copied: a bad checkpoint leaves the modules and the optimizer as they were.
    const epoch = num('epoch');
    const step = num('step');
    const optimizerStep = num('optimizerStep');
    if (typeof metadata.optimizer !== 'string') throw new Error(`${file}: metadata has no optimizer kind`);
    const config = parseConfig(metadata, file);
    let history: unknown;
    try {
      history = JSON.parse(metadata.history ?? '[]');
    } catch {
      throw new Error(`${file}: metadata history is not JSON`);
    }
    if (!Array.isArray(history)) throw new Error(`${file}: metadata history is not a JSON array`);
    const encState = withPrefix(tensors, 'encoder.');
    const headState = withPrefix(tensors, 'head.');
    const optState: OptimizerState = { kind: metadata.optimizer, step: optimizerStep, tensors: withPrefix(tensors, 'optim.') };
    const known = encState.size + headState.size + optState.tensors.size;
    if (known !== tensors.size) {
      const stray = [...tensors.keys()].find((k) => !/^(encoder|head|optim)\./.test(k));
      throw new Error(`${file}: unexpected tensor ${JSON.stringify(stray)} (a checkpoint holds encoder.*, head.* and optim.* only)`);
    }
    try {
      encoder.checkStateDict(encState);
      head.checkStateDict(headState);
      optimizer.checkState(optState);
      encoder.loadStateDict(encState);
      head.loadStateDict(headState);
      optimizer.loadState(optState);
    } catch (e) {
      throw new Error(`${file}: ${(e as Error).message}`);
    }
    return { epoch, step, config, history, verified };
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
}
