#!/usr/bin/env bash
# Every GPU check and timing of issues 5, 7 and 28 in one call on a lent GPU machine (about 9
# minutes): `bcl doctor`, the card's bf16 matmul peak, the NCCL process group at world size
# 1, with and without SyncBatchNorm, against a plain run (1 step, weights and losses
# compared), then bcl against its PyTorch peer
# (bench/reference/train_bcl_torch.py), alternating, for
#   2. 32×32 colour images (Fashion-MNIST padded to 32 and tinted per class, made here from
#      the carried IDX files), resnet32, batch 256, the CIFAR recipe;
#   3. 224 crops (CROP=112 for smaller) of generated JPEGs (bench/make_bench_data.py), resnet50 and
#      resnext50_32x4d, batch 128, the ImageNet-LT sim-sim recipe, 16 loader workers each;
#   4. a ViT-B/16 with adapters (LIFT's step, batch 128) against its full fine-tuning.
# Prints samples/s, peak GPU memory (torch) and achieved TFLOP/s as a share of the peak;
# the table comes last.
#
#   here:  bench/gpu.sh --prepare      (stripped portable bcl, Fashion-MNIST, JPEGs → bench/out/gpu, ~47 MB)
#   there: bash bench/gpu.sh           (run tool, carry ["bench/out/gpu"]; PAIRS=3)
#   CI:    bash bench/gpu.sh --dry-run (after --prepare: every section on the CPU with a tiny
#                                       budget, to the same table, so the script cannot rot)
set -euo pipefail
cd "$(dirname "$0")/.."
G=bench/out/gpu
if [ "${1:-}" = --prepare ]; then
  scripts/build_portable.sh
  rm -rf "$G" && mkdir -p "$G"
  strip -o "$G/bcl" target/portable/release/bcl
  cp -r "${BCL_FASHION_MNIST:-/usr/share/datasets/fashion-mnist}" "$G/fashion-mnist"
  [ -d bench/out/jpegs ] || .venv/bin/python bench/make_bench_data.py bench/out
  cp -r bench/out/jpegs "$G/jpegs"
  du -sh "$G"
  exit 0
fi
DRY=0
[ "${1:-}" = --dry-run ] && DRY=1
PAIRS=${PAIRS:-3}
PY=${PYTHON:-python3}
DEV=cuda CROP=${CROP:-224} WORKERS=16 CIFAR_BATCH=256 CIFAR_STEPS=50 JPEG_BATCH=128 JPEG_STEPS=40 VIT=vit_base_patch16_224 VIT_BATCH=128 VIT_STEPS=30
if [ $DRY = 1 ]; then
  # 11 steps: the 10 untimed warm-up steps and one timed; 64 px crops for the ImageNet models.
  PAIRS=1 PY=${PYTHON:-.venv/bin/python} DEV=cpu CROP=64 WORKERS=2 CIFAR_BATCH=16 CIFAR_STEPS=11 JPEG_BATCH=4 JPEG_STEPS=11
  VIT=vit_tiny_patch16_224 VIT_BATCH=4 VIT_STEPS=11
  echo "== dry run: CPU, tiny budget (figures are not GPU figures)"
fi
# First what decides whether the carried binary can start at all: bcl, like the torch
# wheel, needs glibc ≥ 2.28 and libstdc++ with GLIBCXX_3.4.22 (scripts/build_portable.sh).
echo "== $(ldd --version 2>&1 | head -1); driver $(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -1); card $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)"
# Prepended: hosts that find libcuda through LD_LIBRARY_PATH keep it.
export LD_LIBRARY_PATH="$($PY -c 'import torch, os; print(os.path.dirname(torch.__file__))')/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
BCL="$G/bcl"
W=/tmp/bcl-gpu
rm -rf "$W" && mkdir -p "$W"
echo "== doctor"; "$BCL" doctor || echo "!! bcl doctor failed: the binary cannot run here (glibc above?)"
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv,noheader 2>/dev/null || true

PEAK=$($PY - "$DEV" <<'PY'
import sys, time, torch
device = sys.argv[1]; size = 8192 if device == "cuda" else 512
sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
a = torch.randn(size, size, device=device, dtype=torch.bfloat16); b = torch.randn_like(a)
for _ in range(5): a @ b
sync(); t = time.perf_counter(); n = 100 if device == "cuda" else 5
for _ in range(n): a @ b
sync(); print(f"{2 * size**3 * n / (time.perf_counter() - t) / 1e12:.3f}")
PY
) || PEAK=0
echo "== bf16 matmul peak ($DEV, torch): $PEAK TFLOP/s"

# 32×32 colour images from Fashion-MNIST, CIFAR-10 binary layout, with torch only.
$PY - "$G/fashion-mnist" "$W/cifar-like" <<'PY'
import ctypes, gzip, os, sys, torch
src, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
def idx(name):
    data = gzip.open(os.path.join(src, name + ".gz")).read()
    n = data[3]; dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(n)]
    return torch.frombuffer(bytearray(data[4 + 4 * n:]), dtype=torch.uint8).reshape(dims)
tints = torch.rand(10, 3, generator=torch.Generator().manual_seed(0)) * 0.7 + 0.3
for prefix, names in (("train", [f"data_batch_{i}.bin" for i in range(1, 6)]), ("t10k", ["test_batch.bin"])):
    images, labels = idx(f"{prefix}-images-idx3-ubyte"), idx(f"{prefix}-labels-idx1-ubyte").long()
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2)).float()
    rgb = (padded[:, None] * tints[labels][:, :, None, None]).to(torch.uint8).reshape(len(labels), -1)
    records = torch.cat([labels[:, None].to(torch.uint8), rgb], 1)
    for name, part in zip(names, records.chunk(len(names))):
        part = part.contiguous()  # raw bytes without numpy, which this machine may lack
        open(os.path.join(out, name), "wb").write(ctypes.string_at(part.data_ptr(), part.numel()))
PY

echo "== NCCL at world size 1 (bcl train --nproc-per-node 1), with and without SyncBatchNorm, against a plain run, 1 step (SyncBatchNorm's other float32 sums diverge over more: tests/it/distributed.rs), amp off"
printf 'sync_batch_norm = true\n' > "$W/sync.toml"
for mode in plain nccl nccl-sync; do
  case $mode in
    plain) extra=() ;;
    nccl) extra=(--nproc-per-node 1) ;;
    nccl-sync) extra=(--nproc-per-node 1 --config "$W/sync.toml") ;;
  esac
  "$BCL" train --preset cifar10-lt --root "$W/cifar-like" --device $DEV --amp off --max-steps 1 --workers $WORKERS \
    --batch-size $CIFAR_BATCH \
    --out "$W/ws1-$mode" "${extra[@]}" > "$W/ws1-$mode.log" 2>&1 || { tail -20 "$W/ws1-$mode.log"; }
  grep -E "^run|collectives|stopped" "$W/ws1-$mode.log" || true
done
($PY - "$W"/ws1-{plain,nccl,nccl-sync}/last.safetensors <<'PY'
import json, struct, sys, torch
def load(path):  # safetensors with torch only: 8-byte header length, JSON header, raw data
    raw = open(path, "rb").read(); n = struct.unpack("<Q", raw[:8])[0]; header = json.loads(raw[8:8 + n])
    kinds = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64, "BF16": torch.bfloat16}
    sums = json.loads(header["__metadata__"]["state"])["sums"]
    return sums, {k: torch.frombuffer(bytearray(raw[8 + n + v["data_offsets"][0]: 8 + n + v["data_offsets"][1]]),
                                      dtype=kinds[v["dtype"]]).reshape(v["shape"])
                  for k, v in header.items() if k != "__metadata__" and v["data_offsets"][1] > v["data_offsets"][0]}
(sums_b, b) = load(sys.argv[1])
for name, path in (("NCCL", sys.argv[2]), ("NCCL + SyncBatchNorm", sys.argv[3])):
    sums_a, a = load(path)
    worst = max(((x.double() - b[k].double()).abs().max().item() / max(b[k].double().abs().max().item(), 1), k)
                for k, x in a.items() if "num_batches" not in k)
    print(f"world size 1 ({name}) vs plain after 1 step: {len(a)} tensors, largest relative difference "
          f"{worst[0]:.2e} ({worst[1]}); loss sums ce {sums_a['ce']:.6f} vs {sums_b['ce']:.6f}, "
          f"contrastive {sums_a['contrastive']:.6f} vs {sums_b['contrastive']:.6f}")
PY
) || echo "!! the world-size-1 comparison failed (a run above did not finish); the timings follow"

PEER_OK=1
$PY -c 'import torchvision, PIL' 2>/dev/null || { PEER_OK=0; echo "!! torchvision/PIL missing on this machine: the PyTorch peer is skipped"; }
ROWS=()
# FLOPs per sample: 3 views × (forward + backward ≈ 3 × forward MACs × 2).
# The ImageNet models' figures are for 224 crops; the dry run's smaller crops scale them.
flops_per_sample() { case $1 in resnet32) echo "3*3*2*69.1e6";; resnet50) echo "3*3*2*4.11e9*($CROP/224)**2";; resnext50_32x4d) echo "3*3*2*4.26e9*($CROP/224)**2";; esac; }

# A folder dataset with one epoch longer than any timed run: each carried JPEG linked 25
# times (7,500 images, 58 steps of 128), so that neither side evaluates or ends an epoch
# inside its timed steps. The few JPEGs themselves are the test split (never reached).
folder_data() {
  [ -d "$W/folder/train" ] && return
  for class in "$G"/jpegs/*/; do
    mkdir -p "$W/folder/train/$(basename "$class")"
    for file in "$class"*.jpg; do
      for k in $(seq 25); do ln -s "$PWD/$file" "$W/folder/train/$(basename "$class")/$k-$(basename "$file")"; done
    done
  done
  ln -sfn "$PWD/$G/jpegs" "$W/folder/test"
}

bcl_run() {  # config arch batch steps → samples/s
  local cfg=$1 arch=$2 batch=$3 steps=$4 out="$W/run-$RANDOM"
  if [ "$cfg" = cifar ]; then
    "$BCL" train --preset cifar10-lt --root "$W/cifar-like" --batch-size "$batch" --device $DEV --workers $WORKERS \
      --max-steps "$steps" --out "$out" > "$W/bcl.log" 2>&1 || { tail -20 "$W/bcl.log" >&2; echo 0; return; }
  else
    folder_data
    printf '[model]\narch = "%s"\n' "$arch" > "$W/arch.toml"
    "$BCL" train --preset imagenet-lt --dataset folder --root "$W/folder" --recipe imagenet --image-size "$CROP" --config "$W/arch.toml" \
      --batch-size "$batch" --device $DEV --workers $WORKERS --max-steps "$steps" --out "$out" > "$W/bcl.log" 2>&1 \
      || { tail -20 "$W/bcl.log" >&2; echo 0; return; }
  fi
  grep -oE 'throughput: [0-9.]+' "$W/bcl.log" | grep -oE '[0-9.]+$'
}

torch_run() {
  local cfg=$1 arch=$2 batch=$3 steps=$4
  [ "$PEER_OK" = 1 ] || { echo 0; return; }
  local data=(--dataset cifar10 --root "$W/cifar-like")
  [ "$cfg" = cifar ] || { folder_data; data=(--dataset folder --root "$W/folder/train" --image-size "$CROP"); }
  $PY bench/reference/train_bcl_torch.py "${data[@]}" --arch "$arch" --batch-size "$batch" --device $DEV --workers $WORKERS \
    --amp bf16 --channels-last --epochs 1 --steps "$steps" --warmup-steps 10 > "$W/torch.log" 2>&1 || { tail -20 "$W/torch.log" >&2; echo 0; return; }
  tail -1 "$W/torch.log" | $PY -c 'import json, sys; print("%.3g" % json.load(sys.stdin)["samples_per_second"])'
}

compare() {  # name cfg arch batch steps
  local name=$1 ratios=()
  echo "== $name"
  for pair in $(seq "$PAIRS"); do
    b=$(bcl_run "$2" "$3" "$4" "$5"); t=$(torch_run "$2" "$3" "$4" "$5")
    r=$($PY -c "print(f'{$b / $t:.2f}' if $t else '-')")
    tf=$($PY -c "print(f'{$b * $(flops_per_sample "$3") / 1e12:.3g}')")
    echo "pair $pair: bcl $b samples/s ($tf TFLOP/s, $($PY -c "print(f'{100 * $tf / $PEAK:.0f}' if $PEAK else '-')")% of peak), torch $t, ratio $r"
    ratios+=("$r")
  done
  ROWS+=("| $name | $b | $t | ${ratios[*]} | $tf |")
}

# 50 steps (10 untimed): within the first of the cifar-like set's 58 steps per epoch.
compare "CIFAR recipe, 32×32, resnet32, batch $CIFAR_BATCH" cifar resnet32 $CIFAR_BATCH $CIFAR_STEPS
compare "ImageNet sim-sim, $CROP JPEG crops, resnet50, batch $JPEG_BATCH" folder resnet50 $JPEG_BATCH $JPEG_STEPS
# The dry run (CI) skips it: the same code path as resnet50's, at twice its CPU time.
[ $DRY = 1 ] ||
  compare "ImageNet sim-sim, $CROP JPEG crops, resnext50_32x4d, batch $JPEG_BATCH" folder resnext50_32x4d $JPEG_BATCH $JPEG_STEPS

# LIFT's step: ViT-B/16 with AdaptFormer adapters, the backbone frozen, LA on view 0, against
# full fine-tuning of it. The backbone file is bcl's own with random weights (--max-steps 0
# writes it): a speed and memory check. Memory: the card's, sampled by nvidia-smi (on the
# CPU, the process tree's peak RSS).
vit_run() {  # tune → "samples/s peak-MiB"
  local tune=$1 out="$W/vit-$1-$RANDOM" memory="$W/vit-memory"
  local flags=(--preset lift-imagenet-lt --dataset folder --root "$W/folder" --arch $VIT --image-size "$CROP"
    --init-classifier random --device $DEV --workers $WORKERS)
  folder_data
  [ -f "$W/vit-init/last.safetensors" ] || "$BCL" train "${flags[@]}" --tune full --max-steps 0 --out "$W/vit-init" > "$W/vit.log" 2>&1
  flags+=(--tune "$tune" --batch-size $VIT_BATCH --max-steps $VIT_STEPS --out "$out")
  [ "$tune" = full ] || flags+=(--init "$W/vit-init/last.safetensors")
  if [ $DRY = 1 ]; then
    $PY bench/peak_rss.py "$memory.json" "$BCL" train "${flags[@]}" > "$W/vit.log" 2>&1 || { tail -20 "$W/vit.log" >&2; echo 0 0; return; }
    peak=$($PY -c "import json,sys; print(round(json.load(open(sys.argv[1]))['peak_rss_mb']))" "$memory.json")
  else
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 > "$memory" & sampler=$!
    "$BCL" train "${flags[@]}" > "$W/vit.log" 2>&1 || { kill $sampler; tail -20 "$W/vit.log" >&2; echo 0 0; return; }
    kill $sampler; peak=$(sort -n "$memory" | tail -1)
  fi
  echo "$(grep -oE 'throughput: [0-9.]+' "$W/vit.log" | grep -oE '[0-9.]+$') $peak"
}
echo "== $VIT (LIFT's step), $CROP px, batch $VIT_BATCH, LA: --tune adapter against --tune full"
for pair in $(seq "$PAIRS"); do
  read -r adapter_rate adapter_memory < <(vit_run adapter); read -r full_rate full_memory < <(vit_run full)
  echo "pair $pair: adapter $adapter_rate samples/s, peak $adapter_memory MiB; full $full_rate samples/s, peak $full_memory MiB"
done
VIT_ROW="| $VIT, $CROP px, batch $VIT_BATCH, LA | adapter: $adapter_rate samples/s, $adapter_memory MiB | full: $full_rate samples/s, $full_memory MiB |"

echo
CARD=$([ $DRY = 1 ] && echo "none (dry run on the CPU)" || nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
echo "card: $CARD; bf16 peak $PEAK TFLOP/s"
echo "| configuration | bcl samples/s (last pair) | torch samples/s (last pair) | ratio per pair | bcl TFLOP/s |"
echo "|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
echo
echo "| light fine-tuning | --tune adapter (last pair) | --tune full (last pair) |"
echo "|---|---|---|"
echo "$VIT_ROW"
