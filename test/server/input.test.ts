// Bad input is a 4xx, never a crash or a stall, and charges nothing:
// malformed JSON, wrong shapes, NaN floats, oversized bodies (413), non-image
// bytes, a decompression bomb (a tiny PNG declaring 50,000 x 50,000 pixels),
// unknown content types. And the image formats decode to what the library's
// own conversion gives: PNG, a JSON list of PNGs and a uint8 tensor answer
// the same embeddings as the float rows (p / 255 - 0.5) / 0.5.
import t from 'tap';
import * as zlib from 'node:zlib';
import sharp from 'sharp';
import { startServer, imageRows, postRows, readResponse, floats, SIZE, PER } from './fixture';
import { assertClose, sameValues } from '../helpers';

/** CRC-32 (PNG's), bit by bit: independent of the encoder under test. */
function crc32(buf: Buffer): number {
  let c = ~0;
  for (const b of buf) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
  }
  return ~c >>> 0;
}

function chunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}

/** A valid PNG header declaring w x h greyscale pixels, with one tiny deflate stream of zeros. */
function bombPng(w: number, h: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 0; // greyscale
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', zlib.deflateSync(Buffer.alloc(1024))), chunk('IEND', Buffer.alloc(0))]);
}

const pixels = Uint8Array.from({ length: PER }, (_, i) => (i * 37 + 11) % 256);

t.test('bad requests are 4xx, charge nothing, and the server keeps serving', async (t) => {
  const s = await startServer({ bodyLimit: 8192, maxRequestImages: 16 });
  t.teardown(() => s.close());
  const { key, record } = s.server.keys.add({ budget: 100 });
  const auth = { authorization: `Bearer ${key}` };
  const post = async (body: string | Buffer, headers: Record<string, string>) =>
    readResponse(await fetch(s.url + '/v1/embed', { method: 'POST', headers: { ...auth, ...headers }, body }));
  const json = { 'content-type': 'application/json' };
  const b64f = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64');

  const cases: [string, Promise<{ status: number; json: Record<string, unknown> | null }>, number, RegExp?][] = [
    ['malformed JSON', post('{"tensor": {', json), 400],
    ['a JSON array', post('[1, 2]', json), 400, /must be an object/],
    ['an unknown JSON key', post(JSON.stringify({ pictures: [] }), json), 400, /exactly one of/],
    ['images not an array', post(JSON.stringify({ images: 'x' }), json), 400],
    ['images not base64', post(JSON.stringify({ images: ['***'] }), json), 400, /base64/],
    ['no images', post(JSON.stringify({ images: [] }), json), 400, /at least one/],
    ['a wrong image size', post(JSON.stringify({ tensor: { dtype: 'float32', shape: [1, 1, 9, 9], data: b64f(new Float32Array(81)) } }), json), 400, /shape/],
    ['wrong channels', post(JSON.stringify({ tensor: { dtype: 'float32', shape: [1, 3, 8, 8], data: b64f(new Float32Array(192)) } }), json), 400, /shape/],
    ['a 3-d shape', post(JSON.stringify({ tensor: { dtype: 'float32', shape: [1, 8, 8], data: '' } }), json), 400, /4 non-negative integers/],
    ['data shorter than the shape', post(JSON.stringify({ tensor: { dtype: 'float32', shape: [2, 1, 8, 8], data: b64f(new Float32Array(64)) } }), json), 400, /needs 512/],
    ['an unknown dtype', post(JSON.stringify({ tensor: { dtype: 'float64', shape: [1, 1, 8, 8], data: '' } }), json), 400, /dtype/],
    ['NaN floats', postRows(s.url, key, Object.assign(imageRows(1, 1), { 5: NaN }), 1), 400, /finite/],
    ['infinite floats', postRows(s.url, key, Object.assign(imageRows(1, 1), { 0: -Infinity }), 1), 400, /finite/],
    ['a missing shape header', post(Buffer.alloc(256), { 'content-type': 'application/octet-stream' }), 400, /shape/],
    ['a body over the limit', postRows(s.url, key, imageRows(40, 2), 40), 413],
    ['too many images', post(JSON.stringify({ tensor: { dtype: 'uint8', shape: [17, 1, 8, 8], data: Buffer.alloc(17 * 64).toString('base64') } }), json), 413, /limit is 16/],
    ['non-image bytes as PNG', post(Buffer.from('this is not a picture at all'), { 'content-type': 'image/png' }), 400, /not a PNG or JPEG/],
    ['non-image bytes in JSON', post(JSON.stringify({ images: [Buffer.from('GIF89a....').toString('base64')] }), json), 400],
    ['a decompression bomb', post(bombPng(50_000, 50_000), { 'content-type': 'image/png' }), 400, /50000x50000/],
    ['a decompression bomb in JSON', post(JSON.stringify({ images: [bombPng(50_000, 50_000).toString('base64')] }), json), 400],
    ['an unknown content type', post('hello', { 'content-type': 'text/plain' }), 415],
  ];
  for (const [what, p, status, message] of cases) {
    const r = await p;
    t.equal(r.status, status, `${what} -> ${status}`);
    if (message) t.match(String(r.json?.message ?? ''), message, `${what}: the message says why`);
  }
  t.equal(await s.server.store.used(record.id), 0, 'nothing was charged');
  t.equal(s.server.audit.rows().length, 0, 'nothing was audited');
  const health = await fetch(s.url + '/v1/health');
  t.equal(health.status, 200, 'still alive');
  const ok = await postRows(s.url, key, imageRows(2, 3), 2);
  t.equal(ok.status, 200, 'and still serving');
  t.equal(ok.headers.get('x-encsec-used'), '2');
});

t.test('PNG, JSON PNG list and uint8 tensors decode like the library does', async (t) => {
  const s = await startServer();
  t.teardown(() => s.close());
  const { key } = s.server.keys.add({ admin: true });
  const png = await sharp(Buffer.from(pixels), { raw: { width: SIZE, height: SIZE, channels: 1 } }).png().toBuffer();
  const auth = { authorization: `Bearer ${key}`, accept: 'application/octet-stream' };
  const raw = '/v1/embed/raw';
  const send = async (body: string | Buffer, type: string) => readResponse(await fetch(s.url + raw, { method: 'POST', headers: { ...auth, 'content-type': type }, body }));

  // The independent expectation: the float rows (p / 255 - 0.5) / 0.5.
  const rows = new Float32Array(2 * PER);
  for (let i = 0; i < 2 * PER; i++) rows[i] = (pixels[i % PER] / 255 - 0.5) / 0.5;
  const expected = floats((await postRows(s.url, key, rows, 2, { route: raw, binary: true })).bytes);

  const asPng = await send(png, 'image/png');
  t.equal(asPng.status, 200);
  const one = floats(asPng.bytes);
  const d = one.length;
  assertClose(t, one, expected.subarray(0, d), 'image/png answers the embedding of (p / 255 - 0.5) / 0.5');
  // The pixel paths all go through the library's own uint8 conversion: identical answers.
  const twice = new Float32Array(2 * d);
  twice.set(one);
  twice.set(one, d);
  const list = await send(JSON.stringify({ images: [png.toString('base64'), png.toString('base64')] }), 'application/json');
  t.ok(sameValues(floats(list.bytes), twice), 'a JSON list of base64 PNGs: the same bits');
  const u8 = Buffer.concat([Buffer.from(pixels), Buffer.from(pixels)]);
  const tensor = await send(JSON.stringify({ tensor: { dtype: 'uint8', shape: [2, 1, SIZE, SIZE], data: u8.toString('base64') } }), 'application/json');
  t.ok(sameValues(floats(tensor.bytes), twice), 'a uint8 tensor in JSON: the same bits');
  const octet = await readResponse(
    await fetch(s.url + raw, { method: 'POST', headers: { ...auth, 'content-type': 'application/octet-stream', 'x-encsec-shape': `2,1,${SIZE},${SIZE}`, 'x-encsec-dtype': 'uint8' }, body: u8 }),
  );
  t.ok(sameValues(floats(octet.bytes), twice), 'uint8 octets: the same bits');

  const jpeg = await sharp(Buffer.from(pixels), { raw: { width: SIZE, height: SIZE, channels: 1 } }).jpeg().toBuffer();
  const asJpeg = await send(jpeg, 'image/jpeg');
  t.equal(asJpeg.status, 200, 'JPEG is accepted');
  t.equal(floats(asJpeg.bytes).length, d);
  const rgb = await sharp(Buffer.from(new Uint8Array(PER * 3).fill(200)), { raw: { width: SIZE, height: SIZE, channels: 3 } }).png().toBuffer();
  t.equal((await send(rgb, 'image/png')).status, 200, 'a colour PNG is converted to the served grey channel');
});
