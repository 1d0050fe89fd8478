"""timm's own Vision Transformers with seeded random weights, for bcl's equality test.

For each timm model name: builds timm.create_model(name, pretrained=False) (1000 classes;
OpenAI CLIP's tower with its 512-wide projection as `head`), draws every LayerNorm at random
too (seeded), saves its state_dict as safetensors (OUT/<name>.safetensors), and the
features (class token after the final norm; for CLIP, after the projection) on a seeded
224 px input as OUT/<name>.features.safetensors {"input", "features", "parameters"}. For the
first model also the features at SMALL px, with the position embeddings resampled as
timm's resample_abs_pos_embed does ("input_small", "features_small"). For CLIP, the same
weights under OpenAI's names (the inverse of timm's _convert_openai_clip) as
OUT/<name>.openai.safetensors.

Usage: python tests/support/timm_reference.py OUT SMALL NAME [NAME ...]
"""
import sys
from pathlib import Path

import timm
import torch
from safetensors.torch import save_file
from timm.layers import resample_abs_pos_embed


def randomised(model, seed):
    torch.manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0.0, 0.1)
        model.cls_token.normal_(0.0, 0.5)
    return model.eval()


def features(model, x):
    with torch.no_grad():
        out = model.forward_features(x)
        return model.forward_head(out, pre_logits=model.head.out_features != 512)


def openai_names(state_dict):
    """The inverse of timm's _convert_openai_clip: what OpenAI's `visual.` keys look like."""
    swaps = [
        ("patch_embed.proj", "conv1"), ("pos_embed", "positional_embedding"), ("blocks.", "transformer.resblocks."),
        ("norm_pre", "ln_pre"), ("attn.qkv.", "attn.in_proj_"), ("attn.proj", "attn.out_proj"),
        ("mlp.fc1", "mlp.c_fc"), ("mlp.fc2", "mlp.c_proj"), ("norm1", "ln_1"), ("norm2", "ln_2"),
    ]
    out = {}
    for k, v in state_dict.items():
        if k == "head.bias":
            continue
        if k == "head.weight":
            k, v = "proj", v.t()
        elif k == "cls_token":
            k, v = "class_embedding", v[0, 0]
        elif k.startswith("norm."):
            k = k.replace("norm.", "ln_post.")
        else:
            for a, b in swaps:
                k = k.replace(a, b)
            if k == "positional_embedding":
                v = v[0]
        out["visual." + k] = v.contiguous()
    return out


def main(out, small, names):
    out.mkdir(parents=True, exist_ok=True)
    for seed, name in enumerate(names):
        clip = "clip" in name
        model = randomised(timm.create_model(name, pretrained=False, num_classes=512 if clip else 1000), seed)
        state_dict = {k: v.contiguous() for k, v in model.state_dict().items()}
        save_file(state_dict, out / f"{name}.safetensors")
        if clip:
            save_file(openai_names(state_dict), out / f"{name}.openai.safetensors")
        torch.manual_seed(1000 + seed)
        x = torch.randn(2, 3, 224, 224)
        result = {"input": x, "features": features(model, x).contiguous()}
        result["parameters"] = torch.tensor(sum(p.numel() for n, p in model.named_parameters() if clip or not n.startswith("head.")))
        if seed == 0:
            small_model = timm.create_model(name, pretrained=False, num_classes=1000, img_size=small).eval()
            resized = dict(state_dict)
            grid = small // 16
            resized["pos_embed"] = resample_abs_pos_embed(state_dict["pos_embed"], new_size=(grid, grid), num_prefix_tokens=1)
            small_model.load_state_dict(resized)
            x_small = torch.randn(2, 3, small, small)
            result.update({"input_small": x_small, "features_small": features(small_model, x_small).contiguous()})
        save_file(result, out / f"{name}.features.safetensors")
        print(f"{name}: {int(result['parameters'])} encoder parameters, features {list(result['features'].shape)}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3:])
