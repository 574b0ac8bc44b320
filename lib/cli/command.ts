// What a command is: its summary, its option table and what it runs. Each
// command file implements it; commands.ts lists them.
import type { OptionSpecs, ParsedArgs } from './args';

export interface CommandContext {
  /** Progress and messages (stderr), never the result. */
  log(line: string): void;
  isTTY: boolean;
}

/** A sub-command's summary and its own option table (parsing and --help use it). */
export interface SubcommandSpec {
  summary: string;
  options: OptionSpecs;
}

export interface Command {
  summary: string;
  options: OptionSpecs;
  /**
   * Sub-commands (`encsec experiment steal`): when the first positional
   * argument names one, the command line is parsed against that
   * sub-command's options only and `--help` lists exactly those.
   */
  subcommands?: Record<string, SubcommandSpec>;
  /**
   * Long work (training, grids): the CLI runs it in a child process, so that
   * Ctrl-C stops it at once; afterwards this says what was kept and how to
   * continue (e.g. "checkpoint of epoch 1 kept; run again with --resume").
   */
  onInterrupt?(args: ParsedArgs): string;
  run(args: ParsedArgs, ctx: CommandContext): Promise<Record<string, unknown>>;
}
