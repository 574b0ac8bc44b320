// What a client may send to /v1/embed, decoded to the encoder's input rows
// (float32 [n, C, H, W], normalised as lib/data's toTensor does):
//   Content-Type: application/octet-stream, X-Encsec-Shape: n,C,H,W,
//     X-Encsec-Dtype: float32 (little-endian, already normalised) | uint8 (pixels)
//   Content-Type: image/png | image/jpeg: one image
//   Content-Type: application/json:
//     {"images": ["<base64 PNG or JPEG>", ...]}   or
//     {"tensor": {"dtype": "float32" | "uint8", "shape": [n, C, H, W], "data": "<base64>"}}
// Everything is checked before any pixel is decoded: the shape must be the
// served one, float values finite, an image's header must declare exactly
// H x W (a "decompression bomb", a tiny file declaring 50,000 x 50,000
// pixels, is refused from its header) and sharp's limitInputPixels bounds
// what it would decode anyway.
import sharp from 'sharp';
import { toTensor } from '../data/tensor';
import type { Dataset } from '../data/dataset';

/** A request the client got wrong: the server answers `status` with this message. */
export class BadRequest extends Error {
  constructor(
    message: string,
    readonly status = 400,
  ) {
    super(message);
    this.name = 'BadRequest';
  }
}

export interface InputShape {
  channels: 1 | 3;
  height: number;
  width: number;
}

export interface DecodeLimits {
  /** Most images in one request. */
  maxImages: number;
}

/** Pixels (uint8, NCHW) to normalised float rows, through the library's own conversion. */
export function pixelsToRows(pixels: Uint8Array, n: number, shape: InputShape): Float32Array {
  const ds: Dataset = { name: 'request', channels: shape.channels, height: shape.height, width: shape.width, numClasses: 1, images: pixels, labels: new Int32Array(n) };
  const idx = new Int32Array(n);
  for (let i = 0; i < n; i++) idx[i] = i;
  const t = toTensor(ds, idx);
  try {
    return t.toArray();
  } finally {
    t.dispose();
  }
}

function parseShape(v: unknown, shape: InputShape, limits: DecodeLimits): number {
  const s = typeof v === 'string' ? v.split(',').map((p) => (p.trim() === '' ? NaN : Number(p))) : v;
  if (!Array.isArray(s) || s.length !== 4 || !s.every((x) => typeof x === 'number' && Number.isInteger(x) && x >= 0)) {
    throw new BadRequest('shape must be 4 non-negative integers n,C,H,W');
  }
  const [n, c, h, w] = s as number[];
  if (c !== shape.channels || h !== shape.height || w !== shape.width) {
    throw new BadRequest(`shape [${s.join(', ')}]: this server embeds images of shape [n, ${shape.channels}, ${shape.height}, ${shape.width}]`);
  }
  if (n < 1) throw new BadRequest('a request needs at least one image');
  if (n > limits.maxImages) throw new BadRequest(`${n} images in one request; the limit is ${limits.maxImages}`, 413);
  return n;
}

function tensorRows(bytes: Buffer, dtype: unknown, n: number, shape: InputShape): Float32Array {
  const per = shape.channels * shape.height * shape.width;
  if (dtype === 'uint8') {
    if (bytes.length !== n * per) throw new BadRequest(`uint8 data of ${bytes.length} bytes, the shape needs ${n * per}`);
    return pixelsToRows(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length), n, shape);
  }
  if (dtype === 'float32') {
    if (bytes.length !== n * per * 4) throw new BadRequest(`float32 data of ${bytes.length} bytes, the shape needs ${n * per * 4}`);
    const rows = new Float32Array(n * per);
    new Uint8Array(rows.buffer).set(bytes);
    for (let i = 0; i < rows.length; i++) {
      // Inputs are normalised pixels; anything far outside is not an image (and NaN/Inf would poison a merged batch's statistics-free plan anyway).
      if (!Number.isFinite(rows[i]) || Math.abs(rows[i]) > 1e4) throw new BadRequest(`float32 value ${rows[i]} at index ${i}: inputs must be finite, |x| <= 1e4`);
    }
    return rows;
  }
  throw new BadRequest(`dtype must be "float32" or "uint8", got ${JSON.stringify(dtype)}`);
}

/** Decodes one PNG/JPEG to NCHW uint8 pixels of the served shape, refusing anything else from its header first. */
export async function decodeImage(bytes: Buffer, shape: InputShape, index = 0): Promise<Uint8Array> {
  const what = `image ${index}`;
  const limit = Math.max(shape.height * shape.width, 1) * 4;
  let meta: sharp.Metadata;
  try {
    // metadata() reads the header only: the declared size is checked below, before any pixel is decoded.
    meta = await sharp(bytes, { limitInputPixels: false }).metadata();
  } catch (e) {
    throw new BadRequest(`${what} is not a PNG or JPEG image (${(e as Error).message})`);
  }
  if (meta.format !== 'png' && meta.format !== 'jpeg') throw new BadRequest(`${what} is ${meta.format ?? 'of an unknown format'}; send PNG or JPEG`);
  if (meta.width !== shape.width || meta.height !== shape.height) {
    throw new BadRequest(`${what} is ${meta.width}x${meta.height}; this server embeds ${shape.width}x${shape.height} images`);
  }
  let img = sharp(bytes, { limitInputPixels: limit, failOn: 'error' }).removeAlpha();
  img = shape.channels === 1 ? img.toColourspace('b-w') : img.toColourspace('srgb');
  let out: { data: Buffer; info: sharp.OutputInfo };
  try {
    out = await img.raw().toBuffer({ resolveWithObject: true });
  } catch (e) {
    throw new BadRequest(`${what} could not be decoded (${(e as Error).message})`);
  }
  const { data, info } = out;
  if (info.width !== shape.width || info.height !== shape.height || info.channels !== shape.channels) {
    throw new BadRequest(`${what} decoded to ${info.width}x${info.height}x${info.channels}, expected ${shape.width}x${shape.height}x${shape.channels}`);
  }
  // HWC (sharp) to CHW.
  const hw = shape.height * shape.width;
  const chw = new Uint8Array(shape.channels * hw);
  for (let p = 0; p < hw; p++) for (let c = 0; c < shape.channels; c++) chw[c * hw + p] = data[p * shape.channels + c];
  return chw;
}

async function imagesRows(list: Buffer[], shape: InputShape, limits: DecodeLimits): Promise<{ rows: Float32Array; n: number }> {
  const n = list.length;
  if (n < 1) throw new BadRequest('a request needs at least one image');
  if (n > limits.maxImages) throw new BadRequest(`${n} images in one request; the limit is ${limits.maxImages}`, 413);
  const per = shape.channels * shape.height * shape.width;
  const pixels = new Uint8Array(n * per);
  for (let i = 0; i < n; i++) pixels.set(await decodeImage(list[i], shape, i), i * per);
  return { rows: pixelsToRows(pixels, n, shape), n };
}

const B64 = /^[A-Za-z0-9+/]*={0,2}$/;

function base64(v: unknown, what: string): Buffer {
  if (typeof v !== 'string' || v.length % 4 !== 0 || !B64.test(v)) throw new BadRequest(`${what} must be a base64 string`);
  return Buffer.from(v, 'base64');
}

/** The request body (as fastify parsed it) to input rows, or BadRequest. */
export async function decodeRequest(
  contentType: string | undefined,
  headers: Record<string, string | string[] | undefined>,
  body: unknown,
  shape: InputShape,
  limits: DecodeLimits,
): Promise<{ rows: Float32Array; n: number; bytes: Buffer }> {
  const type = (contentType ?? '').split(';')[0].trim().toLowerCase();
  if (type === 'application/octet-stream') {
    const buf = body as Buffer;
    const n = parseShape(headers['x-encsec-shape'], shape, limits);
    return { rows: tensorRows(buf, headers['x-encsec-dtype'] ?? 'float32', n, shape), n, bytes: buf };
  }
  if (type === 'image/png' || type === 'image/jpeg') {
    const buf = body as Buffer;
    return { ...(await imagesRows([buf], shape, limits)), bytes: buf };
  }
  if (type === 'application/json') {
    if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new BadRequest('the JSON body must be an object {"images": [...]} or {"tensor": {...}}');
    const o = body as Record<string, unknown>;
    const keys = Object.keys(o);
    if (keys.length !== 1 || (keys[0] !== 'images' && keys[0] !== 'tensor')) throw new BadRequest('the JSON body must have exactly one of "images" or "tensor"');
    if (o.images !== undefined) {
      if (!Array.isArray(o.images)) throw new BadRequest('"images" must be an array of base64 PNG/JPEG strings');
      if (o.images.length > limits.maxImages) throw new BadRequest(`${o.images.length} images in one request; the limit is ${limits.maxImages}`, 413);
      const list = o.images.map((s, i) => base64(s, `images[${i}]`));
      const r = await imagesRows(list, shape, limits);
      return { ...r, bytes: Buffer.concat(list) };
    }
    const t = o.tensor as Record<string, unknown> | null;
    if (t === null || typeof t !== 'object' || Array.isArray(t)) throw new BadRequest('"tensor" must be {"dtype", "shape", "data"}');
    for (const k of Object.keys(t)) if (!['dtype', 'shape', 'data'].includes(k)) throw new BadRequest(`"tensor" has unknown key ${JSON.stringify(k)}`);
    const n = parseShape(t.shape, shape, limits);
    const buf = base64(t.data, 'tensor.data');
    return { rows: tensorRows(buf, t.dtype, n, shape), n, bytes: buf };
  }
  throw new BadRequest(`Content-Type ${JSON.stringify(type)} is not accepted: use application/json, application/octet-stream, image/png or image/jpeg`, 415);
}
