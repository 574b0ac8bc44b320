// The poisoned-dataset file: a round trip keeps every byte and the manifest;
// a corrupt manifest, edited pixels, a truncated file or a foreign file are
// refused with an error naming the problem.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readPoisonedDataset, writePoisonedDataset, withoutImages, type PoisonManifest } from '../../lib/data/poisoned';
import type { Dataset } from '../../lib/data/dataset';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'encsec-poisoned-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));

const n = 12;
const ds: Dataset = {
  name: 'tiny+poison',
  channels: 1,
  height: 4,
  width: 4,
  numClasses: 3,
  images: Uint8Array.from({ length: n * 16 }, (_, i) => (i * 7) % 256),
  labels: Int32Array.from({ length: n }, (_, i) => i % 3),
};
const manifest: PoisonManifest = {
  base: 'tiny',
  cleanImages: 10,
  construction: 'random',
  rate: 0.2,
  seed: 3,
  targets: [{ task: 'tiny', index: 5, trueClass: 0, targetClass: 2, referenceIndices: [1, 4], imageSha256: 'a'.repeat(64) }],
  poisonIndices: [3, 9],
  poisonTargets: [0, 0],
};

/** Writes a file with a hand-made header (bypassing the writer's checks). */
function rawFile(name: string, header: unknown, body: Uint8Array): string {
  const json = Buffer.from(JSON.stringify(header));
  const pre = Buffer.alloc(16);
  pre.write('ENCPOIS1', 0, 'latin1');
  pre.writeBigUInt64LE(BigInt(json.length), 8);
  const f = path.join(tmp, name);
  fs.writeFileSync(f, Buffer.concat([pre, json, body]));
  return f;
}

t.test('round trip', async (t) => {
  const f = path.join(tmp, 'ok.bin');
  writePoisonedDataset(f, ds, manifest);
  const back = readPoisonedDataset(f);
  t.same(back.manifest, manifest);
  t.same(back.dataset.images, ds.images);
  t.same(back.dataset.labels, ds.labels);
  t.equal(back.dataset.name, 'tiny+poison');
  t.equal(back.dataset.numClasses, 3);
});

t.test('a corrupt manifest is refused, by the writer and by the reader', async (t) => {
  t.throws(() => writePoisonedDataset(path.join(tmp, 'w.bin'), ds, { ...manifest, poisonIndices: [3, 12] }), /poisonIndices\[1\] = 12 is not an image index in \[0, 12\)/);
  t.throws(() => writePoisonedDataset(path.join(tmp, 'w.bin'), ds, { ...manifest, poisonIndices: [9, 3] }), /strictly increasing/);
  t.throws(() => writePoisonedDataset(path.join(tmp, 'w.bin'), ds, { ...manifest, cleanImages: 11 }), /cleanImages/);
  t.throws(() => writePoisonedDataset(path.join(tmp, 'w.bin'), ds, { ...manifest, targets: [{ ...manifest.targets[0], targetClass: 0 }] }), /equals its true class/);
  t.throws(() => writePoisonedDataset(path.join(tmp, 'w.bin'), ds, { ...manifest, surprise: 1 } as never), /unknown key "surprise"/);
  // The reader sees the same problems in a file written by someone else.
  const good = fs.readFileSync(path.join(tmp, 'ok.bin'));
  const hlen = Number(good.readBigUInt64LE(8));
  const header = JSON.parse(good.subarray(16, 16 + hlen).toString());
  const body = good.subarray(16 + hlen);
  const bad = rawFile('bad-manifest.bin', { ...header, manifest: { ...manifest, poisonTargets: [0, 5] } }, body);
  t.throws(() => readPoisonedDataset(bad), /invalid poisoned dataset .*bad-manifest\.bin: manifest\.poisonTargets\[1\] is not a target index/);
  const noManifest = rawFile('no-manifest.bin', { ...header, manifest: undefined }, body);
  t.throws(() => readPoisonedDataset(noManifest), /manifest must be an object/);
  const wrongCount = rawFile('count.bin', { ...header, dataset: { ...header.dataset, count: 13 } }, body);
  t.throws(() => readPoisonedDataset(wrongCount), /expected .* for 13 images/);
});

t.test('edited pixels, truncation and foreign files are refused', async (t) => {
  const good = fs.readFileSync(path.join(tmp, 'ok.bin'));
  const edited = Buffer.from(good);
  edited[edited.length - n * 4 - 1] ^= 1;
  fs.writeFileSync(path.join(tmp, 'edited.bin'), edited);
  t.throws(() => readPoisonedDataset(path.join(tmp, 'edited.bin')), /images do not match their SHA-256 digest/);
  fs.writeFileSync(path.join(tmp, 'short.bin'), good.subarray(0, good.length - 3));
  t.throws(() => readPoisonedDataset(path.join(tmp, 'short.bin')), /truncated/);
  fs.writeFileSync(path.join(tmp, 'foreign.bin'), Buffer.from('hello world, not a dataset'));
  t.throws(() => readPoisonedDataset(path.join(tmp, 'foreign.bin')), /does not start with "ENCPOIS1"/);
  t.throws(() => readPoisonedDataset(path.join(tmp, 'missing.bin')), /cannot read poisoned dataset/);
});

t.test('withoutImages drops exactly the listed images', async (t) => {
  const { dataset, kept } = withoutImages(ds, [3, 9]);
  t.same(Array.from(kept), [0, 1, 2, 4, 5, 6, 7, 8, 10, 11]);
  t.equal(dataset.labels.length, 10);
  t.same(dataset.images.subarray(3 * 16, 4 * 16), ds.images.subarray(4 * 16, 5 * 16));
  t.throws(() => withoutImages(ds, [12]), /drop\[0\] = 12 is outside/);
});
