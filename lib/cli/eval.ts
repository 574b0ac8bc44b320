// `encsec eval`: linear-probe (or kNN) accuracy of a frozen encoder on a
// downstream task.
import type { Command } from './command';
import { loadEncoder } from '../io/checkpoint';
import { createEncoder, type Architecture, type Encoder } from '../nn/encoders';
import type { Embeddings } from '../eval/probe';
import type { TaskData } from '../eval/tasks';
import { pixelFeatures } from '../eval/embed';
import { loadTask } from '../eval/tasks';
import { embedDataset } from '../eval/embed';
import { linearProbe, knnAccuracy } from '../eval/probe';
import { setDevice, info } from '../core/backend';

export const evalCommand: Command = {
  summary: 'evaluate an encoder: linear probe or kNN on a downstream task',
  options: {
    encoder: { kind: 'string', help: 'encoder file (safetensors), or a baseline: raw (normalised pixels) | random:cnn-small | random:resnet18-cifar', required: true },
    data: { kind: 'string', help: 'fashion-mnist | mnist | cifar10:PATH | folder:PATH', default: 'fashion-mnist' },
    probe: { kind: 'string', help: 'linear | knn', default: 'linear', choices: ['linear', 'knn'] },
    limit: { kind: 'int', help: 'first N images per split', min: 1 },
    epochs: { kind: 'int', help: 'linear probe epochs', default: 100, min: 1 },
    seed: { kind: 'int', help: 'probe seed (and the random:ARCH encoder\'s)', default: 0, min: 0 },
    device: { kind: 'string', help: 'cpu | cuda', choices: ['cpu', 'cuda'] },
  },
  async run(args) {
    const file = args.string('encoder');
    if (!file) throw new Error('--encoder FILE is required');
    const device = args.string('device');
    if (device) setDevice(device as 'cpu' | 'cuda');
    const kind = args.string('probe');
    if (kind !== 'linear' && kind !== 'knn') throw new Error(`--probe must be linear or knn, got ${JSON.stringify(kind)}`);
    const t0 = Date.now();
    let train: Embeddings;
    let test: Embeddings;
    let arch: string;
    let task: TaskData;
    if (file === 'raw') {
      // Baseline: the normalised pixels themselves as features.
      task = await loadTask(args.string('data')!, { limit: args.number('limit') });
      train = pixelFeatures(task.train);
      test = pixelFeatures(task.test);
      arch = 'raw-pixels';
    } else {
      let encoder: Encoder;
      if (file.startsWith('random:')) {
        // Baseline: a randomly initialised encoder (BN running stats at their init).
        arch = file.slice('random:'.length);
        encoder = createEncoder(arch as Architecture, { seed: args.number('seed') ?? 0 });
      } else {
        const loaded = loadEncoder(file);
        encoder = loaded.encoder;
        arch = loaded.metadata.arch;
      }
      task = await loadTask(args.string('data')!, { limit: args.number('limit'), channels: encoder.config.inChannels === 1 ? 1 : 3 });
      if (task.train.channels !== encoder.config.inChannels) {
        throw new Error(`${task.name} has ${task.train.channels}-channel images, the encoder expects ${encoder.config.inChannels}`);
      }
      train = embedDataset(encoder, task.train);
      test = embedDataset(encoder, task.test);
      encoder.dispose();
    }
    const numClasses = task.train.numClasses;
    const result: Record<string, unknown> = { encoder: file, arch, data: task.name, probe: kind, trainImages: train.n, testImages: test.n };
    if (kind === 'linear') {
      const r = linearProbe(train, test, { numClasses, epochs: args.number('epochs'), seed: args.number('seed') });
      result.accuracy = r.accuracy;
      result.trainAccuracy = r.trainAccuracy;
    } else {
      result.accuracy = knnAccuracy(train, test, { numClasses, k: 200 });
    }
    result.seconds = (Date.now() - t0) / 1000;
    result.backend = info().backend;
    return result;
  },
};
