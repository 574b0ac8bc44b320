// The CLI: each command's last stdout line is one JSON object; --json writes
// it too; errors go to stderr with a non-zero exit code.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { runMain } from './run-main';
import { createEncoder } from '../../lib/nn/encoders';
import { saveEncoder } from '../../lib/io/checkpoint';
import { parseArgs } from '../../lib/cli/args';
import { snapshotPath } from '../../lib/cli/pretrain';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'encsec-cli-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));
process.env.ENCSEC_CACHE = process.env.ENCSEC_CACHE ?? path.join(os.tmpdir(), 'encsec-test-cache');

const run = runMain;

t.test('info prints one JSON object with the backend and why', async (t) => {
  const r = await run(['info']);
  t.equal(r.code, 0);
  t.ok(r.last, 'last line is JSON');
  t.match(r.last, { version: String, backend: /^(cpu|cuda)$/, reason: String, cpuThreads: Number });
  const jsonFile = path.join(tmp, 'info.json');
  await run(['info', '--json', jsonFile]);
  t.same(JSON.parse(fs.readFileSync(jsonFile, 'utf8')), r.last, '--json writes the same object');
});

t.test('info --file: what a safetensors file holds, and whether its digest checks out', async (t) => {
  const enc = createEncoder('cnn-small', { seed: 2 });
  const mine = path.join(tmp, 'digest.safetensors');
  saveEncoder(mine, enc);
  const stored = [...enc.stateDict().values()].reduce((n, v) => n + v.size, 0);
  enc.dispose();
  const r = await run(['info', '--file', mine]);
  t.equal(r.code, 0, r.err);
  t.match(r.last, { verified: true, format: 'encsec-encoder', integrity: /matching/ });
  t.equal(r.last!.elements, stored, 'every parameter and buffer of the state dict counted');
  t.ok(stored > 240608, 'parameters (240,608) plus the batch-norm buffers');
  // A file without a digest (as other tools write them) loads, and says so.
  const foreign = path.join(tmp, 'foreign.safetensors');
  const header = Buffer.from(JSON.stringify({ w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(header.length));
  fs.writeFileSync(foreign, Buffer.concat([len, header, Buffer.from(new Float32Array([1, 2]).buffer)]));
  const f = await run(['info', '--file', foreign]);
  t.match(f.last, { verified: false, tensors: 1, elements: 2, integrity: /no encsec digest/ });
  // One flipped bit in the data of our own file: an error naming the file.
  const bytes = fs.readFileSync(mine);
  bytes[bytes.length - 3] ^= 0x10;
  const flipped = path.join(tmp, 'flipped.safetensors');
  fs.writeFileSync(flipped, bytes);
  const bad = await run(['info', '--file', flipped]);
  t.not(bad.code, 0);
  t.match(bad.err, /flipped\.safetensors/);
  const missing = await run(['info', '--file', path.join(tmp, 'nope.safetensors')]);
  t.not(missing.code, 0);
  t.match(missing.err, /--file .*nope\.safetensors: cannot read it \(ENOENT\)/);
});

t.test('usage and errors', async (t) => {
  t.equal((await run([])).code, 2, 'no command: usage, exit 2');
  t.equal((await run(['--help'])).code, 0);
  const help = await run(['pretrain', '--help']);
  t.equal(help.code, 0, 'a command\'s --help');
  t.match(help.out, /--epochs <int> +training epochs \(an integer >= 1; default 10\)/);
  t.match(help.out, /--resume +continue/);
  const unknown = await run(['frobnicate']);
  t.equal(unknown.code, 2);
  t.match(unknown.err, /unknown command "frobnicate"/);
  const badOpt = await run(['info', '--nope']);
  t.equal(badOpt.code, 2);
  t.match(badOpt.err, /unknown option --nope/);
  const noOut = await run(['pretrain', '--epochs', '1']);
  t.equal(noOut.code, 2, 'a usage error');
  t.match(noOut.err, /missing required option --out/);
  const badInt = await run(['pretrain', '--epochs', 'many']);
  t.match(badInt.err, /--epochs must be an integer/);
  const badTask = await run(['eval', '--encoder', 'raw', '--data', 'imagenet']);
  t.match(badTask.err, /unknown task/);
  const missing = await run(['eval', '--encoder', path.join(tmp, 'missing.safetensors'), '--data', 'mnist', '--limit', '20']);
  t.equal(missing.code, 1);
  t.match(missing.err, /missing\.safetensors/, 'the error names the file');
});

t.test('argument parsing', async (t) => {
  const a = parseArgs(['--n', '3', '--x=1.5', '--flag', '--list', 'a,b', 'pos'], {
    n: { kind: 'int', help: '' },
    x: { kind: 'number', help: '' },
    flag: { kind: 'boolean', help: '' },
    list: { kind: 'list', help: '' },
    d: { kind: 'string', help: '', default: 'dflt' },
  });
  t.equal(a.number('n'), 3);
  t.equal(a.number('x'), 1.5);
  t.equal(a.bool('flag'), true);
  t.same(a.list('list'), ['a', 'b']);
  t.equal(a.string('d'), 'dflt');
  t.same(a.positional, ['pos']);
  t.throws(() => parseArgs(['--n'], { n: { kind: 'int', help: '' } }), /needs a value/);
  t.throws(() => parseArgs(['--flag=yes'], { flag: { kind: 'boolean', help: '' } }), /takes no value/);
  t.equal(snapshotPath('a/t.safetensors', 3), 'a/t.e3.safetensors');
  t.equal(snapshotPath('model', 2), 'model.e2');
});

t.test('pretrain then eval on a small slice', async (t) => {
  const out = path.join(tmp, 'enc.safetensors');
  const p = await run(['pretrain', '--data', 'fashion-mnist', '--limit', '64', '--epochs', '2', '--batch', '32', '--out', out, '--snapshots', '1', '--progress', 'json']);
  t.equal(p.code, 0, p.err);
  t.match(p.last, { epochs: 2, arch: 'cnn-small', data: 'fashion-mnist' });
  t.ok(fs.existsSync(out), 'encoder written');
  t.ok(fs.existsSync(snapshotPath(out, 1)), 'snapshot after epoch 1 written');
  t.match(p.err, /"type":"progress"/, 'JSON progress lines when not a TTY');
  const resumed = await run(['pretrain', '--data', 'fashion-mnist', '--limit', '64', '--epochs', '3', '--batch', '32', '--out', out, '--resume', '--progress', 'silent']);
  t.equal(resumed.code, 0, resumed.err);
  t.equal(resumed.last!.resumedFrom, 2, 'resume continues from the checkpoint');
  for (const probe of ['linear', 'knn']) {
    const e = await run(['eval', '--encoder', out, '--data', 'mnist', '--limit', '100', '--probe', probe, '--epochs', '20']);
    t.equal(e.code, 0, e.err);
    t.ok((e.last!.accuracy as number) > 0.2, `${probe} accuracy ${e.last!.accuracy} beats chance`);
  }
  const raw = await run(['eval', '--encoder', 'raw', '--data', 'mnist', '--limit', '100', '--epochs', '20']);
  t.equal(raw.last!.arch, 'raw-pixels');
  const rnd = await run(['eval', '--encoder', 'random:cnn-small', '--data', 'mnist', '--limit', '100', '--epochs', '20']);
  t.equal(rnd.last!.arch, 'cnn-small');
  const badProbe = await run(['eval', '--encoder', out, '--probe', 'svm', '--limit', '10']);
  t.match(badProbe.err, /--probe must be one of linear, knn/);
  t.equal(badProbe.code, 2, "a usage error");
});

const distMain = path.join(__dirname, '..', '..', 'dist', 'lib', 'cli', 'main.js');
t.test('the installed bin script runs', { skip: fs.existsSync(distMain) ? false : 'dist/ not built (npm install compiles it): nothing to run' }, async (t) => {
  const bin = path.join(__dirname, '..', '..', 'bin', 'encsec.js');
  const r = spawnSync(process.execPath, [bin, 'info'], { encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr);
  const last = JSON.parse(r.stdout.trim().split('\n').pop()!);
  t.match(last, { backend: /^(cpu|cuda)$/ });
});
