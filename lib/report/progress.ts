// Progress of long work: a bar with loss, images/s and ETA on a terminal
// (cli-progress), one JSON object per line otherwise (logs, CI, pipes).
// Progress goes to stderr; stdout is kept for each command's result.
import { SingleBar, Presets } from 'cli-progress';
import { checkInt, checkOneOf, checkOptions, describe } from '../core/validate';

export interface ProgressEvent {
  /** What is running, e.g. "pretrain". */
  task: string;
  epoch?: number;
  epochs?: number;
  step: number;
  steps: number;
  loss?: number;
  imagesPerSec?: number;
  etaSec?: number;
  [key: string]: unknown;
}

export interface ProgressSink {
  update(e: ProgressEvent): void;
  /** A one-off message or record (epoch summary). */
  event(record: Record<string, unknown>): void;
  stop(): void;
}

/** Discards everything (library use without output). */
export const silentProgress: ProgressSink = { update() {}, event() {}, stop() {} };

/**
 * Where progress goes (default process.stderr): any writable text stream. A
 * structural type, so that the published declarations need no Node types.
 */
export interface ProgressStream {
  write(chunk: string): unknown;
  isTTY?: boolean;
}

export interface ProgressOptions {
  stream?: ProgressStream;
  /** Force the mode; default: a bar when the stream is a TTY. */
  mode?: 'bar' | 'json' | 'silent';
  /** Minimum milliseconds between JSON progress lines. */
  intervalMs?: number;
}

/** Checks a progress argument: an object with update, event and stop methods (a ProgressSink). */
export function checkProgressSink(v: unknown, name: string): ProgressSink {
  const p = v as Partial<ProgressSink> | null;
  if (p === null || typeof p !== 'object' || typeof p.update !== 'function' || typeof p.event !== 'function' || typeof p.stop !== 'function') {
    throw new TypeError(`${name} must be a ProgressSink ({ update, event, stop }, e.g. from createProgress()), got ${describe(v)}`);
  }
  return p as ProgressSink;
}

/** JSON text of a progress record; a BigInt is written as its decimal digits (JSON has none). */
function json(v: unknown): string {
  return JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? x.toString() : x));
}

export function createProgress(opts: ProgressOptions = {}): ProgressSink {
  const o = checkOptions<ProgressOptions>(opts, 'opts', ['stream', 'mode', 'intervalMs']);
  const stream = o.stream ?? process.stderr;
  if (stream === null || typeof stream !== 'object' || typeof (stream as ProgressStream).write !== 'function') {
    throw new TypeError(`opts.stream must be a writable text stream (an object with write()), got ${describe(stream)}`);
  }
  const mode = o.mode === undefined ? (stream.isTTY ? 'bar' : 'json') : checkOneOf(o.mode, 'opts.mode', ['bar', 'json', 'silent'] as const);
  if (o.intervalMs !== undefined) checkInt(o.intervalMs, 'opts.intervalMs', { min: 0, max: 2 ** 31 - 1 });
  if (mode === 'silent') return silentProgress;
  if (mode === 'json') {
    const interval = o.intervalMs ?? 10_000;
    let last = 0;
    return {
      update(e) {
        const now = Date.now();
        if (now - last < interval && e.step !== e.steps) return;
        last = now;
        stream.write(json({ type: 'progress', ...round(e) }) + '\n');
      },
      event(record) {
        stream.write(json({ type: 'event', ...record }) + '\n');
      },
      stop() {},
    };
  }
  let bar: SingleBar | null = null;
  let barTotal = 0;
  return {
    update(e) {
      if (!bar || barTotal !== e.steps) {
        bar?.stop();
        bar = new SingleBar(
          {
            // A bar is drawn only on a TTY: there the stream is a real Node stream.
            stream: stream as unknown as NodeJS.WritableStream,
            format: '{task} {epochs} [{bar}] {percentage}% | loss {loss} | {ips} img/s | ETA {eta_s}s',
            hideCursor: true,
            etaBuffer: 50,
          },
          Presets.shades_classic,
        );
        barTotal = e.steps;
        bar.start(e.steps, 0);
      }
      bar.update(e.step, {
        task: e.task,
        epochs: e.epoch !== undefined ? `epoch ${e.epoch}/${e.epochs}` : '',
        loss: e.loss !== undefined ? e.loss.toFixed(4) : '-',
        ips: e.imagesPerSec !== undefined ? Math.round(e.imagesPerSec) : '-',
      });
    },
    event(record) {
      bar?.stop();
      bar = null;
      stream.write(Object.entries(record).map(([k, v]) => `${k}=${typeof v === 'number' ? +v.toFixed(4) : json(v)}`).join(' ') + '\n');
    },
    stop() {
      bar?.stop();
      bar = null;
    },
  };
}

function round(e: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(e)) out[k] = typeof v === 'number' && !Number.isInteger(v) ? +v.toPrecision(6) : v;
  return out;
}
