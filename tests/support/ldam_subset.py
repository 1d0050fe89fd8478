"""Prints the training indices LDAM-DRW's IMBALANCECIFAR10.gen_imbalanced_data keeps (the
long-tailed split BCL uses), written as that code does, for the labels of an IDX file.
Usage: python tests/support/ldam_subset.py LABELS_IDX[.gz] NUM_CLASSES RHO SEED"""
import gzip
import struct
import sys

import numpy as np

path, cls_num, rho, seed = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
    data = f.read()
(count,) = struct.unpack(">I", data[4:8])
targets_np = np.frombuffer(data[8 : 8 + count], dtype=np.uint8).astype(np.int64)

imb_factor = 1.0 / rho
img_max = len(targets_np) / cls_num
img_num_per_cls = [int(img_max * (imb_factor ** (cls_idx / (cls_num - 1.0)))) for cls_idx in range(cls_num)]
np.random.seed(seed)
for the_class, the_img_num in zip(np.unique(targets_np), img_num_per_cls):
    idx = np.where(targets_np == the_class)[0]
    np.random.shuffle(idx)
    for i in idx[:the_img_num]:
        print(i)
