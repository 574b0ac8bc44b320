#!/usr/bin/env bash
# The pre-training experiment of RESULTS.md: a 10-epoch SimCLR cnn-small on
# Fashion-MNIST (seed 0) with snapshots after epochs 1, 3 and 5, then the
# linear probe on Fashion-MNIST and MNIST for every snapshot and for two
# baselines (a randomly initialised cnn-small, raw pixels).
# Usage: scripts/pretrain-experiment.sh [RUN_DIR]   (default runs/)
# Resumable: the pre-training resumes from its checkpoint, finished evals are kept.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-runs}
mkdir -p "$dir"
enc() { node bin/encsec.js "$@"; }
if [ ! -f "$dir/target.safetensors" ]; then
  enc pretrain --data fashion-mnist --arch cnn-small --epochs 10 --seed 0 \
    --out "$dir/target.safetensors" --snapshots 1,3,5 --resume --progress json \
    --json "$dir/pretrain.json" 2>>"$dir/pretrain.log" >/dev/null
fi
for model in e1 e3 e5 final random raw; do
  case $model in
    final) spec="$dir/target.safetensors" ;;
    random) spec="random:cnn-small" ;;
    raw) spec="raw" ;;
    *) spec="$dir/target.$model.safetensors" ;;
  esac
  for data in fashion-mnist mnist; do
    out="$dir/eval-$model-$data.json"
    [ -f "$out" ] || enc eval --encoder "$spec" --data "$data" --json "$out" >/dev/null
    echo "$model $data $(node -e "console.log(require(require('path').resolve('$out')).accuracy)")"
  done
done
