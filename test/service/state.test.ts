// Saving and restoring the service's state (budgets, usage, the defense's
// per-client state): a restored service answers exactly as the original
// would have; a truncated, corrupted, mismatched or otherwise invalid file is
// an Error naming the file and the problem, and changes nothing.
import t from 'tap';
import * as crypto from 'node:crypto';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Tensor } from '../../lib/core/tensor';
import { createEncoder } from '../../lib/nn/encoders';
import { EncoderService } from '../../lib/service/service';
import { parseDefense } from '../../lib/defenses/spec';
import { readServiceState, writeServiceState } from '../../lib/service/state';
import { B4bDefense } from '../../lib/defenses/b4b';
import { sameValues } from '../helpers';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'encsec-state-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));
const encoder = createEncoder('cnn-small', { seed: 3 }).eval();
t.teardown(() => encoder.dispose());
const images = (n: number, seed: number) => Tensor.randn([n, 1, 8, 8], { seed });

async function answer(svc: EncoderService, client: string, x: Tensor): Promise<Float32Array> {
  const y = await svc.embed(client, x);
  const a = y.toArray();
  y.dispose();
  return a;
}

/** A service with some history: two clients, budgets, defense state. */
async function busyService(spec: string): Promise<EncoderService> {
  const svc = new EncoderService(encoder, { defense: parseDefense(spec), defaultBudget: 500, budgets: { alice: 300, unlimited: Infinity } });
  for (let i = 0; i < 3; i++) await answer(svc, 'alice', images(40, i));
  await answer(svc, 'bob', images(25, 9));
  // A refused request: counted in the usage's `refused`.
  try {
    svc.embedSync('bob', images(480, 10));
  } catch {
    /* refused, as intended */
  }
  if (svc.usage().bob.refused !== 1) throw new Error('the request should have been refused');
  return svc;
}

for (const spec of ['b4b:beta=2,alpha=0.5', 'topk:16+noise:0.1', 'b4b:rotate=true,beta=3+round:3']) {
  t.test(`round trip (${spec}): state and later answers identical`, async (t) => {
    const file = path.join(tmp, `state-${spec.replace(/[^a-z0-9]/gi, '_')}.bin`);
    const a = await busyService(spec);
    a.saveState(file);
    const b = new EncoderService(encoder, { defense: parseDefense(spec) });
    b.loadState(file);
    t.same(b.usage(), a.usage(), 'usage and budgets restored');
    t.equal(b.defaultBudget, 500);
    t.equal(b.budgetOf('unlimited'), Infinity, 'an unlimited budget survives JSON');
    t.same(b.clientStats('alice'), a.clientStats('alice'), "the defense's per-client numbers restored");
    const x = images(30, 42);
    const fromA = await answer(a, 'alice', x);
    const fromB = await answer(b, 'alice', x);
    t.ok(sameValues(fromB, fromA), 'the restored service answers exactly as the original');
    const fresh = new EncoderService(encoder, { defense: parseDefense(spec) });
    for (let i = 0; i < 3; i++) await answer(fresh, 'alice', images(40, i));
    const replay = await answer(fresh, 'alice', x);
    t.ok(sameValues(replay, fromA), 'and as a service that saw the same history');
    const cold = await answer(new EncoderService(encoder, { defense: parseDefense(spec) }), 'alice', x);
    t.notOk(sameValues(cold, fromA), 'a service without the state answers differently (it matters)');
    t.equal(b.used('alice'), 150);
    t.throws(() => b.embedSync('alice', images(151, 1)), /budget/, 'the spent budget still counts after the restart');
  });
}

t.test('b4b state: coverage bitsets and the calibrated centre survive', async (t) => {
  const file = path.join(tmp, 'b4b-center.bin');
  const spec = 'b4b:center=true,beta=5';
  const d1 = parseDefense(spec) as B4bDefense;
  d1.calibrate(Tensor.rand([64, 128], { seed: 1 }));
  const a = new EncoderService(encoder, { defense: d1 });
  await answer(a, 'eve', images(100, 3));
  a.saveState(file);
  const d2 = parseDefense(spec) as B4bDefense;
  const b = new EncoderService(encoder, { defense: d2 });
  b.loadState(file);
  t.notOk(d2.needsCalibration, 'the centre came with the state');
  t.ok(sameValues(d2.center!, d1.center!));
  t.equal(d2.coverageOf('eve'), d1.coverageOf('eve'));
  t.ok(d2.coverageOf('eve') > 0);
  const x = images(20, 4);
  t.ok(sameValues(await answer(b, 'eve', x), await answer(a, 'eve', x)), 'identical answers');
  const { header, body } = readServiceState(file);
  t.equal(header.format, 'encsec-service-state');
  t.equal(header.version, 2);
  t.equal(header.defense, 'b4b:beta=5,center=true');
  t.ok(Array.isArray(body.usage));
});

t.test('a bad state file is a clear error and changes nothing', async (t) => {
  const spec = 'noise:0.2';
  const good = path.join(tmp, 'good.bin');
  const a = await busyService(spec);
  a.saveState(good);
  const bytes = fs.readFileSync(good);
  const nl = bytes.indexOf(0x0a);
  const header = JSON.parse(bytes.subarray(0, nl).toString());
  const variant = (name: string, data: Buffer | string) => {
    const f = path.join(tmp, name);
    fs.writeFileSync(f, data);
    return f;
  };
  const withHeader = (h: object, rest = bytes.subarray(nl + 1)) => Buffer.concat([Buffer.from(JSON.stringify(h) + '\n'), rest]);

  const target = new EncoderService(encoder, { defense: parseDefense(spec), defaultBudget: 7 });
  await answer(target, 'zoe', images(3, 1));
  const before = JSON.stringify(target.usage());
  const cases: [string, string, RegExp][] = [
    ['missing', path.join(tmp, 'nope.bin'), /cannot read service state file .*nope\.bin/],
    ['empty', variant('empty.bin', ''), /empty\.bin: the file is empty/],
    ['truncated', variant('truncated.bin', bytes.subarray(0, bytes.length - 10)), /truncated\.bin: truncated: the header announces \d+ bytes of state, the file has \d+/],
    ['cut in the header', variant('cut.bin', bytes.subarray(0, 20)), /cut\.bin: no header line/],
    ['bad checksum', variant('flipped.bin', (() => { const c = Buffer.from(bytes); c[nl + 20] ^= 0x01; return c; })()), /flipped\.bin: corrupt: the SHA-256/],
    ['wrong version', variant('v3.bin', withHeader({ ...header, version: 3 })), /v3\.bin: format version 3; this encsec reads versions 1 and 2/],
    ['not a state file', variant('other.bin', '{"format":"something-else"}\n{}'), /other\.bin: not an encsec service state file/],
    ['garbage', variant('garbage.bin', 'hello\nworld'), /garbage\.bin: the header line is not JSON/],
    ['extra bytes', variant('extra.bin', Buffer.concat([bytes, Buffer.from('xx')])), /extra\.bin: 2 unexpected bytes/],
  ];
  for (const [what, file, re] of cases) {
    t.throws(() => target.loadState(file), re, what);
    t.equal(JSON.stringify(target.usage()), before, `${what}: nothing changed`);
  }

  // Another defense's state.
  const other = path.join(tmp, 'other-defense.bin');
  (await busyService('noise:0.3')).saveState(other);
  t.throws(() => target.loadState(other), /other-defense\.bin: saved by a service with defense "noise:0.3"; this service runs "noise:0.2"/);

  // Valid checksum, invalid content.
  const bad = (name: string, mutate: (b: Record<string, unknown>) => void) => {
    const f = path.join(tmp, name);
    const { body } = readServiceState(good);
    mutate(body as unknown as Record<string, unknown>);
    writeServiceState(f, spec, body);
    return f;
  };
  t.throws(() => target.loadState(bad('neg.bin', (b) => ((b.usage as [string, { used: number }][])[0][1].used = -1))), /neg\.bin: usage of "alice": used must be a non-negative integer/);
  t.throws(() => target.loadState(bad('rows.bin', (b) => ((b.defenseState as { clients: [string, number][] }).clients[0][1] = 1.5))), /rows\.bin: noise state, client "alice": rows must be a non-negative integer/);
  t.throws(() => target.loadState(bad('dup.bin', (b) => (b.usage as unknown[]).push((b.usage as unknown[])[0]))), /dup\.bin: usage: client "alice" appears twice/);
  t.throws(() => target.loadState(bad('nostate.bin', (b) => (b.defenseState = null))), /nostate\.bin: no state for defense "noise:0.2"/);
  t.equal(JSON.stringify(target.usage()), before, 'still nothing changed');

  // b4b: bitsets of the wrong size; a stateless defense given state.
  const b4bFile = path.join(tmp, 'b4b.bin');
  const s4 = new EncoderService(encoder, { defense: parseDefense('b4b') });
  await answer(s4, 'x', images(5, 1));
  s4.saveState(b4bFile);
  const { body: b4bBody } = readServiceState(b4bFile);
  ((b4bBody.defenseState as { clients: [string, { bits: string }][] }).clients[0][1]).bits = Buffer.alloc(12).toString('base64');
  writeServiceState(b4bFile, 'b4b', b4bBody);
  const fresh = new EncoderService(encoder, { defense: parseDefense('b4b') });
  t.throws(() => fresh.loadState(b4bFile), /b4b\.bin: b4b state, client "x": bitsets of 12 bytes, expected 2560/);
  const topk = path.join(tmp, 'topk.bin');
  writeServiceState(topk, 'topk:4', { savedAt: '', budgets: { default: null, clients: [] }, usage: [], defenseState: { clients: [] } });
  t.throws(() => new EncoderService(encoder, { defense: parseDefense('topk:4') }).loadState(topk), /topk\.bin: the file has defense state, defense "topk:4" keeps none/);

  // A composition restores all stages or none.
  const comp = path.join(tmp, 'comp.bin');
  const c1 = new EncoderService(encoder, { defense: parseDefense('noise:0.1+b4b') });
  await answer(c1, 'y', images(5, 2));
  c1.saveState(comp);
  const { body: cb } = readServiceState(comp);
  ((cb.defenseState as { stages: { clients: [string, { bits: string }][] }[] }).stages[1].clients[0][1]).bits = 'AAAA';
  writeServiceState(comp, 'noise:0.1+b4b', cb);
  const c2 = new EncoderService(encoder, { defense: parseDefense('noise:0.1+b4b') });
  await answer(c2, 'y', images(7, 3));
  const c2Stats = JSON.stringify(c2.clientStats('y'));
  t.throws(() => c2.loadState(comp), /comp\.bin: b4b state, client "y": bitsets of 3 bytes/);
  t.equal(JSON.stringify(c2.clientStats('y')), c2Stats, "the noise stage's state was rolled back too");
});

t.test('the digest covers the header line too: 100 single-bit flips of header and body are all refused', async (t) => {
  const file = path.join(tmp, 'digest.bin');
  (await busyService('noise:0.05')).saveState(file);
  const bytes = fs.readFileSync(file);
  const nl = bytes.indexOf(0x0a);
  const headerLine = bytes.subarray(0, nl).toString('utf8');
  const body = bytes.subarray(nl + 1);
  // The digest, computed here from the documented layout: SHA-256 of the header line without its
  // sha256 field, a newline, and the state text.
  const header = JSON.parse(headerLine) as Record<string, unknown>;
  t.same(Object.keys(header), ['format', 'version', 'defense', 'bytes', 'sha256'], 'the header fields, in order');
  const unsigned = JSON.stringify({ format: header.format, version: header.version, defense: header.defense, bytes: header.bytes });
  t.equal(header.sha256, crypto.createHash('sha256').update(unsigned + '\n').update(body).digest('hex'), 'sha256 covers the header and the body');
  t.equal(header.bytes, body.length);
  t.doesNotThrow(() => readServiceState(file), 'the intact file reads');

  // The flip the fuzzer found: "noise:0.05" -> "noise:0.01" (0x35 ^ 0x04 = 0x31), a valid SPEC with a valid body digest.
  const at = headerLine.indexOf('noise:0.05') + 'noise:0.0'.length;
  const spoofed = Buffer.from(bytes);
  spoofed[at] ^= 0x04;
  t.match(spoofed.subarray(0, nl).toString('utf8'), /"defense":"noise:0\.01"/, 'the flipped header names another valid defense');
  const spoofFile = path.join(tmp, 'spoof.bin');
  fs.writeFileSync(spoofFile, spoofed);
  t.throws(() => readServiceState(spoofFile), /spoof\.bin: corrupt: the SHA-256 of the header and state/, 'and is refused');

  // 100 single-bit flips: 50 in the header line (newline included), 50 in the body, at seeded positions.
  let seed = 12345;
  const next = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
  const flipped = path.join(tmp, 'flipped-bit.bin');
  const accepted: string[] = [];
  for (let k = 0; k < 100; k++) {
    const pos = k < 50 ? Math.floor(next() * (nl + 1)) : nl + 1 + Math.floor(next() * body.length);
    const bit = Math.floor(next() * 8);
    const c = Buffer.from(bytes);
    c[pos] ^= 1 << bit;
    fs.writeFileSync(flipped, c);
    try {
      readServiceState(flipped);
      accepted.push(`byte ${pos} bit ${bit}`);
    } catch (e) {
      if (!(e instanceof Error) || !/service state file .*flipped-bit\.bin/.test(e.message)) accepted.push(`byte ${pos} bit ${bit}: unexpected error ${String(e)}`);
    }
  }
  t.same(accepted, [], 'every flipped file is refused with an error naming the file');
});

t.test('version 1 files (digest of the body only) still read; a non-canonical header line is refused', async (t) => {
  const body = Buffer.from(JSON.stringify({ savedAt: '', budgets: { default: null, clients: [] }, usage: [], defenseState: null }));
  const v1 = { format: 'encsec-service-state', version: 1, defense: 'none', bytes: body.length, sha256: crypto.createHash('sha256').update(body).digest('hex') };
  const f = path.join(tmp, 'v1.bin');
  fs.writeFileSync(f, Buffer.concat([Buffer.from(JSON.stringify(v1) + '\n'), body]));
  t.equal(readServiceState(f).header.version, 1);
  const g = path.join(tmp, 'v2-spaced.bin');
  writeServiceState(g, 'none', JSON.parse(body.toString()));
  const bytes = fs.readFileSync(g);
  const nl = bytes.indexOf(0x0a);
  const spaced = JSON.stringify(JSON.parse(bytes.subarray(0, nl).toString()), null, 0).replace('{', '{ ');
  fs.writeFileSync(g, Buffer.concat([Buffer.from(spaced + '\n'), bytes.subarray(nl + 1)]));
  t.throws(() => readServiceState(g), /v2-spaced\.bin: corrupt: the header line is not in its canonical form/);
});

t.test('reading a state file removes the temporaries of killed saves; bad arguments are clear errors', async (t) => {
  const file = path.join(tmp, 'stale.bin');
  writeServiceState(file, 'none', { savedAt: '', budgets: { default: null, clients: [] }, usage: [], defenseState: null });
  // A process that has exited: its pid names a temporary no live process owns.
  const dead = spawnSync(process.execPath, ['-e', '0']).pid as number;
  const stale = path.join(tmp, `.stale.bin.tmp-${dead}-abcdef012345`);
  const live = path.join(tmp, `.stale.bin.tmp-${process.pid}-abcdef012345`);
  fs.writeFileSync(stale, 'half a save');
  fs.writeFileSync(live, 'a save in progress');
  readServiceState(file);
  t.notOk(fs.existsSync(stale), "the dead process's temporary is gone");
  t.ok(fs.existsSync(live), "a live process's temporary is kept");
  fs.rmSync(live);
  t.throws(() => readServiceState(Object.create(null)), { name: 'TypeError', message: /^file must be a non-empty path, got an object/ });
  t.throws(() => readServiceState(1 as never), { name: 'TypeError', message: /^file must be a non-empty path, got 1/ });
  t.throws(() => writeServiceState(path.join(tmp, 'x.bin'), 'none', { savedAt: '', budgets: { default: null, clients: [] }, usage: [[ 'a', { used: 1n } ]], defenseState: null } as never), { name: 'TypeError', message: /^body cannot be written as JSON: .*BigInt/ });
  t.throws(() => writeServiceState(path.join(tmp, 'x.bin'), 5 as never, {} as never), { name: 'TypeError', message: /^defense must be a non-empty defense SPEC string, got 5/ });
  t.throws(() => writeServiceState(path.join(tmp, 'x.bin'), 'none', [] as never), { name: 'TypeError', message: /^body must be an object, got an array/ });
  t.notOk(fs.existsSync(path.join(tmp, 'x.bin')), 'nothing was written');
});
