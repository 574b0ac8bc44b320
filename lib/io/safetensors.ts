// safetensors files (Hugging Face's format), for encoders and checkpoints.
//
// Layout: an 8-byte little-endian unsigned header length N; N bytes of UTF-8
// JSON, {"name": {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]},
// ..., "__metadata__": {string: string}}, padded with spaces so that 8 + N is
// a multiple of 8; then the data buffer, each tensor's little-endian values
// contiguous, offsets relative to the start of the buffer, no gaps or overlaps.
//
// Writing: tensors in name order (code-point order), __metadata__ first in the
// header (omitted when empty), compact JSON, float32 data; the file is
// replaced atomically. Reading validates everything before a single value is
// used (see parseSafetensors) and throws an Error naming the file and the
// problem: a damaged or foreign file never turns into garbage weights.
// F32 is read as is; F16, BF16 and F64 are accepted and converted to float32;
// any other dtype is refused.
//
// Integrity: safetensors has no checksum, so a flipped bit in the weights (or
// two same-size tensors with swapped offsets) would load silently. encsec's
// files carry one in __metadata__ (strings, so any safetensors reader still
// reads them):
//   "encsec.sha256":    SHA-256 (hex) of the whole file as written, with these
//                       64 hex digits read as "0" characters;
//   "encsec.integrity": a fixed marker, "sha256-v1" (the digest scheme).
// The digest covers every byte: the length prefix, the header (metadata,
// names, dtypes, shapes, offsets, padding) and the data. A file with either
// key must carry a digest that matches (a flipped bit in one key leaves the
// other, so it cannot pass as a foreign file); a file with neither (written
// elsewhere, or by an older encsec) loads with `verified: false`. The two keys
// are reserved: they are not returned in `metadata` and cannot be passed in.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { Tensor } from '../core/tensor';
import { checkAllocShape, checkOptions, checkTensor, describe } from '../core/validate';
import { checkPath, removeStaleTemporaries, writeFileAtomic } from './atomic';

/** Metadata key of the file's SHA-256 (see above). */
export const DIGEST_KEY = 'encsec.sha256';
/** Metadata key of the digest scheme marker. */
export const INTEGRITY_KEY = 'encsec.integrity';
export const INTEGRITY_SCHEME = 'sha256-v1';
const DIGEST_PLACEHOLDER = '0'.repeat(64);

/** Largest header accepted (the reference implementation's limit). */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;

const DTYPE_BYTES: Record<string, number> = { F32: 4, F16: 2, BF16: 2, F64: 8 };
const OTHER_DTYPES = ['BOOL', 'U8', 'I8', 'I16', 'U16', 'I32', 'U32', 'I64', 'U64', 'F8_E4M3', 'F8_E5M2', 'F8_E8M0', 'F4', 'F6_E2M3', 'F6_E3M2', 'C64'];
const LITTLE_ENDIAN = os.endianness() === 'LE';

/** A tensor as stored: its file dtype, shape and values converted to float32. */
export interface SafetensorsEntry {
  dtype: string;
  shape: number[];
  data: Float32Array;
}

export interface ParsedSafetensors {
  /** In the order of the data buffer. */
  tensors: Map<string, SafetensorsEntry>;
  /** The file's metadata, without the reserved integrity keys. */
  metadata: Record<string, string>;
  /** True when the file carried an encsec digest and it matched; false when it carried none (a file from elsewhere). */
  verified: boolean;
}

/** SHA-256 (hex) of buf with the 64 bytes at `at` read as "0" characters. */
function fileDigest(parts: readonly Uint8Array[], at: { part: number; offset: number }): string {
  const h = crypto.createHash('sha256');
  parts.forEach((p, i) => {
    if (i !== at.part) {
      h.update(p);
      return;
    }
    h.update(p.subarray(0, at.offset));
    h.update(DIGEST_PLACEHOLDER);
    h.update(p.subarray(at.offset + 64));
  });
  return h.digest('hex');
}

/**
 * Checks the digest of a file whose header was parsed: returns true when it
 * carries one and it matches, false when it carries no integrity keys at all;
 * throws (naming the file) when it carries either key and the check fails.
 */
function verifyDigest(buf: Uint8Array, headerEnd: number, metadata: Record<string, string>, source: string): boolean {
  const digest = metadata[DIGEST_KEY];
  const scheme = metadata[INTEGRITY_KEY];
  if (digest === undefined && scheme === undefined) return false;
  if (digest === undefined) fail(source, `the file is marked as carrying an encsec digest (${INTEGRITY_KEY}) but has no ${DIGEST_KEY}: damaged`);
  if (scheme !== INTEGRITY_SCHEME) fail(source, `unknown digest scheme ${JSON.stringify(scheme ?? null)} (${INTEGRITY_KEY}), expected ${JSON.stringify(INTEGRITY_SCHEME)}: damaged, or written by a newer encsec`);
  if (!/^[0-9a-f]{64}$/.test(digest)) fail(source, `${DIGEST_KEY} is not 64 hex digits: damaged`);
  // The digest's own bytes, as the writer laid them out (compact JSON): exactly once in the header.
  const needle = Buffer.from(`"${DIGEST_KEY}":"${digest}"`, 'utf8');
  const header = Buffer.from(buf.buffer, buf.byteOffset + 8, headerEnd - 8);
  const first = header.indexOf(needle);
  if (first < 0 || header.indexOf(needle, first + 1) >= 0) fail(source, `${DIGEST_KEY} is not laid out as encsec writes it: damaged`);
  const at = 8 + first + needle.length - 65;
  const actual = fileDigest([buf], { part: 0, offset: at });
  if (actual !== digest) {
    fail(source, `SHA-256 mismatch: the file's data or header was altered or damaged after it was written (${DIGEST_KEY} ${digest.slice(0, 12)}..., content ${actual.slice(0, 12)}...)`);
  }
  return true;
}

function fail(source: string, problem: string): never {
  throw new Error(`invalid safetensors file ${source}: ${problem}`);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function readNonNegInts(v: unknown, what: string, source: string): number[] {
  if (!Array.isArray(v)) fail(source, `${what} must be an array of non-negative integers`);
  for (const d of v) {
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) fail(source, `${what} must be an array of non-negative integers, got ${JSON.stringify(v)}`);
  }
  return v as number[];
}

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** The values of one tensor's bytes as float32. */
function decodeValues(bytes: Uint8Array, dtype: string, n: number): Float32Array {
  const out = new Float32Array(n);
  if (dtype === 'F32' && LITTLE_ENDIAN) {
    new Uint8Array(out.buffer).set(bytes);
    return out;
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (dtype === 'F32') for (let i = 0; i < n; i++) out[i] = dv.getFloat32(4 * i, true);
  else if (dtype === 'F64') for (let i = 0; i < n; i++) out[i] = dv.getFloat64(8 * i, true);
  else if (dtype === 'F16') for (let i = 0; i < n; i++) out[i] = halfToFloat(dv.getUint16(2 * i, true));
  else {
    // BF16: the high half of a float32.
    const bits = new Uint32Array(out.buffer);
    for (let i = 0; i < n; i++) bits[i] = dv.getUint16(2 * i, true) << 16;
  }
  return out;
}

/**
 * Parses and validates a whole safetensors file held in memory. `source`
 * names it in errors. Checks: length >= 8; header length N <= 100 MB and
 * 8 + N within the file; UTF-8 JSON object starting with '{'; __metadata__ a
 * string-to-string object; every entry a {dtype, shape, data_offsets} with a
 * supported dtype, non-negative integer shape and [begin, end] with
 * end - begin = numel * dtype size; the entries, sorted by offset, tile the
 * data buffer exactly (no gap, no overlap, nothing after the last one).
 */
export function parseSafetensors(buf: Uint8Array, source = '<buffer>'): ParsedSafetensors {
  if (!(buf instanceof Uint8Array)) throw new TypeError('buf must be a Uint8Array or Buffer');
  if (buf.length < 8) fail(source, `${buf.length} bytes is too short for the 8-byte header length`);
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const n64 = dv.getBigUint64(0, true);
  if (n64 > BigInt(MAX_HEADER_BYTES)) fail(source, `header length ${n64} is larger than the ${MAX_HEADER_BYTES}-byte limit (not a safetensors file?)`);
  const n = Number(n64);
  if (8 + n > buf.length) fail(source, `header length ${n} runs past the end of the file (${buf.length} bytes): truncated?`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(buf.subarray(8, 8 + n));
  } catch {
    fail(source, 'the header is not valid UTF-8');
  }
  if (!text.startsWith('{')) fail(source, "the header does not start with '{'");
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    fail(source, `the header is not valid JSON (${(e as Error).message})`);
  }
  if (!isPlainObject(header)) fail(source, 'the header is not a JSON object');

  const metadata: Record<string, string> = {};
  const raw = header.__metadata__;
  if (raw !== undefined) {
    if (!isPlainObject(raw)) fail(source, '__metadata__ must be an object of strings');
    for (const [k, v] of Object.entries(raw)) {
      if (typeof v !== 'string') fail(source, `__metadata__.${k} must be a string, got ${JSON.stringify(v)}`);
      metadata[k] = v;
    }
  }

  const dataStart = 8 + n;
  const dataLen = buf.length - dataStart;
  const entries: { name: string; dtype: string; shape: number[]; begin: number; end: number }[] = [];
  for (const [name, e] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    if (!isPlainObject(e)) fail(source, `entry "${name}" is not an object`);
    const dtype = e.dtype;
    if (typeof dtype !== 'string') fail(source, `tensor "${name}" has no dtype`);
    const size = DTYPE_BYTES[dtype];
    if (size === undefined) {
      const known = OTHER_DTYPES.includes(dtype) ? 'unsupported' : 'unknown';
      fail(source, `tensor "${name}" has ${known} dtype ${JSON.stringify(dtype)}; supported: F32 (F16, BF16 and F64 are converted to F32)`);
    }
    const shape = readNonNegInts(e.shape, `shape of tensor "${name}"`, source);
    const offs = readNonNegInts(e.data_offsets, `data_offsets of tensor "${name}"`, source);
    if (offs.length !== 2) fail(source, `data_offsets of tensor "${name}" must be [begin, end]`);
    const [begin, end] = offs;
    if (begin > end) fail(source, `tensor "${name}" has data_offsets [${begin}, ${end}] with begin > end`);
    let numel = 1;
    for (const d of shape) numel *= d;
    if (!Number.isSafeInteger(numel * size)) fail(source, `tensor "${name}" has an impossibly large shape [${shape.join(', ')}]`);
    if (end - begin !== numel * size) {
      fail(source, `tensor "${name}" has data_offsets [${begin}, ${end}] (${end - begin} bytes) but shape [${shape.join(', ')}] of ${dtype} needs ${numel * size} bytes`);
    }
    if (end > dataLen) fail(source, `tensor "${name}" ends at byte ${end} of the data buffer, which has ${dataLen} bytes: truncated?`);
    entries.push({ name, dtype, shape, begin, end });
  }
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let pos = 0;
  for (const e of entries) {
    if (e.begin < pos) fail(source, `tensor "${e.name}" at data_offsets [${e.begin}, ${e.end}] overlaps the previous tensor (which ends at ${pos})`);
    if (e.begin > pos) fail(source, `gap in the data buffer between bytes ${pos} and ${e.begin} (before tensor "${e.name}")`);
    pos = e.end;
  }
  if (pos !== dataLen) fail(source, `the tensors cover ${pos} bytes but the data buffer has ${dataLen} (file size does not match the header)`);
  const verified = verifyDigest(buf, dataStart, metadata, source);
  delete metadata[DIGEST_KEY];
  delete metadata[INTEGRITY_KEY];

  const tensors = new Map<string, SafetensorsEntry>();
  for (const e of entries) {
    const numel = (e.end - e.begin) / DTYPE_BYTES[e.dtype];
    const data = decodeValues(buf.subarray(dataStart + e.begin, dataStart + e.end), e.dtype, numel);
    tensors.set(e.name, { dtype: e.dtype, shape: e.shape, data });
  }
  return { tensors, metadata, verified };
}

/** Checks metadata: a plain object of strings, without the reserved integrity keys. */
function checkMetadata(metadata: unknown): Record<string, string> {
  if (!isPlainObject(metadata)) throw new TypeError(`metadata must be an object of strings, got ${describe(metadata)}`);
  for (const k of Reflect.ownKeys(metadata)) {
    if (typeof k === 'symbol') throw new TypeError('metadata has a symbol key; keys must be strings');
    const v = metadata[k];
    if (typeof v !== 'string') throw new TypeError(`metadata.${k} must be a string, got ${describe(v)}`);
    if (k === DIGEST_KEY || k === INTEGRITY_KEY) throw new RangeError(`metadata.${k} is reserved: encsec writes it (the file's digest)`);
  }
  return metadata as Record<string, string>;
}

/**
 * The bytes of a safetensors file holding float32 tensors: [length, header,
 * data of each tensor in name order]. Names must be non-empty and not
 * "__metadata__". With options.digest (default true) the header carries the
 * file's SHA-256 (see the top of this file).
 */
export function serializeSafetensors(
  tensors: Map<string, { shape: readonly number[]; data: Float32Array }>,
  metadata: Record<string, string> = {},
  options: { digest?: boolean } = {},
): Uint8Array[] {
  if (!(tensors instanceof Map)) throw new TypeError(`tensors must be a Map from names to tensors, got ${describe(tensors)}`);
  checkMetadata(metadata);
  const withDigest = checkOptions(options, 'options', ['digest']).digest ?? true;
  if (typeof withDigest !== 'boolean') throw new TypeError(`options.digest must be a boolean, got ${describe(withDigest)}`);
  const names = [...tensors.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const header: Record<string, unknown> = {};
  const meta: Record<string, string> = { ...metadata };
  if (withDigest) {
    meta[INTEGRITY_KEY] = INTEGRITY_SCHEME;
    meta[DIGEST_KEY] = DIGEST_PLACEHOLDER;
  }
  if (Object.keys(meta).length > 0) header.__metadata__ = meta;
  const parts: Uint8Array[] = [];
  let offset = 0;
  for (const name of names) {
    if (typeof name !== 'string' || name === '') throw new TypeError('tensor names must be non-empty strings');
    if (name === '__metadata__') throw new RangeError('"__metadata__" is reserved and cannot name a tensor');
    const t = tensors.get(name)!;
    if (t === null || typeof t !== 'object') throw new TypeError(`tensor "${name}" must be { shape, data }, got ${describe(t)}`);
    checkAllocShape(t.shape, `shape of "${name}"`);
    const numel = t.shape.reduce((a, b) => a * b, 1);
    if (!(t.data instanceof Float32Array) || t.data.length !== numel) throw new RangeError(`tensor "${name}" has ${t.data?.length} values but shape [${t.shape.join(', ')}]`);
    let bytes: Uint8Array;
    if (LITTLE_ENDIAN) {
      bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    } else {
      bytes = new Uint8Array(numel * 4);
      const dv = new DataView(bytes.buffer);
      for (let i = 0; i < numel; i++) dv.setFloat32(4 * i, t.data[i], true);
    }
    header[name] = { dtype: 'F32', shape: t.shape.slice(), data_offsets: [offset, offset + bytes.length] };
    offset += bytes.length;
    parts.push(bytes);
  }
  let json = JSON.stringify(header);
  const len = Buffer.byteLength(json, 'utf8');
  json += ' '.repeat((8 - (len % 8)) % 8);
  const jsonBytes = Buffer.from(json, 'utf8');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(jsonBytes.length), 0);
  const out = [prefix, jsonBytes, ...parts];
  if (withDigest) {
    const needle = Buffer.from(`"${DIGEST_KEY}":"${DIGEST_PLACEHOLDER}"`, 'utf8');
    const at = jsonBytes.indexOf(needle) + needle.length - 65;
    jsonBytes.write(fileDigest(out, { part: 1, offset: at }), at, 'latin1');
  }
  return out;
}

/** Writes tensors (float32) and string metadata to a safetensors file, atomically. */
export function saveSafetensors(file: string, tensors: Map<string, Tensor>, metadata: Record<string, string> = {}): void {
  checkPath(file);
  if (!(tensors instanceof Map)) throw new TypeError(`tensors must be a Map from names to Tensors, got ${describe(tensors)}`);
  checkMetadata(metadata);
  for (const [name, t] of tensors) {
    if (typeof name !== 'string' || name === '') throw new TypeError(`tensor names must be non-empty strings, got ${typeof name === 'string' ? 'an empty string' : describe(name)}`);
    checkTensor(t, `tensors.get(${JSON.stringify(name)})`);
  }
  const host = new Map<string, { shape: readonly number[]; data: Float32Array }>();
  for (const [name, t] of tensors) {
    checkTensor(t, `tensors.get(${JSON.stringify(name)})`);
    host.set(name, { shape: t.shape, data: t.toArray() });
  }
  writeFileAtomic(file, serializeSafetensors(host, metadata));
}

/**
 * Reads a safetensors file into Tensors (on the current backend) and its
 * metadata. Every check of parseSafetensors applies, and every value must be
 * finite; any problem is an Error naming the file.
 */
export function loadSafetensors(file: string): { tensors: Map<string, Tensor>; metadata: Record<string, string>; verified: boolean } {
  checkPath(file);
  removeStaleTemporaries(file);
  let buf: Buffer;
  try {
    const st = fs.statSync(file);
    if (st.isDirectory()) throw new Error('it is a folder');
    if (st.size > 2 ** 31 - 1) throw new Error(`it is ${st.size} bytes, more than the 2 GiB this reader takes`);
    buf = fs.readFileSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(code === 'ENOENT' ? `safetensors file not found: ${file}` : `cannot read safetensors file ${file}: ${(e as Error).message}`);
  }
  const parsed = parseSafetensors(buf, file);
  for (const [name, e] of parsed.tensors) {
    for (let i = 0; i < e.data.length; i++) {
      if (!Number.isFinite(e.data[i])) fail(file, `tensor "${name}" holds a non-finite value (${e.data[i]}) at index ${i}`);
    }
  }
  const tensors = new Map<string, Tensor>();
  let current = '';
  try {
    for (const [name, e] of parsed.tensors) {
      current = name;
      tensors.set(name, Tensor.from(e.data, e.shape));
    }
  } catch (err) {
    for (const t of tensors.values()) t.dispose();
    fail(file, `tensor "${current}" cannot be loaded: ${(err as Error).message}`);
  }
  return { tensors, metadata: parsed.metadata, verified: parsed.verified };
}
