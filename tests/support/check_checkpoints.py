"""Checks safetensors checkpoints with nothing but the standard library.
  python3 tests/support/check_checkpoints.py FILE...          each file is complete and well formed
  python3 tests/support/check_checkpoints.py --same A B       A and B hold byte-identical tensors
Exits 1 with a message naming the file otherwise."""
import json
import struct
import sys


def tensors(path):
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        sys.exit(f"{path}: {len(data)} bytes, shorter than a safetensors header")
    (n,) = struct.unpack("<Q", data[:8])
    if 8 + n > len(data):
        sys.exit(f"{path}: header of {n} bytes runs past the end of the file")
    header = json.loads(data[8 : 8 + n])
    header.pop("__metadata__", None)
    body = data[8 + n :]
    spans = sorted(tuple(info["data_offsets"]) for info in header.values())
    end = 0
    for start, stop in spans:
        if start != end:
            sys.exit(f"{path}: tensor data has a gap or overlap at byte {start}")
        end = stop
    if end != len(body):
        sys.exit(f"{path}: tensor data ends at {end}, the file at {len(body)}")
    return {name: body[slice(*info["data_offsets"])] for name, info in header.items()}


if sys.argv[1] == "--same":
    a, b = tensors(sys.argv[2]), tensors(sys.argv[3])
    if a.keys() != b.keys():
        sys.exit(f"{sys.argv[2]} and {sys.argv[3]} hold different tensors")
    differ = [name for name in a if a[name] != b[name]]
    if differ:
        sys.exit(f"{len(differ)} of {len(a)} tensors differ, e.g. {differ[:3]}")
    print(f"identical: {len(a)} tensors")
else:
    for path in sys.argv[1:]:
        tensors(path)
