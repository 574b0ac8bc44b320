// `encsec watermark embed|verify|calibrate`: SSLGuard ownership watermarks.
//   embed      --encoder F --out Fw --key KEYDIR [--epochs N ...]: a fresh key, F_w, and a
//              first null model (the clean F's hits on D_v)
//   verify     --encoder E | --target URL --key KEYDIR: WR, hits, the binomial p-value and
//              the verdict (a URL: an encsec server serving the suspect, |D_v| queries with
//              the API key of $ENCSEC_API_KEY or --api-key-file)
//   calibrate  --key KEYDIR --encoders A,B,...: the null model from encoders NOT derived from F_w
import * as path from 'node:path';
import type { Command } from './command';
import { UsageError, type OptionSpecs, type ParsedArgs } from './args';
import { applyDevice, progressFrom } from './options';
import { API_KEY_ENV, API_KEY_FILE_OPTION, checkInputShape, checkRemaining, connectRemote, suspectFrom } from './remote';
import { loadEncoder, saveEncoder } from '../io/checkpoint';
import { loadSurrogate } from '../attacks/surrogate';
import { loadDataset } from '../data/builtin';
import { subset } from '../data/dataset';
import { info } from '../core/backend';
import {
  EMBED_DEFAULTS,
  calibrateNullModel,
  createKey,
  disposeKey,
  embedWatermark,
  loadKey,
  loadVerificationSet,
  saveKey,
  verifyOwnership,
  watermarkRate,
} from '../watermark/sslguard';

const OPTIONS: OptionSpecs = {
  encoder: { kind: 'string', help: 'embed: the clean encoder F; verify: the suspect encoder (encoder or stolen-encoder file; or --target URL)' },
  target: { kind: 'string', help: `verify: the URL of an encsec server serving the suspect encoder (http://HOST:PORT), instead of --encoder: |D_v| queries with the API key in $${API_KEY_ENV} or --api-key-file` },
  'api-key-file': API_KEY_FILE_OPTION,
  encoders: { kind: 'list', help: 'calibrate: encoder files NOT derived from F_w (the clean F, independently trained ones, copies stolen from F)' },
  out: { kind: 'string', help: 'embed: the watermarked encoder F_w to write' },
  key: { kind: 'string', help: 'the key folder (embed writes it; verify and calibrate read it)' },
  epochs: { kind: 'int', help: 'embed: epochs over the public data (default 3)' },
  data: { kind: 'string', help: 'embed: public data and D_v source, TRAIN split: fashion-mnist | mnist (default fashion-mnist)' },
  limit: { kind: 'int', help: 'embed: use the first N images of the split (D_v is drawn among them; the rest is the public data)' },
  'verify-size': { kind: 'int', help: 'embed: |D_v| (default 1000)' },
  batch: { kind: 'int', help: `embed: batch size (default ${EMBED_DEFAULTS.batchSize}); verify: images per query (default 250)` },
  'steps-per-epoch': { kind: 'int', help: 'embed: stop each epoch after N steps (default: a full pass)' },
  'lr-watermark': { kind: 'number', help: `embed: SGD lr of F_w (default ${EMBED_DEFAULTS.lrWatermark}; official 1e-5)` },
  'lr-shadow': { kind: 'number', help: `embed: SGD lr of the shadow S (default ${EMBED_DEFAULTS.lrShadow})` },
  'lr-decoder': { kind: 'number', help: `embed: SGD lr of the decoder D (default ${EMBED_DEFAULTS.lrDecoder}; official 1e-3)` },
  'lr-trigger': { kind: 'number', help: `embed: SGD lr of the trigger T (default ${EMBED_DEFAULTS.lrTrigger}; official 1e-3)` },
  seed: { kind: 'int', help: 'embed: seed of the key and of the embedding (default 0)' },
  checkpoint: { kind: 'string', help: 'embed: checkpoint file written after every epoch' },
  resume: { kind: 'boolean', help: 'embed: continue from --checkpoint if it exists' },
  alpha: { kind: 'number', help: 'verify: verdict "watermarked" when p < alpha (default: the key\'s, 1e-6)' },
  device: { kind: 'string', help: 'cpu | cuda (default: the backend in use)' },
  progress: { kind: 'string', help: 'bar | json | silent (default: bar on a terminal, else json)' },
};

const ALLOWED: Record<string, string[]> = {
  embed: ['encoder', 'out', 'key', 'epochs', 'data', 'limit', 'verify-size', 'batch', 'steps-per-epoch', 'lr-watermark', 'lr-shadow', 'lr-decoder', 'lr-trigger', 'seed', 'checkpoint', 'resume', 'device', 'progress'],
  verify: ['encoder', 'target', 'api-key-file', 'key', 'batch', 'alpha', 'device'],
  calibrate: ['encoders', 'key', 'batch', 'device'],
};

function checkSubcommand(args: ParsedArgs): 'embed' | 'verify' | 'calibrate' {
  const sub = args.positional[0];
  if (args.positional.length !== 1 || !(sub in ALLOWED)) throw new UsageError(`usage: encsec watermark embed|verify|calibrate [options] (got ${JSON.stringify(args.positional.join(' '))})`);
  for (const name of Object.keys(OPTIONS)) {
    if (args.has(name) && !ALLOWED[sub].includes(name)) throw new UsageError(`--${name} is not an option of \`watermark ${sub}\` (options: ${ALLOWED[sub].map((o) => `--${o}`).join(', ')})`);
  }
  return sub as 'embed' | 'verify' | 'calibrate';
}

function required(args: ParsedArgs, name: string): string {
  const v = args.string(name);
  if (!v) throw new UsageError(`--${name} is required`);
  return v;
}

async function embed(args: ParsedArgs, ctx: { log(line: string): void }) {
  const encFile = required(args, 'encoder');
  const out = required(args, 'out');
  const keyDir = required(args, 'key');
  const dataName = args.string('data') ?? 'fashion-mnist';
  if (dataName !== 'fashion-mnist' && dataName !== 'mnist') throw new UsageError(`--data must be fashion-mnist or mnist, got ${JSON.stringify(dataName)}`);
  const limit = args.number('limit');
  const full = loadDataset(dataName, limit === undefined ? { split: 'train' } : { split: 'train', limit });
  const { encoder: clean } = loadEncoder(encFile);
  const seed = args.number('seed') ?? 0;
  const key = createKey({ dim: clean.dim, imageShape: [full.channels, full.height, full.width], seed, data: dataName, split: 'train', verifySize: args.number('verify-size') ?? 1000, splitSize: full.labels.length });
  try {
    const inDv = new Set(key.verification.indices);
    const publicIdx = Int32Array.from({ length: full.labels.length }, (_, i) => i).filter((i) => !inDv.has(i));
    const train = subset(full, publicIdx, `${full.name} without D_v`);
    const verifyData = subset(full, key.verification.indices, `${full.name}[D_v]`);
    ctx.log(`embedding into ${path.basename(encFile)}: ${train.labels.length} public images, |D_v| = ${verifyData.labels.length}`);
    const res = embedWatermark(clean, train, verifyData, key, {
      epochs: args.number('epochs') ?? 3,
      seed,
      ...(args.has('batch') ? { batchSize: args.number('batch') } : {}),
      ...(args.has('steps-per-epoch') ? { stepsPerEpoch: args.number('steps-per-epoch') } : {}),
      ...(args.has('lr-watermark') ? { lrWatermark: args.number('lr-watermark') } : {}),
      ...(args.has('lr-shadow') ? { lrShadow: args.number('lr-shadow') } : {}),
      ...(args.has('lr-decoder') ? { lrDecoder: args.number('lr-decoder') } : {}),
      ...(args.has('lr-trigger') ? { lrTrigger: args.number('lr-trigger') } : {}),
      checkpoint: args.string('checkpoint'),
      resume: args.bool('resume'),
      progress: progressFrom(args),
    });
    try {
      // A first null model: the clean F (calibrate adds independent encoders and copies stolen from F).
      const cleanRate = await watermarkRate(clean, key, verifyData);
      key.nullModel = { hits: cleanRate.hits, trials: cleanRate.n, sources: [path.resolve(encFile)] };
      saveKey(keyDir, key);
      // The released file holds F_w's weights only: nothing of the key.
      saveEncoder(out, res.watermarked, {});
      const v = await verifyOwnership(res.watermarked, key, verifyData);
      ctx.log(`wrote ${path.resolve(out)} and the key ${path.resolve(keyDir)}`);
      return {
        out: path.resolve(out),
        key: path.resolve(keyDir),
        clean: path.resolve(encFile),
        epochs: res.config.epochs,
        config: res.config,
        seconds: res.seconds,
        resumedFrom: res.resumedFrom,
        wrWatermarked: v.wr,
        pValue: v.pValue,
        log10PValue: v.log10PValue,
        verdict: v.verdict,
        wrClean: cleanRate.wr,
        backend: info().backend,
        history: res.history,
      };
    } finally {
      res.watermarked.dispose();
    }
  } finally {
    disposeKey(key);
    clean.dispose();
  }
}

async function verify(args: ParsedArgs) {
  const keyDir = required(args, 'key');
  const suspect = suspectFrom(args);
  const alpha = args.number('alpha');
  const batchSize = args.number('batch');
  const opts = { ...(batchSize === undefined ? {} : { batchSize }), ...(alpha === undefined ? {} : { alpha }) };
  const key = loadKey(keyDir);
  try {
    if (suspect.url !== undefined) {
      // What the server serves and what the key may spend, before D_v is loaded or anything is queried.
      const target = await connectRemote(suspect.url, suspect.apiKey, 'owner');
      const n = key.verification.indices.length;
      checkInputShape(target, key.imageShape, "the key's D_v");
      if (target.health.dim !== key.dim) throw new Error(`the server at ${target.url} answers ${target.health.dim}-d embeddings, the key's decoder takes ${key.dim}-d: this key cannot verify it (nothing was queried)`);
      checkRemaining(target, n, `verification (|D_v| = ${n})`);
      const verifyData = loadVerificationSet(key);
      const t0 = Date.now();
      const v = await verifyOwnership(target.remote, key, verifyData, { ...opts, clientId: 'owner' });
      return { target: target.url, keyId: target.key.keyId, defense: target.remote.describe().defense, key: path.resolve(keyDir), ...v, seconds: (Date.now() - t0) / 1000 };
    }
    const verifyData = loadVerificationSet(key);
    const { surrogate } = loadSurrogate(suspect.file);
    try {
      const t0 = Date.now();
      const v = await verifyOwnership(surrogate, key, verifyData, opts);
      return { encoder: path.resolve(suspect.file), key: path.resolve(keyDir), ...v, seconds: (Date.now() - t0) / 1000 };
    } finally {
      surrogate.dispose();
    }
  } finally {
    disposeKey(key);
  }
}

export const watermarkCommand: Command = {
  summary: 'SSLGuard: embed an ownership watermark (embed), verify a suspect encoder or server (verify), set the null model (calibrate)',
  options: OPTIONS,
  async run(args, ctx) {
    const sub = checkSubcommand(args);
    applyDevice(args);
    if (sub === 'embed') return embed(args, ctx);
    if (sub === 'verify') return verify(args);
    const keyDir = required(args, 'key');
    const key = loadKey(keyDir);
    try {
      const verifyData = loadVerificationSet(key);
      const batchSize = args.number('batch');
      const opts = batchSize === undefined ? {} : { batchSize };
      const files = args.list('encoders');
      if (!files || files.length === 0) throw new UsageError('--encoders FILE,FILE,... is required');
      const loaded = files.map((f) => ({ name: path.resolve(f), source: loadSurrogate(f).surrogate }));
      try {
        const nm = await calibrateNullModel(loaded, key, verifyData, opts);
        key.nullModel = { hits: nm.hits, trials: nm.trials, sources: nm.sources };
        saveKey(keyDir, key);
        return { key: path.resolve(keyDir), nullHits: nm.hits, nullTrials: nm.trials, rates: nm.rates };
      } finally {
        for (const l of loaded) l.source.dispose();
      }
    } finally {
      disposeKey(key);
    }
  },
};
