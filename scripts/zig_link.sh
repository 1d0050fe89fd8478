#!/usr/bin/env bash
# The linker of scripts/build_portable.sh: zig's clang linking against glibc 2.34's symbol
# versions (not this machine's), with gcc's own libstdc++ and libgomp, whose C++ ABI
# libtorch uses (zig would bring its libc++ for -lstdc++).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
gcc_lib=$(dirname "$(g++ -print-file-name=libstdc++.so)")
args=()
for arg in "$@"; do
  case $arg in
    -lstdc++) args+=("$gcc_lib/libstdc++.so") ;;
    *) args+=("$arg") ;;
  esac
done
exec "$root/.venv/bin/python" -m ziglang cc -target "x86_64-linux-gnu.${GLIBC_TARGET:-2.34}" "${args[@]}" -L"$gcc_lib"
