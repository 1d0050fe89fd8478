"""Writes a small balanced Fashion-MNIST: the first TRAIN training and TEST test images of
each class, as uncompressed IDX files in OUT (for tests and the crash test).
Usage: python3 tests/support/tiny_fashion_mnist.py OUT TRAIN TEST   (source: $BCL_FASHION_MNIST
or /usr/share/datasets/fashion-mnist)"""
import gzip
import os
import struct
import sys

source = os.environ.get("BCL_FASHION_MNIST", "/usr/share/datasets/fashion-mnist")
out, per_class = sys.argv[1], {"train": int(sys.argv[2]), "t10k": int(sys.argv[3])}
os.makedirs(out, exist_ok=True)


def read(name):
    with gzip.open(os.path.join(source, name + ".gz")) as f:
        data = f.read()
    dims = struct.unpack(">" + "I" * data[3], data[4 : 4 + 4 * data[3]])
    return dims, data[4 + 4 * len(dims) :]


def write(name, dims, payload):
    with open(os.path.join(out, name), "wb") as f:
        f.write(bytes([0, 0, 8, len(dims)]) + struct.pack(">" + "I" * len(dims), *dims) + payload)


for prefix, n in per_class.items():
    (_, rows, cols), images = read(f"{prefix}-images-idx3-ubyte")
    _, labels = read(f"{prefix}-labels-idx1-ubyte")
    taken, chosen = [0] * 10, []
    for i, label in enumerate(labels):
        if taken[label] < n:
            taken[label] += 1
            chosen.append(i)
    size = rows * cols
    write(f"{prefix}-images-idx3-ubyte", (len(chosen), rows, cols), b"".join(images[i * size : (i + 1) * size] for i in chosen))
    write(f"{prefix}-labels-idx1-ubyte", (len(chosen),), bytes(labels[i] for i in chosen))
