// `encsec pretrain`: SimCLR pre-training of an encoder, with progress on
// stderr. The training checkpoint (OUT.ckpt unless --checkpoint) is written
// after every epoch; the encoder file OUT when training finishes. After an
// interrupt, --resume continues from the checkpoint's last finished epoch;
// without --resume an existing checkpoint is never overwritten (--force).
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Command } from './command';
import { UsageError, type ParsedArgs } from './args';
import { checkWritableFile } from './files';
import { loadSafetensors } from '../io/safetensors';
import { pretrainSimclr } from '../ssl/simclr';
import { loadTask } from '../eval/tasks';
import { saveEncoder } from '../io/checkpoint';
import { createProgress } from '../report/progress';
import { setDevice, info } from '../core/backend';
import type { Architecture } from '../nn/encoders';

export const pretrainCommand: Command = {
  summary: 'pre-train an encoder with SimCLR',
  options: {
    data: { kind: 'string', help: 'fashion-mnist | mnist | cifar10:PATH | folder:PATH | poisoned:PATH (encsec poison make)', default: 'fashion-mnist' },
    arch: { kind: 'string', help: 'cnn-small | resnet18-cifar', default: 'cnn-small', choices: ['cnn-small', 'resnet18-cifar'] },
    epochs: { kind: 'int', help: 'training epochs', default: 10, min: 1 },
    batch: { kind: 'int', help: 'batch size (images; two views each)', default: 256, min: 2 },
    lr: { kind: 'number', help: 'Adam learning rate', default: 1e-3 },
    'weight-decay': { kind: 'number', help: 'Adam weight decay (L2)', default: 1e-6 },
    tau: { kind: 'number', help: 'NT-Xent temperature', default: 0.5 },
    limit: { kind: 'int', help: 'first N training images only', min: 2 },
    seed: { kind: 'int', help: 'seed of every random choice', default: 0, min: 0 },
    device: { kind: 'string', help: 'cpu | cuda (default: the backend in use)', choices: ['cpu', 'cuda'] },
    out: { kind: 'string', help: 'encoder file to write (safetensors) when training finishes', required: true },
    checkpoint: { kind: 'string', help: 'training checkpoint, rewritten after every epoch (default: OUT.ckpt)' },
    resume: { kind: 'boolean', help: 'continue from the checkpoint if it exists (its settings and training images must match)' },
    force: { kind: 'boolean', help: 'without --resume: overwrite an existing checkpoint' },
    progress: { kind: 'string', help: 'bar | json | silent (default: bar on a terminal, else json)', choices: ['bar', 'json', 'silent'] },
    snapshots: { kind: 'list', help: 'also save the encoder after these epochs, as OUT.e<k>.safetensors (e.g. 1,3,5)' },
  },
  onInterrupt(args) {
    const checkpoint = checkpointPath(args);
    if (!fs.existsSync(checkpoint)) return `No epoch had finished: no checkpoint was written (${checkpoint}); nothing to resume.`;
    const epoch = checkpointEpoch(checkpoint);
    return `Interrupted after epoch ${epoch}: its checkpoint ${checkpoint} is kept (${args.string('out')} is written when training finishes). Run the same command again with --resume to continue from epoch ${epoch + 1}.`;
  },
  async run(args, ctx) {
    const out = args.string('out')!;
    checkWritableFile(out, '--out');
    const checkpoint = checkpointPath(args);
    checkWritableFile(checkpoint, '--checkpoint');
    if (fs.existsSync(checkpoint) && !args.bool('resume') && !args.bool('force')) {
      throw new UsageError(`${checkpoint} exists (the checkpoint of an earlier run): add --resume to continue it, or --force to start over and overwrite it`);
    }
    const snapshotEpochs = new Set((args.list('snapshots') ?? []).map((s) => {
      const k = Number(s);
      if (!Number.isInteger(k) || k < 1) throw new UsageError(`--snapshots must list epoch numbers, got ${JSON.stringify(s)}`);
      return k;
    }));
    const device = args.string('device');
    if (device) setDevice(device as 'cpu' | 'cuda');
    const task = await loadTask(args.string('data')!, { limit: args.number('limit') });
    const mode = args.string('progress') as 'bar' | 'json' | 'silent' | undefined;
    const progress = createProgress({ mode });
    const snapshots: string[] = [];
    const t0 = Date.now();
    const res = pretrainSimclr(task.train, {
      arch: args.string('arch') as Architecture,
      epochs: args.number('epochs')!,
      batchSize: args.number('batch'),
      lr: args.number('lr'),
      weightDecay: args.number('weight-decay'),
      tau: args.number('tau'),
      seed: args.number('seed'),
      checkpoint,
      resume: args.bool('resume'),
      progress,
      onEpochEnd: (epoch, encoder) => {
        if (!snapshotEpochs.has(epoch)) return;
        const file = snapshotPath(out, epoch);
        saveEncoder(file, encoder, { task: task.name, epoch });
        snapshots.push(path.resolve(file));
      },
    });
    const meta = { task: task.name, trainImages: task.train.labels.length, ...res.config, history: res.history };
    saveEncoder(out, res.encoder, meta);
    ctx.log(`wrote ${path.resolve(out)}`);
    const last = res.history[res.history.length - 1];
    return {
      out: path.resolve(out),
      checkpoint: path.resolve(checkpoint),
      data: task.name,
      arch: res.config.arch,
      epochs: res.epochsDone,
      resumedFrom: res.resumedFrom,
      finalLoss: last ? last.loss : null,
      secondsPerEpoch: res.history.length ? res.history.reduce((s, h) => s + h.seconds, 0) / res.history.length : null,
      imagesPerSec: last ? last.imagesPerSec : null,
      wallSeconds: (Date.now() - t0) / 1000,
      backend: info().backend,
      history: res.history,
      snapshots,
    };
  },
};

/** The last finished epoch recorded in a checkpoint file (its contents are validated on load). */
function checkpointEpoch(file: string): number {
  const { tensors, metadata } = loadSafetensors(file);
  for (const t of tensors.values()) t.dispose();
  return Number(metadata.epoch);
}

/** The training checkpoint: --checkpoint, or OUT.ckpt. */
function checkpointPath(args: ParsedArgs): string {
  return args.string('checkpoint') ?? `${args.string('out')}.ckpt`;
}

/** OUT.e<k>.safetensors beside OUT (the extension, if any, kept last). */
export function snapshotPath(out: string, epoch: number): string {
  const ext = path.extname(out);
  return ext ? `${out.slice(0, -ext.length)}.e${epoch}${ext}` : `${out}.e${epoch}`;
}
