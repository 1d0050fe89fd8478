#!/usr/bin/env bash
# The linker of scripts/build_portable.sh: zig's clang linking against the symbol versions
# of glibc GLIBC_TARGET (not this machine's), with gcc's own libstdc++ and libgcc_s, whose
# C++ ABI and unwinder libtorch uses (zig would bring its libc++ for -lstdc++), and
# COMPAT_OBJECT.
# gcc's libraries are built for this machine's newer glibc: only their symbols are used
# here, the target machine loads its own, hence --allow-shlib-undefined.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
gcc_lib=$(dirname "$(g++ -print-file-name=libstdc++.so)")
args=()
for arg in "$@"; do
  case $arg in
    -lstdc++) args+=("$gcc_lib/libstdc++.so") ;;
    # zig would link LLVM's libunwind in its place: then an exception libtorch raises with
    # the system's unwinder would be resumed in our code by another one.
    -lgcc_s) args+=("$(g++ -print-file-name=libgcc_s.so.1)") ;;
    *) args+=("$arg") ;;
  esac
done
exec "$root/.venv/bin/python" -m ziglang cc -target "x86_64-linux-gnu.$GLIBC_TARGET" "${args[@]}" \
  ${COMPAT_OBJECT:+"$COMPAT_OBJECT"} -Wl,--allow-shlib-undefined -L"$gcc_lib"
