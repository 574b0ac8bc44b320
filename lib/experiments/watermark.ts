// The SSLGuard robustness experiment: one table, a row per encoder, each with
// WR on D_v, the binomial p-value and the verdict, and its linear-probe
// accuracies. Rows (each a resumable cell of an ExperimentGrid):
//   null rows (NOT derived from F_w; their pooled hits are the null model):
//     the clean F; independently pre-trained encoders (other seeds); copies
//     stolen from the clean F (each method x budget)
//   derived rows: F_w; copies stolen from F_w (each method x budget); F_w
//     stolen through defended services; F_w pruned; F_w fine-tuned with
//     SimCLR; F_w behind output noise; F_w under Gaussian input noise; F_w
//     overwritten by a second watermark (verified with the FIRST key)
// Verdicts are computed from the null rows present when the report is
// written (null rows run first), so a resumed grid always reports them
// against the full null model.
//
// Artefacts in --out-dir: key/ (the key), runs/fw.safetensors (F_w),
// runs/embed-checkpoint.safetensors (the embedding, resumable per epoch),
// runs/indep-<seed>.safetensors, runs/overwrite-key/.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Tensor, keep, noGrad } from '../core/tensor';
import * as ops from '../core/ops';
import { checkInt, checkNumber, checkOptions, checkSeed } from '../core/validate';
import type { Encoder } from '../nn/encoders';
import type { Module } from '../nn/module';
import { loadDataset } from '../data/builtin';
import { subset, type Dataset } from '../data/dataset';
import { loadEncoder, saveEncoder } from '../io/checkpoint';
import { FidelityEvaluator } from '../eval/fidelity';
import { EncoderService } from '../service/service';
import { EncoderSource, type EmbeddingSource, type QueryImages, toQueryRequest } from '../service/source';
import { parseDefense } from '../defenses/spec';
import { calibrateDefense } from '../defenses/calibrate';
import { STEAL_METHODS, type StealMethod } from '../attacks/losses';
import { magnitudePrune, simclrFinetune } from '../attacks/tamper';
import { pretrainSimclr } from '../ssl/simclr';
import { createKey, disposeKey, loadKey, loadVerificationSet, saveKey, type SslGuardKey } from '../watermark/sslguard/key';
import { embedWatermark, type EmbedConfig } from '../watermark/sslguard/embed';
import { watermarkRate } from '../watermark/sslguard/verify';
import { silentProgress, type ProgressSink } from '../report/progress';
import { pct } from '../report/table';
import { WATERMARK_RESULTS_KIND, readWatermarkResults, writeWatermarkReport, type WatermarkResults, type WatermarkRow } from '../report/watermark';
import { ExperimentGrid } from './grid';
import { DEFAULT_EVAL_TASKS, loadEvalTasks, loadQueryData, loadTarget } from './setup';
import { runStealCell } from './steal-cell';


export interface WatermarkGridOptions {
  target: string;
  outDir: string;
  /** Embedding: epochs over the public data and the embedding settings. */
  embedEpochs: number;
  embed?: Partial<Omit<EmbedConfig, 'epochs' | 'seed'>>;
  /** First N images of the fashion-mnist TRAIN split for D_v and the embedding's public data (default all). */
  embedLimit?: number;
  verifySize?: number;
  seed?: number;
  alpha?: number;
  /** Independently pre-trained encoders: their seeds, epochs and data limit. */
  independentSeeds?: number[];
  pretrainEpochs?: number;
  pretrainLimit?: number;
  /** Stealing: methods x budgets from F and from F_w, through the service. */
  methods?: StealMethod[];
  budgets?: number[];
  queryData?: string;
  stealEpochs?: number;
  /** Defended services F_w is stolen through (with `defendedMethod` at the largest budget). */
  defenses?: string[];
  defendedMethod?: StealMethod;
  pruneFractions?: number[];
  finetuneEpochs?: number;
  finetuneData?: string;
  finetuneLimit?: number;
  outputNoise?: number[];
  inputNoise?: number[];
  overwrite?: boolean;
  evalTasks?: string[];
  evalLimit?: number;
  probeEpochs?: number;
  progress?: ProgressSink;
  log?: (line: string) => void;
  fresh?: boolean;
}

const OPTION_KEYS = [
  'target', 'outDir', 'embedEpochs', 'embed', 'embedLimit', 'verifySize', 'seed', 'alpha', 'independentSeeds', 'pretrainEpochs', 'pretrainLimit',
  'methods', 'budgets', 'queryData', 'stealEpochs', 'defenses', 'defendedMethod', 'pruneFractions', 'finetuneEpochs', 'finetuneData', 'finetuneLimit',
  'outputNoise', 'inputNoise', 'overwrite', 'evalTasks', 'evalLimit', 'probeEpochs', 'progress', 'log', 'fresh',
];

/** The settings a resumed run must share (the rows would not be comparable otherwise). */
const FIXED_KEYS = ['targetSha256', 'embedEpochs', 'embed', 'embedLimit', 'verifySize', 'seed', 'pretrainEpochs', 'pretrainLimit', 'queryData', 'stealEpochs', 'defendedMethod', 'finetuneEpochs', 'finetuneData', 'finetuneLimit', 'evalTasks', 'evalLimit', 'probeEpochs'];

/** Gaussian noise on the suspect's INPUT: the images are perturbed before the encoder sees them (a suspect service that pre-processes). */
export class InputNoiseSource implements EmbeddingSource {
  #inner: EncoderSource;
  #calls = 0;
  constructor(encoder: Module, readonly sigma: number, readonly seed: number) {
    this.#inner = new EncoderSource(encoder);
    checkNumber(sigma, 'sigma', { min: 0 });
    checkSeed(seed);
  }
  async embed(clientId: string, images: QueryImages): Promise<Tensor> {
    const req = toQueryRequest(images);
    const { x, owned } = req.chunk(0, req.n);
    const noisy = keep(noGrad(() => ops.gaussianNoise(x, this.sigma, this.seed, (this.#calls++) * 2 ** 32)));
    if (owned) x.dispose();
    try {
      return await this.#inner.embed(clientId, noisy);
    } finally {
      noisy.dispose();
    }
  }
  describe() {
    return { kind: 'input-noise', defense: 'none' };
  }
}

export interface WatermarkGridResult {
  results: WatermarkResults;
  files: string[];
  ran: number;
  skipped: number;
}

function num(list: unknown, name: string, check: (v: unknown, n: string) => number): number[] {
  if (!Array.isArray(list)) throw new TypeError(`${name} must be an array`);
  return list.map((v, i) => check(v, `${name}[${i}]`));
}

export async function runWatermarkGrid(options: WatermarkGridOptions): Promise<WatermarkGridResult> {
  const o = checkOptions<WatermarkGridOptions>(options, 'options', OPTION_KEYS);
  const log = o.log ?? (() => {});
  const progress = o.progress ?? silentProgress;
  const embedEpochs = checkInt(o.embedEpochs, 'options.embedEpochs', { min: 1 });
  const seed = checkSeed(o.seed ?? 0, 'options.seed');
  const verifySize = checkInt(o.verifySize ?? 1000, 'options.verifySize', { min: 1 });
  const alpha = checkNumber(o.alpha ?? 1e-6, 'options.alpha', { gt: 0, lt: 1 });
  const indepSeeds = num(o.independentSeeds ?? [1, 2, 3], 'options.independentSeeds', (v, n) => checkSeed(v, n));
  const pretrainEpochs = checkInt(o.pretrainEpochs ?? 10, 'options.pretrainEpochs', { min: 1 });
  const methods = (o.methods ?? ['mse', 'stolenencoder', 'contsteal']).map((m, i) => {
    if (!(STEAL_METHODS as readonly string[]).includes(m)) throw new RangeError(`options.methods[${i}] must be one of ${STEAL_METHODS.join(', ')}, got ${JSON.stringify(m)}`);
    return m;
  });
  const budgets = num(o.budgets ?? [3000, 12000], 'options.budgets', (v, n) => checkInt(v, n, { min: 2 }));
  const defenses = (o.defenses ?? ['round:1', 'b4b:center=true,beta=30']).map((d) => String(d));
  defenses.forEach((d) => parseDefense(d)); // bad specs fail here, before any work
  const defendedMethod = o.defendedMethod ?? 'stolenencoder';
  const pruneFractions = num(o.pruneFractions ?? [0.2, 0.5], 'options.pruneFractions', (v, n) => checkNumber(v, n, { min: 0, max: 1 }));
  const finetuneEpochs = checkInt(o.finetuneEpochs ?? 5, 'options.finetuneEpochs', { min: 0 });
  const outputNoise = num(o.outputNoise ?? [0.05, 0.2], 'options.outputNoise', (v, n) => checkNumber(v, n, { gt: 0 }));
  const inputNoise = num(o.inputNoise ?? [0.1], 'options.inputNoise', (v, n) => checkNumber(v, n, { gt: 0 }));
  const evalTasks = o.evalTasks ?? [...DEFAULT_EVAL_TASKS];
  const queryName = o.queryData ?? 'fashion-mnist';
  const finetuneName = o.finetuneData ?? 'mnist';
  if (finetuneName !== 'mnist' && finetuneName !== 'fashion-mnist') throw new RangeError(`options.finetuneData must be mnist or fashion-mnist, got ${JSON.stringify(finetuneName)}`);
  const stealSettings = o.stealEpochs === undefined ? {} : { epochs: checkInt(o.stealEpochs, 'options.stealEpochs', { min: 1 }) };

  const target = loadTarget(o.target);
  const runs = path.join(o.outDir, 'runs');
  const keyDir = path.join(o.outDir, 'key');
  let key: SslGuardKey | null = null;
  let fw: Encoder | null = null;
  try {
    const F = target.encoder;
    const inC = F.config.inChannels;
    const config = {
      targetFile: target.file, targetSha256: target.sha256, embedEpochs, embed: o.embed ?? {}, embedLimit: o.embedLimit ?? null, verifySize, seed, alpha,
      pretrainEpochs, pretrainLimit: o.pretrainLimit ?? null, queryData: queryName, stealEpochs: o.stealEpochs ?? null, defendedMethod,
      finetuneEpochs, finetuneData: finetuneName, finetuneLimit: o.finetuneLimit ?? null, evalTasks, evalLimit: o.evalLimit ?? null, probeEpochs: o.probeEpochs ?? null,
    };
    const grid = ExperimentGrid.open<WatermarkResults>({
      outDir: o.outDir,
      create: () => ({ kind: WATERMARK_RESULTS_KIND, version: 1, config, cells: [], updatedAt: '' }),
      read: readWatermarkResults,
      write: writeWatermarkReport,
      fixedKeys: FIXED_KEYS,
      fresh: o.fresh,
      log,
    });
    const tasks = await loadEvalTasks(evalTasks, o.evalLimit, inC);
    const evaluator = new FidelityEvaluator(F, tasks, o.probeEpochs === undefined ? {} : { probeEpochs: o.probeEpochs });
    const accuracyOf = (e: Module) => evaluator.evaluate(e).stolenAccuracy;
    const has = (id: string) => grid.results.cells.some((c) => c.id === id);

    // The key and F_w first: every row needs them (an interrupted embedding resumes from its checkpoint).
    const full = loadDataset('fashion-mnist', o.embedLimit === undefined ? { split: 'train' } : { split: 'train', limit: o.embedLimit });
    const fwFile = path.join(runs, 'fw.safetensors');
    let embedSeconds = 0;
    if (fs.existsSync(fwFile) && fs.existsSync(path.join(keyDir, 'key.json'))) {
      key = loadKey(keyDir);
      fw = loadEncoder(fwFile).encoder;
      log(`F_w and its key found in ${o.outDir}: not embedding again`);
    } else {
      key = createKey({ dim: F.dim, imageShape: [full.channels, full.height, full.width], seed, verifySize, splitSize: full.labels.length });
      const inDv = new Set(key.verification.indices);
      const train = subset(full, Int32Array.from({ length: full.labels.length }, (_, i) => i).filter((i) => !inDv.has(i)));
      log(`embedding the watermark: ${embedEpochs} epoch(s) over ${train.labels.length} images`);
      const res = embedWatermark(F, train, subset(full, key.verification.indices), key, {
        ...o.embed, epochs: embedEpochs, seed, progress, checkpoint: path.join(runs, 'embed-checkpoint.safetensors'), resume: true,
      });
      embedSeconds = res.seconds;
      fw = res.watermarked;
      saveKey(keyDir, key);
      saveEncoder(fwFile, fw, {});
    }
    const dv = loadVerificationSet(key);
    const K = key;
    const FW = fw;
    const measure = async (id: string, label: string, role: WatermarkRow['role'], src: Module | EmbeddingSource, accuracy: Record<string, number> | null, t0: number, note?: string) => {
      const r = await watermarkRate(src, K, dv);
      const row: WatermarkRow = { id, label, role, hits: r.hits, n: r.n, wr: r.wr, meanCos: r.meanCos, accuracy, seconds: (Date.now() - t0) / 1000, ...(note ? { note } : {}) };
      grid.results.cells.push(row);
      log(`${label}: WR ${pct(r.wr, 1)} (${r.hits}/${r.n})`);
    };
    const cell = (id: string, fn: () => Promise<void>) => grid.run(id, has(id), fn);

    // ---- null rows
    const cleanRow = () => cell('clean', async () => measure('clean', 'clean F', 'null', F, accuracyOf(F), Date.now()));
    const independentRows = async () => {
    for (const s of indepSeeds) {
      await cell(`independent:${s}`, async () => {
        const t0 = Date.now();
        const file = path.join(runs, `indep-${s}.safetensors`);
        let enc: Encoder;
        if (fs.existsSync(file)) enc = loadEncoder(file).encoder;
        else {
          const data = loadDataset('fashion-mnist', o.pretrainLimit === undefined ? { split: 'train' } : { split: 'train', limit: o.pretrainLimit });
          const res = pretrainSimclr(data, { arch: F.config.arch, epochs: pretrainEpochs, seed: s, progress });
          res.head.dispose();
          enc = res.encoder;
          saveEncoder(file, enc, { seed: s, epochs: pretrainEpochs });
        }
        try {
          await measure(`independent:${s}`, `independent SimCLR encoder, seed ${s}`, 'null', enc, accuracyOf(enc), t0);
        } finally {
          enc.dispose();
        }
      });
    }
    };
    const queryData = methods.length > 0 ? await loadQueryData(queryName, inC) : null;
    const stealRow = async (victim: Encoder, id: string, label: string, role: WatermarkRow['role'], method: StealMethod, budget: number, defense?: string) =>
      cell(id, async () => {
        const t0 = Date.now();
        let row: WatermarkRow | null = null;
        // A data-dependent defense (b4b:center=true) is calibrated by the operator on its own images first.
        const def = defense ? parseDefense(defense) : undefined;
        if (def) calibrateDefense(def, victim, queryData!);
        await runStealCell({
          target: victim,
          defense: def,
          queryData: queryData!,
          method,
          budget,
          steal: stealSettings,
          clientId: id,
          evaluator,
          progress,
          log,
          inspect: async (s) => {
            const r = await watermarkRate(s, K, dv);
            row = { id, label, role, hits: r.hits, n: r.n, wr: r.wr, meanCos: r.meanCos, accuracy: null, seconds: 0 };
          },
        }).then((outcome) => {
          row!.accuracy = outcome.fidelity.stolenAccuracy;
        });
        row!.seconds = (Date.now() - t0) / 1000;
        grid.results.cells.push(row!);
        log(`${label}: WR ${pct(row!.wr, 1)}`);
      });
    // ---- derived rows
    const fwRow = () => cell('fw', async () => measure('fw', 'F_w (watermarked)', 'derived', FW, accuracyOf(FW), Date.now() - embedSeconds * 1000, embedSeconds ? `embedding ${embedSeconds.toFixed(0)} s` : undefined));
    const qMax = budgets.length ? Math.max(...budgets) : 0;
    const stealRows = async () => {
      // Largest budget first: the acceptance rests on the Q-max copies of F_w and of F.
      for (const q of [...budgets].sort((a, b) => b - a)) {
        for (const m of methods) await stealRow(FW, `stolen-fw:${m}@${q}`, `stolen from F_w by ${m}, Q=${q}`, 'derived', m, q);
        for (const m of methods) await stealRow(F, `stolen-clean:${m}@${q}`, `stolen from F by ${m}, Q=${q}`, 'null', m, q);
      }
    };
    const defendedRows = async () => {
      if (methods.length) for (const d of defenses) await stealRow(FW, `defended:${d}`, `F_w stolen through ${d} (${defendedMethod}, Q=${qMax})`, 'derived', defendedMethod, qMax, d);
    };
    const pruneRows = async () => {
    for (const f of pruneFractions) {
      await cell(`prune:${f}`, async () => {
        const t0 = Date.now();
        const p = magnitudePrune(FW, f);
        try {
          await measure(`prune:${f}`, `F_w pruned ${pct(f, 0)}`, 'derived', p, accuracyOf(p), t0);
        } finally {
          p.dispose();
        }
      });
    }
    };
    const finetuneRow = async () => {
    if (finetuneEpochs > 0) {
      await cell(`finetune:${finetuneEpochs}`, async () => {
        const t0 = Date.now();
        const data = loadDataset(finetuneName, o.finetuneLimit === undefined ? { split: 'train' } : { split: 'train', limit: o.finetuneLimit });
        const ft = simclrFinetune(FW, data, { epochs: finetuneEpochs, seed, progress });
        try {
          await measure(`finetune:${finetuneEpochs}`, `F_w after ${finetuneEpochs} epoch(s) of SimCLR on ${finetuneName}`, 'derived', ft, accuracyOf(ft), t0);
        } finally {
          ft.dispose();
        }
      });
    }
    };
    const noiseRows = async () => {
    for (const s of outputNoise) {
      await cell(`output-noise:${s}`, async () =>
        measure(`output-noise:${s}`, `F_w with output noise σ=${s}`, 'derived', new EncoderService(FW, { defense: parseDefense(`noise:${s}`) }), null, Date.now(), 'a service: probe not measured'),
      );
    }
    for (const s of inputNoise) {
      await cell(`input-noise:${s}`, async () =>
        measure(`input-noise:${s}`, `F_w with Gaussian input noise σ=${s} (normalised units)`, 'derived', new InputNoiseSource(FW, s, seed), null, Date.now(), 'a source: probe not measured'),
      );
    }
    };
    const overwriteRow = async () => {
    if (o.overwrite ?? true) {
      await cell('overwrite', async () => {
        const t0 = Date.now();
        const second = createKey({ dim: F.dim, imageShape: K.imageShape, seed: seed + 1, verifySize, splitSize: full.labels.length });
        try {
          const inDv = new Set([...second.verification.indices, ...K.verification.indices]);
          const train = subset(full, Int32Array.from({ length: full.labels.length }, (_, i) => i).filter((i) => !inDv.has(i)));
          const res = embedWatermark(FW, train, subset(full, second.verification.indices), second, {
            ...o.embed, epochs: embedEpochs, seed: seed + 1, progress, checkpoint: path.join(runs, 'overwrite-checkpoint.safetensors'), resume: true,
          });
          saveKey(path.join(runs, 'overwrite-key'), second);
          try {
            await measure('overwrite', 'F_w overwritten by a second watermark (first key)', 'derived', res.watermarked, accuracyOf(res.watermarked), t0);
          } finally {
            res.watermarked.dispose();
          }
        } finally {
          disposeKey(second);
        }
      });
    }
    };

    // Run order: the rows the ownership decision rests on first (F_w, the clean F, the cheap transforms, the largest-budget steals),
    // the hours-long ones (independent pre-trainings, fine-tuning, defended steals, a second embedding) last; the report groups rows by role.
    await fwRow();
    await cleanRow();
    await pruneRows();
    await noiseRows();
    await stealRows();
    await independentRows();
    await finetuneRow();
    await defendedRows();
    await overwriteRow();
    grid.write();
    return { results: grid.results, files: grid.files, ran: grid.ran, skipped: grid.skipped };
  } finally {
    target.encoder.dispose();
    fw?.dispose();
    if (key) disposeKey(key);
  }
}
