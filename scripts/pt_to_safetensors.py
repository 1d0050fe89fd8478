"""Converts a PyTorch .pt/.pth checkpoint (such as the BCL reference's) to safetensors,
which bcl reads without running code. Run it only on files you trust: it unpickles them
(with torch.load(weights_only=True), which refuses arbitrary objects).
OpenAI's CLIP releases (TorchScript archives such as ViT-B-16.pt) convert the same way.
Usage: python scripts/pt_to_safetensors.py IN.pth OUT.safetensors"""
import sys
import zipfile

import torch
from safetensors.torch import save_file

source, target = sys.argv[1], sys.argv[2]
# OpenAI's released CLIP files (ViT-B-16.pt) are TorchScript archives: torch.jit.load reads
# them without unpickling, and their weights are the module's state_dict (bcl's --init
# converts OpenAI's names to timm's).
if zipfile.is_zipfile(source) and any(n.endswith("constants.pkl") for n in zipfile.ZipFile(source).namelist()):
    state_dict = torch.jit.load(source, map_location="cpu").state_dict()
else:
    checkpoint = torch.load(source, map_location="cpu", weights_only=True)
    # The reference saves {"epoch", "state_dict", "best_acc1", "optimizer"}; plain state dicts also work.
    state_dict = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else checkpoint
tensors = {k: v.contiguous() for k, v in state_dict.items() if isinstance(v, torch.Tensor)}
save_file(tensors, target)
print(f"wrote {len(tensors)} tensors to {target}")
