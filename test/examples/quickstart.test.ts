// The README's TypeScript program is examples/quickstart.ts, byte for byte;
// it compiles in a user's strict project and runs; the published
// declarations type-check in a strict project without any other package
// (no @types/node); and both `require('encsec')` and `import ... from
// 'encsec'` load the package as a user would write them.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';

const root = path.join(__dirname, '..', '..');
const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
const distIndex = path.join(root, 'dist', 'lib', 'index.js');
const built = fs.existsSync(distIndex) && fs.existsSync(path.join(root, 'dist', 'lib', 'index.d.ts'));
process.env.ENCSEC_CACHE = process.env.ENCSEC_CACHE ?? path.join(os.tmpdir(), 'encsec-test-cache');

/** The body of the first ```ts block after `heading` in the README. */
function readmeBlock(heading: string): string {
  const text = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
  const at = text.indexOf(heading);
  if (at < 0) throw new Error(`README.md has no "${heading}"`);
  const open = text.indexOf('```ts\n', at);
  const close = text.indexOf('\n```\n', open);
  return text.slice(open + '```ts\n'.length, close + 1);
}

/** A user's project: node_modules/encsec -> this repository (as `npm link` would make it). */
function project(files: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'encsec-user-'));
  fs.mkdirSync(path.join(dir, 'node_modules'));
  fs.symlinkSync(root, path.join(dir, 'node_modules', 'encsec'), 'dir');
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
  return dir;
}

const node = (dir: string, args: string[]) => spawnSync(process.execPath, args, { cwd: dir, encoding: 'utf8', env: process.env });

t.test('the README block is examples/quickstart.ts, byte for byte', async (t) => {
  const file = fs.readFileSync(path.join(root, 'examples', 'quickstart.ts'), 'utf8');
  t.equal(readmeBlock('## Use from TypeScript'), file);
});

const skip = built ? false : 'dist/ not built (npm install compiles it)';

t.test('the README program compiles in a strict project and runs', { skip }, async (t) => {
  const dir = project({
    'quickstart.ts': readmeBlock('## Use from TypeScript'),
    'tsconfig.json': JSON.stringify({
      compilerOptions: { strict: true, target: 'ES2022', module: 'commonjs', moduleResolution: 'node', lib: ['ES2022'], types: ['node'], typeRoots: [path.join(root, 'node_modules', '@types')], outDir: 'out' },
      files: ['quickstart.ts'],
    }),
  });
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const c = node(dir, [tsc, '-p', '.']);
  t.equal(c.status, 0, `tsc: ${c.stdout}${c.stderr}`);
  const r = node(dir, [path.join('out', 'quickstart.js')]);
  t.equal(r.status, 0, r.stderr);
  const loss = Number(/NT-Xent loss after one step: (\S+)/.exec(r.stdout)?.[1]);
  // NT-Xent over 2N = 64 rows with tau = 0.5 lies in (0, ln(2N - 1) + 2/tau]: cosines are within [-1, 1].
  t.ok(loss > 0 && loss <= Math.log(63) + 2 / 0.5, `loss ${loss} within (0, ${(Math.log(63) + 4).toFixed(3)}]`);
  t.match(r.stdout, /embeddings: \[32, 128\]/, '32 images, 128-dimensional cnn-small embeddings');
});

t.test('the published declarations type-check in a strict project without @types/node', { skip }, async (t) => {
  const dir = project({
    'use.ts': [
      "import * as encsec from 'encsec';",
      "import { data, nn, ops, tidy, type Tensor } from 'encsec';",
      'export function size(x: Tensor): number { return x.shape.reduce((a, b) => a * b, 1); }',
      "export const make = (): nn.Encoder => nn.createEncoder('cnn-small', { seed: 0 });",
      'export const loss = (z: Tensor): number => tidy(() => ops.ntXent(z, 0.5).item());',
      "export const names: readonly string[] = data.BUILTIN_DATASETS;",
      'export const progress = encsec.createProgress({ mode: \'silent\' });',
      '',
    ].join('\n'),
    'tsconfig.json': JSON.stringify({
      compilerOptions: { strict: true, target: 'ES2022', module: 'commonjs', moduleResolution: 'node', lib: ['ES2022'], types: [], noEmit: true, skipLibCheck: false },
      files: ['use.ts'],
    }),
  });
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const c = node(dir, [tsc, '-p', '.']);
  t.equal(c.status, 0, `tsc: ${c.stdout}${c.stderr}`);
});

t.test('require() and import both load the package', { skip }, async (t) => {
  const dir = project({
    'use.cjs': "const encsec = require('encsec'); console.log(typeof encsec.nn.createEncoder, typeof encsec.ops.ntXent);\n",
    'use.mjs': "import encsec, { nn, ops } from 'encsec'; console.log(typeof nn.createEncoder, typeof ops.ntXent, encsec.nn === nn);\n",
  });
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const c = node(dir, ['use.cjs']);
  t.equal(c.status, 0, c.stderr);
  t.equal(c.stdout.trim(), 'function function');
  const m = node(dir, ['use.mjs']);
  t.equal(m.status, 0, m.stderr);
  t.equal(m.stdout.trim(), 'function function true', 'named and default imports are the same module');
});
