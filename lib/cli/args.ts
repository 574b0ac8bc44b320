// Command-line parsing: --name value, --flag, and positional arguments. Each
// command declares its options; anything unknown or malformed is an error
// that names the option as the user typed it (--budget, not "budget").
//
// The option table is the one source of truth for a command's rules: kind,
// default, `required`, numeric bounds (`min`/`max`) and accepted values
// (`choices`) are checked here, before the command runs, so that a wrong
// value never costs any work; `encsec <command> --help` is rendered from the
// same table (main.ts commandHelp). Every such error is a UsageError: one
// exit code (USAGE_EXIT_CODE) for every usage error of every command.
export type OptionKind = 'string' | 'number' | 'int' | 'boolean' | 'list';

export interface OptionSpec {
  kind: OptionKind;
  help: string;
  default?: string | number | boolean | string[];
  /** The command refuses to run without it (all missing ones are named at once); --help marks it. */
  required?: boolean;
  /** int / number (each item of a list of numbers is not checked): inclusive lower bound. */
  min?: number;
  /** int / number: inclusive upper bound. */
  max?: number;
  /** string / list: the accepted values (each item of a list). */
  choices?: readonly string[];
}

export type OptionSpecs = Record<string, OptionSpec>;

export type ArgValue = string | number | boolean | string[] | undefined;

/** Exit code of every usage error (unknown or malformed option, missing required option, bad value). */
export const USAGE_EXIT_CODE = 2;

/** A mistake in the command line: reported with USAGE_EXIT_CODE, before any work. */
export class UsageError extends Error {
  readonly exitCode = USAGE_EXIT_CODE;
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export class ParsedArgs {
  constructor(
    private readonly values: Map<string, ArgValue>,
    readonly positional: string[],
  ) {}
  get(name: string): ArgValue {
    return this.values.get(name);
  }
  string(name: string): string | undefined {
    const v = this.values.get(name);
    return v === undefined ? undefined : String(v);
  }
  number(name: string): number | undefined {
    const v = this.values.get(name);
    return v === undefined ? undefined : (v as number);
  }
  bool(name: string): boolean {
    return this.values.get(name) === true;
  }
  list(name: string): string[] | undefined {
    return this.values.get(name) as string[] | undefined;
  }
  has(name: string): boolean {
    return this.values.get(name) !== undefined;
  }
}

/** Options every command takes. */
export const COMMON_OPTIONS: OptionSpecs = {
  json: { kind: 'string', help: 'also write the final JSON object to this file' },
};

/**
 * Parses argv against the option table (plus COMMON_OPTIONS). Collects every
 * problem (unknown option, malformed or out-of-range value, missing required
 * option) and throws one UsageError naming them all.
 */
export function parseArgs(argv: string[], specs: OptionSpecs): ParsedArgs {
  const all: OptionSpecs = { ...COMMON_OPTIONS, ...specs };
  const values = new Map<string, ArgValue>();
  const positional: string[] = [];
  const problems: string[] = [];
  const given = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--') || a === '--') {
      positional.push(a);
      continue;
    }
    let name = a.slice(2);
    let inline: string | undefined;
    const eq = name.indexOf('=');
    if (eq >= 0) {
      inline = name.slice(eq + 1);
      name = name.slice(0, eq);
    }
    const spec = all[name];
    if (!spec) {
      problems.push(`unknown option --${name}`);
      continue;
    }
    given.add(name);
    if (spec.kind === 'boolean') {
      if (inline !== undefined && inline !== 'true' && inline !== 'false') problems.push(`--${name} takes no value`);
      else values.set(name, inline !== 'false');
      continue;
    }
    const raw = inline ?? argv[++i];
    if (raw === undefined) {
      problems.push(`--${name} needs a value`);
      continue;
    }
    try {
      values.set(name, convert(name, spec, raw));
    } catch (e) {
      problems.push((e as Error).message);
    }
  }
  const missing = Object.entries(all).filter(([name, spec]) => spec.required && !given.has(name)).map(([name]) => `--${name}`);
  if (missing.length) problems.push(`missing required option${missing.length > 1 ? 's' : ''} ${missing.join(', ')}`);
  if (problems.length) throw new UsageError(problems.join('; '));
  for (const [name, spec] of Object.entries(all)) {
    if (!values.has(name) && spec.default !== undefined) values.set(name, spec.default);
  }
  return new ParsedArgs(values, positional);
}

/** "an integer >= 2", "a number in [0, 1]": the rule a numeric option follows, for messages and help. */
export function describeBounds(spec: OptionSpec): string {
  const what = spec.kind === 'int' ? 'an integer' : 'a number';
  if (spec.min !== undefined && spec.max !== undefined) return `${what} in [${spec.min}, ${spec.max}]`;
  if (spec.min !== undefined) return `${what} >= ${spec.min}`;
  if (spec.max !== undefined) return `${what} <= ${spec.max}`;
  return what;
}

function convert(name: string, spec: OptionSpec, raw: string): ArgValue {
  switch (spec.kind) {
    case 'string':
      if (spec.choices && !spec.choices.includes(raw)) throw new UsageError(`--${name} must be one of ${spec.choices.join(', ')}, got ${JSON.stringify(raw)}`);
      return raw;
    case 'list': {
      const items = raw.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
      const bad = spec.choices ? items.filter((s) => !spec.choices!.includes(s)) : [];
      if (bad.length) throw new UsageError(`--${name} takes ${spec.choices!.join(', ')}; got ${bad.map((b) => JSON.stringify(b)).join(', ')}`);
      return items;
    }
    case 'number':
    case 'int': {
      const v = Number(raw);
      const ok = raw.trim() !== '' && (spec.kind === 'int' ? Number.isInteger(v) : Number.isFinite(v));
      const inRange = ok && (spec.min === undefined || v >= spec.min) && (spec.max === undefined || v <= spec.max);
      if (!inRange) throw new UsageError(`--${name} must be ${describeBounds(spec)}, got "${raw}"`);
      return v;
    }
    default:
      throw new UsageError(`--${name}: unsupported option kind`);
  }
}
