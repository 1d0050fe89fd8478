#!/usr/bin/env bash
# Full fine-tuning against a frozen encoder (--freeze-encoder): samples/s and peak memory of
# the same resnet50 BCL step at 112 px crops, batch 16, from torchvision-layout weights, in
# alternating pairs. Run it on an otherwise idle machine.
#   bench/finetune_cost.sh PHOTOS_FOLDER WEIGHTS.safetensors [PAIRS]
set -euo pipefail
cd "$(dirname "$0")/.."
photos=$1 weights=$2 pairs=${3:-2}
out=$(mktemp -d)
for pair in $(seq "$pairs"); do
  for mode in full frozen; do
    flags=(--arch resnet50 --dataset folder --root "$photos" --recipe imagenet --image-size 112 --batch-size 16
      --init "$weights" --max-steps 30 --device cpu --out "$out/$mode-$pair")
    [ "$mode" = frozen ] && flags+=(--freeze-encoder)
    line=$(python3 bench/peak_rss.py "$out/$mode-$pair.json" target/release/bcl train "${flags[@]}" | grep throughput)
    peak=$(python3 -c "import json,sys; print(round(json.load(open(sys.argv[1]))['peak_rss_mb']/1024, 2))" "$out/$mode-$pair.json")
    echo "$mode (pair $pair): ${line#throughput: }; peak RSS $peak GiB"
  done
done
rm -rf "$out"
