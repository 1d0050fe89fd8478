#!/usr/bin/env bash
# Is it our code or the method? The ablation's LA and BCL rows trained by the PyTorch peer
# (bench/reference/train_bcl_torch.py: the same SPEC recipe, split, schedule and precision as
# `scripts/ablation.sh`, written with torchvision and autograd), one JSON result per run in
# OUT, then a table of test top-1 and the 5 rarest classes, mean ± std over seeds.
#   bench/reference_accuracy.sh [OUT]   (default results/reference; EPOCHS=30,
#                                        ONLY="bcl-seed0 la-seed0" to run just those)
# Runs are not resumable: an interrupted run starts again; finished ones are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-results/reference}
EPOCHS=${EPOCHS:-30}
PYTHON=${PYTHON:-.venv/bin/python}
[ "$PYTHON" != .venv/bin/python ] || bench/peer_deps.sh
mkdir -p "$OUT"

runs="bcl-seed0 la-seed0 bcl-seed1 la-seed1 bcl-seed2 la-seed2"
for run in ${ONLY:-$runs}; do
  row=${run%-seed*} seed=${run##*-seed}
  if [ -s "$OUT/$run.json" ]; then echo "reference: $run done already"; continue; fi
  echo "reference: training $row (seed $seed), $EPOCHS epochs"
  # bf16 autocast on the CPU and channels-last, as the ablation's bcl runs; glibc's malloc
  # kept from returning the big activation buffers to the kernel every step, as bcl does.
  GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=2147483647 \
    "$PYTHON" bench/reference/train_bcl_torch.py --loss "$row" --seed "$seed" --epochs "$EPOCHS" \
    --amp bf16 --bf16-on-cpu --channels-last > "$OUT/$run.part" 2> "$OUT/$run.log"
  mv "$OUT/$run.part" "$OUT/$run.json"
done

"$PYTHON" - "$OUT" <<'EOF' | tee "$OUT/table.md"
import glob, json, os, statistics, sys

def spread(values):
    mean = 100 * statistics.mean(values)
    return f"{mean:.1f}" if len(values) < 2 else f"{mean:.1f} ± {100 * statistics.stdev(values):.1f}"

print("| row (PyTorch peer) | seeds | top-1 | 5 rarest |")
print("|---|---|---|---|")
for row in ("la", "bcl"):
    runs = sorted(glob.glob(os.path.join(sys.argv[1], f"{row}-seed*.json")))
    results = [json.load(open(r)) for r in runs]
    if results:
        seeds = ", ".join(r.rsplit("seed", 1)[1][: -len(".json")] for r in runs)
        top1 = spread([r["test_top1"] for r in results])
        rarest = spread([r["rarest5_top1"] for r in results])
        print(f"| {row.upper()} | {seeds} | {top1} | {rarest} |")
EOF
