// A new user's command lines: every usage error is found before any work
// (nothing is written, no progress starts) and reported with one exit code,
// naming the flags as typed and every missing required flag at once; --help
// is rendered from the very option tables the parser uses (each
// sub-command's own); --version; file options that are folders; the CUDA
// reason; Ctrl-C during pre-training (message, exit code, resumable
// checkpoint); and resumes that would mix settings are refused.
import t, { type Test } from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { main, helpOf, packageVersion, INTERRUPTED_EXIT_CODE } from '../../lib/cli/main';
import { commands } from '../../lib/cli/commands';
import { COMMON_OPTIONS, USAGE_EXIT_CODE, parseArgs, type OptionSpecs } from '../../lib/cli/args';
import { explainCudaStatus } from '../../lib/cli/info';
import { runMain } from './run-main';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'encsec-usage-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));
process.env.ENCSEC_CACHE = process.env.ENCSEC_CACHE ?? path.join(os.tmpdir(), 'encsec-test-cache');
const root = path.join(__dirname, '..', '..');

const run = runMain;

/** A usage error: exit 2, the message, nothing written, no work started (no progress, no "pre-training"/"stealing" line). */
async function refused(t: Test, argv: string[], message: RegExp, mustNotExist: string[] = []) {
  const r = await run(argv);
  t.equal(r.code, USAGE_EXIT_CODE, `${argv.join(' ')}: usage exit code`);
  t.match(r.err, message, `${argv.join(' ')}: message`);
  t.notMatch(r.err, /pre-training|stealing|"type":"progress"|baselines/, 'no work started');
  for (const f of mustNotExist) t.notOk(fs.existsSync(f), `${f} not written`);
  t.comment(`${argv[0]}: refused after ${r.ms} ms`);
  return r;
}

t.test('every invalid option is refused before any work, with one exit code', async (t) => {
  const demoDir = path.join(tmp, 'demo');
  await refused(t, ['demo', '--quick', '--budgets', '-5', '--out-dir', demoDir], /--budgets must be integers in \[2, 60000\], got "-5"/, [demoDir]);
  await refused(t, ['demo', '--quick', '--budget', '100', '--out-dir', demoDir], /unknown option --budget\b/, [demoDir]);
  // One rule for --epochs everywhere: at least 1.
  await refused(t, ['demo', '--quick', '--epochs', '0', '--out-dir', demoDir], /--epochs must be an integer >= 1, got "0"/, [demoDir]);
  const both = await refused(t, ['demo', '--quick', '--epochs', '0', '--target-epochs', '0', '--out-dir', demoDir], /--epochs must be an integer >= 1/, [demoDir]);
  t.match(both.err, /--target-epochs must be an integer >= 1/, 'both flags are named');
  await refused(t, ['pretrain', '--epochs', '0', '--out', path.join(tmp, 'p.safetensors')], /--epochs must be an integer >= 1/);
  await refused(t, ['steal', '--target', 't', '--method', 'mse', '--budget', '16', '--epochs', '0', '--out', path.join(tmp, 's.safetensors')], /--epochs must be an integer >= 1/);
  await refused(t, ['experiment', 'steal', '--target', 't', '--epochs', '0', '--out-dir', path.join(tmp, 'x')], /--epochs must be an integer >= 1/, [path.join(tmp, 'x')]);
  // --budget: the real bound, one message, before anything is loaded.
  for (const b of ['-5', '0', '1']) {
    await refused(t, ['steal', '--target', path.join(tmp, 'none.safetensors'), '--method', 'mse', '--budget', b, '--out', path.join(tmp, 's.safetensors')], new RegExp(`--budget must be an integer >= 2, got "${b}"`));
  }
  // Library bounds come back under the flag's name.
  await refused(t, ['steal', '--target', 't', '--method', 'mse', '--budget', '16', '--lr', '0', '--out', path.join(tmp, 's.safetensors')], /--lr must be/);
  await refused(t, ['steal', '--target', 't', '--method', 'magic', '--budget', '16', '--out', path.join(tmp, 's.safetensors')], /--method must be one of mse, cosine, stolenencoder, contsteal/);
  await refused(t, ['experiment', 'steal', '--target', 't', '--defenses', 'b4b'], /unknown option --defenses/);
  await refused(t, ['demo', '--progress', 'loud'], /--progress must be one of bar, json, silent/);
});

t.test('all missing required flags are named at once', async (t) => {
  const r = await refused(t, ['steal'], /missing required options --target, --method, --budget, --out/);
  t.notMatch(r.err, /must be/, 'nothing else');
  await refused(t, ['steal', '--budget', '0'], /--budget must be an integer >= 2.*missing required options --target, --method, --out/);
  await refused(t, ['pretrain'], /missing required option --out/);
  await refused(t, ['experiment', 'steal'], /missing required option --target/);
});

t.test('file options that are folders or not writable', async (t) => {
  await refused(t, ['info', '--json', tmp], /--json .* is a directory/);
  await refused(t, ['pretrain', '--out', tmp, '--epochs', '1', '--limit', '8'], /--out .* is a directory/);
  const file = path.join(tmp, 'plain');
  fs.writeFileSync(file, 'x');
  await refused(t, ['info', '--json', path.join(file, 'under.json')], /is not a directory/);
});

t.test('--version and help', async (t) => {
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string };
  for (const flag of ['--version', '-V', 'version']) {
    const v = await run([flag]);
    t.equal(v.code, 0);
    t.equal(v.out, `encsec ${pkg.version}\n`, `${flag} prints package.json's version`);
  }
  t.equal(packageVersion(), pkg.version);
  const h = await run(['help', 'experiment']);
  t.equal(h.code, 0);
  t.match(h.out, /usage: encsec experiment <sub-command>/);
  t.match(h.out, /steal +grid of stealing attacks/);
  t.notMatch(h.out, /^commands:/m, 'not the top-level help');
  const hs = await run(['help', 'experiment', 'steal']);
  t.equal(hs.out, (await run(['experiment', 'steal', '--help'])).out, 'help experiment steal = experiment steal --help');
  const steal = hs.out;
  t.notMatch(steal, /--defenses|--save\b|--calibration/, 'no defend options');
  t.match(steal, /--no-save/);
  t.match(steal, /--out-dir <string> .*experiments\/steal/);
  t.notMatch(steal, /experiments\/defend/);
  const defend = (await run(['experiment', 'defend', '--help'])).out;
  t.match(defend, /--defenses <list>/);
  t.match(defend, /--out-dir <string> .*experiments\/defend/);
  t.notMatch(defend, /--no-save|--defense </);
  t.match((await run(['steal', '--help'])).out, /usage: encsec steal --target <string> --method <string> --budget <int> --out <string> \[options\]/, 'required flags in the usage line');
  t.equal((await run(['help', 'nope'])).code, USAGE_EXIT_CODE);
});

/** The option lines of a help text: name -> line. */
function helpLines(text: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of text.split('\n')) {
    const r = /^ {2}--([a-z0-9-]+)/.exec(line);
    if (r) m.set(r[1], line);
  }
  return m;
}

t.test('help is rendered from the option tables the parser uses', async (t) => {
  const cases: [string, OptionSpecs][] = [];
  for (const [name, cmd] of Object.entries(commands)) {
    if (cmd.subcommands) for (const [sub, s] of Object.entries(cmd.subcommands)) cases.push([`${name} ${sub}`, s.options]);
    else cases.push([name, cmd.options]);
  }
  for (const [label, options] of cases) {
    const [name, sub] = label.split(' ');
    const text = helpOf(name, commands[name], sub);
    const lines = helpLines(text);
    const table = { ...options, ...COMMON_OPTIONS };
    t.same([...lines.keys()].sort(), Object.keys(table).sort(), `${label}: exactly its options`);
    for (const [opt, spec] of Object.entries(table)) {
      const line = lines.get(opt) ?? '';
      if (spec.kind !== 'boolean') t.match(line, `<${spec.kind}>`, `${label} --${opt}: kind`);
      if (spec.default !== undefined) t.match(line, `default ${Array.isArray(spec.default) ? spec.default.join(',') : String(spec.default)}`, `${label} --${opt}: default`);
      t.equal(line.includes('required'), Boolean(spec.required) || spec.help.includes('required'), `${label} --${opt}: required marked iff required`);
      // The parser agrees with the table: a required option is refused when missing, a bound is enforced.
      if (spec.min !== undefined && (spec.kind === 'int' || spec.kind === 'number')) {
        t.throws(() => parseArgs([`--${opt}`, String(spec.min! - 1)], options), new RegExp(`--${opt} must be`), `${label} --${opt}: min enforced`);
      }
    }
  }
});

t.test('the CUDA reason tells "no driver" from "driver too old"', async (t) => {
  const raw = 'no CUDA device: CUDA driver version is insufficient for CUDA runtime version';
  t.match(explainCudaStatus(raw, { kernelModule: null, libcuda: false }), /no NVIDIA driver is installed/);
  t.match(explainCudaStatus(raw, { kernelModule: 'NVRM version: NVIDIA UNIX x86_64 Kernel Module  470.57', libcuda: true }), /driver is too old.*470\.57/);
  t.match(explainCudaStatus(raw, { kernelModule: null, libcuda: true }), /kernel module is not loaded/);
  t.equal(explainCudaStatus('no CUDA device: no CUDA-capable device is detected', { kernelModule: null, libcuda: false }), 'no CUDA device: no CUDA-capable device is detected', 'other reasons pass through');
  const hasDriver = fs.existsSync('/proc/driver/nvidia/version');
  const info = await run(['info']);
  const last = JSON.parse(info.out.trim().split('\n').pop()!) as { reason: string };
  if (!hasDriver) t.notMatch(last.reason, /^no CUDA device: CUDA driver version is insufficient/, 'this machine: never the bare runtime message without a driver');
});

t.test('pretrain: an existing checkpoint is never silently overwritten; a resume must train on the same images', async (t) => {
  const out = path.join(tmp, 'ck.safetensors');
  const base = ['pretrain', '--limit', '32', '--batch', '16', '--out', out, '--progress', 'silent'];
  const first = await run([...base, '--epochs', '1']);
  t.equal(first.code, 0, first.err);
  t.ok(fs.existsSync(`${out}.ckpt`));
  const before = fs.readFileSync(`${out}.ckpt`);
  await refused(t, [...base, '--epochs', '2'], /ck\.safetensors\.ckpt exists.*--resume.*--force/);
  t.same(fs.readFileSync(`${out}.ckpt`), before, 'checkpoint untouched');
  const mismatched = await run(['pretrain', '--limit', '48', '--batch', '16', '--out', out, '--progress', 'silent', '--epochs', '2', '--resume']);
  t.equal(mismatched.code, 1);
  t.match(mismatched.err, /checkpoint was made on .*"images":32.*this run trains on .*"images":48/);
  t.same(fs.readFileSync(`${out}.ckpt`), before, 'checkpoint untouched by the refused resume');
  const resumed = await run([...base, '--epochs', '2', '--resume']);
  t.equal(resumed.code, 0, resumed.err);
  t.equal(JSON.parse(resumed.out.trim().split('\n').pop()!).resumedFrom, 1);
  const forced = await run([...base, '--epochs', '1', '--force']);
  t.equal(forced.code, 0, forced.err);
});

const bin = path.join(root, 'bin', 'encsec.js');
const built = fs.existsSync(path.join(root, 'dist', 'lib', 'cli', 'main.js'));
t.test('Ctrl-C during pre-training: a message, exit 130, a checkpoint that --resume continues', { skip: built ? false : 'dist/ not built' }, async (t) => {
  const out = path.join(tmp, 'int.safetensors');
  const argv = ['pretrain', '--limit', '32', '--batch', '16', '--out', out, '--progress', 'json'];
  // A user's plain `node bin/encsec.js`: without the loader tap puts into
  // NODE_OPTIONS of every child (its signal handlers would defer Ctrl-C).
  const child = spawn('env', ['-u', 'NODE_OPTIONS', process.execPath, bin, ...argv, '--epochs', '1000'], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  let err = '';
  const code = await new Promise<number | null>((resolve) => {
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
      // After epoch 2's record, epoch 1's checkpoint is surely complete.
      if (/"type":"event".*"epoch":2\b/.test(err) && !child.killed) child.kill('SIGINT');
    });
    child.on('exit', (c) => resolve(c));
  });
  t.equal(code, INTERRUPTED_EXIT_CODE);
  const m = /interrupted\. Interrupted after epoch (\d+): its checkpoint .*int\.safetensors\.ckpt is kept .*--resume to continue from epoch (\d+)/.exec(err);
  t.ok(m, `message says what was kept and how to go on: ${err.split('\n').slice(-3).join(' | ')}`);
  const k = Number(m?.[1]);
  t.equal(Number(m?.[2]), k + 1);
  t.notOk(fs.existsSync(out), 'the encoder file is written only when training finishes');
  t.same(fs.readdirSync(tmp).filter((f) => f.includes('int.safetensors') && f.includes('.tmp-')), [], 'no half-written file left');
  const resumed = await run([...argv, '--epochs', String(k + 1), '--resume', '--progress', 'silent']);
  t.equal(resumed.code, 0, resumed.err);
  t.equal(JSON.parse(resumed.out.trim().split('\n').pop()!).resumedFrom, k, 'continues from the interrupted run');
});
