// Defenses by name: the registry and the parser of the `--defense SPEC`
// option (and of the experiment's `--defenses` list).
//
// SPEC grammar: one or more stages, applied left to right, separated by "+"
// or ","; a stage is NAME, NAME:VALUE (the defense's main parameter, e.g.
// noise:0.05 for sigma) or NAME:KEY=VALUE, and more KEY=VALUE parameters of
// the same stage follow after commas:
//     noise:0.05                    noise:sigma=0.05,seed=3
//     topk:32,noise:0.05            topk:32+noise:0.05   (the same)
//     b4b:beta=60,rotate=true       b4b+round:3
// The built-in defenses are registered here; others join with registerDefense.
import { identityDefense, type Defense } from './defense';
import { checkOptions, describe } from '../core/validate';
import { SpecParams } from './common';
import { NoiseDefense, RoundDefense, TopkDefense } from './perturb';
import { B4bDefense } from './b4b';
import { ComposedDefense } from './compose';

/** Builds a defense from the parameters of its SPEC stage (key -> value, as strings). */
export type DefenseFactory = (params: Record<string, string>) => Defense;

interface Entry {
  factory: DefenseFactory;
  help: string;
  /** The parameter a bare NAME:VALUE sets. */
  positional?: string;
}

const registry = new Map<string, Entry>([
  ['none', { factory: () => identityDefense, help: 'no defense: the raw embeddings' }],
  [
    'noise',
    {
      positional: 'sigma',
      help: 'noise:SIGMA[,seed=S]: add N(0, SIGMA^2) to each entry of the L2-normalised embedding (per-client seeded stream)',
      factory: (p) => {
        const s = new SpecParams('noise', p, ['sigma', 'seed']);
        return new NoiseDefense({ sigma: s.number('sigma', undefined, { min: 0 }), seed: s.int('seed', 0, { min: 0, max: Number.MAX_SAFE_INTEGER }) });
      },
    },
  ],
  [
    'topk',
    {
      positional: 'k',
      help: 'topk:K: keep the K largest-magnitude entries, zero the rest',
      factory: (p) => new TopkDefense(new SpecParams('topk', p, ['k']).int('k', undefined, { min: 1, max: 1 << 20 })),
    },
  ],
  [
    'round',
    {
      positional: 'decimals',
      help: 'round:D: round every entry to D decimals (0..8)',
      factory: (p) => new RoundDefense(new SpecParams('round', p, ['decimals']).int('decimals', undefined, { min: 0, max: 8 })),
    },
  ],
  [
    'b4b',
    {
      help:
        "b4b[:alpha=1,beta=80,lambda=1e-6,planes=12,families=5,seed=0,rotate=false,center=false]: noise growing with the LSH coverage of the client's queries (B4B); " +
        'rotate=true adds a per-client secret rotation; center=true hashes around the mean of calibration embeddings',
      factory: (p) => {
        const s = new SpecParams('b4b', p, ['alpha', 'beta', 'lambda', 'planes', 'families', 'seed', 'rotate', 'center']);
        return new B4bDefense({
          alpha: s.number('alpha', 1, { gt: 0 }),
          beta: s.number('beta', 80, { gt: 0, max: 100 }),
          lambda: s.number('lambda', 1e-6, { gt: 0 }),
          planes: s.int('planes', 12, { min: 1, max: 16 }),
          families: s.int('families', 5, { min: 1, max: 64 }),
          seed: s.int('seed', 0, { min: 0, max: Number.MAX_SAFE_INTEGER }),
          rotate: s.bool('rotate', false),
          center: s.bool('center', false),
        });
      },
    },
  ],
]);

/** Adds a defense to the names parseDefense knows. `positional` names the parameter a bare NAME:VALUE sets. */
export function registerDefense(name: string, factory: DefenseFactory, help = '', options: { positional?: string } = {}): void {
  if (typeof name !== 'string') throw new TypeError(`name must be a defense name (a string matching [a-z][a-z0-9-]*), got ${describe(name)}`);
  if (!/^[a-z][a-z0-9-]*$/.test(name)) throw new RangeError(`name must match [a-z][a-z0-9-]*, got ${JSON.stringify(name)}`);
  if (typeof factory !== 'function') throw new TypeError(`factory must be a function, got ${describe(factory)}`);
  if (typeof help !== 'string') throw new TypeError(`help must be a string, got ${describe(help)}`);
  const o = checkOptions<{ positional?: string }>(options, 'options', ['positional']);
  if (o.positional !== undefined && (typeof o.positional !== 'string' || !/^[A-Za-z_][\w.-]*$/.test(o.positional))) {
    throw new TypeError(`options.positional must be a parameter name (a string matching [A-Za-z_][\w.-]*), got ${typeof o.positional === 'string' ? JSON.stringify(o.positional) : describe(o.positional)}`);
  }
  if (registry.has(name)) throw new Error(`defense "${name}" is already registered`);
  registry.set(name, { factory, help, positional: o.positional });
}

/** Names of the known defenses, with their one-line help. */
export function listDefenses(): { name: string; help: string }[] {
  return [...registry].map(([name, { help }]) => ({ name, help }));
}

const KEY_VALUE = /^[A-Za-z_][\w.-]*\s*=/;

/** Splits a SPEC at its stage and parameter separators: "," always, "+" unless it is an exponent's sign (1e+6). */
function splitSpec(spec: string): { sep: ',' | '+' | ''; text: string }[] {
  const out: { sep: ',' | '+' | ''; text: string }[] = [];
  let sep: ',' | '+' | '' = '';
  let cur = '';
  for (let i = 0; i < spec.length; i++) {
    const c = spec[i];
    const exponentSign = c === '+' && /[0-9.][eE]$/.test(cur) && /[0-9]/.test(spec[i + 1] ?? '');
    if (c === ',' || (c === '+' && !exponentSign)) {
      out.push({ sep, text: cur.trim() });
      sep = c;
      cur = '';
    } else {
      cur += c;
    }
  }
  out.push({ sep, text: cur.trim() });
  return out;
}

/** One stage's name and parameters. */
interface Stage {
  name: string;
  params: Record<string, string>;
}

function parseStages(spec: string): Stage[] {
  const stages: Stage[] = [];
  const setParam = (st: Stage, key: string, value: string) => {
    if (key === '') throw new RangeError(`defense parameter ${JSON.stringify(`=${value}`)} has no name`);
    if (key in st.params) throw new RangeError(`defense "${st.name}": parameter ${key} given twice`);
    st.params[key] = value;
  };
  for (const { sep, text } of splitSpec(spec)) {
    if (text === '') {
      if (sep === '+') throw new RangeError(`empty defense stage in ${JSON.stringify(spec)}`);
      continue;
    }
    // "key=value" after a comma continues the current stage's parameters.
    if (sep === ',' && KEY_VALUE.test(text) && stages.length > 0) {
      const eq = text.indexOf('=');
      setParam(stages[stages.length - 1], text.slice(0, eq).trim(), text.slice(eq + 1).trim());
      continue;
    }
    const colon = text.indexOf(':');
    const name = (colon >= 0 ? text.slice(0, colon) : text).trim();
    const entry = registry.get(name);
    if (!entry) {
      if (text.includes('=') && colon < 0) throw new RangeError(`defense parameter ${JSON.stringify(text)} must follow a defense name (NAME:KEY=VALUE)`);
      throw new RangeError(`unknown defense ${JSON.stringify(name)}: available: ${[...registry.keys()].join(', ')}`);
    }
    const st: Stage = { name, params: {} };
    stages.push(st);
    if (colon < 0) continue;
    const arg = text.slice(colon + 1).trim();
    if (arg === '') throw new RangeError(`defense "${name}": nothing after ":" in ${JSON.stringify(text)}`);
    const eq = arg.indexOf('=');
    if (eq >= 0) {
      setParam(st, arg.slice(0, eq).trim(), arg.slice(eq + 1).trim());
    } else if (entry.positional) {
      setParam(st, entry.positional, arg);
    } else if (name === 'none') {
      throw new RangeError('defense "none" takes no parameters');
    } else {
      throw new RangeError(`defense parameter ${JSON.stringify(arg)} must be key=value (defense "${name}" has no main parameter)`);
    }
  }
  return stages;
}

/**
 * Parses a defense SPEC (grammar above). Unknown names, unknown or malformed
 * parameters and out-of-range values are errors that say what is accepted.
 * Several stages make a ComposedDefense; "none" stages are dropped.
 */
export function parseDefense(spec: string | undefined): Defense {
  if (spec === undefined || spec === '') return identityDefense;
  if (typeof spec !== 'string') throw new TypeError(`spec must be a defense SPEC string, got ${describe(spec)}`);
  const stages = parseStages(spec);
  const made: Defense[] = [];
  for (const st of stages) {
    if (st.name === 'none') {
      if (Object.keys(st.params).length > 0) throw new RangeError('defense "none" takes no parameters');
      continue;
    }
    made.push(registry.get(st.name)!.factory(st.params));
  }
  if (made.length === 0) return identityDefense;
  if (made.length === 1) return made[0];
  return new ComposedDefense(made);
}

/**
 * A list of defense SPECs from a comma-separated command-line list (already
 * split at the commas): a "key=value" item continues the previous SPEC's
 * parameters; compose stages within one SPEC with "+". E.g. the items of
 * "noise:0.05,b4b:beta=60,rotate=true,topk:32+noise:0.05" give the three
 * SPECs "noise:0.05", "b4b:beta=60,rotate=true" and "topk:32+noise:0.05".
 */
export function joinDefenseList(items: readonly string[]): string[] {
  if (!Array.isArray(items)) throw new TypeError(`items must be an array of strings, got ${describe(items)}`);
  // (A loop over every index: forEach would skip the holes of a sparse array.)
  for (let i = 0; i < items.length; i++) {
    if (typeof items[i] !== 'string') throw new TypeError(`items[${i}] must be a string, got ${describe(items[i])}`);
  }
  const out: string[] = [];
  for (const raw of items) {
    const item = raw.trim();
    if (item === '') continue;
    if (KEY_VALUE.test(item) && !item.includes(':')) {
      if (out.length === 0) throw new RangeError(`defense parameter ${JSON.stringify(item)} must follow a defense name (NAME:KEY=VALUE)`);
      out[out.length - 1] += `,${item}`;
    } else {
      out.push(item);
    }
  }
  return out;
}
