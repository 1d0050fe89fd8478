#!/usr/bin/env python3
"""The transfer experiment's table (scripts/transfer.sh): for each row, the seeds finished,
test top-1 after the last epoch and the accuracy of the two rarest classes (bag, 189
training images; ankle boot, 60), mean ± sample std over seeds, and the minutes a run took
(training and evaluation, from metrics.jsonl).
Usage: python3 scripts/transfer_table.py OUT"""
import csv
import json
import statistics
import sys
from pathlib import Path

# Every row whose runs exist, in this order.
ROWS = [(loss, start) for loss in ("la", "bcl") for start in ("scratch", "finetune", "frozen", "adapter")]


def cell(values, scale=100.0):
    if not values:
        return "–"
    if len(values) == 1:
        return f"{scale * values[0]:.1f}"
    return f"{scale * statistics.mean(values):.1f} ± {scale * statistics.stdev(values):.1f}"


def main(out):
    print("| loss | start | seeds | top-1 | bag (189) | ankle boot (60) | minutes per run |")
    print("|---|---|---|---|---|---|---|")
    for loss, start in ROWS:
        if not any(out.glob(f"{loss}-{start}-seed*")):
            continue
        seeds, top1, rare, minutes = [], [], [[], []], []
        for run in sorted(out.glob(f"{loss}-{start}-seed*")):
            if not (run / "per_class.csv").is_file():
                continue  # unfinished
            records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
            counts = [int(r["train_images"]) for r in csv.DictReader(open(run / "class_counts.csv"))]
            rarest = sorted(range(len(counts)), key=counts.__getitem__)[:2]
            seeds.append(run.name.rsplit("seed", 1)[1])
            top1.append(records[-1]["eval"]["top1"])
            for slot, klass in zip((1, 0), rarest):
                rare[slot].append(records[-1]["eval"]["per_class"][klass])
            minutes.append(sum(r["seconds"] for r in records) / 60)
        print(f"| {loss.upper()} | {start} | {', '.join(seeds) or '–'} | {cell(top1)} | {cell(rare[0])} | "
              f"{cell(rare[1])} | {cell(minutes, 1.0)} |")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "results/transfer"))
