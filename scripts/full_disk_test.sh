#!/usr/bin/env bash
# A real full disk: trains a tiny run in a 12 MB tmpfs (needs root to mount), so that the
# first checkpoint fits and a later one does not. Checks that bcl fails with a clear error,
# that last.safetensors is byte-for-byte the previous one and loads, and that no temporary
# file is left behind. (make test covers the same with a file-size limit, without root.)
set -euo pipefail
cd "$(dirname "$0")/.."
BCL=${BCL:-target/release/bcl}
[ -x "$BCL" ] || make build
[ "$(id -u)" -eq 0 ] || { echo "full disk test: needs root to mount a tmpfs"; exit 2; }
work=$(mktemp -d)
disk="$work/disk"
mkdir -p "$disk"
trap 'umount "$disk" 2>/dev/null || true; rm -rf "$work"' EXIT
python3 tests/support/tiny_fashion_mnist.py "$work/data" 20 10
mount -t tmpfs -o size=12m tmpfs "$disk"
run="$disk/run"
"$BCL" train --root "$work/data" --imb-factor 5 --batch-size 8 --epochs 1 --device cpu --out "$run" > /dev/null
cp "$run/last.safetensors" "$work/before.safetensors"
# Take the free space so that the next checkpoint (about 3.7 MB) cannot be written.
fallocate -l $(( $(df --output=avail -B1 "$disk" | tail -1) - 200000 )) "$disk/filler"
sed -i 's/^epochs = 1$/epochs = 2/' "$run/config.toml"
if "$BCL" train --resume "$run" --device cpu > "$work/out.log" 2> "$work/err.log"; then
  echo "full disk test: training into a full disk succeeded?"; exit 1
fi
echo "bcl said: $(grep -v '^ ' "$work/err.log" | grep -v '^$' | head -3)"
grep -q "No space left on device" "$work/err.log" || { echo "full disk test: no ENOSPC message"; exit 1; }
cmp "$run/last.safetensors" "$work/before.safetensors"
python3 tests/support/check_checkpoints.py "$run/last.safetensors"
if compgen -G "$run/.*.partial" > /dev/null; then echo "full disk test: a temporary file was left"; exit 1; fi
rm "$disk/filler"
"$BCL" eval --checkpoint "$run/last" --device cpu > /dev/null
echo "full disk test: passed: clear ENOSPC error, previous last.safetensors unchanged and loadable, nothing left over"
