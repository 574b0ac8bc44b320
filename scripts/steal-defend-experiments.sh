#!/usr/bin/env bash
# The stealing and defense grids of RESULTS.md §2–§3, against the 10-epoch
# target of scripts/pretrain-experiment.sh (made first if missing).
# Usage: scripts/steal-defend-experiments.sh [RUN_DIR] [steal|defend|all]
# DEFEND_EPOCHS=N trains each defend-grid surrogate for N epochs instead of
# the default 60 (the full defend grid is about 8 hours of this 2-core
# machine at 60; RESULTS.md §3 used 12, with the undefended cells under the
# same protocol). The report folder is then $RUN_DIR/defend-eN.
# Every grid is resumable: rerun the script after an interruption and the
# finished cells are kept (results.json in each report folder). Then copy the
# report folders (without the .safetensors) to results/.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-runs}
what=${2:-all}
[ -f "$dir/target.safetensors" ] || scripts/pretrain-experiment.sh "$dir"
enc() { node bin/encsec.js "$@"; }
methods=mse,cosine,stolenencoder,contsteal
if [ "$what" = steal ] || [ "$what" = all ]; then
  enc experiment steal --target "$dir/target.safetensors" --methods "$methods" --budgets 600,3000,12000 \
    --query-data fashion-mnist --out-dir "$dir/steal-fmnist" --progress json >>"$dir/steal-fmnist.log" 2>&1
  enc experiment steal --target "$dir/target.safetensors" --methods "$methods" --budgets 600,3000,8000 \
    --query-data mnist --out-dir "$dir/steal-mnist" --progress json >>"$dir/steal-mnist.log" 2>&1
fi
if [ "$what" = defend ] || [ "$what" = all ]; then
  # b4b as specified, and b4b hashing around the embeddings' mean with the β
  # chosen from scripts/b4b-coverage.ts (RESULTS.md §3).
  defend_dir="$dir/defend"; defend_epochs=()
  if [ -n "${DEFEND_EPOCHS:-}" ]; then defend_dir="$dir/defend-e$DEFEND_EPOCHS"; defend_epochs=(--epochs "$DEFEND_EPOCHS"); fi
  enc experiment defend --target "$dir/target.safetensors" "${defend_epochs[@]}" \
    --defenses noise:0.05,noise:0.2,noise:0.5,topk:8,topk:32,round:0,round:1,b4b,b4b:center=true,beta=30 \
    --methods stolenencoder,contsteal --budgets 3000,12000 --query-data fashion-mnist \
    --out-dir "$defend_dir" --progress json >>"$defend_dir.log" 2>&1
fi
