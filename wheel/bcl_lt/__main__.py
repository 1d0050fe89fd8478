"""The `bcl` command: runs the native binary of this package with the libtorch of the torch
installed in this Python, after checking that torch is the version the binary was built
against. `python -m bcl_lt ARGS` does the same.
"""
import importlib.metadata
import importlib.util
import os
import pathlib
import sys

# The torch whose libtorch the binary was linked against (the wheel's METADATA requires it).
TORCH = "2.11.0"
# The binary links libtorch_cuda (so that it sees a GPU when there is one): torch's CUDA
# build, PyPI's default on Linux.
NEEDED = ("libtorch_cpu.so", "libtorch_cuda.so", "libc10.so")


def torch_lib():
    """torch's lib folder, or exit with one line saying which torch is needed and how."""
    install = f"pip install torch=={TORCH}"
    try:
        version = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        sys.exit(f"bcl: needs torch {TORCH} in {sys.executable}, which has none: {install}")
    if version.split("+")[0] != TORCH:
        sys.exit(f"bcl: needs torch {TORCH}; {sys.executable} has torch {version}: {install}")
    spec = importlib.util.find_spec("torch")
    lib = pathlib.Path(next(iter(spec.submodule_search_locations))) / "lib"
    missing = [name for name in NEEDED if not (lib / name).exists()]
    if missing:
        sys.exit(f"bcl: torch {version} in {lib.parent} lacks {', '.join(missing)} (bcl needs torch's CUDA build, "
                 f"PyPI's default): {install}")
    return lib


def main():
    lib = torch_lib()
    binary = pathlib.Path(__file__).resolve().parent / "bin" / "bcl"
    env = dict(os.environ)
    # The binary's RUNPATH finds torch installed beside this package; elsewhere (another
    # site-packages on sys.path), the loader is told.
    env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [str(lib), env.get("LD_LIBRARY_PATH")]))
    os.execve(binary, [str(binary), *sys.argv[1:]], env)


if __name__ == "__main__":
    main()
