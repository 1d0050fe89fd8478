"""timm's own Vision Transformers with seeded random weights, for bcl's equality test.

For each timm model name: builds timm.create_model(name, pretrained=False) (1000 classes;
OpenAI CLIP's tower with its 512-wide projection as `head`), draws every LayerNorm at random
too (seeded), saves its state_dict as safetensors (OUT/<name>.safetensors), and the
features (class token after the final norm; for CLIP, after the projection) on a seeded
224 px input as OUT/<name>.features.safetensors {"input", "features", "parameters"}. For the
first model also the features at SMALL px, with the position embeddings resampled as
timm's resample_abs_pos_embed does ("input_small", "features_small"). For CLIP, also
open_clip's own ViT-B-16 (QuickGELU, as OpenAI's weights) under OpenAI's names as
OUT/<name>.openai.safetensors, with its features on the same input ("features_openai").

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


def open_clip_tower(seed, x):
    """open_clip's own ViT-B-16 as OpenAI built it (QuickGELU), seeded and randomised the same
    way: its whole state_dict under OpenAI's names (`visual.*`, and the text tower, which
    bcl drops), and encode_image's features (after the projection) on `x`."""
    import open_clip

    model = open_clip.create_model("ViT-B-16", pretrained=None, force_quick_gelu=True)
    torch.manual_seed(seed)
    with torch.no_grad():
        for module in model.visual.modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0.0, 0.1)
        model.visual.class_embedding.normal_(0.0, 0.5)
        features = model.eval().encode_image(x)
    return {k: v.contiguous() for k, v in model.state_dict().items()}, features.contiguous()


def main(out, small, names):
    out.mkdir(parents=True, exist_ok=True)
    for seed, name in enumerate(names):
        clip = "clip" in name
        model = randomised(timm.create_model(name, pretrained=False, num_classes=512 if clip else 1000), seed)
        state_dict = {k: v.contiguous() for k, v in model.state_dict().items()}
        save_file(state_dict, out / f"{name}.safetensors")
        torch.manual_seed(1000 + seed)
        x = torch.randn(2, 3, 224, 224)
        result = {"input": x, "features": features(model, x).contiguous()}
        if clip:
            openai, result["features_openai"] = open_clip_tower(seed, x)
            save_file(openai, out / f"{name}.openai.safetensors")
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
