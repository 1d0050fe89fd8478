"""Golden long-tailed CIFAR subsets, as picked by LDAM-DRW's `IMBALANCECIFAR10.gen_imbalanced_data`
(also used by BCL): `np.random.seed(seed)` once, then per class in label order
`idx = np.where(targets == c)[0]; np.random.shuffle(idx); keep idx[:n_c]` with
`n_c = int(img_max * (1/rho) ** (c / (C - 1.0)))`, `img_max = len(data) / C`.
The Rust side (src/data/numpy_random.rs) must reproduce these indices bit for bit.

    python tests/golden/make_lt_split.py tests/golden/lt_split.txt.gz

(run with the project venv; numpy is the only dependency.) The output is gzipped with a zero
timestamp and no file name, so a rerun with the same numpy and zlib gives the same bytes.
"""
import gzip
import sys

import numpy as np

N = 50_000
# Multiplier and offset of the label permutation; 7919 is prime and coprime to 50,000.
A, B = 7919, 12345
CASES = [(c, rho, seed) for c in (10, 100) for rho in (100, 50, 10) for seed in (0, 1)]


def labels(num_classes):
    """A balanced, scrambled label vector: label[i] = ((A*i + B) % N) // (N // C)."""
    i = np.arange(N, dtype=np.int64)
    y = ((A * i + B) % N) // (N // num_classes)
    assert (np.bincount(y, minlength=num_classes) == N // num_classes).all()
    return y


def img_num_per_cls(num_classes, rho, n):
    """LDAM's get_img_num_per_cls(cls_num, 'exp', imb_factor=1/rho)."""
    img_max = n / num_classes
    imb_factor = 1 / rho
    return [int(img_max * (imb_factor ** (k / (num_classes - 1.0)))) for k in range(num_classes)]


def gen_imbalanced(targets, counts, seed):
    """LDAM's gen_imbalanced_data, returning the kept indices instead of the images."""
    np.random.seed(seed)
    kept = []
    for the_class, the_img_num in zip(np.unique(targets), counts):
        idx = np.where(targets == the_class)[0]
        np.random.shuffle(idx)
        kept.extend(int(j) for j in idx[:the_img_num])
    return kept


def main(out):
    lines = [
        "# Long-tailed CIFAR subsets of LDAM-DRW IMBALANCECIFAR10.gen_imbalanced_data (tests/golden/make_lt_split.py).",
        f"# Labels (N={N}, C classes, N/C each): label[i] = (({A} * i + {B}) % {N}) / ({N} / C), integer division.",
        "# One record per line: 'C RHO SEED ; counts per class ; kept indices, class by class, in shuffled order'.",
    ]
    for num_classes, rho, seed in CASES:
        counts = img_num_per_cls(num_classes, rho, N)
        kept = gen_imbalanced(labels(num_classes), counts, seed)
        assert len(kept) == sum(counts)
        lines.append(f"{num_classes} {rho} {seed} ; {' '.join(map(str, counts))} ; {' '.join(map(str, kept))}")
    data = ("\n".join(lines) + "\n").encode()
    with open(out, "wb") as f, gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0) as gz:
        gz.write(data)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/golden/lt_split.txt.gz")
