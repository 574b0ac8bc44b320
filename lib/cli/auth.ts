// `encsec auth make|verify`: SSL-Auth integrity keys (lib/watermark/sslauth).
//   make    --encoder F --key KEYDIR [--data D --limit N --k K --selection R ...]:
//           select the key samples, train the generator, calibrate, write the key
//   verify  --encoder E | --target URL --key KEYDIR: verdict, PSNR, SSIM, bit agreement,
//           baseline distance, thresholds (K queries of E's raw embeddings; a URL:
//           an encsec server, with the API key of $ENCSEC_API_KEY or --api-key-file,
//           whose key's defense is read first: K queries when it answers raw
//           embeddings, none when it perturbs them)
import * as path from 'node:path';
import type { Command } from './command';
import { UsageError, type OptionSpecs, type ParsedArgs } from './args';
import { applyDevice, progressFrom } from './options';
import { API_KEY_ENV, API_KEY_FILE_OPTION, checkInputShape, checkRemaining, connectRemote, suspectFrom } from './remote';
import { loadEncoder } from '../io/checkpoint';
import { loadDataset } from '../data/builtin';
import { EncoderSource } from '../service/source';
import { AUTH_DEFAULTS, SELECTION_RULES, disposeAuthKey, loadAuthKey, makeAuthKey, saveAuthKey, verifyAuth } from '../watermark/sslauth';

const OPTIONS: OptionSpecs = {
  encoder: { kind: 'string', help: 'make: the released encoder F; verify: the suspect encoder file (or --target URL)' },
  target: { kind: 'string', help: `verify: the URL of an encsec server (http://HOST:PORT) serving the suspect encoder, instead of --encoder: K queries with the API key in $${API_KEY_ENV} or --api-key-file` },
  'api-key-file': API_KEY_FILE_OPTION,
  key: { kind: 'string', help: 'the key folder (make writes it; verify reads it)' },
  data: { kind: 'string', help: 'make: the owner\'s images, TRAIN split: fashion-mnist | mnist (default fashion-mnist)' },
  limit: { kind: 'int', help: 'make: use the first N images of the split' },
  k: { kind: 'int', help: `make: number of key samples K (default ${AUTH_DEFAULTS.keySamples})` },
  selection: { kind: 'string', help: `make: key-sample rule: ${SELECTION_RULES.join(' | ')} (default ${AUTH_DEFAULTS.selection})` },
  pool: { kind: 'int', help: `make: candidates the key samples are chosen from (default ${AUTH_DEFAULTS.pool})` },
  steps: { kind: 'int', help: `make: generator training steps (default ${AUTH_DEFAULTS.steps})` },
  'noise-rel': { kind: 'number', help: `make: modelled relative float32 noise of the calibration (default ${AUTH_DEFAULTS.noiseRel})` },
  safety: { kind: 'number', help: `make: margin factor over the calibrated noise (default ${AUTH_DEFAULTS.safety})` },
  seed: { kind: 'int', help: 'make: seed of the pool, watermark and generator (default 0)' },
  device: { kind: 'string', help: 'cpu | cuda (default: the backend in use)' },
  progress: { kind: 'string', help: 'bar | json | silent (default: bar on a terminal, else json)' },
};

const ALLOWED: Record<string, string[]> = {
  make: ['encoder', 'key', 'data', 'limit', 'k', 'selection', 'pool', 'steps', 'noise-rel', 'safety', 'seed', 'device', 'progress'],
  verify: ['encoder', 'target', 'api-key-file', 'key', 'device'],
};

function checkSubcommand(args: ParsedArgs): 'make' | 'verify' {
  const sub = args.positional[0];
  if (args.positional.length !== 1 || !(sub in ALLOWED)) throw new UsageError(`usage: encsec auth make|verify [options] (got ${JSON.stringify(args.positional.join(' '))})`);
  for (const name of Object.keys(OPTIONS)) {
    if (args.has(name) && !ALLOWED[sub].includes(name)) throw new UsageError(`--${name} is not an option of \`auth ${sub}\` (options: ${ALLOWED[sub].map((o) => `--${o}`).join(', ')})`);
  }
  return sub as 'make' | 'verify';
}

function required(args: ParsedArgs, name: string): string {
  const v = args.string(name);
  if (!v) throw new UsageError(`--${name} is required`);
  return v;
}

async function make(args: ParsedArgs, ctx: { log(line: string): void }) {
  const encFile = required(args, 'encoder');
  const keyDir = required(args, 'key');
  const dataName = args.string('data') ?? 'fashion-mnist';
  if (dataName !== 'fashion-mnist' && dataName !== 'mnist') throw new UsageError(`--data must be fashion-mnist or mnist, got ${JSON.stringify(dataName)}`);
  const selection = args.string('selection') ?? AUTH_DEFAULTS.selection;
  if (!(SELECTION_RULES as readonly string[]).includes(selection)) throw new UsageError(`--selection must be one of ${SELECTION_RULES.join(', ')}, got ${JSON.stringify(selection)}`);
  const limit = args.number('limit');
  const data = loadDataset(dataName, limit === undefined ? { split: 'train' } : { split: 'train', limit });
  const { encoder } = loadEncoder(encFile);
  try {
    const opts: Record<string, unknown> = { selection };
    const map: [string, string][] = [['k', 'keySamples'], ['pool', 'pool'], ['steps', 'steps'], ['noise-rel', 'noiseRel'], ['safety', 'safety'], ['seed', 'seed']];
    for (const [flag, key] of map) if (args.number(flag) !== undefined) opts[key] = args.number(flag);
    const key = await makeAuthKey(encoder, data, { ...opts, progress: progressFrom(args) });
    try {
      const files = saveAuthKey(keyDir, key);
      ctx.log(`wrote ${files.join(', ')}`);
      return {
        key: path.resolve(keyDir),
        encoder: path.resolve(encFile),
        keySamples: key.sampleShape[0],
        selection: key.selection.rule,
        data: data.name,
        thresholds: key.thresholds,
        authentic: key.calibration.authentic,
        calibration: key.calibration,
      };
    } finally {
      disposeAuthKey(key);
    }
  } finally {
    encoder.dispose();
  }
}

async function verify(args: ParsedArgs) {
  const keyDir = required(args, 'key');
  const suspect = suspectFrom(args);
  const key = loadAuthKey(keyDir);
  try {
    if (suspect.url !== undefined) {
      // The key's defense first (no images, nothing charged): verifyAuth then
      // knows whether the answers are raw (K queries) or perturbed (none).
      const target = await connectRemote(suspect.url, suspect.apiKey, 'sslauth-verifier');
      const [K, C, H, W] = key.sampleShape;
      checkInputShape(target, [C, H, W], "the key's samples");
      if (target.key.defense === 'none') checkRemaining(target, K, `verification (K = ${K})`);
      const r = await verifyAuth(target.remote, key, { clientId: 'sslauth-verifier' });
      return { target: target.url, keyId: target.key.keyId, key: path.resolve(keyDir), ...r };
    }
    const { encoder } = loadEncoder(suspect.file);
    try {
      const r = await verifyAuth(new EncoderSource(encoder), key);
      return { encoder: path.resolve(suspect.file), key: path.resolve(keyDir), ...r };
    } finally {
      encoder.dispose();
    }
  } finally {
    disposeAuthKey(key);
  }
}

export const authCommand: Command = {
  summary: 'SSL-Auth: make an integrity key for an encoder, or verify that an encoder is the released one',
  options: OPTIONS,
  async run(args, ctx) {
    const sub = checkSubcommand(args);
    applyDevice(args);
    return sub === 'make' ? make(args, ctx) : verify(args);
  },
};
