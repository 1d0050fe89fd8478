"""The same training-view recipes as `bcl data bench`, written the way the PyTorch
original does it: PIL images, torchvision transforms, a DataLoader with worker
processes. Prints views per second (3 views per sample, normalised float tensors).

    python bench/torchvision_pipeline.py --recipe cifar --root bench/out/cifar-like
    python bench/torchvision_pipeline.py --recipe imagenet --root bench/out/jpegs

The ImageNet recipe is `randcls` + `sim` + `sim` (`--cl-views sim-sim`); its RandAugment
is torchvision's RandAugment(num_ops=2, magnitude=10), torchvision's counterpart of
timm's `rand-n2-m10-mstd0.5`.
"""
import argparse
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import datasets, transforms as T

CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class CifarBinary(Dataset):
    """CIFAR-10 binary batches held in memory, served as PIL images like torchvision's CIFAR10."""

    def __init__(self, root, transform):
        records = np.concatenate([np.fromfile(Path(root) / f"data_batch_{i}.bin", dtype=np.uint8).reshape(-1, 3073)
                                  for i in range(1, 6)])
        self.labels = records[:, 0].astype(np.int64)
        self.images = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy()
        self.transform = transform

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.transform(Image.fromarray(self.images[i])), self.labels[i]


class ThreeViews:
    def __init__(self, views):
        self.views = views

    def __call__(self, img):
        return [view(img) for view in self.views]


def sim(size, normalize):
    return T.Compose([
        T.RandomResizedCrop(size, scale=(0.08, 1.0)),
        T.RandomHorizontalFlip(),
        T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
        T.RandomGrayscale(p=0.2),
        T.ToTensor(),
        normalize,
    ])


def cifar_views():
    normalize = T.Normalize(CIFAR_MEAN, CIFAR_STD)
    view0 = T.Compose([
        T.RandomCrop(32, padding=4),
        T.RandomHorizontalFlip(),
        T.AutoAugment(T.AutoAugmentPolicy.CIFAR10),
        T.ToTensor(),
        normalize,
    ])
    return ThreeViews([view0, sim(32, normalize), sim(32, normalize)])


def imagenet_views():
    normalize = T.Normalize(IMAGENET_MEAN, IMAGENET_STD)
    randcls = T.Compose([
        T.RandomResizedCrop(224, scale=(0.08, 1.0)),
        T.RandomHorizontalFlip(),
        T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.0)], p=1.0),
        T.RandAugment(num_ops=2, magnitude=10),
        T.ToTensor(),
        normalize,
    ])
    return ThreeViews([randcls, sim(224, normalize), sim(224, normalize)])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipe", choices=["cifar", "imagenet"], required=True)
    parser.add_argument("--root", required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.recipe == "cifar":
        dataset = CifarBinary(args.root, cifar_views())
    else:
        dataset = datasets.ImageFolder(args.root, transform=imagenet_views())
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, drop_last=True,
                        num_workers=args.workers, persistent_workers=True)

    def batches():
        while True:
            yield from loader

    it = batches()
    for _ in range(args.warmup):
        next(it)
    start = time.perf_counter()
    for _ in range(args.batches):
        views, _ = next(it)
        assert len(views) == 3 and views[0].shape[0] == args.batch_size
    seconds = time.perf_counter() - start
    n = args.batches * args.batch_size * 3
    print(f"torchvision loader: {args.workers} workers, batch {args.batch_size}, {args.batches} batches in "
          f"{seconds:.2f} s: {n / seconds:.0f} views/s, {n / seconds / args.workers:.0f} views/s per worker")


if __name__ == "__main__":
    main()
