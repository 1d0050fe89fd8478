#!/usr/bin/env bash
# bcl against its PyTorch peer (bench/reference/train_bcl_torch.py), end to end: the same
# BCL recipe, model and batch, data loading included. Runs A B A B … (PAIRS pairs) after one
# warm-up run of each, and prints samples/s, peak RSS of the process tree, and the ratio
# bcl/torch per pair with the median.
#   bench/compare.sh [PAIRS]     (default 3; STEPS=60 timed after 10 warm-up steps)
# Environment: DEVICE (cpu), BATCH (128), WORKERS (cores), ROOT (Fashion-MNIST), AMP (auto:
# bcl's default; the peer gets bf16, which it uses on GPUs only),
# TORCH_ARGS (extra flags for the peer, e.g. --channels-last) and TORCH_ENV (environment for
# the peer, e.g. the glibc malloc settings bcl makes itself).
# PHOTOS=DIR (class folders of JPEGs, e.g. bench/out/jpegs) runs the ImageNet sim-sim recipe
# instead, with ARCH (resnet50) at SIZE (112) px: each JPEG linked 25 times, so that no
# epoch ends inside the timed steps.
set -euo pipefail
cd "$(dirname "$0")/.."
PAIRS=${1:-3}
STEPS=${STEPS:-60}
DEVICE=${DEVICE:-cpu}
BATCH=${BATCH:-128}
WORKERS=${WORKERS:-$(nproc)}
AMP=${AMP:-auto}
ROOT=${ROOT:-${BCL_FASHION_MNIST:-/usr/share/datasets/fashion-mnist}}
BCL=${BCL:-target/release/bcl}
PYTHON=${PYTHON:-.venv/bin/python}
# The peer's torchvision and PIL (a clean checkout's venv has torch only).
[ "$PYTHON" != .venv/bin/python ] || bench/peer_deps.sh
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
ARCH=${ARCH:-resnet50}
SIZE=${SIZE:-112}
if [ -n "${PHOTOS:-}" ]; then
  for class in "$PHOTOS"/*/; do
    mkdir -p "$out/photos/train/$(basename "$class")"
    for file in "$class"*; do
      for k in $(seq 25); do ln -s "$(realpath "$file")" "$out/photos/train/$(basename "$class")/$k-$(basename "$file")"; done
    done
  done
  ln -s "$(realpath "$PHOTOS")" "$out/photos/test"
  printf 'image_size = %s\n[model]\narch = "%s"\n' "$SIZE" "$ARCH" > "$out/photos.toml"
  bcl_data=(--preset imagenet-lt --dataset folder --root "$out/photos" --recipe imagenet --config "$out/photos.toml")
  torch_data=(--dataset folder --root "$out/photos/train" --arch "$ARCH" --image-size "$SIZE")
  what="ImageNet sim-sim recipe on $PHOTOS, $ARCH at $SIZE px"
else
  bcl_data=(--preset fashion-mnist-lt --root "$ROOT")
  torch_data=(--root "$ROOT")
  what="Fashion-MNIST-LT (rho 100), resnet32"
fi

run_bcl() {  # → samples/s, peak MB
  rm -rf "$out/run"
  $PYTHON bench/peak_rss.py "$out/rss.json" "$BCL" train "${bcl_data[@]}" --batch-size "$BATCH" \
    --workers "$WORKERS" --device "$DEVICE" --amp "$AMP" --max-steps $((STEPS + 10)) --out "$out/run" > "$out/bcl.log" 2>&1 \
    || { cat "$out/bcl.log"; exit 1; }
  rate=$(grep -oE 'throughput: [0-9.]+' "$out/bcl.log" | grep -oE '[0-9.]+$')
  echo "$rate $($PYTHON -c "import json; print(round(json.load(open('$out/rss.json'))['peak_rss_mb']))")"
}

run_torch() {
  # shellcheck disable=SC2086  # TORCH_ENV and TORCH_ARGS are lists
  env ${TORCH_ENV:-} $PYTHON bench/peak_rss.py "$out/rss.json" $PYTHON bench/reference/train_bcl_torch.py "${torch_data[@]}" \
    --batch-size "$BATCH" --workers "$WORKERS" --device "$DEVICE" --amp "${AMP/auto/bf16}" --steps $((STEPS + 10)) --warmup-steps 10 \
    ${TORCH_ARGS:-} > "$out/torch.log" 2>&1 \
    || { cat "$out/torch.log"; exit 1; }
  rate=$($PYTHON -c "import json; print(json.loads(open('$out/torch.log').read().strip().splitlines()[-1])['samples_per_second'])")
  echo "$rate $($PYTHON -c "import json; print(round(json.load(open('$out/rss.json'))['peak_rss_mb']))")"
}

echo "compare: $DEVICE, $what, batch $BATCH, $WORKERS loader workers, $STEPS timed steps"
echo "peer: ${TORCH_ENV:+$TORCH_ENV }train_bcl_torch.py ${TORCH_ARGS:-}"
echo "warm-up: bcl $(run_bcl) | torch $(run_torch)"
echo "| pair | bcl samples/s | torch samples/s | ratio | bcl peak RSS MB | torch peak RSS MB |"
echo "|---|---|---|---|---|---|"
ratios=()
for pair in $(seq "$PAIRS"); do
  read -r b bm <<< "$(run_bcl)"
  read -r t tm <<< "$(run_torch)"
  ratio=$($PYTHON -c "print(f'{$b / $t:.2f}')")
  ratios+=("$ratio")
  printf '| %s | %.1f | %.1f | %s | %s | %s |\n' "$pair" "$b" "$t" "$ratio" "$bm" "$tm"
done
echo "median ratio bcl/torch: $(printf '%s\n' "${ratios[@]}" | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}')"
