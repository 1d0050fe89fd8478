#!/usr/bin/env python3
"""The class-split transfer experiment's data, as class folders of PNGs (standard library only).

Fashion-MNIST split by class: classes 0-4 (all 30,000 training and 5,000 test images) to
pretrain on, classes 5-9 (the same) to transfer to; the long-tailed subset of the latter is
taken by `bcl train --imb-factor 100`. Folder names keep the label order ("5-sandal", ...), so
the subset's rarest classes are ankle boot and bag, as in the fashion-mnist-lt preset.

    python3 scripts/transfer_data.py FASHION_MNIST_DIR OUT
writes OUT/pretrain/{train,test}/<class>/*.png and OUT/target/{train,test}/<class>/*.png.
"""
import gzip
import struct
import sys
import zlib
from pathlib import Path

NAMES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot"]


def read_idx(path):
    with gzip.open(path) as f:
        data = f.read()
    (magic,) = struct.unpack(">I", data[:4])
    dims = [struct.unpack(">I", data[4 + 4 * i : 8 + 4 * i])[0] for i in range(magic & 0xFF)]
    return dims, data[4 + 4 * len(dims) :]


def png(width, height, pixels):
    """An 8-bit grayscale PNG of `pixels` (row-major bytes)."""

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    rows = b"".join(b"\x00" + pixels[y * width : (y + 1) * width] for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def main(source, out):
    for split, prefix in [("train", "train"), ("test", "t10k")]:
        (n, h, w), images = read_idx(source / f"{prefix}-images-idx3-ubyte.gz")
        _, labels = read_idx(source / f"{prefix}-labels-idx1-ubyte.gz")
        for i in range(n):
            label = labels[i]
            part = "pretrain" if label < 5 else "target"
            folder = out / part / split / f"{label}-{NAMES[label]}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{i:05d}.png").write_bytes(png(w, h, images[i * h * w : (i + 1) * h * w]))
    print(f"wrote {out}/pretrain and {out}/target")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(Path(sys.argv[1]), Path(sys.argv[2]))
