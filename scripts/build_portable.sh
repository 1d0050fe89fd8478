#!/usr/bin/env bash
# A bcl binary for other Linux machines (the one bench/gpu.sh carries): it needs glibc
# ≥ 2.28 and libstdc++ ≥ GLIBCXX_3.4.22, what the torch 2.11 wheel itself needs, so it
# runs wherever that wheel does (RHEL / Rocky 8, Ubuntu 20.04, Debian 10 and later), where
# a plain build here (Debian 12) needs glibc 2.35 and gcc 11's libstdc++.
# The same objects as `make build`, linked again by zig against glibc 2.28's symbol
# versions (scripts/zig_link.sh), with scripts/old_glibc_compat.cpp defining the three
# newer symbols that gcc 12's headers put into tch's and our C++.
#   scripts/build_portable.sh        → target/portable/release/bcl
set -euo pipefail
cd "$(dirname "$0")/.."
ZIGLANG_VERSION=0.17.1
GLIBC_TARGET=2.28
CARGO=${CARGO:-cargo}
make -s build
# Linked after the last build already (`make wheel`, then `bench/gpu.sh --prepare` in CI).
if [ target/portable/release/bcl -nt target/release/bcl ] && [ target/portable/release/bcl -nt "$0" ] &&
  [ target/portable/release/bcl -nt scripts/zig_link.sh ]; then
  echo "target/portable/release/bcl: up to date"
  exit 0
fi
[ "$(.venv/bin/pip show ziglang 2>/dev/null | sed -n 's/^Version: //p')" = "$ZIGLANG_VERSION" ] ||
  .venv/bin/pip install --quiet --disable-pip-version-check "ziglang==$ZIGLANG_VERSION"
# Reuse the compiled crates: only the binary's own crate is built again, with the linker
# given to it alone (as cargo's linker setting, it would rebuild build scripts and all).
rm -rf target/portable && mkdir -p target/portable
cp -a target/release target/portable/release
compat=target/portable/old_glibc_compat.o
g++ -std=c++17 -O2 -fPIC -c scripts/old_glibc_compat.cpp -o "$compat"
CARGO_TARGET_DIR=target/portable GLIBC_TARGET=$GLIBC_TARGET COMPAT_OBJECT=$PWD/$compat \
  "$CARGO" rustc --release --quiet --bin bcl -- -C linker="$PWD/scripts/zig_link.sh"
# Check what the dynamic linker will ask for: no symbol version above what RHEL 8 has
# (glibc 2.28; gcc 8's libstdc++ and libgcc_s), the torch wheel's own needs bar GCC_.
limits="GLIBC_$GLIBC_TARGET GLIBCXX_3.4.22 CXXABI_1.3.11 GCC_8.0.0"
newest() { objdump -T target/portable/release/bcl | { grep -oE "\b$1_[0-9.]+[0-9]" || true; } | sort -V | tail -1; }
needs=()
for limit in $limits; do
  found=$(newest "${limit%%_*}")
  if [ -n "$found" ] && [ "$(printf '%s\n' "$found" "$limit" | sort -V | tail -1)" != "$limit" ]; then
    echo "build_portable: target/portable/release/bcl needs $found, above $limit" >&2
    exit 1
  fi
  needs+=("${found:-no ${limit%%_*}}")
done
echo "target/portable/release/bcl: needs ${needs[*]}"
