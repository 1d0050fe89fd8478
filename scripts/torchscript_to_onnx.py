"""TorchScript to ONNX, the Python step of `bcl export --format onnx` (bcl's binary embeds
this file and runs it with --python): PyTorch's TorchScript-based exporter, since the model
bcl writes is a traced module; the batch axis is dynamic.

Usage: python torchscript_to_onnx.py MODEL.pt OUT.onnx CHANNELS SIZE
"""
import sys
import warnings


def main(source, out, channels, size):
    try:
        import onnx  # noqa: F401  (the exporter writes through it)
        import torch
    except ImportError as e:
        sys.exit(f"ONNX export needs torch and onnx in {sys.executable} ({e}): pip install onnx, or --python another")
    warnings.simplefilter("ignore")  # the legacy exporter's deprecation notes
    model = torch.jit.load(source)
    example = torch.zeros(2, int(channels), int(size), int(size))
    torch.onnx.export(
        model,
        (example,),
        out,
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )


if __name__ == "__main__":
    main(*sys.argv[1:])
