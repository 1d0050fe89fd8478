"""torchvision's own ResNets with seeded random weights, for bcl's equality test.

For each architecture: builds torchvision.models.<arch>(weights=None), draws every parameter
and BatchNorm statistic at random (seeded; running_var positive), saves its state_dict as
safetensors exactly as a user would convert a downloaded .pth (OUT/<arch>.safetensors, the
1000-class fc included), and its pooled features (eval mode, fc replaced by identity) on a
seeded input as OUT/<arch>.features.safetensors {"input", "features", "parameters"} (the
encoder's parameter count).

Usage: python tests/support/torchvision_reference.py OUT SIZE ARCH [ARCH ...]
"""
import sys
from pathlib import Path

import torch
import torchvision
from safetensors.torch import save_file


def randomised(model, seed):
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.randn_like(p) * (0.5 if name.endswith("bias") else 1.0) / max(1, p[0].numel()) ** 0.5)
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.running_mean.normal_(0.0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
                module.num_batches_tracked.fill_(7)
    return model.eval()


def main(out, size, archs):
    out.mkdir(parents=True, exist_ok=True)
    for seed, arch in enumerate(archs):
        model = randomised(getattr(torchvision.models, arch)(weights=None), seed)
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, out / f"{arch}.safetensors")
        torch.manual_seed(1000 + seed)
        x = torch.randn(2, 3, size, size)
        model.fc = torch.nn.Identity()
        with torch.no_grad():
            features = model(x)
        parameters = torch.tensor(sum(p.numel() for p in model.parameters()), dtype=torch.int64)
        save_file(
            {"input": x, "features": features.contiguous(), "parameters": parameters},
            out / f"{arch}.features.safetensors",
        )
        print(f"{arch}: {sum(p.numel() for p in model.parameters())} encoder parameters, features {list(features.shape)}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3:])
