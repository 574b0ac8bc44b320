// The seeded counter-based RNG gives the same numbers on CPU and CUDA
// (issue #17): Tensor.rand, Tensor.randn and ops.gaussianNoise with the same
// seed and offset are compared BITWISE across the two devices. Without a
// usable CUDA device the test is skipped (never passed), with the addon's
// reason. The native twin is backend_rng_bit_identical in
// native/tests/test_backend_ops.cpp.
import t, { type Test } from 'tap';
import { Tensor, tidy } from '../../lib/core/tensor';
import * as ops from '../../lib/core/ops';
import { info, setDevice } from '../../lib/core/backend';
import { randArray } from '../helpers';

/** Index of the first element whose bits differ, or -1 (NaN payloads and -0 count). */
function firstBitDifference(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return 0;
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) return i;
  return -1;
}

/** Runs `make` on each device and returns both results as host arrays. */
function onBoth(make: () => Tensor): { cpu: Float32Array; cuda: Float32Array; devices: string[] } {
  const res: Record<'cpu' | 'cuda', Float32Array> = { cpu: new Float32Array(0), cuda: new Float32Array(0) };
  const devices: string[] = [];
  for (const d of ['cpu', 'cuda'] as const) {
    setDevice(d);
    tidy(() => {
      const x = make();
      devices.push(x.device);
      res[d] = x.toArray();
    });
  }
  return { ...res, devices };
}

const nfo = info();
const initial = nfo.backend;

if (nfo.cudaDevices.length === 0) {
  const why = nfo.cudaStatus || nfo.reason || 'the addon reports no CUDA device';
  t.skip(why.startsWith('no CUDA device') ? why : `no CUDA device: ${why}`, () => {});
} else {
  t.teardown(() => setDevice(initial));
  const n = 100003; // odd, not a multiple of any block or vector width
  const seeds = [0, 7, 0x12345678, 2 ** 40 + 123];
  const offsets = [0, 12345, 2 ** 32 - 7];

  const check = (t: Test, what: string, make: () => Tensor) => {
    const r = onBoth(make);
    t.same(r.devices, ['cpu', 'cuda'], `${what}: made on cpu, then on cuda`);
    const at = firstBitDifference(r.cpu, r.cuda);
    t.equal(at, -1, `${what}: bit-identical on cpu and cuda`, at < 0 ? {} : { index: at, cpu: r.cpu[at], cuda: r.cuda[at] });
  };

  t.test('raw streams: uniform [0, 1), normal (0, 1), noise on zeros with sigma 1', async (t) => {
    for (const seed of seeds) {
      for (const offset of offsets) {
        const tag = `seed ${seed}, offset ${offset}`;
        check(t, `rand ${tag}`, () => Tensor.rand([n], { seed, offset }));
        check(t, `randn ${tag}`, () => Tensor.randn([n], { seed, offset }));
        check(t, `gaussianNoise(0, 1) ${tag}`, () => ops.gaussianNoise(Tensor.zeros([n]), 1, seed, offset));
      }
    }
  });

  t.test('the noise a defense adds: x + sigma * N(0, 1), and scaled fills', async (t) => {
    const x = randArray(n, 1701);
    for (const seed of seeds) {
      for (const offset of offsets) {
        const tag = `seed ${seed}, offset ${offset}`;
        check(t, `gaussianNoise(x, 0.25) ${tag}`, () => ops.gaussianNoise(Tensor.from(x, [n]), 0.25, seed, offset));
        check(t, `gaussianNoise(x, 0.01) [101, 990] ${tag}`, () => ops.gaussianNoise(Tensor.from(x.subarray(0, 101 * 990), [101, 990]), 0.01, seed, offset));
        check(t, `rand [-0.3, 0.7) ${tag}`, () => Tensor.rand([n], { seed, offset, low: -0.3, high: 0.7 }));
        check(t, `randn (0.5, 0.02) ${tag}`, () => Tensor.randn([n], { seed, offset, mean: 0.5, std: 0.02 }));
      }
    }
  });
}
