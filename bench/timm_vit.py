"""The timm + PyTorch side of bench/vit_cost.sh: the same ViT-B/16 step bcl takes, bf16
autocast on the CPU.

  train full|adapter BATCH STEPS WARMUP [FOLDER]   LA loss on a cosine head (scale 25) over
      the class token, SGD (lr 0.01, momentum 0.9, wd 5e-4); `adapter` freezes the backbone
      and adds LIFT's AdaptFormer (width 8) beside every block's MLP. Batches from FOLDER's
      class folders as a PyTorch user loads them (ImageFolder, the lift preset's view 0:
      RandomResizedCrop 224, flip, ColorJitter 0.4; DataLoader with a worker per core),
      or random tensors without it. Prints samples/s over the steps after WARMUP.
  predict BATCH BATCHES                   the classifier's forward in inference mode.

Usage: python bench/timm_vit.py train adapter 16 20 10 PHOTOS | python bench/timm_vit.py predict 64 8
"""
import os
import math
import sys
import time

import timm
import torch
from torch import nn
from torch.nn import functional as F

CLASSES = 5


class AdaptFormer(nn.Module):
    def __init__(self, dim, width):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.down_proj = nn.Linear(dim, width)
        self.up_proj = nn.Linear(width, dim)
        self.scale = nn.Parameter(torch.ones(1))
        nn.init.kaiming_normal_(self.down_proj.weight, a=math.sqrt(5))
        nn.init.zeros_(self.down_proj.bias)
        nn.init.zeros_(self.up_proj.weight)
        nn.init.zeros_(self.up_proj.bias)

    def forward(self, x):
        return self.up_proj(F.relu(self.down_proj(self.norm(x)))) * self.scale


def add_adapter(block, dim, width):
    block.adaptformer = AdaptFormer(dim, width)

    def forward(x, attn_mask=None):
        x = x + block.drop_path1(block.ls1(block.attn(block.norm1(x))))
        return x + block.drop_path2(block.ls2(block.mlp(block.norm2(x)))) + block.adaptformer(x)

    block.forward = forward


class Classifier(nn.Module):
    def __init__(self, adapters):
        super().__init__()
        self.backbone = timm.create_model("vit_base_patch16_224", pretrained=False, num_classes=0)
        if adapters:
            self.backbone.requires_grad_(False)
            for block in self.backbone.blocks:
                add_adapter(block, 768, 8)
        self.weight = nn.Parameter(F.normalize(torch.rand(768, CLASSES) * 2 - 1, dim=0))

    def forward(self, x):
        h = self.backbone(x)
        return 25 * F.normalize(h, dim=1) @ F.normalize(self.weight, dim=0)


def batches(batch, folder):
    if folder is None:
        while True:
            yield torch.randn(batch, 3, 224, 224), torch.randint(0, CLASSES, (batch,))
    from torchvision import datasets, transforms

    view = transforms.Compose([
        transforms.RandomResizedCrop(224), transforms.RandomHorizontalFlip(), transforms.ColorJitter(0.4, 0.4, 0.4),
        transforms.ToTensor(), transforms.Normalize([0.5] * 3, [0.5] * 3),
    ])
    data = datasets.ImageFolder(folder, view)
    loader = torch.utils.data.DataLoader(data, batch, shuffle=True, num_workers=os.cpu_count(), drop_last=True)
    while True:
        yield from loader


def train(mode, batch, steps, warmup, folder=None):
    model = Classifier(mode == "adapter").train()
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(parameters, lr=0.01, momentum=0.9, weight_decay=5e-4)
    log_prior = torch.log(torch.tensor([0.5, 0.25, 0.15, 0.07, 0.03]))
    data = batches(batch, folder)
    for step in range(steps):
        if step == warmup:
            start = time.perf_counter()
        x, y = next(data)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = model(x)
        loss = F.cross_entropy(logits.float() + log_prior, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    rate = (steps - warmup) * batch / (time.perf_counter() - start)
    print(f"timm {mode}: {rate:.2f} samples/s over steps {warmup + 1}-{steps}; "
          f"{sum(p.numel() for p in parameters)} trained parameters")


def predict(batch, batches):
    model = Classifier(False).eval()
    x = torch.randn(batch, 3, 224, 224)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        model(x)
        start = time.perf_counter()
        for _ in range(batches):
            model(x)
    print(f"timm predict: {batches * batch / (time.perf_counter() - start):.1f} images/s at batch {batch}")


if __name__ == "__main__":
    torch.manual_seed(0)
    if sys.argv[1] == "train":
        train(sys.argv[2], *map(int, sys.argv[3:6]), *sys.argv[6:7])
    else:
        predict(*map(int, sys.argv[2:4]))
