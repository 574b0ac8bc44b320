// Issue #19, sections 2 and 4, in lib/io: an impossible output path is an
// error within a second (it used to spin forever in mkdirSync); encsec's
// files carry a SHA-256 over every byte, so that every single-bit flip in the
// header or the data is refused; files from elsewhere load unverified; a save
// killed with SIGKILL leaves a temporary that the next save or load removes.
import t from 'tap';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { Tensor, tidy } from '../../lib/core/tensor';
import { createEncoder } from '../../lib/nn/encoders';
import { loadEncoder, saveEncoder } from '../../lib/io/checkpoint';
import { DIGEST_KEY, INTEGRITY_KEY, loadSafetensors, parseSafetensors, saveSafetensors, serializeSafetensors } from '../../lib/io/safetensors';
import { removeStaleTemporaries, writeFileAtomic } from '../../lib/io/atomic';
import { rng } from '../helpers';
import { runWithDeadline } from '../fuzz/deadline';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'encsec-integrity-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));

const FIXTURE = path.join(__dirname, '..', 'fixtures', 'tiny.safetensors');
const temporaries = (dir: string, name: string) => fs.readdirSync(dir).filter((f) => f.startsWith(`.${name}.tmp-`));

t.test('an impossible or unwritable path is an Error naming it, within a second', async (t) => {
  const r = await runWithDeadline(
    `
    const { Tensor } = lib('lib/core/tensor');
    const { saveSafetensors } = lib('lib/io/safetensors');
    const { saveEncoder } = lib('lib/io/checkpoint');
    const { createEncoder } = lib('lib/nn/encoders');
    const enc = createEncoder('cnn-small', { seed: 0 });
    const m = new Map([['a', Tensor.zeros([2])]]);
    const out = [];
    ready();
    const attempt = (what, fn) => { try { fn(); out.push({ what, ok: true }); } catch (e) { out.push({ what, name: e.name, message: e.message }); } };
    attempt('saveSafetensors /proc', () => saveSafetensors('/proc/self/x/y.st', m));
    attempt('saveEncoder /proc', () => saveEncoder('/proc/self/x/y/enc.safetensors', enc));
    attempt('saveSafetensors under a file', () => saveSafetensors(${JSON.stringify(path.join(FIXTURE, 'sub', 'f.st'))}, m));
    done(out);
    `,
    1000,
  );
  t.notOk(r.timedOut, `returned within the deadline (${r.elapsedMs} ms after loading)`);
  const out = r.value as { what: string; name?: string; message?: string; ok?: boolean }[];
  t.equal(out?.length, 3, r.stderr.slice(0, 2000));
  t.match(out?.[0], { name: 'Error', message: /^cannot write \/proc\/self\/x\/y\.st: cannot create folder \/proc\/self\/x \(ENOENT/ });
  t.match(out?.[1], { name: 'Error', message: /^cannot write \/proc\/self\/x\/y\/enc\.safetensors: cannot create folder \/proc\/self\/x / });
  t.match(out?.[2], { name: 'Error', message: /^cannot write .*tiny\.safetensors\/sub\/f\.st: .*tiny\.safetensors exists and is not a folder/ });
  // In-process: the same errors, and a target that is a folder.
  t.throws(() => writeFileAtomic(tmp, 'x'), { message: new RegExp(`cannot write ${tmp}: it is a folder`) });
  t.throws(() => saveSafetensors('a\0b', new Map()), { name: 'TypeError', message: /file must not contain NUL characters/ });
  t.throws(() => saveSafetensors(5 as never, new Map()), { name: 'TypeError', message: /file must be a non-empty path, got 5/ });
});

t.test('metadata that cannot be stored is refused by name', async (t) => {
  const enc = createEncoder('cnn-small', { seed: 0 });
  const file = path.join(tmp, 'meta.safetensors');
  t.throws(() => saveEncoder(file, enc, { epochs: 10n } as never), { name: 'TypeError', message: /extra cannot be stored as JSON: Do not know how to serialize a BigInt/ });
  t.throws(() => saveEncoder(file, enc, null as never), { name: 'TypeError', message: /extra must be an object, got null/ });
  t.throws(() => saveEncoder(file, {} as never), { name: 'TypeError', message: /encoder must be an Encoder, got an object/ });
  t.throws(() => saveSafetensors(file, new Map(), { a: 1n } as never), { name: 'TypeError', message: /metadata\.a must be a string, got a bigint/ });
  t.throws(() => saveSafetensors(file, new Map(), { [DIGEST_KEY]: 'x' }), { name: 'RangeError', message: /metadata\.encsec\.sha256 is reserved/ });
  t.throws(() => saveSafetensors(file, new Map([['w', { shape: [1] } as never]])), { name: 'TypeError', message: /tensors\.get\("w"\) must be a Tensor, got an object/ });
  t.notOk(fs.existsSync(file), 'nothing was written');
  enc.dispose();
});

t.test('100% of single-bit flips in the header and in the data of an encoder file are refused', async (t) => {
  const enc = createEncoder('cnn-small', { seed: 3 });
  const file = path.join(tmp, 'enc.safetensors');
  saveEncoder(file, enc, { note: 'flip me' });
  const buf = fs.readFileSync(file);
  const headerEnd = 8 + Number(buf.readBigUInt64LE(0));
  const loaded = loadEncoder(file);
  t.equal(loaded.verified, true, 'an intact encsec file loads verified');
  t.same(loaded.config, { note: 'flip me' });
  t.notOk(DIGEST_KEY in loaded.metadata || INTEGRITY_KEY in loaded.metadata, 'the integrity keys are not part of the returned metadata');
  loaded.encoder.dispose();

  const r = rng(19);
  const trial = (lo: number, hi: number) => {
    const pos = lo + Math.floor(r() * (hi - lo));
    const bit = Math.floor(r() * 8);
    const copy = Buffer.from(buf);
    copy[pos] ^= 1 << bit;
    try {
      parseSafetensors(copy, 'flipped.safetensors');
      return { pos, bit, refused: false, message: '' };
    } catch (e) {
      return { pos, bit, refused: /invalid safetensors file flipped\.safetensors: /.test((e as Error).message), message: (e as Error).message };
    }
  };
  const N = 150;
  const header = Array.from({ length: N }, () => trial(0, headerEnd));
  const data = Array.from({ length: N }, () => trial(headerEnd, buf.length));
  const missed = [...header, ...data].filter((x) => !x.refused);
  t.equal(missed.length, 0, `all ${2 * N} flips refused (header ${headerEnd} bytes, data ${buf.length - headerEnd} bytes)`, { missed: missed.slice(0, 5) });
  t.ok(data.every((x) => /SHA-256 mismatch/.test(x.message)), 'a flip in the data is caught by the digest');
  // Every bit of the metadata block (the digest, its key, the marker) too, exhaustively.
  const metaStart = buf.indexOf('"__metadata__"');
  const metaEnd = buf.indexOf('}', metaStart);
  let metaMissed = 0;
  for (let pos = metaStart; pos <= metaEnd; pos++) {
    for (let bit = 0; bit < 8; bit++) {
      const copy = Buffer.from(buf);
      copy[pos] ^= 1 << bit;
      try {
        parseSafetensors(copy, 'm');
        metaMissed++;
      } catch {
        // refused
      }
    }
  }
  t.equal(metaMissed, 0, `every one of the ${(metaEnd - metaStart + 1) * 8} single-bit flips of the metadata block is refused`);
  // A few flips through the real loader, from disk.
  for (const x of [header[0], data[0]]) {
    const copy = Buffer.from(buf);
    copy[x.pos] ^= 1 << x.bit;
    const f = path.join(tmp, 'flipped.safetensors');
    fs.writeFileSync(f, copy);
    t.throws(() => loadEncoder(f), { message: /flipped\.safetensors/ }, `loadEncoder refuses the flip at byte ${x.pos}`);
  }
  enc.dispose();
});

t.test('two same-size tensors with swapped offsets are refused', async (t) => {
  const enc = createEncoder('cnn-small', { seed: 4 });
  const file = path.join(tmp, 'swap.safetensors');
  saveEncoder(file, enc);
  const buf = fs.readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.toString('utf8', 8, 8 + n)) as Record<string, { data_offsets: [number, number] }>;
  const a = 'net.0.bn.running_mean';
  const b = 'net.0.bn.running_var';
  const text = buf.toString('utf8', 8, 8 + n);
  const oa = JSON.stringify(header[a].data_offsets);
  const ob = JSON.stringify(header[b].data_offsets);
  t.equal(header[a].data_offsets[1] - header[a].data_offsets[0], header[b].data_offsets[1] - header[b].data_offsets[0], 'same size');
  const swapped = text.replace(`"${a}":{"dtype":"F32","shape":[32],"data_offsets":${oa}}`, `"${a}":{"dtype":"F32","shape":[32],"data_offsets":${ob}}`)
    .replace(`"${b}":{"dtype":"F32","shape":[32],"data_offsets":${ob}}`, `"${b}":{"dtype":"F32","shape":[32],"data_offsets":${oa}}`);
  t.not(swapped, text, 'the offsets were swapped');
  t.equal(Buffer.byteLength(swapped), n, 'same header length');
  const copy = Buffer.from(buf);
  copy.write(swapped, 8, 'utf8');
  t.throws(() => parseSafetensors(copy, 'swapped'), { message: /swapped: SHA-256 mismatch/ });
  enc.dispose();
});

t.test('files without a digest (from elsewhere, or an older encsec) load with verified: false', async (t) => {
  const fixture = loadSafetensors(FIXTURE);
  t.equal(fixture.verified, false, 'a file written by another tool: unverified');
  for (const x of fixture.tensors.values()) x.dispose();
  // An encoder file as encsec wrote it before digests: same bytes, no integrity keys.
  const enc = createEncoder('cnn-small', { seed: 5 });
  const state = enc.stateDict();
  const host = new Map([...state].map(([k, v]) => [k, { shape: v.shape, data: v.toArray() }]));
  const old = path.join(tmp, 'old.safetensors');
  fs.writeFileSync(old, Buffer.concat(serializeSafetensors(host, { format: 'encsec-encoder', arch: 'cnn-small', inChannels: '1', config: '{}' }, { digest: false })));
  const l = loadEncoder(old);
  t.equal(l.verified, false, 'an encoder file without a digest loads, unverified');
  l.encoder.dispose();
  // A marker without a digest is not a foreign file: it is a damaged one.
  const build = (meta: Record<string, string>) => {
    let h = Buffer.from(JSON.stringify({ __metadata__: meta, w: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }));
    h = Buffer.concat([h, Buffer.alloc((8 - (h.length % 8)) % 8, 0x20)]);
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(h.length));
    return Buffer.concat([len, h, Buffer.from(Float32Array.of(1).buffer)]);
  };
  t.throws(() => parseSafetensors(build({ [INTEGRITY_KEY]: 'sha256-v1' }), 'marker-only'), { message: /marker-only: the file is marked as carrying an encsec digest .* but has no encsec\.sha256/ });
  t.throws(() => parseSafetensors(build({ [DIGEST_KEY]: '0'.repeat(64) }), 'digest-only'), { message: /digest-only: unknown digest scheme null/ });
  t.throws(() => parseSafetensors(build({ [DIGEST_KEY]: 'xyz', [INTEGRITY_KEY]: 'sha256-v1' }), 'short'), { message: /short: encsec\.sha256 is not 64 hex digits/ });
  t.equal(parseSafetensors(build({ other: 'x' }), 'plain').verified, false, 'no integrity keys: unverified');
  enc.dispose();
});

t.test('a save killed with SIGKILL leaves a temporary that the next save (or load) removes', async (t) => {
  const target = path.join(tmp, 'killed.safetensors');
  // The child saves; just before the temporary is flushed it says so and blocks; then it is killed.
  const root = path.join(__dirname, '..', '..');
  const script = `
    const fs = require('node:fs');
    const path = require('node:path');
    const { Tensor } = require(path.join(${JSON.stringify(root)}, 'lib/core/tensor'));
    const { saveSafetensors } = require(path.join(${JSON.stringify(root)}, 'lib/io/safetensors'));
    const realFsync = fs.fsyncSync;
    fs.fsyncSync = (fd) => {
      fs.writeSync(1, 'WRITING\\n');
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);  // blocks until killed
      realFsync(fd);
    };
    require('node:module').syncBuiltinESMExports();
    saveSafetensors(${JSON.stringify(target)}, new Map([['w', Tensor.ones([1 << 18])]]));
    fs.writeSync(1, 'SAVED\\n');
  `;
  const killedPid = await new Promise<number>((resolve, reject) => {
    const child = spawn(process.execPath, ['-r', path.join(root, 'test', 'fuzz', 'ts-require.cjs'), '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c) => {
      out += c;
      if (out.includes('WRITING')) child.kill('SIGKILL');
    });
    child.stderr.on('data', (c) => (err += c));
    child.on('close', (code, signal) => (signal === 'SIGKILL' && out.includes('WRITING') ? resolve(child.pid!) : reject(new Error(`child ended with ${code ?? signal}: ${out} ${err}`))));
  });
  const left = temporaries(tmp, 'killed.safetensors');
  t.equal(left.length, 1, 'the killed save left its temporary');
  t.match(left[0], new RegExp(`^\\.killed\\.safetensors\\.tmp-${killedPid}-[0-9a-f]+$`), 'named .<name>.tmp-<pid>-<random>');
  t.ok(fs.statSync(path.join(tmp, left[0])).size > 1 << 20, 'with the data written before the kill (1 MiB)');
  t.notOk(fs.existsSync(target), 'and no target');

  // A temporary of a live process (this one) is not touched; one of a dead process is.
  const live = path.join(tmp, `.killed.safetensors.tmp-${process.pid}-abcdef`);
  fs.writeFileSync(live, 'in progress');
  tidy(() => saveSafetensors(target, new Map([['w', Tensor.ones([4])]])));
  t.same(temporaries(tmp, 'killed.safetensors'), [path.basename(live)], 'the next save removed the dead process\'s temporary, kept the live one');
  fs.rmSync(live);
  t.equal(loadSafetensors(target).verified, true, 'the new file is complete and verified');

  // The load path cleans up too.
  const stale = path.join(tmp, `.killed.safetensors.tmp-${killedPid}-0123abcd`);
  fs.writeFileSync(stale, 'left by a dead process');
  const l = loadSafetensors(target);
  for (const x of l.tensors.values()) x.dispose();
  t.same(temporaries(tmp, 'killed.safetensors'), [], 'a load removed the stale temporary');
  t.same(removeStaleTemporaries(target), [], 'nothing left to remove');
  // Temporaries named the way encsec named them before (`.<name>.<pid>.<ms>.tmp`) are cleaned too.
  const legacy = path.join(tmp, `.killed.safetensors.${killedPid}.1700000000000.tmp`);
  fs.writeFileSync(legacy, 'old style');
  t.same(removeStaleTemporaries(target), [legacy], 'a legacy temporary of a dead process is removed');
  // Names that only look similar are never touched.
  const other = path.join(tmp, '.killed.safetensors.tmp-notapid');
  fs.writeFileSync(other, 'x');
  removeStaleTemporaries(target);
  t.ok(fs.existsSync(other), 'a file that does not match the pattern is kept');
});

t.test('the digest is computed over the bytes written (independent recomputation on an encoder file)', async (t) => {
  const enc = createEncoder('cnn-small', { seed: 6 });
  const file = path.join(tmp, 'digest.safetensors');
  saveEncoder(file, enc);
  const buf = fs.readFileSync(file);
  const m = /"encsec\.sha256":"([0-9a-f]{64})"/.exec(buf.toString('latin1', 0, 8 + Number(buf.readBigUInt64LE(0))));
  t.ok(m, 'the digest is in the header');
  const at = buf.indexOf(m![1]);
  const zeroed = Buffer.from(buf);
  zeroed.fill(0x30, at, at + 64);
  t.equal(crypto.createHash('sha256').update(zeroed).digest('hex'), m![1]);
  enc.dispose();
});
