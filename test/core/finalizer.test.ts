// Forgotten tensors are freed by the garbage collector: the native side's
// finalizer returns their storage to the host allocator's cache.
import t from 'tap';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { Tensor } from '../../lib/core/tensor';
import { native } from '../../lib/core/native';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

t.test('unreferenced tensors are finalized and their memory reused', async (t) => {
  native.clearCache();
  const before = native.cacheBytes();
  const MB = 1 << 20;
  (() => {
    for (let i = 0; i < 16; i++) Tensor.zeros([MB / 4 + i * 16]);
  })();
  for (let i = 0; i < 5 && native.cacheBytes() - before < 16 * MB; i++) {
    gc();
    await new Promise((r) => setImmediate(r));
  }
  const freed = native.cacheBytes() - before;
  t.ok(freed >= 16 * MB, `finalizers returned ${(freed / MB).toFixed(1)} MB to the cache`);
  native.clearCache();
  t.equal(native.cacheBytes(), 0, 'clearCache empties it');
});

t.test('ENCSEC_HOST_CACHE_MB caps the cache: larger frees go back to the OS', async (t) => {
  // The cap is read once per process, so the check runs in a child.
  const addon = require.resolve('../../lib/core/native');
  const script = `
    const { native } = require(${JSON.stringify(addon)});
    const { Tensor } = require(${JSON.stringify(require.resolve('../../lib/core/tensor'))});
    native.clearCache();
    // Both alive at once: a request may borrow a cached block up to twice its
    // size (native/alloc.cpp), so the 0.5 MiB one must not find the 0.75 MiB
    // block free.
    const big = Tensor.zeros([768 * 1024 / 4]);
    const half = Tensor.zeros([512 * 1024 / 4]);
    big.dispose();  // 0.75 MiB: fits the 1 MiB cap
    const small = native.cacheBytes();
    half.dispose();  // 0.5 MiB more would exceed it
    const after = native.cacheBytes();
    process.stdout.write(JSON.stringify({ small, after }));
  `;
  const run = (cap: string) => {
    const r = spawnSync(process.execPath, [...process.execArgv, '-e', script], {
      env: { ...process.env, ENCSEC_HOST_CACHE_MB: cap },
      encoding: 'utf8',
      cwd: path.join(__dirname, '..', '..'),
    });
    t.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout) as { small: number; after: number };
  };
  const capped = run('1');
  t.equal(capped.small, 768 * 1024, 'a block under the cap is cached');
  t.equal(capped.after, 768 * 1024, 'a block that would pass the cap is freed, not cached');
  // A value that is not a number of MiB keeps the default cap (at least 1 GiB).
  for (const bad of ['-5', 'lots', '']) t.equal(run(bad).after, 1280 * 1024, `ENCSEC_HOST_CACHE_MB=${JSON.stringify(bad)} is ignored`);
});
