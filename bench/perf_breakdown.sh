#!/usr/bin/env bash
# Where the loader's time goes: `perf record` of one worker making ImageNet sim-sim batches
# (bench/out/jpegs, from bench/make_bench_data.py), its samples bucketed by what the code
# does. Shares, not speeds: they hold on a busy machine too.
#   bench/perf_breakdown.sh [BCL binary] [extra `bcl data bench` flags, e.g. --uint8]
set -euo pipefail
cd "$(dirname "$0")/.."
BCL=${1:-target/release/bcl}
shift || true
data=$(mktemp)
trap 'rm -f "$data"' EXIT
perf record -q -o "$data" "$BCL" data bench --dataset folder --root bench/out/jpegs --batch-size 32 \
  --cl-views sim-sim --workers 1 --batches 30 "$@" >&2
perf report -i "$data" --no-children --sort symbol -g none 2>/dev/null | python3 -c '
import re, sys
buckets = [
    ("JPEG decode (zune-jpeg)", r"zune_jpeg|zune_core"),
    ("crop + resize (fast_image_resize)", r"fast_image_resize"),
    ("colour ops (jitter, grayscale, RandAugment pixel ops)",
     r"ops::(hue|saturation|contrast|brightness|grayscale|map_rgb_blocks|map_pixels|solarize|posterize|equalize|autocontrast|invert|sharpness|per_channel_lut)|Step::apply|randaugment::apply_op|color_jitter"),
    ("geometric RandAugment ops (affine warps)", r"ops::affine|affine_avx2"),
    ("flip", r"ops::hflip"),
    ("batch assembly (HWC to CHW, normalise, loader)", r"loader::|rust_begin_short_backtrace|to_planar"),
    ("kernel: page faults, zeroing (fresh memory)", r"^\[k\]"),
    ("malloc, memset, memcpy", r"malloc|_int_free|free|memset|memmove|memcpy|unlink_chunk|cfree"),
]
totals = {name: 0.0 for name, _ in buckets}
other = 0.0
for line in sys.stdin:
    m = re.match(r"\s*([0-9.]+)%\s+(\[.\])\s+(.*)", line)
    if not m:
        continue
    share, kind, symbol = float(m.group(1)), m.group(2), m.group(3).strip()
    text = f"{kind} {symbol}"
    for name, pattern in buckets:
        if re.search(pattern, symbol if pattern != r"^\[k\]" else text):
            totals[name] += share
            break
    else:
        other += share
print("| where | share of samples |")
print("|---|---|")
for name, _ in buckets:
    print(f"| {name} | {totals[name]:.1f}% |")
print(f"| other (libtorch start-up, threads, rest) | {other:.1f}% |")
'
