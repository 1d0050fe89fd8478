#!/usr/bin/env bash
# Runs each cargo-fuzz target (fuzz/fuzz_targets) for SECONDS seconds, seeded from the test
# fixtures, and prints executions and findings per target. Needs a nightly toolchain and
# cargo-fuzz (cargo install cargo-fuzz). Crashes are kept in fuzz/artifacts/<target>/.
#   scripts/fuzz.sh [SECONDS] [TARGET...]     (default 600 s, every target)
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(idx cifar_binary cifar_pickle checkpoint)
export LD_LIBRARY_PATH="$PWD/.venv/libtorch/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

seed() {  # target → seed corpus folder
  local dir="fuzz/corpus/$1"
  mkdir -p "$dir"
  case $1 in
    idx) python3 -c "import sys; sys.stdout.buffer.write(bytes([0,0,8,3,0,0,0,2,0,0,0,3,0,0,0,2]) + bytes(range(12)))" > "$dir/seed" ;;
    cifar_binary) python3 -c "import sys; sys.stdout.buffer.write(bytes([3]) + bytes(i % 256 for i in range(3072)))" > "$dir/seed" ;;
    cifar_pickle) cp tests/fixtures/cifar10_* "$dir/" ;;
    checkpoint) cp tests/golden/*.safetensors "$dir/" ;;
  esac
}

for target in "${targets[@]}"; do
  seed "$target"
  log="fuzz/$target.log"
  echo "fuzz: $target for $SECONDS_PER_TARGET s"
  status=0
  cargo +nightly fuzz run --sanitizer none "$target" -- -max_total_time="$SECONDS_PER_TARGET" \
    -rss_limit_mb=2048 -malloc_limit_mb=512 -max_len=65536 > "$log" 2>&1 || status=$?
  runs=$(grep -oE 'Done [0-9]+ runs' "$log" | grep -oE '[0-9]+' || echo "?")
  crashes=$(ls "fuzz/artifacts/$target" 2>/dev/null | wc -l)
  echo "fuzz: $target: $runs executions, exit $status, $crashes crash files (log: $log)"
done
