// Runs the CLI's main() in this process with stdout and stderr captured: the
// exit code, both streams, the last line of stdout parsed as the command's
// JSON object (null when it is not JSON) and the wall time. Shared by every
// test that drives a command.
import { main } from '../../lib/cli/main';

export interface CliRun {
  code: number;
  out: string;
  err: string;
  last: Record<string, unknown> | null;
  ms: number;
}

export async function runMain(argv: string[]): Promise<CliRun> {
  let out = '';
  let err = '';
  const wo = process.stdout.write.bind(process.stdout);
  const we = process.stderr.write.bind(process.stderr);
  process.stdout.write = ((s: string) => ((out += s), true)) as typeof process.stdout.write;
  process.stderr.write = ((s: string) => ((err += s), true)) as typeof process.stderr.write;
  const t0 = Date.now();
  let code: number;
  try {
    code = await main(argv);
  } finally {
    process.stdout.write = wo;
    process.stderr.write = we;
  }
  const lines = out.trim().split('\n');
  let last: Record<string, unknown> | null = null;
  try {
    last = JSON.parse(lines[lines.length - 1]);
  } catch {
    last = null;
  }
  return { code, out, err, last, ms: Date.now() - t0 };
}
