// Resident memory of a SimCLR training step, measured in a process of its own
// (the harness's process has run other workloads, so its high-water mark
// would say nothing about one step). Spawned by run.ts:
//   node rss_probe.js '{"arch":"cnn-small","batch":256,"steps":3}'
// prints one JSON line: {"baselineMB":..,"peakMB":..,"afterMB":..}
// baseline = resident memory once the addon is loaded, before the data set
// and the model exist; peak = the process's
// high-water mark after `steps` steps (model, optimizer state, activations,
// gradients, augmentation buffers, allocator cache). MB = 10^6 bytes.
import * as fs from 'fs';
import { prepare } from './encsec_rows';
import type { RowSpec } from './suite';

function mb(bytes: number): number {
  return bytes / 1e6;
}

/**
 * Peak resident memory of this process, in bytes. On Linux it is VmHWM, the
 * high-water mark of this address space. getrusage's maxRSS is not used there:
 * Linux carries it across fork + exec, so a probe spawned by a large harness
 * reports the harness's footprint (the first full run read 1983 MB for a step
 * whose own peak was 752 MB).
 */
export function peakRssBytes(): number {
  try {
    const m = /^VmHWM:\s+(\d+)\s+kB$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
    if (m) return Number(m[1]) * 1024;
  } catch {
    // not Linux: fall back to getrusage
  }
  // maxRSS is in kilobytes (KiB) on every platform Node supports.
  return process.resourceUsage().maxRSS * 1024;
}

export function probe(arch: string, batch: number, steps: number): { baselineMB: number; peakMB: number; afterMB: number } {
  const baselineMB = mb(process.memoryUsage().rss);
  const row: RowSpec = {
    id: 'rss-probe',
    group: 'memory',
    shape: '',
    op: 'simclr_step',
    params: { arch, batch },
    metric: 'images/s',
    work: batch,
    onCuda: false,
  };
  const w = prepare(row);
  for (let i = 0; i < steps; i++) w.run();
  const afterMB = mb(process.memoryUsage().rss);
  const peakMB = mb(peakRssBytes());
  w.dispose();
  return { baselineMB, peakMB, afterMB };
}

if (require.main === module) {
  try {
    const a = JSON.parse(process.argv[2] ?? '{}') as { arch?: string; batch?: number; steps?: number };
    const r = probe(a.arch ?? 'cnn-small', a.batch ?? 256, a.steps ?? 3);
    process.stdout.write(`${JSON.stringify(r)}\n`);
  } catch (e) {
    process.stdout.write(`${JSON.stringify({ error: (e as Error).message })}\n`);
    process.exitCode = 1;
  }
}
