// safetensors: the bytes written are checked against the format by an
// independent header parse; round trips; every kind of damage is an Error
// naming the file; a fixture written by another tool (a Python script using
// only struct/json, test/fixtures/make_tiny_safetensors.py) loads.
import t from 'tap';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Tensor, tidy } from '../../lib/core/tensor';
import { loadSafetensors, parseSafetensors, saveSafetensors, serializeSafetensors } from '../../lib/io/safetensors';
import { randArray } from '../helpers';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'encsec-st-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));

const FIXTURE = path.join(__dirname, '..', 'fixtures', 'tiny.safetensors');

function sample(): Map<string, { shape: number[]; data: Float32Array }> {
  return new Map([
    ['conv.weight', { shape: [4, 3, 3, 3], data: randArray(108, 1) }],
    ['bn.running_var', { shape: [4], data: randArray(4, 2, 0.5, 2) }],
    ['a.scalar', { shape: [], data: Float32Array.of(3.25) }],
    ['empty', { shape: [0, 5], data: new Float32Array(0) }],
    ['zz', { shape: [2, 2], data: Float32Array.of(1, -2, 3e-8, 4e30) }],
  ]);
}

function saveSample(file: string, metadata: Record<string, string> = { format: 'test', note: 'ünïcødé ✓' }): Map<string, { shape: number[]; data: Float32Array }> {
  const s = sample();
  tidy(() => {
    const m = new Map<string, Tensor>();
    for (const [k, v] of s) m.set(k, Tensor.from(v.data, v.shape));
    saveSafetensors(file, m, metadata);
  });
  return s;
}

/** Builds a file from a header object and a data buffer, the way the format says. */
function build(header: unknown, data: Uint8Array = new Uint8Array(0), opts: { rawHeader?: Buffer; lenOverride?: bigint } = {}): Buffer {
  let h = opts.rawHeader ?? Buffer.from(JSON.stringify(header), 'utf8');
  if (!opts.rawHeader) h = Buffer.concat([h, Buffer.alloc((8 - (h.length % 8)) % 8, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(opts.lenOverride ?? BigInt(h.length));
  return Buffer.concat([len, h, data]);
}

function f32bytes(...v: number[]): Uint8Array {
  return new Uint8Array(Float32Array.from(v).buffer);
}

t.test('the written file follows the format byte for byte', async (t) => {
  const file = path.join(tmp, 'format.safetensors');
  const s = saveSample(file);
  const buf = fs.readFileSync(file);
  // Independent parse: u64 LE length, JSON, spaces, data.
  const n = Number(buf.readBigUInt64LE(0));
  t.equal((8 + n) % 8, 0, 'header padded so that the data starts at a multiple of 8');
  const text = buf.toString('utf8', 8, 8 + n);
  t.match(text, /^\{/, 'header starts with {');
  t.match(text, /\} *$/, 'padded with trailing spaces');
  t.ok(text.length - text.trimEnd().length < 8, 'less than 8 bytes of padding');
  const header = JSON.parse(text) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const keys = Object.keys(header);
  t.equal(keys[0], '__metadata__', '__metadata__ comes first');
  const digest = (header.__metadata__ as unknown as Record<string, string>)['encsec.sha256'];
  t.match(digest, /^[0-9a-f]{64}$/, 'the digest: 64 hex digits');
  t.same(header.__metadata__, { format: 'test', note: 'ünïcødé ✓', 'encsec.integrity': 'sha256-v1', 'encsec.sha256': digest }, 'metadata stored as strings, the integrity keys last');
  // The digest, recomputed from its definition: SHA-256 of the file with its own 64 hex digits read as "0".
  const at = buf.indexOf(`"encsec.sha256":"${digest}"`) + '"encsec.sha256":"'.length;
  const zeroed = Buffer.from(buf);
  zeroed.fill('0', at, at + 64);
  t.equal(crypto.createHash('sha256').update(zeroed).digest('hex'), digest, 'digest = SHA-256 of the whole file with the digest zeroed');
  const names = keys.slice(1);
  t.same(names, [...s.keys()].sort(), 'tensors in name order');
  let pos = 0;
  for (const name of names) {
    const e = header[name];
    const src = s.get(name)!;
    t.equal(e.dtype, 'F32', `${name}: dtype F32`);
    t.same(e.shape, src.shape, `${name}: shape`);
    t.same(e.data_offsets, [pos, pos + 4 * src.data.length], `${name}: offsets contiguous`);
    const bytes = buf.subarray(8 + n + e.data_offsets[0], 8 + n + e.data_offsets[1]);
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    let same = true;
    for (let i = 0; i < src.data.length; i++) if (dv.getFloat32(4 * i, true) !== src.data[i]) same = false;
    t.ok(same, `${name}: little-endian float32 data`);
    pos = e.data_offsets[1];
  }
  t.equal(buf.length, 8 + n + pos, 'file ends right after the last tensor');
  // The whole header, rebuilt from the spec: compact JSON, metadata then tensors in name order.
  const expected: Record<string, unknown> = { __metadata__: { format: 'test', note: 'ünïcødé ✓', 'encsec.integrity': 'sha256-v1', 'encsec.sha256': digest } };
  let off = 0;
  for (const name of [...s.keys()].sort()) {
    const src = s.get(name)!;
    expected[name] = { dtype: 'F32', shape: src.shape, data_offsets: [off, off + 4 * src.data.length] };
    off += 4 * src.data.length;
  }
  t.equal(text.trimEnd(), JSON.stringify(expected), 'header bytes as specified');
  t.same(fs.readdirSync(tmp).filter((f) => f.includes('.tmp')), [], 'no temporary file left behind');
});

t.test('round trip: shapes, values and metadata', async (t) => {
  const file = path.join(tmp, 'round.safetensors');
  const s = saveSample(file);
  const { tensors, metadata } = loadSafetensors(file);
  t.same(metadata, { format: 'test', note: 'ünïcødé ✓' });
  t.same([...tensors.keys()].sort(), [...s.keys()].sort());
  for (const [k, v] of s) {
    const x = tensors.get(k)!;
    t.same(x.shape, v.shape, `${k}: shape`);
    t.same(Array.from(x.toArray()), Array.from(v.data), `${k}: values bit-exact`);
    x.dispose();
  }
  // Without metadata and digest there is no __metadata__ key; the Map's order does not matter.
  const a = serializeSafetensors(new Map([['b', { shape: [1], data: Float32Array.of(1) }], ['a', { shape: [1], data: Float32Array.of(2) }]]), {}, { digest: false });
  const b = serializeSafetensors(new Map([['a', { shape: [1], data: Float32Array.of(2) }], ['b', { shape: [1], data: Float32Array.of(1) }]]), {}, { digest: false });
  t.same(Buffer.concat(a), Buffer.concat(b), 'same bytes whatever the insertion order');
  t.notMatch(Buffer.concat(a).toString('latin1'), /__metadata__/, 'no empty __metadata__');
  const parsed = parseSafetensors(Buffer.concat(a));
  t.same([...parsed.tensors.keys()], ['a', 'b']);
  t.same(parsed.metadata, {});
});

t.test('saving replaces an existing file atomically', async (t) => {
  const file = path.join(tmp, 'replace.safetensors');
  fs.writeFileSync(file, 'old contents');
  saveSample(file, { v: '2' });
  t.equal(loadSafetensors(file).metadata.v, '2');
});

t.test('a fixture written by another tool loads (F16 converted, any data order)', async (t) => {
  const { tensors, metadata } = loadSafetensors(FIXTURE);
  t.same(metadata, { format: 'tiny', producer: 'make_tiny_safetensors.py' });
  const get = (k: string) => {
    const x = tensors.get(k)!;
    return { shape: x.shape.slice(), values: Array.from(x.toArray()) };
  };
  t.same(get('weight'), { shape: [2, 3], values: [0.5, -1.25, 3, 4.75, 0, 1024] });
  t.same(get('bias'), { shape: [3], values: [1, 2, 3] });
  t.same(get('scalar'), { shape: [], values: [7.5] });
  t.same(get('empty'), { shape: [0], values: [] });
  t.same(get('half'), { shape: [2], values: [1.5, -2] });
  t.same(parseSafetensors(fs.readFileSync(FIXTURE)).tensors.get('half')!.dtype, 'F16', 'file dtype reported');
  for (const x of tensors.values()) x.dispose();
});

t.test('BF16 and F64 are converted to float32', async (t) => {
  const bf = new Uint8Array(4);
  const dv = new DataView(bf.buffer);
  dv.setUint16(0, 0x3fc0, true); // 1.5
  dv.setUint16(2, 0xc010, true); // -2.25
  const f64 = new Uint8Array(Float64Array.of(0.1, -3).buffer);
  const buf = build(
    { b: { dtype: 'BF16', shape: [2], data_offsets: [0, 4] }, d: { dtype: 'F64', shape: [2], data_offsets: [4, 20] } },
    Buffer.concat([bf, f64]),
  );
  const p = parseSafetensors(buf);
  t.same(Array.from(p.tensors.get('b')!.data), [1.5, -2.25]);
  t.same(Array.from(p.tensors.get('d')!.data), [Math.fround(0.1), -3]);
});

t.test('damaged or foreign files are errors that name the file and the problem', async (t) => {
  const good = build({ w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, f32bytes(1, 2));
  const cases: [string, Buffer, RegExp][] = [
    ['too short', Buffer.from([1, 2, 3]), /too short/],
    ['header length past the end', build({}, undefined, { lenOverride: 1000n }), /runs past the end/],
    ['absurd header length', build({}, undefined, { lenOverride: 2n ** 40n }), /limit/],
    ['truncated data', good.subarray(0, good.length - 3), /ends at byte 8 .*truncated/],
    ['trailing bytes', Buffer.concat([good, Buffer.alloc(4)]), /cover 8 bytes but the data buffer has 12/],
    ['not JSON', build(null, undefined, { rawHeader: Buffer.from('{"w": [1, 2') }), /not valid JSON/],
    ['not UTF-8', build(null, undefined, { rawHeader: Buffer.from([0x7b, 0xff, 0xfe, 0x7d]) }), /UTF-8/],
    ['not an object', build(null, undefined, { rawHeader: Buffer.from('[1, 2, 3]') }), /start with/],
    ['entry not an object', build({ w: 5 }), /"w" is not an object/],
    ['metadata not strings', build({ __metadata__: { a: 1 } }), /__metadata__\.a must be a string/],
    ['I64 dtype', build({ w: { dtype: 'I64', shape: [1], data_offsets: [0, 8] } }, new Uint8Array(8)), /unsupported dtype "I64"/],
    ['unknown dtype', build({ w: { dtype: 'Q7', shape: [1], data_offsets: [0, 4] } }, new Uint8Array(4)), /unknown dtype "Q7"/],
    ['no dtype', build({ w: { shape: [1], data_offsets: [0, 4] } }, new Uint8Array(4)), /no dtype/],
    ['negative shape', build({ w: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, new Uint8Array(4)), /shape of tensor "w"/],
    ['fractional shape', build({ w: { dtype: 'F32', shape: [1.5], data_offsets: [0, 4] } }, new Uint8Array(4)), /shape of tensor "w"/],
    ['offsets not a pair', build({ w: { dtype: 'F32', shape: [1], data_offsets: [0] } }, new Uint8Array(4)), /\[begin, end\]/],
    ['offsets reversed', build({ w: { dtype: 'F32', shape: [0], data_offsets: [4, 0] } }, new Uint8Array(4)), /begin > end/],
    ['offsets do not match the shape', build({ w: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, f32bytes(1, 2)), /needs 12 bytes/],
    [
      'overlap',
      build({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, f32bytes(1, 2, 3)),
      /overlaps/,
    ],
    [
      'gap',
      build({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] }, b: { dtype: 'F32', shape: [1], data_offsets: [8, 12] } }, f32bytes(1, 2, 3)),
      /gap in the data buffer between bytes 4 and 8/,
    ],
  ];
  for (const [what, buf, re] of cases) {
    const file = path.join(tmp, `bad-${what.replace(/\W+/g, '-')}.safetensors`);
    fs.writeFileSync(file, buf);
    t.throws(() => loadSafetensors(file), { message: new RegExp(`${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: .*${re.source}`) }, what);
  }
  t.throws(() => loadSafetensors(path.join(tmp, 'missing.safetensors')), { message: /not found: .*missing\.safetensors/ }, 'missing file');
  const nan = path.join(tmp, 'nan.safetensors');
  fs.writeFileSync(nan, build({ w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, f32bytes(1, NaN)));
  t.throws(() => loadSafetensors(nan), { message: /nan\.safetensors: tensor "w" holds a non-finite value/ }, 'NaN weights refused');
  t.throws(() => parseSafetensors(Buffer.from([1, 2, 3]), 'my.st'), { message: /invalid safetensors file my\.st/ }, 'parse names its source');
});

t.test('a truncated copy of a real file is refused at any length', async (t) => {
  const file = path.join(tmp, 'full.safetensors');
  saveSample(file);
  const buf = fs.readFileSync(file);
  let refused = 0;
  const cuts = [0, 1, 7, 8, 9, 20, 100, buf.length - 500, buf.length - 5, buf.length - 1];
  for (const cut of cuts) {
    try {
      parseSafetensors(buf.subarray(0, cut), 'cut');
    } catch (e) {
      if (/invalid safetensors file cut/.test((e as Error).message)) refused++;
    }
  }
  t.equal(refused, cuts.length, 'every truncation is an error');
});

t.test('bad arguments to the writer', async (t) => {
  t.throws(() => serializeSafetensors(new Map([['__metadata__', { shape: [1], data: Float32Array.of(1) }]])), RangeError);
  t.throws(() => serializeSafetensors(new Map([['', { shape: [1], data: Float32Array.of(1) }]])), TypeError);
  t.throws(() => serializeSafetensors(new Map([['a', { shape: [2], data: Float32Array.of(1) }]])), RangeError);
  t.throws(() => serializeSafetensors(new Map(), { a: 1 as unknown as string }), TypeError);
  t.throws(() => saveSafetensors(path.join(tmp, 'x.safetensors'), {} as unknown as Map<string, Tensor>), TypeError);
  const d = Tensor.from([1], [1]);
  d.dispose();
  t.throws(() => saveSafetensors(path.join(tmp, 'x.safetensors'), new Map([['d', d]])), { message: /disposed/ });
  t.throws(() => loadSafetensors(''), TypeError);
});
