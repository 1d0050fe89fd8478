"""Benchmark inputs, made from what every machine here has:

- OUT/cifar-like/: Fashion-MNIST as a CIFAR-10 "binary" release (32x32 RGB: the 28x28
  images padded by 2 and tinted per class), 60,000 training and 10,000 test records;
- OUT/jpegs/cXX/*.jpg: varied photo-sized JPEGs (400-640 x 300-480, quality 90) in 10
  class folders: smooth colour fields, shapes and noise, so the decoder and the
  augmentations do realistic work.

    python bench/make_bench_data.py OUT [--jpegs 300]
"""
import argparse
import gzip
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

FASHION = os.environ.get("BCL_FASHION_MNIST", "/usr/share/datasets/fashion-mnist")


def read_idx(name):
    with gzip.open(Path(FASHION) / f"{name}.gz") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def cifar_like(out: Path):
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    tints = rng.uniform(0.3, 1.0, size=(10, 3))
    for split, prefix, files in [("train", "train", 5), ("test", "t10k", 1)]:
        images = read_idx(f"{prefix}-images-idx3-ubyte")
        labels = read_idx(f"{prefix}-labels-idx1-ubyte")
        padded = np.pad(images, ((0, 0), (2, 2), (2, 2)))
        rgb = (padded[:, None, :, :] * tints[labels][:, :, None, None]).astype(np.uint8)  # N,3,32,32 planar
        records = np.concatenate([labels[:, None].astype(np.uint8), rgb.reshape(len(labels), -1)], axis=1)
        names = [f"data_batch_{i + 1}.bin" for i in range(files)] if split == "train" else ["test_batch.bin"]
        for name, part in zip(names, np.array_split(records, files)):
            part.tofile(out / name)


def jpegs(out: Path, count: int):
    rng = np.random.default_rng(1)
    for i in range(count):
        w, h = int(rng.integers(400, 641)), int(rng.integers(300, 481))
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.stack([(np.sin(xx / rng.uniform(20, 90) + c) * 0.5 + 0.5) * rng.uniform(80, 255)
                         + (yy / h) * rng.uniform(0, 80) for c in range(3)], axis=-1)
        noise = rng.normal(0, 12, size=(h, w, 3))
        img = Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(img)
        for _ in range(6):
            x0, y0 = int(rng.integers(0, w - 50)), int(rng.integers(0, h - 50))
            box = [x0, y0, x0 + int(rng.integers(30, 200)), y0 + int(rng.integers(30, 200))]
            draw.ellipse(box, fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        img = img.filter(ImageFilter.GaussianBlur(1))
        folder = out / f"c{i % 10:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        img.save(folder / f"{i:05d}.jpg", quality=90)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--jpegs", type=int, default=300)
    args = parser.parse_args()
    if not (args.out / "cifar-like" / "test_batch.bin").exists():
        cifar_like(args.out / "cifar-like")
    if not (args.out / "jpegs").exists():
        jpegs(args.out / "jpegs", args.jpegs)


if __name__ == "__main__":
    main()
