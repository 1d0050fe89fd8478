#!/usr/bin/env python3
"""The ablation table from the runs in OUT (scripts/ablation.sh): per row, mean ± std over
its finished seeds of the last epoch's test top-1, many / medium / few-shot accuracy and
the mean accuracy of the 5 rarest classes; rows not run yet are marked. Reads each run's
metrics.jsonl and class_counts.csv. Usage: scripts/ablation_table.py OUT"""
import csv
import json
import os
import statistics
import sys

ROWS = [
    ("ce", "CE", 3),
    ("la", "LA (logit-adjusted CE)", 3),
    ("supcon", "SupCon + LA", 1),
    ("bcl-no-averaging", "BCL without class-averaging", 1),
    ("bcl-no-complement", "BCL without class-complement", 1),
    ("bcl", "BCL (LA + BCL)", 3),
]


def finished(run):
    """The last epoch's record of a finished run, and its per-class training counts."""
    config = open(os.path.join(run, "config.toml")).read()
    epochs = int(next(line.split("=")[1] for line in config.splitlines() if line.startswith("epochs")))
    lines = [json.loads(l) for l in open(os.path.join(run, "metrics.jsonl")) if l.strip()]
    if not lines or lines[-1]["epoch"] + 1 < epochs:
        return None
    counts = [int(r["train_images"]) for r in csv.DictReader(open(os.path.join(run, "class_counts.csv")))]
    return lines[-1], counts, epochs


def cell(values):
    values = [100 * v for v in values if v is not None]
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


def main(out):
    print("| row | seeds | top-1 | many | medium | few | 5 rarest classes | epochs |")
    print("|---|---|---|---|---|---|---|---|")
    for name, title, wanted in ROWS:
        results = []
        for seed in range(wanted):
            run = os.path.join(out, f"{name}-seed{seed}")
            if os.path.isfile(os.path.join(run, "metrics.jsonl")):
                result = finished(run)
                if result:
                    results.append(result)
        if not results:
            print(f"| {title} | 0 of {wanted} | not run yet | | | | | |")
            continue
        evals = [r[0]["eval"] for r in results]
        rarest = [sorted(range(len(c)), key=lambda k: c[k])[:5] for _, c, _ in results]
        tail = [sum(e["per_class"][k] for k in idx) / 5 for e, idx in zip(evals, rarest)]
        print(
            f"| {title} | {len(results)} of {wanted} | {cell([e['top1'] for e in evals])} | "
            f"{cell([e['many'] for e in evals])} | {cell([e['medium'] for e in evals])} | "
            f"{cell([e['few'] for e in evals])} | {cell(tail)} | {results[0][2]} |"
        )


if __name__ == "__main__":
    main(sys.argv[1])
