// Issue #19 in lib/data: Prng.int with a bad n used to loop forever (tested in
// a child process with a deadline, so a regression fails instead of hanging
// the suite); augmentation parameters, options and datasets are checked.
import t, { type Test } from 'tap';
import { Prng, deriveSeed } from '../../lib/data/prng';
import {
  AUG_PARAMS,
  augmentBatch,
  augmentWithParams,
  decodeAugmentParams,
  encodeAugmentParams,
  identityParams,
  makeAugmentParams,
  sampleResizedCrop,
} from '../../lib/data/augment';
import { batchIndices, numBatches } from '../../lib/data/batching';
import { classCounts, datasetSize, interleavedOrder, subset, takeFirst, type Dataset } from '../../lib/data/dataset';
import { loadCifar10 } from '../../lib/data/cifar';
import { loadImageFolder } from '../../lib/data/folder';
import { loadDataset } from '../../lib/data/builtin';
import { labelsOf, toTensor } from '../../lib/data/tensor';
import { runWithDeadline } from '../fuzz/deadline';

type Case = [string, () => unknown, ErrorConstructor, RegExp];
function check(t: Test, cases: Case[]): void {
  for (const [what, fn, type, message] of cases) t.throws(fn, { name: type.name, message }, what);
}

const gray: Dataset = {
  name: 'gray',
  channels: 1,
  height: 8,
  width: 8,
  numClasses: 2,
  images: new Uint8Array(3 * 64).map((_, i) => i % 251),
  labels: Int32Array.of(0, 1, 0),
};

t.test('Prng.int(0 | NaN | 2^33) returns an error within a second (it used to loop forever)', async (t) => {
  const r = await runWithDeadline(
    `
    const { Prng } = lib('lib/data/prng');
    const out = [];
    ready();
    for (const n of [0, NaN, 2 ** 33, -1, 0.5, Infinity, '3']) {
      try { new Prng(1).int(n); out.push({ n: String(n), ok: true }); }
      catch (e) { out.push({ n: String(n), name: e.name, message: e.message }); }
    }
    done(out);
    `,
    1000,
  );
  t.notOk(r.timedOut, `answered within the deadline (${r.elapsedMs} ms)`);
  t.ok(r.elapsedMs >= 0 && r.elapsedMs < 1000, 'within a second');
  const out = r.value as { n: string; name?: string; message?: string; ok?: boolean }[];
  t.equal(out?.length, 7, r.stderr);
  const expected: Record<string, [string, RegExp]> = {
    '0': ['RangeError', /^n must be >= 1, got 0$/],
    NaN: ['RangeError', /^n must be finite, got NaN$/],
    '8589934592': ['RangeError', /^n must be <= 4294967296, got 8589934592$/],
    '-1': ['RangeError', /^n must be >= 1/],
    '0.5': ['RangeError', /^n must be >= 1/],
    Infinity: ['RangeError', /^n must be finite/],
    '3': ['TypeError', /^n must be a number, got a string/],
  };
  for (const o of out ?? []) {
    const [name, message] = expected[o.n];
    t.equal(o.name, name, `int(${o.n}): ${name}`);
    t.match(o.message, message, `int(${o.n}): names n`);
  }
});

t.test('Prng: the other methods check their arguments; good calls are unchanged', async (t) => {
  const p = new Prng(5);
  check(t, [
    ['int(1.5)', () => p.int(1.5), RangeError, /n must be an integer, got 1\.5/],
    ['uniform(NaN, 1)', () => p.uniform(NaN, 1), RangeError, /lo must be finite/],
    ['uniform(0, "1")', () => p.uniform(0, '1' as never), TypeError, /hi must be a number/],
    ['uniform(-1e308, 1e308)', () => p.uniform(-1e308, 1e308), RangeError, /hi - lo .* is not finite/],
    ['bernoulli(2)', () => p.bernoulli(2), RangeError, /p must be <= 1/],
    ['shuffle(null)', () => p.shuffle(null as never), TypeError, /a must be an array or typed array, got null/],
    ['shuffle({length: -1})', () => p.shuffle({ length: -1 } as never), TypeError, /a must be an array or typed array/],
    ['deriveSeed(1, NaN)', () => deriveSeed(1, NaN), RangeError, /parts\[0\] must be finite/],
  ]);
  // A failed check draws nothing: the stream continues as if the bad call had not been made.
  const a = new Prng(9);
  const b = new Prng(9);
  t.throws(() => a.int(0));
  t.same(Array.from({ length: 20 }, () => a.int(10)), Array.from({ length: 20 }, () => b.int(10)), 'same draws after a refused call');
  t.equal(new Prng(2).int(1), 0);
  t.equal(new Prng(2).int(4294967296) < 4294967296, true, 'n = 2^32 is allowed');
});

t.test('augmentation parameters: bounds and shapes are checked', async (t) => {
  const rec = makeAugmentParams(2, gray, { seed: 1 });
  check(t, [
    ['makeAugmentParams height -3, width NaN', () => makeAugmentParams(2, { channels: 1, height: -3, width: NaN }, { seed: 1 }), RangeError, /image\.height must be >= 1, got -3/],
    ['makeAugmentParams width NaN', () => makeAugmentParams(2, { channels: 1, height: 8, width: NaN }, { seed: 1 }), RangeError, /image\.width must be finite, got NaN/],
    ['makeAugmentParams channels 2', () => makeAugmentParams(2, { channels: 2 as 1, height: 8, width: 8 }, { seed: 1 }), RangeError, /image\.channels must be 1 or 3, got 2/],
    ['makeAugmentParams image null', () => makeAugmentParams(2, null as never, { seed: 1 }), TypeError, /image must be an object, got null/],
    ['makeAugmentParams no options', () => makeAugmentParams(2, gray, undefined as never), TypeError, /options\.seed is required/],
    ['makeAugmentParams unknown key', () => makeAugmentParams(2, gray, { seed: 1, szie: 4 } as never), TypeError, /options has unknown key "szie" \(did you mean "size"\?\)/],
    ['makeAugmentParams count 2^31-1 (bytes)', () => makeAugmentParams(2 ** 31 - 1, gray, { seed: 1 }), RangeError, /count asks for 2147483647 elements/],
    ['decodeAugmentParams i out of range', () => decodeAugmentParams(rec, 2), RangeError, /i must be <= 1, got 2/],
    ['decodeAugmentParams i -1', () => decodeAugmentParams(rec, -1), RangeError, /i must be >= 0/],
    ['decodeAugmentParams i NaN', () => decodeAugmentParams(rec, NaN), RangeError, /i must be finite/],
    ['decodeAugmentParams params array', () => decodeAugmentParams([1, 2] as never, 0), TypeError, /params must be a Float32Array, got an array/],
    ['decodeAugmentParams short params', () => decodeAugmentParams(new Float32Array(5), 0), RangeError, /params has 5 entries, not a multiple of 14/],
    ['encodeAugmentParams height -3', () => encodeAugmentParams([{ ...identityParams(8, 8), height: -3 }]), RangeError, /list\[0\]\.height must be >= 1, got -3/],
    ['encodeAugmentParams width NaN', () => encodeAugmentParams([{ ...identityParams(8, 8), width: NaN }]), RangeError, /list\[0\]\.width must be finite/],
    ['encodeAugmentParams flip "yes"', () => encodeAugmentParams([{ ...identityParams(8, 8), flip: 'yes' as never }]), TypeError, /list\[0\]\.flip must be a boolean/],
    ['encodeAugmentParams extra key', () => encodeAugmentParams([{ ...identityParams(8, 8), rotate: 1 } as never]), TypeError, /list\[0\] has unknown key "rotate"/],
    ['encodeAugmentParams not an array', () => encodeAugmentParams({} as never), TypeError, /list must be an array/],
    ['identityParams(0, 8)', () => identityParams(0, 8), RangeError, /height must be >= 1/],
    ['sampleResizedCrop rng', () => sampleResizedCrop({} as never, 8, 8, [0.2, 1], [0.75, 1.33]), TypeError, /rng must be a Prng/],
    ['sampleResizedCrop width -3', () => sampleResizedCrop(new Prng(1), 8, -3, [0.2, 1], [0.75, 1.33]), RangeError, /width must be >= 1/],
    ['sampleResizedCrop scale', () => sampleResizedCrop(new Prng(1), 8, 8, [1, 0.2], [0.75, 1.33]), RangeError, /scale must be \[min, max\] with min <= max/],
    ['augmentBatch {szie: 4}', () => augmentBatch(gray, [0], { seed: 1, szie: 4 } as never), TypeError, /options has unknown key "szie" \(did you mean "size"\?\)/],
    ['augmentBatch no options', () => augmentBatch(gray, [0], undefined as never), TypeError, /options\.seed is required/],
    ['augmentWithParams unknown option', () => augmentWithParams(gray, [0], rec.subarray(0, AUG_PARAMS), { refernce: true } as never), TypeError, /options has unknown key "refernce"/],
    ['augmentWithParams reference "yes"', () => augmentWithParams(gray, [0], rec.subarray(0, AUG_PARAMS), { reference: 'yes' as never }), TypeError, /options\.reference must be a boolean/],
    // 70 x 1 x 32768 x 32768 = 75e9 elements: over the 2^36 cap whatever the memory.
    ['augmentWithParams huge output', () => augmentWithParams(gray, new Array(70).fill(0), makeAugmentParams(70, gray, { seed: 1 }), { size: [32768, 32768] }), RangeError, /the augmented batch \[70, 1, 32768, 32768\] asks for 75161927680 elements/],
  ]);
  const d = decodeAugmentParams(rec, 1);
  t.ok(d.top >= 0 && d.top + d.height <= 8 && d.left >= 0 && d.left + d.width <= 8, 'a decoded record is a crop inside the image');
});

t.test('datasets, batches and loaders: arguments and option keys', async (t) => {
  check(t, [
    ['batchIndices unknown key', () => [...batchIndices(4, { batchSize: 2, seed: 1, shufle: false } as never)], TypeError, /options has unknown key "shufle" \(did you mean "shuffle"\?\)/],
    ['numBatches dropLast "yes"', () => numBatches(4, 2, 'yes' as never), TypeError, /dropLast must be a boolean/],
    ['datasetSize(null)', () => datasetSize(null as never), TypeError, /dataset must be a Dataset .* got null/],
    ['takeFirst(null)', () => takeFirst(null as never, 1), TypeError, /dataset must be an object, got null/],
    ['subset(indices 5)', () => subset(gray, 5 as never), TypeError, /indices must be an Int32Array or an array of integers, got 5/],
    ['subset(name 3)', () => subset(gray, [0], 3 as never), TypeError, /name must be a string, got 3/],
    ['classCounts label out of range', () => classCounts({ ...gray, labels: Int32Array.of(0, 1, 9) }), RangeError, /dataset\.labels\[2\] = 9 is outside \[0, 2\)/],
    ['interleavedOrder(-1)', () => interleavedOrder([2, -1]), RangeError, /counts\[1\] must be >= 0/],
    ['interleavedOrder("ab")', () => interleavedOrder('ab' as never), TypeError, /counts must be an array/],
    ['toTensor indices {length: 2^40}', () => toTensor(gray, { length: 2 ** 40 } as never), RangeError, /indices asks for 1099511627776 elements/],
    ['toTensor indices {length: -1}', () => toTensor(gray, { length: -1 } as never), RangeError, /indices\.length must be a non-negative integer, got -1/],
    ['labelsOf(null)', () => labelsOf(null as never, [0]), TypeError, /dataset must be an object, got null/],
    ['loadCifar10 unknown key', () => loadCifar10('/nonexistent', { limt: 3 } as never), TypeError, /options has unknown key "limt" \(did you mean "limit"\?\)/],
    ['loadCifar10 NUL in path', () => loadCifar10('a\0b'), TypeError, /location must not contain NUL characters/],
    ['loadCifar10 location 5', () => loadCifar10(5 as never), TypeError, /location must be a non-empty path, got 5/],
    ['loadDataset unknown key', () => loadDataset('mnist', { split: 'train', lmit: 1 } as never), TypeError, /options has unknown key "lmit"/],
  ]);
  await t.rejects(loadImageFolder('/nonexistent', { size: 8, chanels: 1 } as never), { name: 'TypeError', message: /options has unknown key "chanels" \(did you mean "channels"\?\)/ });
  await t.rejects(loadImageFolder(3 as never, { size: 8 }), { name: 'TypeError', message: /root must be a non-empty path, got 3/ });
});
