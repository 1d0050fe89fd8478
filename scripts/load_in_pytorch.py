#!/usr/bin/env python3
"""Loads weights exported by `bcl export --format safetensors` into a PyTorch model of the
reference layout (BCL's BCLModel: `encoder`, `head`, `head_fc`, `fc`) with
load_state_dict(strict=True), and prints its logits for a batch. Copy `bcl_model()` into
your own code to use the weights there.

Usage: python scripts/load_in_pytorch.py WEIGHTS.safetensors [--input X.npy] [--logits OUT.npy]
Needs torch (and torchvision for resnet50 / resnext50_32x4d); reads the file without the
safetensors package. The model's shape comes from the config bcl stores in the file."""
import argparse
import json
import struct
import tomllib

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

DTYPES = {"F32": torch.float32, "F64": torch.float64, "F16": torch.float16, "BF16": torch.bfloat16, "I64": torch.int64}


def read_safetensors(path):
    """The tensors and the metadata of a safetensors file."""
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
        data = f.read()
    metadata = header.pop("__metadata__", {})
    tensors = {}
    for name, info in header.items():
        start, end = info["data_offsets"]
        raw = bytearray(data[start:end])
        tensors[name] = torch.frombuffer(raw, dtype=DTYPES[info["dtype"]]).reshape(info["shape"]).clone()
    return tensors, metadata


class BasicBlock(nn.Module):
    """CIFAR ResNet block with the parameter-free shortcut (option A)."""

    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.stride = stride
        self.pad = (c_out - c_in) // 2 if (stride != 1 or c_in != c_out) else None

    def forward(self, x):
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        shortcut = x
        if self.pad is not None:
            shortcut = F.pad(x[:, :, :: self.stride, :: self.stride], (0, 0, 0, 0, self.pad, self.pad))
        return F.relu(out + shortcut)


class ResNet32(nn.Module):
    def __init__(self, in_channels):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        c_in = 16
        for stage, (c_out, stride) in enumerate(((16, 1), (32, 2), (64, 2)), start=1):
            blocks = [BasicBlock(c_in if b == 0 else c_out, c_out, stride if b == 0 else 1) for b in range(5)]
            setattr(self, f"layer{stage}", nn.Sequential(*blocks))
            c_in = c_out

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return F.adaptive_avg_pool2d(x, 1).flatten(1)


def encoder(arch, in_channels):
    """The backbone (its classifier removed) and its feature width."""
    if arch == "resnet32":
        return ResNet32(in_channels), 64
    import torchvision

    net = torchvision.models.resnet50() if arch == "resnet50" else torchvision.models.resnext50_32x4d()
    if in_channels != 3:
        net.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
    del net.fc
    net.fc = nn.Identity()
    return net, 2048


def mlp(d, hidden, out):
    return nn.Sequential(nn.Linear(d, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out))


class CosineClassifier(nn.Module):
    """logits = s · normalize(h) · normalize_columns(W), W of shape d × C."""

    def __init__(self, d, classes, scale):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(d, classes))
        self.scale = scale

    def forward(self, h):
        return self.scale * F.normalize(h, dim=1) @ F.normalize(self.weight, dim=0)


class BCLModel(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.encoder, d = encoder(model["arch"], model["in_channels"])
        self.head = mlp(d, model["head_hidden_dim"], model["feature_dim"])
        self.head_fc = mlp(d, model["head_hidden_dim"], model["feature_dim"])
        classes = model["num_classes"]
        if model["classifier"] == "cosine":
            self.fc = CosineClassifier(d, classes, model["cosine_scale"])
        else:
            self.fc = nn.Linear(d, classes)

    def forward(self, x):
        """The classifier's logits (the contrastive branch is for training)."""
        return self.fc(self.encoder(x))


def bcl_model(path):
    """The model stored in `path` (a `bcl export` file), loaded strictly, in eval mode."""
    tensors, metadata = read_safetensors(path)
    config = tomllib.loads(metadata["config"])
    model = BCLModel(config["model"])
    model.load_state_dict(tensors, strict=True)
    return model.eval(), config


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights")
    parser.add_argument("--input", help="a float32 N×C×H×W .npy batch (default: zeros)")
    parser.add_argument("--logits", help="write the logits here as .npy")
    args = parser.parse_args()
    model, config = bcl_model(args.weights)
    size = config.get("image_size", 224 if config["model"]["arch"] != "resnet32" else 32)
    x = np.load(args.input) if args.input else np.zeros((1, config["model"]["in_channels"], size, size), np.float32)
    with torch.no_grad():
        logits = model(torch.from_numpy(x)).numpy()
    print(f"loaded {args.weights} strictly into {config['model']['arch']}: logits {logits.shape}")
    if args.logits:
        np.save(args.logits, logits)


if __name__ == "__main__":
    main()
