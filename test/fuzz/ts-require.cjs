// A minimal, cached TypeScript loader for the fuzz children: each .ts file is
// transpiled once (typescript's transpileModule, no type check) and the
// JavaScript kept in a cache folder keyed by the source's SHA-1, so a child
// starts in well under a second instead of paying for a full TS toolchain
// each time (the fuzzer restarts its child after every crash or hang).
//
// Usage: node -r ./test/fuzz/ts-require.cjs some.ts
'use strict';
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const cacheDir = process.env.ENCSEC_TS_CACHE || path.join(os.tmpdir(), `encsec-ts-cache-${typeof process.getuid === 'function' ? process.getuid() : 'u'}`);
let ts = null;
let tsVersion = null;

function typescriptVersion() {
  if (tsVersion === null) {
    try {
      tsVersion = JSON.parse(fs.readFileSync(require.resolve('typescript/package.json'), 'utf8')).version;
    } catch {
      tsVersion = 'unknown';
    }
  }
  return tsVersion;
}

function transpile(source, filename) {
  const key = crypto.createHash('sha1').update(typescriptVersion()).update('\0').update(filename).update('\0').update(source).digest('hex');
  const cached = path.join(cacheDir, `${key}.js`);
  try {
    return fs.readFileSync(cached, 'utf8');
  } catch {
    // not cached yet
  }
  if (ts === null) ts = require('typescript');
  const out = ts.transpileModule(source, {
    fileName: filename,
    compilerOptions: {
      module: ts.ModuleKind.CommonJS,
      target: ts.ScriptTarget.ES2022,
      esModuleInterop: true,
      inlineSourceMap: true,
      inlineSources: false,
    },
  }).outputText;
  try {
    fs.mkdirSync(cacheDir, { recursive: true });
    const tmp = `${cached}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, out);
    fs.renameSync(tmp, cached);
  } catch {
    // a read-only tmp folder only costs speed
  }
  return out;
}

require.extensions['.ts'] = function loadTs(module, filename) {
  module._compile(transpile(fs.readFileSync(filename, 'utf8'), filename), filename);
};
process.setSourceMapsEnabled?.(true);
