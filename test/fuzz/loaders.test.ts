// Corrupted inputs to every loader of files: training checkpoints (the
// --resume path), the service's state files, CIFAR-10 binaries and image
// folders. Each corrupted input must give an Error that names the file,
// quickly, and never a crash, a hang or a half-restored state. Seeded, so a
// failure reproduces.
import t, { type Test } from 'tap';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Tensor, tidy } from '../../lib/core/tensor';
import * as ops from '../../lib/core/ops';
import { Encoder, ProjectionHead } from '../../lib/nn/encoders';
import { Adam } from '../../lib/nn/optim';
import { loadCheckpoint, saveCheckpoint } from '../../lib/io/checkpoint';
import { serializeSafetensors } from '../../lib/io/safetensors';
import { EncoderService } from '../../lib/service/service';
import { readServiceState, writeServiceState } from '../../lib/service/state';
import { parseDefense } from '../../lib/defenses/spec';
import { loadCifar10 } from '../../lib/data/cifar';
import { loadImageFolder } from '../../lib/data/folder';
import { rng } from './harness';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'encsec-fuzz-loaders-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Single-bit flips, truncations, zeroed spans, random junk and appended bytes of `buf`. */
function corruptions(buf: Buffer, seed: number, n: number): { what: string; bytes: Buffer }[] {
  const r = rng(seed);
  const out: { what: string; bytes: Buffer }[] = [];
  for (let k = 0; k < n; k++) {
    const kind = k % 5;
    const pos = Math.floor(r() * buf.length);
    const b = Buffer.from(buf);
    if (kind === 0 || kind === 1) {
      const bit = Math.floor(r() * 8);
      b[pos] ^= 1 << bit;
      out.push({ what: `bit ${bit} of byte ${pos} flipped`, bytes: b });
    } else if (kind === 2) {
      out.push({ what: `truncated to ${pos} bytes`, bytes: b.subarray(0, pos) });
    } else if (kind === 3) {
      const len = 1 + Math.floor(r() * 64);
      b.fill(0, pos, Math.min(b.length, pos + len));
      // Zeroing bytes that were zero already changes nothing: not a corruption.
      if (!b.equals(buf)) out.push({ what: `${len} bytes zeroed at ${pos}`, bytes: b });
      else k--;
    } else {
      const junk = Buffer.from(Array.from({ length: 1 + Math.floor(r() * 16) }, () => Math.floor(r() * 256)));
      out.push({ what: `${junk.length} junk bytes appended`, bytes: Buffer.concat([b, junk]) });
    }
  }
  return out;
}

/** Runs fn on each corrupted file; every one must throw an Error whose message names the file, within 5 s. */
async function expectRefused(t: Test, file: string, cases: { what: string; bytes: Buffer }[], fn: (file: string) => unknown | Promise<unknown>): Promise<void> {
  let refused = 0;
  const slow: string[] = [];
  const accepted: string[] = [];
  const unnamed: string[] = [];
  for (const c of cases) {
    fs.writeFileSync(file, c.bytes);
    const t0 = Date.now();
    try {
      await fn(file);
      accepted.push(c.what);
    } catch (e) {
      if (e instanceof Error && e.message.includes(path.basename(file))) refused++;
      else unnamed.push(`${c.what}: ${(e as Error)?.message}`);
    }
    if (Date.now() - t0 > 5000) slow.push(c.what);
  }
  t.equal(refused, cases.length, `${cases.length} corruptions of ${path.basename(file)}: each one refused with an Error naming the file`, { accepted: accepted.slice(0, 5), unnamed: unnamed.slice(0, 5) });
  t.same(slow, [], 'none takes more than 5 s');
}

t.test('training checkpoints (--resume): corrupted files and crafted metadata', async (t) => {
  const enc = new Encoder({ arch: 'cnn-small', inChannels: 1, seed: 1 });
  const head = new ProjectionHead(128, 64, 1);
  const opt = new Adam([...enc.parameters(), ...head.parameters()], { lr: 1e-3 });
  tidy(() => {
    const x = Tensor.randn([4, 1, 8, 8], { seed: 2 });
    opt.zeroGrad();
    ops.ntXent(head.forward(enc.forward(x))).backward();
    opt.step();
  });
  const good = path.join(tmp, 'good.ckpt.safetensors');
  saveCheckpoint(good, enc, head, opt, { epoch: 3, step: 17, config: { lr: 1e-3 }, history: [{ epoch: 0, loss: 1 }] });
  const buf = fs.readFileSync(good);
  // Fresh modules to restore into: a refused checkpoint must leave them exactly as they were.
  const enc2 = new Encoder({ arch: 'cnn-small', inChannels: 1, seed: 9 });
  const head2 = new ProjectionHead(128, 64, 9);
  const opt2 = new Adam([...enc2.parameters(), ...head2.parameters()], { lr: 1e-3 });
  const snapshot = () => [...enc2.stateDict().values(), ...head2.stateDict().values()].map((x) => x.toArray().slice(0, 8).join(','));
  const before = snapshot();
  const state = loadCheckpoint(good, enc2, head2, opt2);
  t.match(state, { epoch: 3, step: 17, verified: true }, 'the intact checkpoint loads, verified');
  const enc3 = new Encoder({ arch: 'cnn-small', inChannels: 1, seed: 9 });
  const head3 = new ProjectionHead(128, 64, 9);
  const opt3 = new Adam([...enc3.parameters(), ...head3.parameters()], { lr: 1e-3 });
  const snap3 = () => [...enc3.stateDict().values(), ...head3.stateDict().values()].map((x) => x.toArray().slice(0, 8).join(','));
  const before3 = snap3();
  t.same(before3, before, 'same init for the same seed');
  await expectRefused(t, path.join(tmp, 'bad.ckpt.safetensors'), corruptions(buf, 1, 120), (f) => loadCheckpoint(f, enc3, head3, opt3));
  t.same(snap3(), before3, 'after 120 refused checkpoints the modules are unchanged');
  t.equal(opt3.steps, 0, 'and so is the optimizer');

  // Crafted files with a valid digest: the structural checks behind it.
  const tensors = new Map<string, { shape: readonly number[]; data: Float32Array }>();
  const { parseSafetensors } = await import('../../lib/io/safetensors');
  const parsed = parseSafetensors(buf, 'good');
  for (const [k, v] of parsed.tensors) tensors.set(k, { shape: v.shape, data: v.data });
  const meta = { ...parsed.metadata };
  const crafted: { what: string; bytes: Buffer }[] = [];
  const craft = (what: string, m: Record<string, string | undefined>, edit?: (x: typeof tensors) => void) => {
    const ts = new Map(tensors);
    edit?.(ts);
    const mm = { ...meta, ...m };
    for (const k of Object.keys(mm)) if (mm[k] === undefined) delete mm[k];
    crafted.push({ what, bytes: Buffer.concat(serializeSafetensors(ts, mm as Record<string, string>)) });
  };
  craft('epoch -1', { epoch: '-1' });
  craft('epoch 1e3', { epoch: '1e3' });
  craft('epoch empty', { epoch: '' });
  craft('step missing', { step: undefined });
  craft('optimizerStep huge', { optimizerStep: '99999999999999999999' });
  craft('history an object', { history: '{}' });
  craft('history not JSON', { history: '[' });
  craft('config an array', { config: '[]' });
  craft('optimizer sgd', { optimizer: 'sgd' });
  craft('optimizer missing', { optimizer: undefined });
  craft('arch resnet', { arch: 'resnet18-cifar' });
  craft('format encoder', { format: 'encsec-encoder' });
  craft('inChannels 0', { inChannels: '0' });
  craft('a head tensor missing', {}, (x) => x.delete('head.net.0.weight'));
  craft('an optimizer moment of the wrong size', {}, (x) => x.set('optim.0.m', { shape: [3], data: new Float32Array(3) }));
  craft('an unknown optimizer slot', {}, (x) => x.set('optim.999.m', { shape: [1], data: new Float32Array(1) }));
  craft('a stray tensor', {}, (x) => x.set('extra', { shape: [1], data: new Float32Array(1) }));
  craft('an encoder weight transposed', {}, (x) => x.set('encoder.net.0.conv.weight', { shape: [1, 32, 3, 3], data: new Float32Array(288) }));
  await expectRefused(t, path.join(tmp, 'crafted.ckpt.safetensors'), crafted, (f) => loadCheckpoint(f, enc3, head3, opt3));
  t.same(snap3(), before3, 'after the crafted checkpoints the modules are unchanged');
  t.equal(opt3.steps, 0, 'and so is the optimizer');
  for (const m of [enc, head, enc2, head2, enc3, head3]) m.dispose();
});

t.test('service state files: corrupted bytes and crafted bodies', async (t) => {
  const enc = new Encoder({ arch: 'cnn-small', inChannels: 1, seed: 2 }).eval();
  for (const spec of ['none', 'noise:0.05', 'b4b']) {
    const defense = spec === 'none' ? undefined : parseDefense(spec);
    const svc = new EncoderService(enc, { defaultBudget: 100, ...(defense ? { defense } : {}) });
    (await svc.embed('alice', Tensor.randn([3, 1, 28, 28], { seed: 3 }))).dispose();
    const good = path.join(tmp, `state-${spec.replace(/[^a-z0-9]/g, '')}.json`);
    svc.saveState(good);
    const buf = fs.readFileSync(good);
    t.doesNotThrow(() => svc.loadState(good), `${spec}: the intact file loads`);
    const bad = path.join(tmp, `bad-state-${spec.replace(/[^a-z0-9]/g, '')}.json`);
    await expectRefused(t, bad, corruptions(buf, 7, 60), (f) => svc.loadState(f));
    // readServiceState alone: its SHA-256 covers the header line and the state text (lib/service/state.ts),
    // so corruptions of either are refused, including a flipped bit in the header's "defense".
    await expectRefused(t, bad, corruptions(buf, 8, 60), (f) => readServiceState(f));
    const flipped = Buffer.from(buf);
    flipped[buf.indexOf('"defense":"') + 12] ^= 0x08;
    fs.writeFileSync(bad, flipped);
    t.throws(() => readServiceState(bad), /service state file/, 'a flipped bit in the header line is refused');
    // Crafted bodies with a correct checksum.
    const header = JSON.parse(buf.subarray(0, buf.indexOf(0x0a)).toString('utf8')) as { defense: string };
    const body = JSON.parse(buf.subarray(buf.indexOf(0x0a) + 1).toString('utf8')) as Record<string, unknown>;
    const crafted: { what: string; bytes: Buffer }[] = [];
    const craft = (what: string, b: unknown, defenseSpec = header.defense) => {
      writeServiceState(bad, defenseSpec, b as never);
      crafted.push({ what, bytes: fs.readFileSync(bad) });
    };
    craft('budgets null', { ...body, budgets: null });
    craft('budget -1', { ...body, budgets: { default: -1, clients: [] } });
    craft('budget 1.5', { ...body, budgets: { default: 1.5, clients: [] } });
    craft('clients not pairs', { ...body, budgets: { default: 5, clients: [[1, 2, 3]] } });
    craft('client twice', { ...body, budgets: { default: 5, clients: [['a', 1], ['a', 2]] } });
    craft('usage not an array', { ...body, usage: {} });
    craft('usage NaN-like', { ...body, usage: [['a', { used: 'x', requests: 0, refused: 0 }]] });
    craft('usage null', { ...body, usage: [['a', null]] });
    craft('defense state garbage', { ...body, defenseState: spec === 'b4b' ? { junk: true } : { unexpected: 1 } });
    craft('defense state a string', { ...body, defenseState: spec === 'b4b' ? 'AAAA' : 'x' });
    craft('another defense', body, 'topk:3');
    // (writeServiceState refuses a body that is not an object: this one is written by hand, with a valid digest.)
    {
      const text = Buffer.from('[]');
      const unsigned = JSON.stringify({ format: 'encsec-service-state', version: 2, defense: header.defense, bytes: text.length });
      const sha256 = crypto.createHash('sha256').update(unsigned + '\n').update(text).digest('hex');
      const line = JSON.stringify({ format: 'encsec-service-state', version: 2, defense: header.defense, bytes: text.length, sha256 });
      crafted.push({ what: 'body an array', bytes: Buffer.concat([Buffer.from(line + '\n'), text]) });
    }
    await expectRefused(t, bad, crafted, (f) => svc.loadState(f));
    t.equal(svc.used('alice'), 3, `${spec}: after every refused file the service still has its state`);
  }
  enc.dispose();
});

t.test('CIFAR-10 binaries: wrong sizes, labels, kinds of file', async (t) => {
  const rec = 3073;
  const r = rng(5);
  const good = Buffer.alloc(rec * 4);
  for (let i = 0; i < good.length; i++) good[i] = Math.floor(r() * 256);
  for (let k = 0; k < 4; k++) good[k * rec] = k % 10;
  const file = path.join(tmp, 'data_batch_x.bin');
  fs.writeFileSync(file, good);
  t.equal(loadCifar10(file).labels.length, 4, 'the intact file loads');
  const cases: { what: string; bytes: Buffer }[] = [
    { what: 'empty', bytes: Buffer.alloc(0) },
    { what: 'one byte short', bytes: good.subarray(0, good.length - 1) },
    { what: 'one byte more', bytes: Buffer.concat([good, Buffer.from([0])]) },
    { what: 'label 10', bytes: Buffer.from(good).fill(10, rec, rec + 1) },
    { what: 'label 255', bytes: Buffer.from(good).fill(255, 0, 1) },
    ...corruptions(good, 3, 40).filter((c) => c.bytes.length % rec !== 0),
  ];
  await expectRefused(t, file, cases, (f) => loadCifar10(f));
  // A folder with a directory where a batch file should be, and a missing batch.
  const dir = path.join(tmp, 'cifar');
  fs.mkdirSync(path.join(dir, 'data_batch_1.bin'), { recursive: true });
  for (let k = 2; k <= 5; k++) fs.writeFileSync(path.join(dir, `data_batch_${k}.bin`), good);
  t.throws(() => loadCifar10(dir), { message: /CIFAR-10 path is not a file: .*data_batch_1\.bin/ }, 'a folder in place of a batch file');
  fs.rmSync(path.join(dir, 'data_batch_1.bin'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'data_batch_1.bin'), good);
  t.equal(loadCifar10(dir).labels.length, 20, 'five intact batch files load');
  fs.rmSync(path.join(dir, 'data_batch_2.bin'));
  t.throws(() => loadCifar10(dir), { message: /CIFAR-10 file not found: .*data_batch_2\.bin/ }, 'a missing batch file is named');
  t.throws(() => loadCifar10(dir, { split: 'test' }), { message: /test_batch\.bin/ });
  t.throws(() => loadCifar10(path.join(tmp, 'nope')), { message: /CIFAR-10 location not found: .*nope/ });
});

t.test('image folders: corrupt, truncated, fake and oversized images', async (t) => {
  const sharp = (await import('sharp')).default;
  const root = path.join(tmp, 'images');
  const mk = (cls: string) => fs.mkdirSync(path.join(root, cls), { recursive: true });
  mk('a');
  mk('b');
  // Noise, so that the pixel data is most of the file (a cut lands in it).
  const r = rng(12);
  const pixels = Buffer.from(Array.from({ length: 24 * 20 * 3 }, () => Math.floor(r() * 256)));
  const png = await sharp(pixels, { raw: { width: 24, height: 20, channels: 3 } }).png().toBuffer();
  const iend = png.indexOf('IEND') - 4;
  fs.writeFileSync(path.join(root, 'a', '0.png'), png);
  fs.writeFileSync(path.join(root, 'b', '0.png'), png);
  const ds = await loadImageFolder(root, { size: 8 });
  t.equal(ds.labels.length, 2, 'the intact folder loads');
  // A PNG whose header claims 100000 x 100000 pixels (a decompression bomb): IHDR edited, CRC fixed.
  const bomb = Buffer.from(png);
  bomb.writeUInt32BE(100000, 16);
  bomb.writeUInt32BE(100000, 20);
  const { crc32 } = await import('../../lib/data/builtin');
  bomb.writeUInt32BE(crc32(bomb.subarray(12, 29)), 29);
  const victim = path.join(root, 'b', '0.png');
  const cases: { what: string; bytes: Buffer }[] = [
    { what: 'empty file', bytes: Buffer.alloc(0) },
    { what: 'text with a .png name', bytes: Buffer.from('hello, not an image') },
    { what: 'truncated PNG', bytes: png.subarray(0, 40) },
    { what: 'PNG claiming 100000x100000', bytes: bomb },
    // Cuts inside the header or the pixel data (a missing IEND chunk alone leaves a complete image, which libpng accepts).
    ...corruptions(png, 11, 30).filter((c) => c.what.startsWith('truncated') && c.bytes.length < iend - 8),
  ];
  await expectRefused(t, victim, cases, (f) => loadImageFolder(path.dirname(path.dirname(f)), { size: 8 }));
  fs.writeFileSync(victim, png);
  // A class folder with no images, and a folder with no classes.
  mk('c');
  await t.rejects(loadImageFolder(root, { size: 8 }), { message: /class folder .*c has no images/ });
  await t.rejects(loadImageFolder(path.join(root, 'c'), { size: 8 }), { message: /has no class sub-folders/ });
  await t.rejects(loadImageFolder(path.join(root, 'a', '0.png'), { size: 8 }), { message: /is not a directory/ });
});
