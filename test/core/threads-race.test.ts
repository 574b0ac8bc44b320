// Issue #19 §1: setThreads() while embed() calls are in flight once returned
// wrong embeddings silently (the pool shrank between the split of the work
// and the run, and the upper chunks were never computed). 50 concurrent
// embeds while the thread count toggles between 1 and 2 (500 times, and on
// until the last embed has finished): every
// result must be bitwise the synchronous one.
import t from 'tap';
import { Tensor } from '../../lib/core/tensor';
import { info, setThreads } from '../../lib/core/backend';
import { embedSync } from '../../lib/nn/module';
import { createEncoder } from '../../lib/nn/encoders';
import { randArray, sameValues } from '../helpers';

t.test('setThreads during 50 concurrent embeds: every result equals embedSync', async (t) => {
  const before = info().cpuThreads;
  t.teardown(() => setThreads(before));
  const enc = createEncoder('cnn-small', { seed: 7 }).eval();
  const x = Tensor.from(randArray(8 * 28 * 28, 9), [8, 1, 28, 28]);

  // Without a race, 1 and 2 threads give bitwise identical embeddings: the
  // kernels split work in thread-count-independent ways.
  setThreads(1);
  const y1 = embedSync(enc, x);
  setThreads(2);
  const y2 = embedSync(enc, x);
  const ref = y1.toArray();
  t.ok(sameValues(ref, y2.toArray()), '1 and 2 threads: bitwise identical embeddings');
  y1.dispose();
  y2.dispose();

  let settled = 0;
  const pending = Array.from({ length: 50 }, () =>
    enc.embed(x).then((y) => {
      settled++;
      return y;
    }),
  );
  // At least 500 toggles, and on until every embed has finished, so that
  // every one of them runs while the pool is being resized.
  let toggles = 0;
  let settledAtFirstToggle = -1;
  for (let i = 0; i < 500 || settled < 50; i++) {
    setThreads(1 + (i % 2));
    toggles++;
    if (settledAtFirstToggle < 0) settledAtFirstToggle = settled;
    // Let the workers' completions in between toggles.
    await new Promise((r) => setImmediate(r));
  }
  const ys = await Promise.all(pending);
  t.ok(toggles >= 500, `toggled ${toggles} times (at least 500) until the last embed finished`);
  t.equal(settledAtFirstToggle, 0, 'toggling began with all 50 embeds in flight');
  let wrong = 0;
  for (const y of ys) {
    if (!sameValues(y.toArray(), ref)) wrong++;
    y.dispose();
  }
  t.equal(wrong, 0, `all 50 embeddings bitwise equal to embedSync (${wrong} differ)`);
  x.dispose();
});
