// Dynamic batching (the idea of Triton's dynamic batcher): requests that
// arrive while a native batch is running, or within `maxQueueDelayMs` of the
// oldest waiting request, are merged into one batch of at most `maxBatch`
// images, run once, and the answers are split back in order.
//
// When to run: as soon as the queue holds a full batch (no waiting then), or
// when the oldest waiting request has waited maxQueueDelayMs; never while a
// batch is already running (one native batch at a time: the kernels use every
// core already, and requests arriving meanwhile make the next batch bigger).
// A request larger than maxBatch runs alone.
//
// After the native run, `postprocess` (defenses, the audit commit) runs for
// the batch's requests in batch order, and the batches' postprocessing runs
// in batch order too (a stateful defense sees a client's rows in the order
// they arrived); the next native batch starts without waiting for it.
//
// Bounded: when the waiting images would exceed maxQueueImages, or once
// drain() has begun, submit() throws QueueFull at once (the server answers
// 503 with Retry-After).

import { checkOptions, describe } from '../core/validate';

export class QueueFull extends Error {
  constructor(
    readonly queued: number,
    readonly limit: number,
    message = `the request queue is full (${queued} images waiting, limit ${limit}); retry later`,
  ) {
    super(message);
    this.name = 'QueueFull';
  }
}

export interface BatchJob<T> {
  /** The request's images, float32 rows [n, ...inputShape]. */
  readonly x: Float32Array;
  readonly n: number;
  /** Whatever the caller needs in postprocess (key, route, ...). */
  readonly meta: T;
}

export interface BatcherOptions<T, R> {
  maxBatch: number;
  maxQueueDelayMs: number;
  maxQueueImages: number;
  /** Values per image (C * H * W). */
  imageSize: number;
  /** The native run: x holds n images; resolves to their embeddings, n rows of d. */
  run(x: Float32Array, n: number): Promise<{ data: Float32Array; d: number }>;
  /** Turns each job's raw rows (n * d) into its answer; runs batch after batch, in order. */
  postprocess(jobs: BatchJob<T>[], raw: Float32Array[], d: number): Promise<R[]>;
  /** Called with the number of images of each native batch (metrics). */
  onBatch?(images: number, requests: number): void;
}

interface Pending<T, R> extends BatchJob<T> {
  at: number;
  resolve(r: R): void;
  reject(e: unknown): void;
}

export class DynamicBatcher<T, R> {
  readonly #o: BatcherOptions<T, R>;
  readonly #queue: Pending<T, R>[] = [];
  #queued = 0;
  #running = false;
  #timer: NodeJS.Timeout | null = null;
  /** The tail of the chain of postprocess steps (keeps batches in order). */
  #post: Promise<void> = Promise.resolve();
  #closed = false;

  constructor(options: BatcherOptions<T, R>) {
    if (options === undefined) throw new TypeError('options must be an object { maxBatch, maxQueueDelayMs, maxQueueImages, imageSize, run, postprocess }, got undefined');
    checkOptions(options, 'options', ['maxBatch', 'maxQueueDelayMs', 'maxQueueImages', 'imageSize', 'run', 'postprocess', 'onBatch']);
    for (const k of ['run', 'postprocess'] as const) {
      if (typeof options[k] !== 'function') throw new TypeError(`options.${k} must be a function, got ${describe(options[k])}`);
    }
    if (options.onBatch !== undefined && typeof options.onBatch !== 'function') throw new TypeError(`options.onBatch must be a function, got ${describe(options.onBatch)}`);
    for (const k of ['maxBatch', 'maxQueueImages', 'imageSize'] as const) {
      if (!Number.isInteger(options[k]) || options[k] < 1) throw new RangeError(`${k} must be a positive integer, got ${options[k]}`);
    }
    if (!(options.maxQueueDelayMs >= 0 && options.maxQueueDelayMs <= 10_000)) throw new RangeError(`maxQueueDelayMs must be in [0, 10000], got ${options.maxQueueDelayMs}`);
    this.#o = options;
  }

  /** Images waiting (not yet in a native batch). */
  get queuedImages(): number {
    return this.#queued;
  }

  submit(x: Float32Array, n: number, meta: T): Promise<R> {
    if (this.#closed) throw new QueueFull(this.#queued, 0, 'the server is shutting down; retry on another replica or later');
    if (x.length !== n * this.#o.imageSize) return Promise.reject(new RangeError(`x holds ${x.length} values, expected ${n} images of ${this.#o.imageSize}`));
    if (this.#queued + n > this.#o.maxQueueImages) throw new QueueFull(this.#queued, this.#o.maxQueueImages);
    return new Promise<R>((resolve, reject) => {
      this.#queue.push({ x, n, meta, at: performance.now(), resolve, reject });
      this.#queued += n;
      this.#schedule();
    });
  }

  #schedule(): void {
    if (this.#running || this.#queue.length === 0) return;
    const wait = this.#o.maxQueueDelayMs - (performance.now() - this.#queue[0].at);
    if (this.#queued >= this.#o.maxBatch || wait <= 0) {
      if (this.#timer) {
        clearTimeout(this.#timer);
        this.#timer = null;
      }
      this.#start();
    } else if (!this.#timer) {
      this.#timer = setTimeout(() => {
        this.#timer = null;
        this.#schedule();
      }, Math.ceil(wait));
    }
  }

  #start(): void {
    const jobs: Pending<T, R>[] = [];
    let total = 0;
    while (this.#queue.length > 0 && (jobs.length === 0 || total + this.#queue[0].n <= this.#o.maxBatch)) {
      const j = this.#queue.shift()!;
      jobs.push(j);
      total += j.n;
    }
    this.#queued -= total;
    this.#running = true;
    let x: Float32Array;
    if (jobs.length === 1) x = jobs[0].x;
    else {
      x = new Float32Array(total * this.#o.imageSize);
      let off = 0;
      for (const j of jobs) {
        x.set(j.x, off);
        off += j.x.length;
      }
    }
    this.#o.onBatch?.(total, jobs.length);
    const ran = this.#o.run(x, total);
    ran.then(
      () => undefined,
      () => undefined,
    ).finally(() => {
      this.#running = false;
      this.#schedule();
    });
    this.#post = this.#post.then(async () => {
      try {
        const { data, d } = await ran;
        const raw: Float32Array[] = [];
        let row = 0;
        for (const j of jobs) {
          raw.push(data.subarray(row * d, (row + j.n) * d));
          row += j.n;
        }
        const answers = await this.#o.postprocess(jobs, raw, d);
        jobs.forEach((j, i) => j.resolve(answers[i]));
      } catch (e) {
        for (const j of jobs) j.reject(e);
      }
    });
  }

  /** Stops accepting requests and waits for everything submitted to finish. */
  async drain(): Promise<void> {
    this.#closed = true;
    while (this.#queue.length > 0 || this.#running) {
      if (this.#timer) {
        clearTimeout(this.#timer);
        this.#timer = null;
        if (!this.#running) this.#start();
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    await this.#post;
  }
}
