#!/usr/bin/env bash
# Does starting from pretrained weights help on long-tailed data? The experiment this machine
# can run without ImageNet weights: pretrain a resnet32 (plain cross-entropy, balanced) on
# Fashion-MNIST classes 0-4 (all 30,000 training images), then train on the long-tailed
# (ρ = 100) subset of classes 5-9 (8,746 images; tested on their 5,000 test images):
#   scratch   from random weights;
#   finetune  --init the pretrained encoder, classifier at the class means, encoder at 0.1× lr;
#   frozen    --init, --tune head (a linear probe of the heads), classifier at the class means;
#   adapter   --init, --tune adapter (a ViT's AdaptFormer adapters and the heads, lr 0.01 as
#             LIFT's), classifier at the class means;
# each with LA and BCL, the same EPOCHS epochs, seeds 0 1 2. The data are class folders of
# PNGs (scripts/transfer_data.py). Resumable: run it again and every run continues from its
# last checkpoint; finished ones are skipped. The table (scripts/transfer_table.py: top-1,
# the two rarest classes, minutes) goes to OUT/table.md after every run.
#   scripts/transfer.sh [OUT]   (default results/transfer; EPOCHS=10, PRETRAIN_EPOCHS=10,
#                                BCL=target/release/bcl, AMP=bf16, DATA=OUT/data, ONLY="la-scratch-seed0 …",
#                                STARTS="scratch finetune frozen", MODEL="" flags of every run,
#                                PRETRAIN="" flags of the pretraining run)
# The ViT experiment (results/transfer-vit): MODEL="--arch vit_tiny_patch16_224 --image-size 48"
#   PRETRAIN="--config results/transfer-vit/pretrain.toml --lr 0.05" STARTS="adapter frozen"
#   PRETRAIN_EPOCHS=8 EPOCHS=5 scripts/transfer.sh results/transfer-vit
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-results/transfer}
EPOCHS=${EPOCHS:-10}
PRETRAIN_EPOCHS=${PRETRAIN_EPOCHS:-10}
BCL=${BCL:-target/release/bcl}
AMP=${AMP:-bf16}
DATA=${DATA:-$OUT/data}
[ -x "$BCL" ] || make build
mkdir -p "$OUT"
if [ ! -d "$DATA/target/test" ]; then
  python3 scripts/transfer_data.py "${BCL_FASHION_MNIST:-/usr/share/datasets/fashion-mnist}" "$DATA"
fi

# Trains (or resumes, or skips when finished) the run in folder $1 with the flags after it.
train() {
  local dir=$1; shift
  if [ -f "$dir/per_class.csv" ]; then echo "transfer: $dir done already"; return; fi
  local start; start=$(date +%s)
  if [ -f "$dir/config.toml" ]; then
    echo "transfer: resuming $dir"
    "$BCL" train --resume "$dir" >> "$dir.log" 2>&1
  else
    echo "transfer: training $dir"
    "$BCL" train "$@" --amp "$AMP" --out "$dir" > "$dir.log" 2>&1
  fi
  echo "transfer: $dir took $(( $(date +%s) - start )) s this sitting" | tee -a "$dir.log"
}

# shellcheck disable=SC2086  # lists of flags
train "$OUT/pretrain" --preset fashion-mnist-lt --dataset folder --root "$DATA/pretrain" --loss ce \
  --epochs "$PRETRAIN_EPOCHS" --seed 0 ${MODEL:-} ${PRETRAIN:-}
PRETRAINED=$OUT/pretrain/last.safetensors

declare -A flags=(
  [scratch]=""
  [finetune]="--init $PRETRAINED --init-classifier class-mean --encoder-lr-scale 0.1"
  [frozen]="--init $PRETRAINED --init-classifier class-mean --tune head"
  [adapter]="--init $PRETRAINED --init-classifier class-mean --tune adapter --lr 0.01"
)
table() { python3 scripts/transfer_table.py "$OUT"; }
runs=""
for seed in 0 1 2; do
  for loss in la bcl; do
    for start in ${STARTS:-scratch finetune frozen}; do runs+=" $loss-$start-seed$seed"; done
  done
done
for run in ${ONLY:-$runs}; do
  name=${run%-seed*} seed=${run##*-seed} loss=${run%%-*} start=${name#*-}
  # shellcheck disable=SC2086  # a list of flags
  train "$OUT/$run" --preset fashion-mnist-lt --dataset folder --root "$DATA/target" --imb-factor 100 \
    --loss "$loss" --epochs "$EPOCHS" --seed "$seed" ${MODEL:-} ${flags[$start]}
  table > "$OUT/table.md" || true
done
table | tee "$OUT/table.md"
