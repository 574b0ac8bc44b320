#!/usr/bin/env node
'use strict';
require('../dist/lib/cli/main.js').cli(process.argv.slice(2), __filename).then(
  (code) => { process.exitCode = code; },
  (err) => { process.stderr.write(`encsec: ${err && err.message ? err.message : String(err)}\n`); process.exitCode = 1; },
);
