// The PoisonedEncoder experiment: constructions x poisoning rates x defenses,
// every cell one pre-training (or a re-use of one) and its measurement (CA and
// ASR of several downstream classifiers per task), in a resumable report
// folder (ExperimentGrid).
//
// Cells, in order:
//   clean                       the reference encoder (ASR = base rate)
//   <construction>@<rho>/none   pre-training on D ∪ P
//   .../detect                  drop the top `detectFraction` half-disagreement scores
//                               (reference encoder: the clean run's), pre-train on the rest
//   .../early-stop              the undefended run's snapshot at `earlyStopEpoch` (no extra training)
//   .../dp                      pre-training with per-group clipping + noise
//   .../local-crop              pre-training with localised cropping
//   .../finetune-1, -10         the undefended encoder fine-tuned on 1% / 10% of D (clean)
// Every pre-training uses the same protocol (arch, epochs, batch, lr, seed),
// checkpoints after every epoch (runs/<cell>.ckpt; a killed run resumes
// there) and saves its encoder (runs/<cell>.safetensors), which later cells
// and later runs re-use instead of training again.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { checkBool, checkInt, checkNumber, checkOneOf, checkOptions, checkSeed, describe } from '../core/validate';
import { deriveSeed } from '../data/prng';
import { datasetSize, takeFirst, type Dataset } from '../data/dataset';
import { withoutImages } from '../data/poisoned';
import { loadTask } from '../eval/tasks';
import { loadEncoder, saveEncoder } from '../io/checkpoint';
import type { Encoder, Architecture } from '../nn/encoders';
import { pretrainSimclr, type PretrainOptions } from '../ssl/simclr';
import { POISON_CONSTRUCTIONS, type PoisonConstruction, type PoisonTarget } from '../attacks/poison/construct';
import { makePoisonedDataset } from '../attacks/poison/dataset';
import { measurePoisoning, type PoisonTaskData } from '../attacks/poison/measure';
import { loadPoisonTargets, parseTargetSpec } from '../attacks/poison/setup';
import { detectSplicedImages, detectionCounts } from '../defenses/poison/detect';
import { clippedNoisyStep, croppedStep, type ClipNoiseOptions } from '../defenses/poison/training';
import { finetuneOnClean } from '../defenses/poison/finetune';
import { checkProgressSink, silentProgress, type ProgressSink } from '../report/progress';
import { POISON_RESULTS_KIND, readPoisonResults, writePoisonReport, type PoisonCellResult, type PoisonResults, type PoisonTaskFigures } from '../report/poison';
import { ExperimentGrid, unionList } from './grid';

export const POISON_DEFENSES = ['none', 'detect', 'early-stop', 'dp', 'local-crop', 'finetune-1', 'finetune-10'] as const;
export type PoisonDefenseName = (typeof POISON_DEFENSES)[number];

export interface PoisonGridOptions {
  outDir: string;
  /** Clean pre-training set (its TRAIN split), default fashion-mnist. */
  data?: string;
  limit?: number;
  arch?: Architecture;
  epochs: number;
  batchSize?: number;
  lr?: number;
  seed?: number;
  rates: number[];
  constructions: PoisonConstruction[];
  defenses: PoisonDefenseName[];
  targets?: string;
  references?: number;
  /** First N images per split of the evaluation tasks. */
  evalLimit?: number;
  probeSeeds?: number[];
  probeEpochs?: number;
  mlpEpochs?: number;
  candidates?: number;
  surrogateImages?: number;
  surrogateEpochs?: number;
  earlyStopEpoch?: number;
  dp?: ClipNoiseOptions;
  detectFraction?: number;
  finetuneEpochs?: number;
  progress?: ProgressSink;
  fresh?: boolean;
  log?: (line: string) => void;
}

const FIXED_KEYS = ['data', 'limit', 'arch', 'epochs', 'batchSize', 'lr', 'seed', 'targets', 'references', 'evalLimit', 'probeSeeds', 'probeEpochs', 'mlpEpochs', 'candidates', 'surrogateImages', 'surrogateEpochs', 'earlyStopEpoch', 'dp', 'detectFraction', 'finetuneEpochs'] as const;

/** Validates every option and fills defaults (before anything is loaded). */
const POISON_GRID_KEYS = [...FIXED_KEYS, 'outDir', 'rates', 'constructions', 'defenses', 'progress', 'fresh', 'log'];

export function resolvePoisonGrid(o: PoisonGridOptions) {
  if (o === undefined) throw new TypeError('o must be an object { outDir, epochs, rates, constructions, defenses, ... }, got undefined');
  checkOptions(o, 'o', POISON_GRID_KEYS);
  if (o.progress !== undefined) checkProgressSink(o.progress, 'o.progress');
  if (o.log !== undefined && typeof o.log !== 'function') throw new TypeError(`o.log must be a function, got ${describe(o.log)}`);
  if (o.fresh !== undefined) checkBool(o.fresh, 'o.fresh');
  for (const k of ['data', 'arch'] as const) {
    if (o[k] !== undefined && typeof o[k] !== 'string') throw new TypeError(`o.${k} must be a string, got ${describe(o[k])}`);
  }
  if (o.probeSeeds !== undefined && !Array.isArray(o.probeSeeds)) throw new TypeError(`o.probeSeeds must be an array of seeds, got ${describe(o.probeSeeds)}`);
  if (typeof o.outDir !== 'string' || o.outDir === '') throw new TypeError('outDir must be a non-empty path');
  const epochs = checkInt(o.epochs, 'epochs', { min: 1, max: 10000 });
  if (!Array.isArray(o.rates) || o.rates.length === 0) throw new RangeError('rates must list at least one poisoning rate');
  Array.from(o.rates).forEach((r, i) => checkNumber(r, `rates[${i}]`, { gt: 0, lt: 1 }));
  if (!Array.isArray(o.constructions)) throw new TypeError('constructions must be an array');
  Array.from(o.constructions).forEach((c, i) => checkOneOf(c, `constructions[${i}]`, POISON_CONSTRUCTIONS));
  if (!Array.isArray(o.defenses)) throw new TypeError('defenses must be an array');
  Array.from(o.defenses).forEach((d, i) => checkOneOf(d, `defenses[${i}]`, POISON_DEFENSES));
  const targets = o.targets ?? 'fashion-mnist:5,mnist:1';
  parseTargetSpec(targets);
  const dp = o.dp ?? { groupSize: 16, clipNorm: 1, noiseMultiplier: 0.5 };
  clippedNoisyStep(dp); // validates
  const config = {
    data: o.data ?? 'fashion-mnist',
    limit: o.limit === undefined ? null : checkInt(o.limit, 'limit', { min: 2 }),
    arch: o.arch ?? 'cnn-small',
    epochs,
    batchSize: checkInt(o.batchSize ?? 256, 'batchSize', { min: 2 }),
    lr: checkNumber(o.lr ?? 1e-3, 'lr', { gt: 0 }),
    seed: checkSeed(o.seed ?? 0),
    targets,
    references: checkInt(o.references ?? 5, 'references', { min: 1, max: 5 }),
    evalLimit: o.evalLimit === undefined ? null : checkInt(o.evalLimit, 'evalLimit', { min: 10 }),
    probeSeeds: o.probeSeeds ?? [0, 1, 2],
    probeEpochs: checkInt(o.probeEpochs ?? 100, 'probeEpochs', { min: 1 }),
    mlpEpochs: checkInt(o.mlpEpochs ?? 200, 'mlpEpochs', { min: 1 }),
    candidates: checkInt(o.candidates ?? 8, 'candidates', { min: 1, max: 1024 }),
    surrogateImages: checkInt(o.surrogateImages ?? 2000, 'surrogateImages', { min: 2 }),
    surrogateEpochs: checkInt(o.surrogateEpochs ?? 3, 'surrogateEpochs', { min: 1 }),
    earlyStopEpoch: checkInt(o.earlyStopEpoch ?? Math.max(1, Math.ceil(epochs / 2)), 'earlyStopEpoch', { min: 1, max: epochs }),
    dp,
    detectFraction: checkNumber(o.detectFraction ?? 0.05, 'detectFraction', { gt: 0, lt: 1 }),
    finetuneEpochs: checkInt(o.finetuneEpochs ?? 5, 'finetuneEpochs', { min: 1 }),
  };
  Array.from(o.probeSeeds ?? []).forEach((s, i) => checkSeed(s, `probeSeeds[${i}]`));
  return config;
}

export type PoisonGridConfig = ReturnType<typeof resolvePoisonGrid>;

export interface PoisonGridResult {
  results: PoisonResults;
  ran: number;
  skipped: number;
  files: string[];
}

export function cellKey(construction: string, rate: number, defense: string): string {
  return construction === 'clean' ? 'clean' : `${construction}@${rate}/${defense}`;
}

const fileName = (key: string) => key.replace(/[@/]/g, '_');

export async function runPoisonGrid(o: PoisonGridOptions): Promise<PoisonGridResult> {
  const cfg = resolvePoisonGrid(o);
  const log = o.log ?? (() => {});
  const progress = o.progress ?? silentProgress;
  const outDir = path.resolve(o.outDir);
  const runs = path.join(outDir, 'runs');
  const lists = { rates: [...o.rates], constructions: [...o.constructions] as string[], defenses: [...o.defenses] as string[] };

  // Data, targets and evaluation tasks (the targets' tasks).
  const full = (await loadTask(cfg.data)).train;
  const clean = cfg.limit ? takeFirst(full, cfg.limit) : full;
  const targets = await loadPoisonTargets(cfg.targets, { seed: cfg.seed, references: cfg.references });
  const taskNames = [...new Set(parseTargetSpec(cfg.targets).map((p) => p.task))];
  const evalTasks: PoisonTaskData[] = [];
  for (const name of taskNames) {
    const t = await loadTask(name, { limit: cfg.evalLimit ?? undefined });
    if (t.train.channels !== clean.channels) throw new Error(`task ${name} has ${t.train.channels}-channel images, the pre-training set ${clean.channels}`);
    evalTasks.push({ name, train: t.train, test: t.test, targets: targets.filter((x) => x.task === name) });
  }

  const grid = ExperimentGrid.open<PoisonResults>({
    outDir,
    create: () => ({ kind: POISON_RESULTS_KIND, version: 1, config: { ...cfg, ...lists }, cells: [], updatedAt: new Date().toISOString() }),
    read: readPoisonResults,
    write: writePoisonReport,
    fixedKeys: FIXED_KEYS,
    merge: (prev, cur) => {
      prev.config.rates = unionList(prev.config.rates, cur.config.rates);
      prev.config.constructions = unionList(prev.config.constructions, cur.config.constructions);
      prev.config.defenses = unionList(prev.config.defenses, cur.config.defenses);
    },
    fresh: o.fresh,
    log,
  });
  const done = (key: string) => grid.results.cells.some((c) => c.key === key);

  const measure = (encoder: Encoder): PoisonTaskFigures[] =>
    measurePoisoning(encoder, evalTasks, { probeSeeds: cfg.probeSeeds, probeEpochs: cfg.probeEpochs, mlpEpochs: cfg.mlpEpochs }).map((r, i) => ({
      task: r.task,
      ca: r.ca,
      meanAccuracy: r.meanAccuracy,
      asr: r.asr,
      hits: r.hits,
      pairs: r.pairs,
      meanShift: r.shift.reduce((s, v) => s + v, 0) / r.shift.length,
      targetClasses: evalTasks[i].targets.map((x) => x.targetClass),
      classifiers: r.classifiers,
    }));

  /** Pre-trains (or resumes, or loads the saved result of) one run of the protocol. */
  const pretrain = (key: string, data: Dataset, extra: Partial<PretrainOptions> = {}): { encoder: Encoder; seconds: number; epochs: number } => {
    const file = path.join(runs, `${fileName(key)}.safetensors`);
    if (fs.existsSync(file)) {
      const loaded = loadEncoder(file);
      const meta = loaded.config as { pretrainSeconds?: number; epochs?: number };
      return { encoder: loaded.encoder, seconds: Number(meta.pretrainSeconds ?? 0), epochs: Number(meta.epochs ?? cfg.epochs) };
    }
    log(`${key}: pre-training on ${datasetSize(data)} images, ${cfg.epochs} epochs`);
    const res = pretrainSimclr(data, {
      arch: cfg.arch as Architecture,
      epochs: cfg.epochs,
      batchSize: cfg.batchSize,
      lr: cfg.lr,
      seed: cfg.seed,
      checkpoint: path.join(runs, `${fileName(key)}.ckpt`),
      resume: true,
      progress,
      onEpochEnd: (epoch, encoder) => {
        if (epoch === cfg.earlyStopEpoch && epoch < cfg.epochs) saveEncoder(path.join(runs, `${fileName(key)}.e${epoch}.safetensors`), encoder, { epoch });
      },
      ...extra,
    });
    const seconds = res.history.reduce((s, h) => s + h.seconds, 0);
    saveEncoder(file, res.encoder, { key, pretrainSeconds: seconds, epochs: res.epochsDone });
    res.head.dispose();
    return { encoder: res.encoder, seconds, epochs: res.epochsDone };
  };

  const cell = (key: string, construction: string, rate: number, defense: string, rest: Omit<PoisonCellResult, 'key' | 'construction' | 'rate' | 'defense'>): PoisonCellResult => ({ key, construction, rate, defense, ...rest });

  // The clean reference.
  await grid.run('clean', done('clean'), async () => {
    const run = pretrain('clean', clean);
    grid.results.cells.push(cell('clean', 'clean', 0, 'none', { tasks: measure(run.encoder), epochs: run.epochs, pretrainSeconds: run.seconds, defenseSeconds: 0, defenseCleanImages: 0, encoderFile: path.join(runs, 'clean.safetensors') }));
    run.encoder.dispose();
  });

  // The attacker's surrogate (surrogate construction only): SimCLR on its own public images
  // (the first surrogateImages of the base's TEST split, disjoint from the pre-training set).
  let surrogate: Encoder | undefined;
  if (o.constructions.includes('surrogate')) {
    const file = path.join(runs, 'surrogate.safetensors');
    if (fs.existsSync(file)) surrogate = loadEncoder(file).encoder;
    else {
      const pub = takeFirst((await loadTask(cfg.data)).test, cfg.surrogateImages);
      log(`surrogate: pre-training on ${datasetSize(pub)} public images, ${cfg.surrogateEpochs} epochs`);
      const res = pretrainSimclr(pub, { arch: cfg.arch as Architecture, epochs: cfg.surrogateEpochs, batchSize: cfg.batchSize, lr: cfg.lr, seed: deriveSeed(cfg.seed, 0x5a), progress });
      saveEncoder(file, res.encoder, { role: 'surrogate' });
      res.head.dispose();
      surrogate = res.encoder;
    }
    surrogate.eval();
  }

  try {
    for (const construction of o.constructions) {
      for (const rate of o.rates) {
        const poisoned = makePoisonedDataset(clean, targets as PoisonTarget[], { rate, construction, seed: cfg.seed, surrogate: construction === 'surrogate' ? surrogate : undefined, candidates: construction === 'surrogate' ? cfg.candidates : undefined });
        const base = cellKey(construction, rate, 'none');
        const plain = (defense: string, measureIt: () => Omit<PoisonCellResult, 'key' | 'construction' | 'rate' | 'defense'>) =>
          grid.run(cellKey(construction, rate, defense), done(cellKey(construction, rate, defense)), async () => {
            grid.results.cells.push(cell(cellKey(construction, rate, defense), construction, rate, defense, measureIt()));
          });
        const wants = (d: PoisonDefenseName) => o.defenses.includes(d);
        // The undefended run (also the input of early-stop and fine-tuning).
        await plain('none', () => {
          const run = pretrain(base, poisoned.dataset);
          const out = { tasks: measure(run.encoder), epochs: run.epochs, pretrainSeconds: run.seconds, defenseSeconds: 0, defenseCleanImages: 0, encoderFile: path.join(runs, `${fileName(base)}.safetensors`) };
          run.encoder.dispose();
          return out;
        });
        if (wants('detect')) {
          await plain('detect', () => {
            const ref = loadEncoder(path.join(runs, 'clean.safetensors')).encoder;
            const t0 = Date.now();
            const det = detectSplicedImages(ref, poisoned.dataset, { dropFraction: cfg.detectFraction });
            const seconds = (Date.now() - t0) / 1000;
            ref.dispose();
            const counts = detectionCounts(det.drop, poisoned.manifest.poisonIndices, datasetSize(poisoned.dataset));
            const run = pretrain(cellKey(construction, rate, 'detect'), withoutImages(poisoned.dataset, det.drop).dataset);
            const out = { tasks: measure(run.encoder), epochs: run.epochs, pretrainSeconds: run.seconds, defenseSeconds: seconds, defenseCleanImages: 0, detection: { ...counts, threshold: det.threshold }, note: 'reference encoder: the clean run' };
            run.encoder.dispose();
            return out;
          });
        }
        if (wants('early-stop')) {
          await plain('early-stop', () => {
            const snap = path.join(runs, `${fileName(base)}.e${cfg.earlyStopEpoch}.safetensors`);
            const file = cfg.earlyStopEpoch < cfg.epochs ? snap : path.join(runs, `${fileName(base)}.safetensors`);
            if (!fs.existsSync(file)) throw new Error(`${file} is missing: the undefended run's snapshot at epoch ${cfg.earlyStopEpoch} (delete runs/${fileName(base)}.* to retrain it)`);
            const enc = loadEncoder(file).encoder;
            const out = { tasks: measure(enc), epochs: cfg.earlyStopEpoch, pretrainSeconds: 0, defenseSeconds: 0, defenseCleanImages: 0, note: `snapshot of ${base} after epoch ${cfg.earlyStopEpoch}` };
            enc.dispose();
            return out;
          });
        }
        for (const [d, step] of [
          ['dp', () => clippedNoisyStep(cfg.dp)],
          ['local-crop', () => croppedStep({ localised: true })],
        ] as const) {
          if (!wants(d)) continue;
          await plain(d, () => {
            const run = pretrain(cellKey(construction, rate, d), poisoned.dataset, { step: step() });
            const out = { tasks: measure(run.encoder), epochs: run.epochs, pretrainSeconds: run.seconds, defenseSeconds: 0, defenseCleanImages: 0 };
            run.encoder.dispose();
            return out;
          });
        }
        for (const [d, fraction] of [
          ['finetune-1', 0.01],
          ['finetune-10', 0.1],
        ] as const) {
          if (!wants(d)) continue;
          await plain(d, () => {
            const poisonedEnc = loadEncoder(path.join(runs, `${fileName(base)}.safetensors`)).encoder;
            const t0 = Date.now();
            const ft = finetuneOnClean(poisonedEnc, clean, { fraction, epochs: cfg.finetuneEpochs, batchSize: Math.min(cfg.batchSize, Math.max(2, Math.round(fraction * datasetSize(clean)))), lr: cfg.lr, seed: deriveSeed(cfg.seed, 0xf7), progress });
            const seconds = (Date.now() - t0) / 1000;
            poisonedEnc.dispose();
            ft.head.dispose();
            const out = { tasks: measure(ft.encoder), epochs: cfg.epochs, pretrainSeconds: 0, defenseSeconds: seconds, defenseCleanImages: ft.cleanImages, note: `${cfg.finetuneEpochs} SimCLR epochs on ${ft.cleanImages} clean images` };
            ft.encoder.dispose();
            return out;
          });
        }
      }
    }
  } finally {
    surrogate?.dispose();
  }
  return { results: grid.results, ran: grid.ran, skipped: grid.skipped, files: grid.files };
}
