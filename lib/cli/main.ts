// The encsec command line: a thin shell over the library. Each command lives
// in its own file and ends by printing one JSON object on the last line of
// standard output (and to --json FILE when given). Errors go to stderr.
//
// Exit codes: 0 done; 1 the work failed; 2 (USAGE_EXIT_CODE) the command
// line is wrong, found before any work; 130 interrupted (Ctrl-C).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { commands, type CommandContext } from './commands';
import type { Command } from './command';
import { COMMON_OPTIONS, USAGE_EXIT_CODE, UsageError, describeBounds, parseArgs, type OptionSpec, type OptionSpecs, type ParsedArgs } from './args';
import { spawn } from 'node:child_process';
import { checkWritableFile } from './files';
import { writeFileAtomic } from '../io/atomic';

export const INTERRUPTED_EXIT_CODE = 130;

const USAGE = `usage: encsec <command> [options]
       encsec help <command> [<sub-command>]    encsec --version

commands:
${Object.entries(commands)
  .map(([name, c]) => `  ${name.padEnd(12)} ${c.summary}`)
  .join('\n')}

Every command prints one JSON object on its last line; --json FILE writes it too.
Exit codes: 0 done, 1 failed, ${USAGE_EXIT_CODE} wrong command line (nothing was done), ${INTERRUPTED_EXIT_CODE} interrupted.`;

/** The package's version (package.json beside dist/ or lib/). */
export function packageVersion(): string {
  for (const rel of ['../../package.json', '../../../package.json']) {
    const f = path.join(__dirname, rel);
    if (fs.existsSync(f)) {
      const pkg = JSON.parse(fs.readFileSync(f, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'encsec' && pkg.version) return pkg.version;
    }
  }
  return 'unknown';
}

/**
 * The first positional argument of a command line (the sub-command), skipping
 * the values of options that take one.
 */
export function firstPositional(argv: readonly string[], options: OptionSpecs): string | undefined {
  const all = { ...COMMON_OPTIONS, ...options };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('-')) return a;
    if (a.startsWith('--') && !a.includes('=')) {
      const spec = all[a.slice(2)];
      if (spec && spec.kind !== 'boolean') i++;
    }
  }
  return undefined;
}

/** The options a command line is parsed against: the sub-command's when it names one. */
function optionsFor(cmd: Command, sub: string | undefined): OptionSpecs {
  return sub !== undefined && cmd.subcommands?.[sub] ? cmd.subcommands[sub].options : cmd.options;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === '--version' || name === '-V' || name === 'version') {
    process.stdout.write(`encsec ${packageVersion()}\n`);
    return 0;
  }
  if (!name || name === '--help' || name === '-h') {
    process.stdout.write(USAGE + '\n');
    return name ? 0 : USAGE_EXIT_CODE;
  }
  if (name === 'help') {
    const [topic, sub] = rest;
    if (topic === undefined) {
      process.stdout.write(USAGE + '\n');
      return 0;
    }
    const c = commands[topic];
    if (!c) {
      process.stderr.write(`encsec help: unknown command "${topic}"\n${USAGE}\n`);
      return USAGE_EXIT_CODE;
    }
    if (sub !== undefined && !c.subcommands?.[sub]) {
      process.stderr.write(`encsec help: "${topic}" has no sub-command "${sub}"\n${helpOf(topic, c, undefined)}\n`);
      return USAGE_EXIT_CODE;
    }
    process.stdout.write(helpOf(topic, c, sub) + '\n');
    return 0;
  }
  const cmd = commands[name];
  if (!cmd) {
    process.stderr.write(`encsec: unknown command "${name}"\n${USAGE}\n`);
    return USAGE_EXIT_CODE;
  }
  const first = firstPositional(rest, cmd.options);
  const sub = first !== undefined && cmd.subcommands?.[first] ? first : undefined;
  const label = sub ? `${name} ${sub}` : name;
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(helpOf(name, cmd, sub) + '\n');
    return 0;
  }
  let args: ParsedArgs;
  try {
    args = parseArgs(rest, optionsFor(cmd, sub));
    const jsonPath = args.string('json');
    if (jsonPath !== undefined) checkWritableFile(jsonPath, '--json');
  } catch (e) {
    return reportError(label, e, USAGE_EXIT_CODE);
  }
  const ctx: CommandContext = {
    log: (line: string) => process.stderr.write(line + '\n'),
    isTTY: Boolean(process.stderr.isTTY),
  };
  try {
    const result = await cmd.run(args, ctx);
    const line = JSON.stringify(result);
    process.stdout.write(line + '\n');
    const jsonPath = args.get('json');
    if (typeof jsonPath === 'string') writeFileAtomic(jsonPath, line + '\n');
    return 0;
  } catch (e) {
    return reportError(label, e, 1);
  }
}

/**
 * The executable's entry point (bin/encsec.js). A command with long work
 * (Command.onInterrupt) runs in a child process: the training loops are
 * synchronous, so only a process that is not busy can answer Ctrl-C at once.
 * The command line is checked here first (a usage error starts nothing); on
 * Ctrl-C the child stops at once (every file it wrote is complete: writes are
 * atomic), then this process says what was kept and how to continue, and
 * exits with INTERRUPTED_EXIT_CODE.
 */
export async function cli(argv: string[], script: string = process.argv[1]): Promise<number> {
  const [name, ...rest] = argv;
  const cmd = name === undefined ? undefined : commands[name];
  if (!cmd?.onInterrupt || process.env.ENCSEC_SUPERVISED === '1' || rest.includes('--help') || rest.includes('-h')) return main(argv);
  const first = firstPositional(rest, cmd.options);
  const sub = first !== undefined && cmd.subcommands?.[first] ? first : undefined;
  let args: ParsedArgs;
  try {
    args = parseArgs(rest, optionsFor(cmd, sub));
    const jsonPath = args.string('json');
    if (jsonPath !== undefined) checkWritableFile(jsonPath, '--json');
  } catch {
    return main(argv); // reports the usage error, exit 2
  }
  const child = spawn(process.execPath, [script, ...argv], { stdio: 'inherit', env: { ...process.env, ENCSEC_SUPERVISED: '1' } });
  let interrupted = false;
  const forward = (signal: NodeJS.Signals) => () => {
    interrupted = true;
    if (child.exitCode === null) child.kill(signal);
  };
  const onInt = forward('SIGINT');
  const onTerm = forward('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  try {
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
      child.on('error', reject);
      child.on('exit', (c, s) => resolve([c, s]));
    });
    if (interrupted || signal === 'SIGINT' || signal === 'SIGTERM' || code === INTERRUPTED_EXIT_CODE) {
      let kept: string;
      try {
        kept = cmd.onInterrupt(args);
      } catch (e) {
        kept = `(could not read what was kept: ${(e as Error).message})`;
      }
      process.stderr.write(`\nencsec ${sub ? `${name} ${sub}` : name}: interrupted. ${kept}\n`);
      return INTERRUPTED_EXIT_CODE;
    }
    return code ?? 1;
  } finally {
    process.removeListener('SIGINT', onInt);
    process.removeListener('SIGTERM', onTerm);
  }
}

function reportError(label: string, e: unknown, code: number): number {
  const usage = e instanceof UsageError;
  process.stderr.write(`encsec ${label}: ${(e as Error).message}\n`);
  if (usage) process.stderr.write(`(encsec ${label} --help lists the options)\n`);
  return usage ? USAGE_EXIT_CODE : code;
}

/** Help of a command, or of one of its sub-commands: exactly the options that command line accepts. */
export function helpOf(name: string, cmd: Command, sub: string | undefined): string {
  if (sub !== undefined && cmd.subcommands?.[sub]) {
    const s = cmd.subcommands[sub];
    return commandHelp(`${name} ${sub}`, s.options, s.summary);
  }
  let text = commandHelp(cmd.subcommands ? `${name} <sub-command>` : name, cmd.subcommands ? {} : cmd.options, cmd.summary);
  if (cmd.subcommands) {
    text += `\n\nsub-commands (encsec ${name} <sub-command> --help lists its options):\n`;
    text += Object.entries(cmd.subcommands).map(([n, s]) => `  ${n.padEnd(12)} ${s.summary}`).join('\n');
  }
  return text;
}

/** One option's line of help: name, value kind, help, rule, default, required. */
export function optionHelpLine(opt: string, spec: OptionSpec): string {
  const notes: string[] = [];
  if (spec.required) notes.push('required');
  if ((spec.kind === 'int' || spec.kind === 'number') && (spec.min !== undefined || spec.max !== undefined)) notes.push(describeBounds(spec));
  if (spec.choices && !spec.help.includes(spec.choices.join(' | '))) notes.push(`${spec.kind === 'list' ? 'each ' : ''}one of ${spec.choices.join(' | ')}`);
  if (spec.default !== undefined) {
    const shown = `default ${Array.isArray(spec.default) ? spec.default.join(',') : String(spec.default)}`;
    if (!spec.help.includes(shown)) notes.push(shown);
  }
  return `  --${opt}${spec.kind === 'boolean' ? '' : ` <${spec.kind}>`}`.padEnd(30) + ` ${spec.help}${notes.length ? ` (${notes.join('; ')})` : ''}`;
}

/** Usage of one command: its summary and every option with its help text, required ones first. */
export function commandHelp(name: string, options: OptionSpecs, summary: string): string {
  const entries = Object.entries({ ...options, ...COMMON_OPTIONS });
  const required = entries.filter(([, s]) => s.required);
  const optional = entries.filter(([, s]) => !s.required);
  const usage = `usage: encsec ${name}${required.map(([o, s]) => ` --${o}${s.kind === 'boolean' ? '' : ` <${s.kind}>`}`).join('')} [options]`;
  return `${usage}\n\n${summary}\n\noptions:\n${[...required, ...optional].map(([o, s]) => optionHelpLine(o, s)).join('\n')}`;
}
