#!/usr/bin/env bash
# Loader throughput, bcl against torchvision + PIL in a PyTorch DataLoader, on the same
# images with the same number of workers, alternating runs (bcl, torchvision, …).
#   (a) the CIFAR recipe on 32×32 images (Fashion-MNIST as a CIFAR-10 binary release);
#   (b) the ImageNet-LT sim-sim recipe (randcls + sim + sim) on 224 crops of generated JPEGs.
# Prints views/s per worker for each run and the bcl/torchvision ratio per pair with the
# median. bcl runs twice per pair: as for CPU training (workers normalise to float32, like
# torchvision's ToTensor + Normalize) and as for a GPU (`--uint8`: workers hand over bytes,
# the GPU normalises). Not a test: speed depends on the machine.
# Usage: bench/pipeline.sh [pairs]
set -euo pipefail
cd "$(dirname "$0")/.."
PAIRS=${1:-3}
WORKERS=${WORKERS:-$(nproc)}
OUT=bench/out
make -s build >/dev/null
bench/peer_deps.sh
.venv/bin/python bench/make_bench_data.py "$OUT"

per_worker() { sed -E 's/.* ([0-9]+) views\/s per worker/\1/'; }

run_pairs() { # name, timed batches, bcl args, torchvision args
  local name=$1 batches=$2 bcl_args=$3 tv_args=$4 ratios=() ratios_u8=()
  echo "== $name: $WORKERS workers =="
  # Warm the page cache and both code paths once.
  ./target/release/bcl data bench $bcl_args --workers "$WORKERS" --batches 3 >/dev/null
  .venv/bin/python bench/torchvision_pipeline.py $tv_args --workers "$WORKERS" --batches 3 >/dev/null
  for i in $(seq "$PAIRS"); do
    local a u b
    a=$(./target/release/bcl data bench $bcl_args --workers "$WORKERS" --batches "$batches")
    u=$(./target/release/bcl data bench $bcl_args --workers "$WORKERS" --batches "$batches" --uint8)
    b=$(.venv/bin/python bench/torchvision_pipeline.py $tv_args --workers "$WORKERS" --batches "$batches")
    printf '  %s\n  %s\n  %s\n' "$a" "$u" "$b"
    ratios+=("$(python3 -c "print(f'{$(echo "$a" | per_worker) / $(echo "$b" | per_worker):.2f}')")")
    ratios_u8+=("$(python3 -c "print(f'{$(echo "$u" | per_worker) / $(echo "$b" | per_worker):.2f}')")")
  done
  echo "  ratio bcl/torchvision per pair, float32: ${ratios[*]}; median $(median "${ratios[@]}")"
  echo "  ratio bcl/torchvision per pair, uint8:   ${ratios_u8[*]}; median $(median "${ratios_u8[@]}")"
}

median() { printf '%s\n' "$@" | sort -n | sed -n "$(( ($# + 1) / 2 ))p"; }

run_pairs "CIFAR recipe, 32x32, batch 128" 40 \
  "--dataset cifar10 --root $OUT/cifar-like --batch-size 128" \
  "--recipe cifar --root $OUT/cifar-like --batch-size 128"
run_pairs "ImageNet sim-sim recipe, 224 crops of JPEGs, batch 32" 30 \
  "--dataset folder --root $OUT/jpegs --batch-size 32 --cl-views sim-sim" \
  "--recipe imagenet --root $OUT/jpegs --batch-size 32"
