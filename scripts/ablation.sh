#!/usr/bin/env bash
# BCL's table of components on long-tailed Fashion-MNIST (ρ = 100), one recipe for every
# row (the fashion-mnist-lt preset, EPOCHS epochs): CE; LA; SupCon + LA; BCL without
# class-averaging; BCL without class-complement; BCL. Three seeds for CE, LA and BCL, two
# for SupCon and BCL without class-averaging, one for the others; then the paper's sensitivity study on BCL: τ 0.07 (not 0.1), β 0.35 (not
# 0.6). Resumable: run it again after an interruption and it continues each run from its last
# checkpoint and skips finished ones. The table (mean ± std over seeds, by
# `bcl summarize`) is written into OUT/table.md after every run. Every row runs in the same
# precision (AMP, default bf16 autocast) so rows compare: `auto` would pick float32 on CPUs
# without AMX and bf16 elsewhere. OUT/fp32/ keeps seed-0 runs in float32 for the parity check.
#   scripts/ablation.sh [OUT]      (default results/ablation, kept in git but for checkpoints;
#                                   EPOCHS=30, BCL=target/release/bcl, AMP=bf16,
#                                   ONLY="la-seed0 bcl-seed0" to run just those)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-results/ablation}
EPOCHS=${EPOCHS:-30}
BCL=${BCL:-target/release/bcl}
AMP=${AMP:-bf16}
[ -x "$BCL" ] || make build
mkdir -p "$OUT"

# name: the flags that make the row. Seed 0 of every row first, so the table fills evenly.
declare -A flags=(
  [ce]="--loss ce" [la]="--loss la" [supcon]="--loss supcon"
  [bcl-no-averaging]="--loss bcl --no-class-averaging" [bcl-no-complement]="--loss bcl --no-class-complement"
  [bcl]="--loss bcl" [bcl-tau0.07]="--loss bcl --temperature 0.07" [bcl-beta0.35]="--loss bcl --beta 0.35"
)
# The table of the runs that have logged an epoch, rows in the paper's order.
table() {
  local logged=()
  for row in ce la supcon bcl-no-averaging bcl-no-complement bcl bcl-tau0.07 bcl-beta0.35; do
    for dir in "$OUT/$row"-seed*; do
      [ -f "$dir/metrics.jsonl" ] && [ -s "$dir/metrics.jsonl" ] && logged+=("$dir")
    done
  done
  [ ${#logged[@]} -gt 0 ] && "$BCL" summarize "${logged[@]}"
}

runs="la-seed0 bcl-seed0 ce-seed0 supcon-seed0 la-seed1 bcl-seed1 ce-seed1 la-seed2 bcl-seed2 ce-seed2
  bcl-no-averaging-seed0 bcl-no-complement-seed0 bcl-tau0.07-seed0 bcl-beta0.35-seed0 supcon-seed1 bcl-no-averaging-seed1"
for run in ${ONLY:-$runs}; do
  row=${run%-seed*} seed=${run##*-seed} dir="$OUT/$run"
  if [ -f "$dir/per_class.csv" ]; then echo "ablation: $dir done already"; continue; fi
  start=$(date +%s)
  if [ -f "$dir/config.toml" ]; then
    echo "ablation: resuming $dir"
    "$BCL" train --resume "$dir" >> "$dir.log" 2>&1
  else
    echo "ablation: training $row (seed $seed) into $dir"
    # shellcheck disable=SC2086  # a list of flags
    "$BCL" train --preset fashion-mnist-lt --epochs "$EPOCHS" ${flags[$row]} --seed "$seed" --amp "$AMP" --out "$dir" > "$dir.log" 2>&1
  fi
  echo "ablation: $dir took $(( $(date +%s) - start )) s this sitting" | tee -a "$dir.log"
  table > "$OUT/table.md"
done
table | tee "$OUT/table.md"
