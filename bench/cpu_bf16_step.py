"""PyTorch's own resnet32 BCL training step on the CPU, float32 against bf16 autocast
(channels-last, batch 128 x 3 views of 28 x 28, the reference peer's BCLModel): does bf16
pay on this CPU? Alternates fp32, bf16 twice; prints samples/s.
Usage: .venv/bin/python bench/cpu_bf16_step.py   (needs torchvision: bench/pipeline.sh installs it)"""
import sys
import time

import torch

sys.path.insert(0, "bench/reference")
import train_bcl_torch as ref  # noqa: E402

torch.manual_seed(0)
model = ref.BCLModel("resnet32", 1, 10, 512, 128).to(memory_format=torch.channels_last)
optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
x = torch.randn(384, 1, 28, 28).contiguous(memory_format=torch.channels_last)


def step(bf16):
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        out = model(x)
    loss = sum(o.float().sum() for o in out)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


for bf16 in [False, True, False, True]:
    for _ in range(3):
        step(bf16)
    start, steps = time.perf_counter(), 10
    for _ in range(steps):
        step(bf16)
    print("bf16" if bf16 else "fp32", round(steps * 128 / (time.perf_counter() - start), 1), "samples/s")
