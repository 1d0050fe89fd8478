#!/usr/bin/env bash
# What light fine-tuning of a ViT-B/16 costs on this machine, bcl against timm + PyTorch
# (bench/timm_vit.py, the same images through torchvision's ImageFolder and DataLoader), in
# alternating pairs: LIFT's LA step (the lift-imagenet-lt preset's view: crop, flip, colour
# jitter; cosine head) at 224 px, batch 16, with
# --tune adapter (AdaptFormer width 8) and --tune full, bf16 autocast
# (samples/s over steps 11-20; peak RSS of the process tree, bench/peak_rss.py); and
# prediction at batch 64 (images/s: bcl's includes decoding and resizing the files, from a
# checkpoint written by the full run). Run it on an otherwise idle machine.
#   bench/vit_cost.sh PHOTOS_FOLDER VIT_B_WEIGHTS.safetensors [PAIRS]
set -euo pipefail
cd "$(dirname "$0")/.."
photos=$1 weights=$2 pairs=${3:-3}
python=${PYTHON:-.venv/bin/python}
out=$(mktemp -d)
gib() { python3 -c "import json,sys; print(round(json.load(open(sys.argv[1]))['peak_rss_mb']/1024, 2))" "$1"; }
mapfile -t images < <(find "$photos" -name '*.png' | sort | head -256)
for pair in $(seq "$pairs"); do
  for mode in adapter full; do
    flags=(--preset lift-imagenet-lt --arch vit_base_patch16_224 --dataset folder --root "$photos" --image-size 224
      --batch-size 16 --init "$weights" --init-classifier random --tune "$mode" --max-steps 20 --amp bf16
      --device cpu --out "$out/$mode-$pair")
    [ "$mode" = adapter ] && flags+=(--adapter-dim 8)
    line=$(python3 bench/peak_rss.py "$out/bcl-$mode-$pair.json" target/release/bcl train "${flags[@]}" | grep throughput)
    echo "bcl $mode (pair $pair): ${line#throughput: }; peak RSS $(gib "$out/bcl-$mode-$pair.json") GiB"
    line=$(python3 bench/peak_rss.py "$out/timm-$mode-$pair.json" "$python" bench/timm_vit.py train "$mode" 16 20 10 "$photos")
    echo "$line; peak RSS $(gib "$out/timm-$mode-$pair.json") GiB (pair $pair)"
  done
  target/release/bcl predict --checkpoint "$out/full-$pair" "${images[@]}" --batch-size 64 --device cpu --out "$out/p.csv" |
    sed "s/^/bcl predict (pair $pair): /"
  "$python" bench/timm_vit.py predict 64 4 | sed "s/$/ (pair $pair)/"
done
rm -rf "$out"
