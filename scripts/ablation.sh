#!/usr/bin/env bash
# The loss ablation on long-tailed Fashion-MNIST (ρ = 100): CE, LA, SupCon + LA and BCL,
# all with the fashion-mnist-lt preset's recipe and schedule for EPOCHS epochs, two seeds
# for CE and BCL. Writes OUT/table.md: test top-1 and the mean test accuracy of the 5 most
# and the 5 least frequent training classes.
#   scripts/ablation.sh [OUT]      (default runs/ablation; EPOCHS=6, BCL=target/release/bcl)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/ablation}
EPOCHS=${EPOCHS:-6}
BCL=${BCL:-target/release/bcl}
[ -x "$BCL" ] || make build
mkdir -p "$OUT"

runs=("ce 0" "ce 1" "la 0" "supcon 0" "bcl 0" "bcl 1")
for run in "${runs[@]}"; do
  set -- $run
  dir="$OUT/$1-seed$2"
  if [ -f "$dir/per_class.csv" ]; then echo "ablation: $dir done already"; continue; fi
  rm -rf "$dir"
  echo "ablation: training --loss $1 --seed $2 into $dir"
  start=$(date +%s)
  "$BCL" train --preset fashion-mnist-lt --epochs "$EPOCHS" --loss "$1" --seed "$2" --out "$dir" > "$dir.log" 2>&1
  echo "ablation: $dir took $(( $(date +%s) - start )) s" | tee -a "$dir.log"
done

python3 - "$OUT" "$EPOCHS" "${runs[@]}" <<'PY' | tee "$OUT/table.md"
import csv, json, sys
out, epochs, runs = sys.argv[1], sys.argv[2], sys.argv[3:]
names = {"ce": "CE", "la": "LA (logit-adjusted CE)", "supcon": "SupCon + LA", "bcl": "BCL (LA + BCL)"}
print(f"| loss | seed | top-1 | 5 most frequent classes | 5 least frequent classes | minutes |")
print("|---|---|---|---|---|---|")
for run in runs:
    loss, seed = run.split()
    d = f"{out}/{loss}-seed{seed}"
    rows = sorted(csv.DictReader(open(f"{d}/per_class.csv")), key=lambda r: -int(r["train_images"]))
    acc = [float(r["test_accuracy"]) for r in rows]
    metrics = [json.loads(l) for l in open(f"{d}/metrics.jsonl")]
    top1 = metrics[-1]["eval"]["top1"]
    minutes = sum(m["seconds"] for m in metrics) / 60
    print(f"| {names[loss]} | {seed} | {100*top1:.1f} | {100*sum(acc[:5])/5:.1f} | {100*sum(acc[-5:])/5:.1f} | {minutes:.0f} |")
print(f"\nFashion-MNIST-LT, ρ = 100 (6000 → 60 images per class), {epochs} epochs of the fashion-mnist-lt preset; test set balanced (1000 per class).")
PY
