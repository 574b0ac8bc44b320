#!/usr/bin/env bash
# The GPU check (issue #17). Runs ON the device machine, as one command, in the
# repository root of a copy of the working tree with the folders made by
# scripts/gpu-prepare.sh carried along (.node/, .gpu/):
#
#   GPU_CHECK_BUDGET_S=480 bash scripts/gpu-check.sh      (device tool: carry [".node", ".gpu"], timeout_s 540)
#
# Steps, each under its own `timeout` cut to what is left of the budget, so a
# hang in one step does not eat the others:
#   0. setup: Node from .node/node.xz, dist/ + node_modules/ from
#      .gpu/bundle.tar.xz, the dataset caches into ENCSEC_CACHE; the machine's
#      facts (nvidia-smi, GPU name and compute capability, nvcc, torch) -> env.txt
#   1. build the addon and the native tests with cmake (no cmake-js), for the
#      GPU's architecture (CUDAARCHS from nvidia-smi's compute_cap), all cores
#   2. native tests (every CUDA op against its CPU twin, forward and backward)
#   3. the TypeScript tests (compiled, run with plain node) with ENCSEC_DEVICE=cuda:
#      the files that exercise every op, the encoders, SimCLR, stealing, defenses
#   4. benchmarks: the CUDA rows, encsec vs PyTorch (cuDNN) -> bench-cuda.json
#   5. one SimCLR epoch: cnn-small on Fashion-MNIST (encsec pretrain) and
#      resnet18-cifar on synthetic 3x32x32 images, with images/s -> epochs.jsonl
# Everything goes under ${OUT:-gpu-out}: summary.txt (rewritten after every
# step), gpu-check.log (all output, as it comes), env.txt, bench-cuda.json,
# epochs.jsonl and, at the end, logs.tar.gz (each step's own log and TAP).
#
# Environment:
#   GPU_CHECK_BUDGET_S   whole-run budget in seconds (default 480); steps stop
#                        20 s before it so that the summary is written
#   GPU_CHECK_QUICK=1    tiny shapes and subsets (the local proof)
#   GPU_CHECK_ALLOW_CPU=1  run without a GPU: the build (CUDA only when nvcc is
#                        there and not quick), CPU runs of the TS subset and a
#                        tiny epoch as a plumbing proof; GPU-only results read
#                        "no GPU: skipped"
#   GPU_CHECK_JOBS       build and test parallelism (default: all cores)
#   GPU_CHECK_TEST_JOBS  test files run at once (default: min(8, GPU_CHECK_JOBS))
#   GPU_CHECK_NATIVE_FILTER  native tests whose name contains this (default "backend"; " " for all)
#   GPU_CHECK_BENCH_ARGS arguments for dist/benchmarks/gpu-bench.js (default: none, --quick when quick)
#   GPU_CHECK_TESTS      space-separated test files (test/....test.ts) instead of the default list
#   GPU_CHECK_SYNTH_N    synthetic images for the resnet18-cifar epoch (default 10240)
#   GPU_CHECK_IN_PLACE=1 allow running in a development checkout (it rebuilds
#                        build/ and replaces dist/ and node_modules/ there)
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUDGET=${GPU_CHECK_BUDGET_S:-480}
QUICK=${GPU_CHECK_QUICK:-0}
ALLOW_CPU=${GPU_CHECK_ALLOW_CPU:-0}
JOBS=${GPU_CHECK_JOBS:-$(nproc 2>/dev/null || echo 4)}
SYNTH_N=${GPU_CHECK_SYNTH_N:-10240}
START=$(date +%s)
DEADLINE=$((START + BUDGET - 20))
OUT=${OUT:-gpu-out}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d /tmp/encsec-gpu-check.XXXXXX)      # logs only: packed into logs.tar.gz
SCRATCH=$(mktemp -d /tmp/encsec-gpu-scratch.XXXXXX)  # node, dataset caches, encoder files: not sent back
LOG=$OUT/gpu-check.log
SUMMARY=$OUT/summary.txt
: >"$LOG"
: >"$WORK/summary.lines"
export PYTHONUNBUFFERED=1

say() { printf '%s\n' "$*" | tee -a "$LOG" >&2; }
elapsed() { echo $(($(date +%s) - START)); }
left() { echo $((DEADLINE - $(date +%s))); }
GPU_LINE="GPU: (not read yet)"
write_summary() {
  {
    echo "encsec GPU check: $(date -u +%FT%TZ), host $(hostname), budget ${BUDGET} s, quick=${QUICK}, allow-cpu=${ALLOW_CPU}"
    echo "$GPU_LINE"
    cat "$WORK/summary.lines"
    echo "elapsed: $(elapsed) s of the ${BUDGET} s budget"
  } >"$SUMMARY.tmp" && mv "$SUMMARY.tmp" "$SUMMARY"
}
record() { printf '%s\n' "$*" >>"$WORK/summary.lines"; say ">> $*"; write_summary; }
finish() {
  write_summary
  tar -C "$WORK" -czf "$OUT/logs.tar.gz" . 2>/dev/null
  rm -rf "$WORK" "$SCRATCH"
  cat "$SUMMARY" >&2
}
# run_step NAME CAP_S CMD...: runs CMD under timeout min(CAP_S, time left),
# output to $WORK/NAME.log and gpu-check.log; sets STEP_RC (124: timed out,
# 99: not run, no time left) and STEP_S.
run_step() {
  local name=$1 cap=$2
  shift 2
  local t
  t=$(left)
  [ "$t" -gt "$cap" ] && t=$cap
  STEP_S=0
  if [ "$t" -lt 5 ]; then
    STEP_RC=99
    say "== $name: not run (no time left in the budget)"
    return
  fi
  say "== $name (timeout ${t}s): $*"
  local t0
  t0=$(date +%s)
  timeout -k 10 "$t" "$@" 2>&1 | tee "$WORK/$name.log" >>"$LOG"
  STEP_RC=${PIPESTATUS[0]}
  [ "$STEP_RC" -eq 137 ] && STEP_RC=124
  STEP_S=$(($(date +%s) - t0))
  say "== $name: exit $STEP_RC after ${STEP_S}s"
}
rc_text() {
  case "$1" in
    0) echo "ok" ;;
    124) echo "TIMED OUT" ;;
    99) echo "not run: budget spent" ;;
    *) echo "FAILED (exit $1)" ;;
  esac
}
unxz() { # unxz SRC DEST: xz when there, else Python's lzma
  if command -v xz >/dev/null; then xz -dc "$1" >"$2"; else python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$1" "$2"; fi
}
trap 'record "interrupted"; finish; exit 130' INT TERM
write_summary

# ============================================================ 0. setup + facts
if [ -d node_modules ] && [ ! -f node_modules/.gpu-bundle ] && [ "${GPU_CHECK_IN_PLACE:-0}" != 1 ]; then
  record "setup: REFUSED: $ROOT/node_modules is a real install (a development checkout?): the check replaces dist/ and node_modules/ and rebuilds build/. Use scripts/gpu-prepare.sh --simulate here, or GPU_CHECK_IN_PLACE=1."
  finish
  exit 2
fi
[ -d /usr/local/cuda/bin ] && PATH=$PATH:/usr/local/cuda/bin

HAVE_GPU=0
GPU_NAME=""
GPU_CC=""
if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
  HAVE_GPU=1
  GPU_NAME=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1)
  GPU_CC=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -n 1 | tr -d ' ')
  GPU_LINE="GPU: $GPU_NAME (compute capability $GPU_CC, $(nvidia-smi --query-gpu=memory.total,driver_version --format=csv,noheader | head -n 1 | awk -F', ' '{print $1 ", driver " $2}'))"
else
  GPU_LINE="GPU: none (no working nvidia-smi)"
  if [ "$ALLOW_CPU" != 1 ]; then
    record "setup: no GPU here (set GPU_CHECK_ALLOW_CPU=1 for the CPU-only proof)"
    finish
    exit 3
  fi
fi
NVCC_VER=$(command -v nvcc >/dev/null && nvcc --version | sed -n 's/.*release \([0-9.]*\), V\([0-9.]*\).*/\2/p')
{
  echo "# date: $(date -u +%FT%TZ)  host: $(hostname)  uname: $(uname -srm)"
  echo "# cpus: $(nproc)  memory: $(free -g 2>/dev/null | awk '/Mem:/ {print $2 " GiB"}')"
  echo "# nvidia-smi"; nvidia-smi 2>&1 || true
  echo "# nvidia-smi --query-gpu"; nvidia-smi --query-gpu=index,name,compute_cap,memory.total,driver_version,clocks.max.sm --format=csv 2>&1 || true
  echo "# nvcc"; nvcc --version 2>&1 || echo "no nvcc"
  echo "# cmake"; cmake --version 2>&1 | head -n 1
  echo "# c++"; c++ --version 2>&1 | head -n 1
  echo "# ninja"; ninja --version 2>&1 || echo "no ninja"
  echo "# python / torch"
  timeout 60 python3 -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version(), "available", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")' 2>&1 | tail -n 1
} >"$OUT/env.txt" 2>&1
say "$GPU_LINE; nvcc ${NVCC_VER:-none}"

# Node: carried compressed (scripts/gpu-prepare.sh), else the one on PATH.
NODE_BIN=""
if [ -f .node/node.xz ]; then
  mkdir -p "$SCRATCH/node/bin"
  if unxz .node/node.xz "$SCRATCH/node/bin/node" && chmod +x "$SCRATCH/node/bin/node" && "$SCRATCH/node/bin/node" --version >/dev/null; then
    NODE_BIN=$SCRATCH/node/bin/node
  fi
elif [ -x .node/bin/node ]; then
  NODE_BIN=$ROOT/.node/bin/node
fi
if [ -z "$NODE_BIN" ] && command -v node >/dev/null; then NODE_BIN=$(command -v node); fi
if [ -z "$NODE_BIN" ]; then
  record "setup: FAILED: no Node.js (carry .node/ made by scripts/gpu-prepare.sh)"
  finish
  exit 4
fi
export PATH=$(dirname "$NODE_BIN"):$PATH
echo "# node: $NODE_BIN $(node --version)" >>"$OUT/env.txt"

# dist/ and node_modules/ from the bundle (replacing only earlier bundles).
if [ -f .gpu/bundle.tar.xz ]; then
  for d in dist node_modules; do
    if [ -e "$d" ] && [ ! -f "$d/.gpu-bundle" ] && [ "${GPU_CHECK_IN_PLACE:-0}" != 1 ]; then
      record "setup: REFUSED: $d/ exists and is not from a bundle"
      finish
      exit 2
    fi
    rm -rf "$d"
  done
  if command -v xz >/dev/null; then xz -dc .gpu/bundle.tar.xz | tar -xf -; else python3 -c 'import tarfile; tarfile.open(".gpu/bundle.tar.xz").extractall(".")'; fi
fi
if [ ! -f dist/lib/cli/main.js ] || [ ! -d node_modules/tap ]; then
  record "setup: FAILED: no dist/ or node_modules/ (carry .gpu/ made by scripts/gpu-prepare.sh)"
  finish
  exit 4
fi
# Compiled from this very tree? (scripts/gpu-prepare.sh records the digest of the sources.)
want_digest=$(sed -n 's/.* sources \([0-9a-f]*\).*/\1/p' dist/.gpu-bundle 2>/dev/null)
have_digest=$(find lib test benchmarks scripts bin tsconfig.json tsconfig.test.json -type f \( -name '*.ts' -o -path 'bin/*' -o -name 'tsconfig*.json' \) \
  -print0 2>/dev/null | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
if [ -n "$want_digest" ] && [ "$want_digest" != "$have_digest" ]; then
  record "WARNING: dist/ was compiled from other sources than this tree's (digest $want_digest, tree $have_digest): run scripts/gpu-prepare.sh right before the call"
fi
export ENCSEC_CACHE=$SCRATCH/cache
mkdir -p "$ENCSEC_CACHE"
for f in .gpu/cache/*.bin.xz; do
  [ -f "$f" ] && unxz "$f" "$ENCSEC_CACHE/$(basename "$f" .xz)"
done
record "setup: ok in $(elapsed) s (node $(node --version), dataset caches: $(ls "$ENCSEC_CACHE" | tr '\n' ' '))"

# ============================================================ 1. build
CUDA_OPT=OFF
CUDA_WHY="no nvcc"
if command -v nvcc >/dev/null; then
  if [ "$HAVE_GPU" = 1 ]; then
    CUDA_OPT=ON
    export CUDAARCHS=${GPU_CC//./}
    CUDA_WHY="CUDA ON for CUDAARCHS=$CUDAARCHS"
  elif [ "$QUICK" = 1 ]; then
    CUDA_WHY="nvcc here but no GPU and quick: CPU-only build (GPU_CHECK_CUDA=ON compiles the CUDA kernels anyway)"
    [ "${GPU_CHECK_CUDA:-}" = ON ] && CUDA_OPT=ON && CUDA_WHY="CUDA ON (default architectures), no GPU"
  else
    CUDA_OPT=ON
    CUDA_WHY="CUDA ON (default architectures), no GPU"
  fi
fi
GEN=()
command -v ninja >/dev/null && GEN=(-G Ninja)
# (a script of its own: `timeout` runs programs, not shell functions)
cat >"$WORK/build.sh" <<BUILD
set -e
cmake -S . -B build ${GEN[*]} --no-warn-unused-cli \\
  -DCMAKE_BUILD_TYPE=Release -DENCSEC_BUILD_TESTS=ON -DENCSEC_CUDA=$CUDA_OPT \\
  -DCMAKE_JS_VERSION=8.0.0 -DCMAKE_LIBRARY_OUTPUT_DIRECTORY="$ROOT/build/Release" \\
  "-DCMAKE_JS_INC=$ROOT/node_modules/node-api-headers/include;$ROOT/node_modules/node-addon-api" \\
  -DCMAKE_JS_SRC= -DCMAKE_JS_LIB= -DNODE_RUNTIME=node "-DNODE_RUNTIMEVERSION=$(node -p 'process.versions.node')" \\
  -DNODE_ARCH=x64 -DCMAKE_CXX_FLAGS=-DBUILDING_NODE_EXTENSION
cmake --build build -j $JOBS
node -e "console.log(JSON.stringify(require('./build/Release/encsec.node').info()))"
BUILD
run_step build 300 bash "$WORK/build.sh"
BUILD_RC=$STEP_RC
INFO=$(tail -n 1 "$WORK/build.log" 2>/dev/null)
record "build: $(rc_text $BUILD_RC) in ${STEP_S} s ($CUDA_WHY, -j $JOBS)"
if [ "$BUILD_RC" -eq 0 ]; then
  record "  addon: $(node -e 'const i = JSON.parse(process.argv[1]); console.log(`backend ${i.backend} (${i.reason}); ${i.cudaBuild}; CPU kernels ${i.cpuKernels}; devices: ${i.cudaDevices.map((d) => d.name).join(", ") || "none"}`)' "$INFO" 2>/dev/null)"
else
  record "  (the later steps need the build: see gpu-check.log)"
  finish
  exit 5
fi
CUDA_USABLE=$(node -e 'const i = JSON.parse(process.argv[1]); console.log(i.cudaDevices.length > 0 ? 1 : 0)' "$INFO" 2>/dev/null || echo 0)
NO_GPU_WHY=$(node -e 'const i = JSON.parse(process.argv[1]); console.log(i.cudaStatus || i.reason)' "$INFO" 2>/dev/null)

# ============================================================ 2. native tests
# The backend table (every CUDA op against its CPU twin, forward and backward;
# they skip without a GPU). GPU_CHECK_NATIVE_FILTER=" " runs every native test.
NATIVE_FILTER=${GPU_CHECK_NATIVE_FILTER:-backend}
NATIVE_FILTER=${NATIVE_FILTER// /}
run_step native-tests 90 build/encsec_native_tests $NATIVE_FILTER
line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$WORK/native-tests.log" | tail -n 1)
fails=$(grep -E '^(not ok|FAIL|fail)' "$WORK/native-tests.log" | head -n 5 | tr '\n' ';')
record "native tests${NATIVE_FILTER:+ (filter \"$NATIVE_FILTER\")}: $(rc_text $STEP_RC) in ${STEP_S} s: ${line:-no totals line}${fails:+; first failures: $fails}"
skips=$(grep -c '^skip ' "$WORK/native-tests.log")
if [ "$skips" -gt 0 ]; then
  record "  skipped: $(grep '^skip ' "$WORK/native-tests.log" | head -n 1)$([ "$skips" -gt 1 ] && echo " (and $((skips - 1)) more)")"
fi

# ============================================================ 3. TypeScript tests
if [ -n "${GPU_CHECK_TESTS:-}" ]; then
  TESTS=$GPU_CHECK_TESTS
elif [ "$QUICK" = 1 ]; then
  TESTS="test/core/rng-devices.test.ts test/defenses/perturb.test.ts"
else
  # Every op (forward + backward), the encoders and modules, SimCLR, the
  # stealing losses and attacks, the defenses, the augmentation and batching
  # kernels, the probe and the service. Left out: tests of the CLI, the file
  # formats and the reports (host-only, and they expect the repo layout of
  # the .ts sources: the CLI is exercised in step 5).
  # Files not in this tree are left out (and named in the summary).
  TESTS="test/core/rng-devices.test.ts test/core/ops.test.ts test/core/bad-input.test.ts test/core/hardening.test.ts
    test/nn/modules.test.ts test/nn/hardening.test.ts test/ssl/simclr.test.ts
    test/attacks/losses.test.ts test/attacks/steal.test.ts test/attacks/tamper.test.ts test/attacks/poison.test.ts
    test/defenses/perturb.test.ts test/defenses/b4b.test.ts test/defenses/poison.test.ts
    test/data/augment.test.ts test/data/batching.test.ts test/eval/probe.test.ts
    test/service/service.test.ts test/service/state.test.ts test/service/source.test.ts
    test/watermark/sslguard.test.ts test/watermark/sslguard-embed.test.ts test/watermark/sslauth.test.ts"
fi
absent=""
present=""
for f in $TESTS; do if [ -f "$f" ]; then present="$present $f"; else absent="$absent $f"; fi; done
TESTS=$present
[ -n "$absent" ] && record "TS tests: not in this tree, left out:$absent"
TS_DEVICE=cpu
if [ "$CUDA_USABLE" = 1 ]; then TS_DEVICE=cuda; fi
mkdir -p "$WORK/tap"
# The compiled test files, $JOBS at a time, each under its own timeout; one TAP log each.
cat >"$WORK/ts-run.sh" <<'TSRUN'
per=$1; dir=$2; shift 2
printf '%s\n' "$@" | xargs -P "$JOBS" -I{} sh -c '
  f=$0; per=$1; dir=$2
  js=dist/${f%.ts}.js; name=$(echo "$f" | sed "s#^test/##; s#/#_#g; s#[.]test[.]ts\$##")
  if [ ! -f "$js" ]; then echo "not ok 1 - $f: $js missing (not compiled?)" >"$dir/$name.tap"; exit 0; fi
  TAP_TIMEOUT=$per timeout -k 5 $((per + 10)) node "$js" >"$dir/$name.tap" 2>&1
  echo "$f: exit $?"' {} "$per" "$dir"
TSRUN
# Per file: what is left of the step; the step: 180 s at most (90 quick).
ts_budget=$(($(left) - 15))
[ "$ts_budget" -gt 165 ] && ts_budget=165
[ "$QUICK" = 1 ] && [ "$ts_budget" -gt 75 ] && ts_budget=75
[ "$ts_budget" -lt 10 ] && ts_budget=10
# shellcheck disable=SC2086
TEST_JOBS=${GPU_CHECK_TEST_JOBS:-$((JOBS < 8 ? JOBS : 8))}
ENCSEC_DEVICE=$TS_DEVICE JOBS=$TEST_JOBS run_step ts-tests $((ts_budget + 15)) bash "$WORK/ts-run.sh" "$ts_budget" "$WORK/tap" $TESTS
# Totals from each file's closing "# { total: T, pass: P, fail: F, ... }" comment.
ts_summary=$(node -e '
  const fs = require("fs"), path = require("path");
  const dir = process.argv[1];
  let files = 0, okFiles = 0, pass = 0, fail = 0, skip = 0, todo = 0;
  const bad = [], skips = [];
  for (const f of fs.readdirSync(dir).sort()) {
    const text = fs.readFileSync(path.join(dir, f), "utf8");
    files++;
    const m = /# \{ total: (\d+)(.*)\}\s*$/m.exec(text.split("\n").filter((l) => l.startsWith("# {")).pop() || "");
    const get = (k) => { const r = new RegExp(k + ": (\\d+)").exec(m ? m[2] : ""); return r ? Number(r[1]) : 0; };
    const p = get("pass"), fl = get("fail"), s = get("skip"), t = get("todo");
    pass += p; fail += fl; skip += s; todo += t;
    if (m && fl === 0) okFiles++; else bad.push(f.replace(/\.tap$/, "") + (m ? ` (${fl} failed)` : " (no totals: crashed or timed out)"));
    for (const l of text.split("\n")) { const k = /^\s*ok \d+ - (.*) # SKIP/.exec(l); if (k && skips.length < 3) skips.push(k[1]); }
  }
  console.log(`${files} files, ${okFiles} clean; tests: ${pass} passed, ${fail} failed, ${skip} skipped, ${todo} todo` +
    (bad.length ? `; failing files: ${bad.join(", ")}` : "") + (skips.length ? `; skips: ${skips.join(" | ")}` : ""));
' "$WORK/tap" 2>&1)
if [ "$TS_DEVICE" = cuda ]; then
  record "TS tests (ENCSEC_DEVICE=cuda): $(rc_text $STEP_RC) in ${STEP_S} s: $ts_summary"
else
  record "TS tests: no GPU: ran on CPU instead of ENCSEC_DEVICE=cuda ($NO_GPU_WHY): $(rc_text $STEP_RC) in ${STEP_S} s: $ts_summary"
fi
cat "$WORK"/tap/*.tap >>"$LOG" 2>/dev/null

# ============================================================ 4. benchmarks (CUDA rows)
BENCH_ARGS=${GPU_CHECK_BENCH_ARGS:-}
[ "$QUICK" = 1 ] && [ -z "$BENCH_ARGS" ] && BENCH_ARGS=--quick
# shellcheck disable=SC2086
run_step bench 150 node dist/benchmarks/gpu-bench.js $BENCH_ARGS --out "$OUT/bench-cuda.json"
bench_line=$(grep -E '^gpu-bench: encsec measured' "$WORK/bench.log" | tail -n 1)
if [ "$CUDA_USABLE" = 1 ]; then
  record "bench (CUDA rows, encsec vs PyTorch cuDNN${BENCH_ARGS:+, $BENCH_ARGS}): $(rc_text $STEP_RC) in ${STEP_S} s: ${bench_line#gpu-bench: }"
  node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const ms = (o) => (o && typeof o.medianMs === "number" ? o.medianMs : null);
    for (const row of r.rows.filter((x) => x.group === "e2e")) {
      const a = ms(row.cuda), b = ms(row.cudaPeer);
      const ips = (m) => (m === null ? "—" : `${Math.round(row.work / (m / 1000))} img/s`);
      console.log(`  ${row.id}: encsec ${ips(a)}, PyTorch ${ips(b)}` + (a && b ? ` (encsec/PyTorch ${(b / a).toFixed(2)}x)` : ""));
    }' "$OUT/bench-cuda.json" 2>/dev/null >>"$WORK/summary.lines"
  write_summary
else
  record "bench: no GPU: skipped ($NO_GPU_WHY); harness ran: ${bench_line#gpu-bench: }"
fi

# ============================================================ 5. one SimCLR epoch each
: >"$OUT/epochs.jsonl"
EP_DEVICE=cuda
EP_FM_ARGS=()
EP_SYN_N=$SYNTH_N
EP_BATCH=256
if [ "$CUDA_USABLE" != 1 ]; then
  # Plumbing proof only: a tiny CPU run, never a GPU figure.
  EP_DEVICE=cpu
  EP_FM_ARGS=(--limit 128)
  EP_SYN_N=32
  EP_BATCH=16
elif [ "$QUICK" = 1 ]; then
  EP_FM_ARGS=(--limit 4096)
  EP_SYN_N=1024
fi
epoch_record() { # epoch_record LABEL LOGFILE
  local j
  j=$(grep -E '^\{' "$2" | tail -n 1)
  if [ -n "$j" ]; then
    echo "$j" >>"$OUT/epochs.jsonl"
    node -e '
      const j = JSON.parse(process.argv[1]);
      if (j.type === "progress") {
        console.log(`stopped at step ${j.step}/${j.steps} of epoch ${j.epoch}: ~${Math.round(j.imagesPerSec)} images/s (last progress line)`);
        process.exit(0);
      }
      if (j.type) {
        console.log(`partial: ${JSON.stringify(j).slice(0, 240)}`);
        process.exit(0);
      }
      const ips = j.imagesPerSec === null || j.imagesPerSec === undefined ? "?" : Math.round(j.imagesPerSec);
      console.log(`${ips} images/s on ${j.backend}, ${j.epochs} epoch, ${(j.seconds ?? j.wallSeconds).toFixed(1)} s, loss ${Number(j.finalLoss ?? j.loss).toPrecision(5)}`);' "$j"
  else
    echo "no result line"
  fi
}
if [ "$CUDA_USABLE" = 1 ]; then EP_TAG=""; else EP_TAG="no GPU: skipped on cuda; CPU plumbing proof, not a GPU figure: "; fi
run_step epoch-cnn-small 120 node bin/encsec.js pretrain --data fashion-mnist --arch cnn-small --epochs 1 --batch "$EP_BATCH" \
  --device "$EP_DEVICE" "${EP_FM_ARGS[@]}" --out "$SCRATCH/cnn-small.safetensors" --progress json
record "epoch cnn-small fashion-mnist${EP_FM_ARGS[*]:+ (${EP_FM_ARGS[*]})}, batch $EP_BATCH: $(rc_text $STEP_RC): ${EP_TAG}$(epoch_record cnn "$WORK/epoch-cnn-small.log")"
run_step epoch-resnet18 150 node dist/scripts/gpu-epoch.js --arch resnet18-cifar --synthetic "$EP_SYN_N" --channels 3 --size 32 \
  --batch "$EP_BATCH" --epochs 1 --device "$EP_DEVICE"
record "epoch resnet18-cifar synthetic 3x32x32 ($EP_SYN_N images), batch $EP_BATCH: $(rc_text $STEP_RC): ${EP_TAG}$(epoch_record resnet "$WORK/epoch-resnet18.log")"

cp -r build/CMakeFiles/CMakeOutput.log "$WORK/" 2>/dev/null || true
finish
