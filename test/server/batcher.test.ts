// The dynamic batcher, without HTTP: requests that arrive while a batch runs
// are merged into the next one (up to maxBatch images), answers are split
// back to their own requests in order, a full batch runs at once while a
// partial one waits for maxQueueDelayMs, the queue is bounded, and
// postprocessing runs batch after batch in order.
import t from 'tap';
import { DynamicBatcher, QueueFull, type BatchJob } from '../../lib/server/batcher';

const SIZE = 3;

/** A batcher whose native run is under the test's control: each run waits for release(). */
function controlled(opts: { maxBatch: number; maxQueueDelayMs: number; maxQueueImages?: number }) {
  const runs: { n: number; x: Float32Array; release(): void }[] = [];
  const batches: [number, number][] = [];
  const post: number[][] = [];
  const b = new DynamicBatcher<number, Float32Array>({
    maxBatch: opts.maxBatch,
    maxQueueDelayMs: opts.maxQueueDelayMs,
    maxQueueImages: opts.maxQueueImages ?? 1000,
    imageSize: SIZE,
    run(x, n) {
      return new Promise((resolve) => {
        // The "encoder": d = 1, the sum of each image's values.
        runs.push({
          n,
          x,
          release: () => {
            const out = new Float32Array(n);
            for (let r = 0; r < n; r++) for (let k = 0; k < SIZE; k++) out[r] += x[r * SIZE + k];
            resolve({ data: out, d: 1 });
          },
        });
      });
    },
    async postprocess(jobs: BatchJob<number>[], raw: Float32Array[]) {
      post.push(jobs.map((j) => j.meta));
      return raw.map((r) => r.slice());
    },
    onBatch: (images, requests) => batches.push([images, requests]),
  });
  return { b, runs, batches, post };
}

/** Request i: n images whose values are all i (so its answers are n rows of SIZE * i). */
const request = (i: number, n: number) => new Float32Array(n * SIZE).fill(i);

t.test('requests arriving during a run are merged into the next batch and split back', async (t) => {
  const { b, runs, batches, post } = controlled({ maxBatch: 64, maxQueueDelayMs: 0 });
  const first = b.submit(request(1, 2), 2, 1);
  t.equal(runs.length, 1, 'an idle batcher with no delay runs the first request at once');
  const later = [2, 3, 4, 5, 6].map((i) => b.submit(request(i, i), i, i));
  t.equal(runs.length, 1, 'nothing else runs while a batch is running');
  t.equal(b.queuedImages, 2 + 3 + 4 + 5 + 6);
  runs[0].release();
  t.same(Array.from(await first), [3, 3]);
  await new Promise((r) => setImmediate(r));
  t.equal(runs.length, 2);
  t.same(batches, [
    [2, 1],
    [20, 5],
  ], 'the five waiting requests form one batch of 20 images');
  runs[1].release();
  const answers = await Promise.all(later);
  answers.forEach((a, k) => {
    const i = k + 2;
    t.same(Array.from(a), new Array(i).fill(SIZE * i), `request ${i} gets its own ${i} rows`);
  });
  t.same(post, [[1], [2, 3, 4, 5, 6]], 'postprocess sees the jobs in arrival order');
  t.equal(b.queuedImages, 0);
});

t.test('a batch never exceeds maxBatch, except a single larger request that runs alone', async (t) => {
  const { b, runs, batches } = controlled({ maxBatch: 8, maxQueueDelayMs: 0 });
  const ps = [b.submit(request(1, 1), 1, 1)];
  for (const [i, n] of [
    [2, 3],
    [3, 3],
    [4, 3],
    [5, 12],
    [6, 2],
  ]) ps.push(b.submit(request(i, n), n, i));
  for (let k = 0; k < 10 && runs.some((r) => r); k++) {
    const r = runs[k];
    if (!r) break;
    r.release();
    await new Promise((res) => setImmediate(res));
  }
  await Promise.all(ps);
  t.same(batches, [
    [1, 1],
    [6, 2],
    [3, 1],
    [12, 1],
    [2, 1],
  ]);
  t.ok(batches.every(([n, reqs]) => n <= 8 || reqs === 1));
});

t.test('a full batch runs at once; a partial one waits for maxQueueDelayMs', async (t) => {
  const { b, runs } = controlled({ maxBatch: 4, maxQueueDelayMs: 10_000 });
  const p1 = b.submit(request(1, 2), 2, 1);
  await new Promise((r) => setImmediate(r));
  t.equal(runs.length, 0, 'two of four images: waits');
  const p2 = b.submit(request(2, 2), 2, 2);
  t.equal(runs.length, 1, 'four of four: runs in the same tick, without waiting');
  t.equal(runs[0].n, 4);
  runs[0].release();
  t.same([Array.from(await p1), Array.from(await p2)], [
    [3, 3],
    [6, 6],
  ]);
  const p3 = b.submit(request(3, 1), 1, 3);
  const drained = b.drain();
  await new Promise((r) => setTimeout(r, 20));
  t.equal(runs.length, 2, 'drain() runs what is waiting without the delay');
  runs[1].release();
  await drained;
  t.same(Array.from(await p3), [9]);
  t.throws(() => b.submit(request(4, 1), 1, 4), QueueFull, 'a drained batcher accepts nothing');
});

t.test('the queue is bounded: QueueFull at once, counting nothing', async (t) => {
  const { b, runs } = controlled({ maxBatch: 2, maxQueueDelayMs: 0, maxQueueImages: 5 });
  const running = b.submit(request(1, 2), 2, 1);
  const waiting = b.submit(request(2, 4), 4, 2);
  t.throws(() => b.submit(request(3, 2), 2, 3), QueueFull);
  t.equal(b.queuedImages, 4);
  const ok = b.submit(request(4, 1), 1, 4);
  runs[0].release();
  await running;
  await new Promise((r) => setImmediate(r));
  runs[1].release();
  await new Promise((r) => setImmediate(r));
  runs[2].release();
  t.same(Array.from(await waiting), [6, 6, 6, 6]);
  t.same(Array.from(await ok), [12]);
});

t.test('options are checked', async (t) => {
  const base = { maxBatch: 4, maxQueueDelayMs: 1, maxQueueImages: 10, imageSize: 3, run: async () => ({ data: new Float32Array(0), d: 1 }), postprocess: async () => [] };
  t.throws(() => new DynamicBatcher({ ...base, maxBatch: 0 }), /maxBatch/);
  t.throws(() => new DynamicBatcher({ ...base, maxQueueDelayMs: -1 }), /maxQueueDelayMs/);
  t.throws(() => new DynamicBatcher({ ...base, imageSize: 1.5 }), /imageSize/);
  const b = new DynamicBatcher(base);
  await t.rejects(b.submit(new Float32Array(5), 2, 0), /expected 2 images of 3/);
});
