"""The PyTorch peer of `bcl train` for benchmarks: the same BCL recipe (SPEC sections 2-3)
written the way the original research code is: torchvision transforms on PIL images in a
DataLoader with worker processes and pinned memory, autograd, torch.optim.SGD.

Datasets: Fashion-MNIST IDX files (28x28 grayscale) or a CIFAR-10 binary release, long
tailed (imbalance factor rho, the LDAM-DRW split of SPEC 4), with resnet32 (option-A shortcuts), a
512->128 contrastive head and SPEC 3's small-image views; or a folder of class folders of photos
with torchvision's resnet50 / resnext50_32x4d, a 2048->1024 head and the ImageNet-LT
sim-sim recipe on 224 crops. Both: a cosine classifier and a head_fc that maps the
classifier weights to class prototypes; loss = alpha * logit-adjusted CE on view 0 +
beta * BCL on views 1-2 (class-averaging, class-complement); `--loss la` trains the
logit-adjusted CE on view 0 alone (the LA row of scripts/ablation.sh).

  python train_bcl_torch.py --root DIR --steps 60 --warmup-steps 10   (throughput)
  python train_bcl_torch.py --root DIR --epochs 1                      (accuracy too)
  bench/reference_accuracy.sh                                          (against the ablation)

Prints one JSON line: samples/s (a sample = its 3 views, step and loading included), the
steps timed, and test top-1 (overall, per class, the 5 rarest classes) when whole epochs
were trained; one line per epoch on stderr.
"""
import argparse
import gzip
import json
import math
import os
import random
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image, ImageFilter
from torch.utils.data import DataLoader, Dataset
from torchvision import datasets, models, transforms

NORMALIZATION = {
    "fashion-mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "folder": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


def read_idx(path):
    with gzip.open(path) if path.endswith(".gz") else open(path, "rb") as f:
        data = f.read()
    dims = struct.unpack(">" + "I" * data[3], data[4 : 4 + 4 * data[3]])
    return np.frombuffer(data, np.uint8, offset=4 + 4 * len(dims)).reshape(dims)


def find(root, name):
    for candidate in (name, name + ".gz"):
        if os.path.exists(os.path.join(root, candidate)):
            return os.path.join(root, candidate)
    raise FileNotFoundError(f"{name} in {root}")


def long_tailed(images, labels, rho, seed):
    """The LDAM-DRW / BCL split (SPEC 4): numpy's legacy generator seeded once, one shuffle
    per class in label order; class c keeps int(n_max * (1/rho)^(c/(C-1))), n_max = N / C."""
    classes = int(labels.max()) + 1
    n_max = len(labels) / classes
    np.random.seed(seed)
    keep = []
    for c in range(classes):
        members = np.where(labels == c)[0]
        np.random.shuffle(members)
        keep.extend(members[: int(n_max * (1 / rho) ** (c / (classes - 1.0)))])
    keep = np.array(keep)
    return images[keep], labels[keep]


def read_cifar_binary(root, train):
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] if train else ["test_batch.bin"]
    records = np.concatenate([np.fromfile(os.path.join(root, n), np.uint8).reshape(-1, 3073) for n in names])
    return records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy(), records[:, 0].astype(np.int64)


def read_arrays(dataset, root, train):
    if dataset == "cifar10":
        return read_cifar_binary(root, train)
    prefix = "train" if train else "t10k"
    images = read_idx(find(root, f"{prefix}-images-idx3-ubyte"))
    return images, read_idx(find(root, f"{prefix}-labels-idx1-ubyte")).astype(np.int64)


class ThreeViews(Dataset):
    def __init__(self, images, labels, views):
        self.images, self.labels, self.views = images, labels, views

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        img = Image.fromarray(self.images[i])
        return [v(img) for v in self.views], int(self.labels[i])


class Plain(ThreeViews):
    def __getitem__(self, i):
        return self.views(Image.fromarray(self.images[i])), int(self.labels[i])


def imagenet_recipe(normalization, size=224):
    normalize = [transforms.ToTensor(), transforms.Normalize(*normalization)]
    crop_flip = [transforms.RandomResizedCrop(size, scale=(0.08, 1.0)), transforms.RandomHorizontalFlip()]
    randcls = transforms.Compose(
        [*crop_flip, transforms.ColorJitter(0.4, 0.4, 0.4, 0.0), transforms.RandAugment(2, 10), *normalize]
    )
    sim = transforms.Compose(
        [
            *crop_flip,
            transforms.RandomApply([transforms.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
            transforms.RandomGrayscale(p=0.2),
            *normalize,
        ]
    )
    return [randcls, sim, sim]


class FolderThreeViews(datasets.ImageFolder):
    def __init__(self, root, views):
        super().__init__(root)
        self.views = views

    def __getitem__(self, i):
        path, label = self.samples[i]
        img = self.loader(path)
        return [v(img) for v in self.views], label


class RandomGaussianBlur:
    """PIL's GaussianBlur with a radius drawn uniformly from [0.1, 2] (SPEC 3)."""

    def __call__(self, img):
        return img.filter(ImageFilter.GaussianBlur(radius=random.uniform(0.1, 2.0)))


def recipe(size, channels, normalization):
    """SPEC 3's small-image views: [view 0, sim, sim] and the evaluation transform."""
    normalize = [transforms.ToTensor(), transforms.Normalize(*normalization)]
    view0 = transforms.Compose(
        [
            transforms.RandomCrop(size, padding=4),
            transforms.RandomHorizontalFlip(),
            # Grey fill, as the CIFAR policy of the BCL-derived code (and bcl) has it.
            transforms.AutoAugment(transforms.AutoAugmentPolicy.CIFAR10, fill=[128] * channels),
            *normalize,
        ]
    )
    sim = transforms.Compose(
        [
            transforms.RandomResizedCrop(size, scale=(0.2, 1.0)),
            transforms.RandomHorizontalFlip(),
            transforms.RandomApply([transforms.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
            transforms.RandomGrayscale(p=0.2),
            transforms.RandomApply([RandomGaussianBlur()], p=0.5),
            *normalize,
        ]
    )
    return [view0, sim, sim], transforms.Compose(normalize)


class BasicBlock(nn.Module):
    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.pad = (c_out - c_in) // 2 if (stride != 1 or c_in != c_out) else None

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x
        if self.pad is not None:  # option A: subsample, zero-pad the channels
            shortcut = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))
        return F.relu(out + shortcut)


class ResNet32(nn.Module):
    def __init__(self, in_channels):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        layers, c_in = [], 16
        for c_out, stride in ((16, 1), (32, 2), (64, 2)):
            for b in range(5):
                layers.append(BasicBlock(c_in, c_out, stride if b == 0 else 1))
                c_in = c_out
        self.layers = nn.Sequential(*layers)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = self.layers(F.relu(self.bn1(self.conv1(x))))
        return F.adaptive_avg_pool2d(x, 1).flatten(1)


def mlp(d, hidden, out):
    return nn.Sequential(nn.Linear(d, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out))


def encoder(arch, in_channels):
    """The backbone and its feature width."""
    if arch == "resnet32":
        return ResNet32(in_channels), 64
    net = models.resnet50() if arch == "resnet50" else models.resnext50_32x4d()
    net.fc = nn.Identity()
    return net, 2048


class BCLModel(nn.Module):
    def __init__(self, arch, in_channels, classes, hidden, out, scale=30.0):
        super().__init__()
        self.encoder, d = encoder(arch, in_channels)
        self.head = mlp(d, hidden, out)
        self.head_fc = mlp(d, hidden, out)
        w = torch.empty(d, classes).uniform_(-1, 1)
        self.fc_weight = nn.Parameter(F.normalize(w, dim=0))
        self.scale = scale

    def logits(self, h):
        return self.scale * F.normalize(h, dim=1) @ F.normalize(self.fc_weight, dim=0)

    def forward(self, x):
        h = self.encoder(x)
        features = F.normalize(self.head(h), dim=1)
        prototypes = F.normalize(self.head_fc(self.fc_weight.t()), dim=1)
        return features, self.logits(h), prototypes


def bcl_loss(z1, z2, prototypes, labels, classes, tau):
    """Balanced contrastive loss with class-averaging and class-complement (SPEC 2)."""
    anchors = torch.cat([z1, z2])
    anchor_labels = torch.cat([labels, labels])
    contrast = torch.cat([anchors, prototypes])
    contrast_labels = torch.cat([anchor_labels, torch.arange(classes, device=labels.device)])
    logits = anchors @ contrast.t() / tau
    logits = logits - logits.max(dim=1, keepdim=True).values.detach()
    n = anchors.shape[0]
    not_self = torch.ones_like(logits)
    not_self[torch.arange(n), torch.arange(n)] = 0
    positives = (anchor_labels[:, None] == contrast_labels[None, :]).float() * not_self
    class_sizes = torch.bincount(contrast_labels, minlength=classes).float()
    weights = class_sizes[contrast_labels][None, :] - positives
    denominator = (logits.exp() * not_self / weights).sum(dim=1, keepdim=True)
    log_prob = logits - denominator.log()
    return -((positives * log_prob).sum(1) / positives.sum(1)).mean()


def lr_at(epoch, epochs, base, warmup):
    if epoch < warmup:
        return base * (epoch + 1) / warmup
    return base * 0.5 * (1 + math.cos(math.pi * (epoch - warmup + 1) / (epochs - warmup + 1)))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dataset", choices=["fashion-mnist", "cifar10", "folder"], default="fashion-mnist")
    p.add_argument("--arch", choices=["resnet32", "resnet50", "resnext50_32x4d"], default="resnet32")
    p.add_argument("--root", default=os.environ.get("BCL_FASHION_MNIST", "/usr/share/datasets/fashion-mnist"))
    p.add_argument("--imb-factor", type=float, default=100)
    p.add_argument("--subset-seed", type=int, default=0, help="seed of the long-tailed split")
    p.add_argument("--seed", type=int, default=0, help="initialisation and augmentation")
    p.add_argument("--loss", choices=["bcl", "la"], default="bcl", help="la: logit-adjusted CE on view 0 alone")
    p.add_argument("--image-size", type=int, default=224, help="crop size of the photo (folder) recipe")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--epochs", type=int, default=4, help="schedule length (and epochs trained without --steps)")
    p.add_argument("--steps", type=int, help="stop after this many steps (throughput runs)")
    p.add_argument("--warmup-steps", type=int, default=10, help="steps not timed")
    p.add_argument("--workers", type=int, default=os.cpu_count())
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--amp", choices=["off", "bf16", "fp16"], default="bf16")
    p.add_argument("--channels-last", action="store_true", help="NHWC activations and weights, as bcl uses")
    p.add_argument("--bf16-on-cpu", action="store_true", help="with --amp bf16, autocast on the CPU too (as bcl on AMX CPUs)")
    args = p.parse_args()
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    torch.backends.cudnn.benchmark = True

    normalization = NORMALIZATION[args.dataset]
    photos = args.dataset == "folder"
    if photos:
        data = FolderThreeViews(args.root, imagenet_recipe(normalization, args.image_size))
        labels = np.array(data.targets, dtype=np.int64)
        in_channels, hidden, out, tau, alpha, beta = 3, 2048, 1024, 0.07, 1.0, 0.35
    else:
        images, labels = read_arrays(args.dataset, args.root, train=True)
        images, labels = long_tailed(images, labels, args.imb_factor, args.subset_seed)
        in_channels = 1 if images.ndim == 3 else images.shape[3]
        views, evaluation = recipe(images.shape[1], in_channels, normalization)
        if args.loss == "la":
            views = views[:1]  # the contrastive views are never used
        data = ThreeViews(images, labels, views)
        hidden, out, tau, alpha, beta = 512, 128, 0.1, 2.0, 0.6
    classes = int(labels.max()) + 1
    loader = DataLoader(
        data,
        batch_size=args.batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=args.workers,
        pin_memory=cuda,
        persistent_workers=args.workers > 0,
    )
    model = BCLModel(args.arch, in_channels, classes, hidden, out).to(device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4)
    counts = torch.bincount(torch.from_numpy(labels), minlength=classes).float().to(device)
    log_prior = (counts / counts.sum()).log()
    autocast = dict(device_type=device.type, dtype=torch.bfloat16 if args.amp == "bf16" else torch.float16)
    # As the original: autocast on GPUs only, unless asked for bf16 on the CPU as well.
    use_amp = (cuda and args.amp != "off") or (args.bf16_on_cpu and args.amp == "bf16")
    scaler = torch.amp.GradScaler(enabled=use_amp and args.amp == "fp16")

    step, timed_steps, start, began = 0, 0, None, time.perf_counter()
    trained_epochs = 0
    for epoch in range(args.epochs):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(epoch, args.epochs, args.lr, 0 if args.epochs == 1 else 1)
        model.train()
        for batch_views, y in loader:
            if step == args.warmup_steps:
                if cuda:
                    torch.cuda.synchronize()
                start = time.perf_counter()
            x = torch.cat(batch_views).to(device, non_blocking=True)
            if args.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            y = y.to(device, non_blocking=True)
            b = y.shape[0]
            with torch.autocast(**autocast, enabled=use_amp):
                if args.loss == "la":
                    loss = F.cross_entropy(model.logits(model.encoder(x)).float() + log_prior, y)
                else:
                    features, logits, prototypes = model(x)
                    ce = F.cross_entropy(logits[:b].float() + log_prior, y)
                    z1, z2 = features[b : 2 * b].float(), features[2 * b :].float()
                    # In float32, as bcl: exp(s/τ) of bfloat16 similarities is off by percents.
                    with torch.autocast(device.type, enabled=False):
                        contrastive = bcl_loss(z1, z2, prototypes.float(), y, classes, tau)
                    loss = alpha * ce + beta * contrastive
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            step += 1
            if step > args.warmup_steps:
                timed_steps += 1
            if args.steps and step >= args.steps:
                break
        if args.steps and step >= args.steps:
            break
        trained_epochs += 1
        print(f"epoch {epoch + 1}/{args.epochs}: loss {loss.item():.4f}, {time.perf_counter() - began:.0f} s", file=sys.stderr, flush=True)
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    result = {
        "samples_per_second": timed_steps * args.batch_size / seconds,
        "timed_steps": timed_steps,
        "final_loss": loss.item(),
    }
    if cuda:
        result["peak_gpu_memory_mb"] = torch.cuda.max_memory_allocated() / 2**20
    if trained_epochs == args.epochs and not photos:
        test_images, test_labels = read_arrays(args.dataset, args.root, train=False)
        test = DataLoader(Plain(test_images, test_labels, evaluation), batch_size=256, num_workers=args.workers)
        model.eval()
        predictions = []
        with torch.no_grad():
            for x, _ in test:
                predictions.append(model.logits(model.encoder(x.to(device))).argmax(1).cpu())
        truth = torch.from_numpy(test_labels)
        hits = (torch.cat(predictions) == truth).float()
        per_class = [hits[truth == c].mean().item() for c in range(classes)]
        result["test_top1"] = hits.mean().item()
        result["per_class_top1"] = per_class
        # Classes are numbered from the largest to the smallest in the long-tailed split.
        result["rarest5_top1"] = sum(per_class[-5:]) / 5
    print(json.dumps(result))


if __name__ == "__main__":
    main()
