#!/usr/bin/env python3
"""Prints the library's top-level modules that use each other (a cycle of two), from the
`crate::module` paths in src/. Exit status 1 when there is one.
Usage: scripts/module_cycles.py [SRC]
"""
import pathlib
import re
import sys

src = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "src")
uses = {}
for path in src.rglob("*.rs"):
    if path.name == "main.rs" or "cli" in path.relative_to(src).parts[:1]:
        continue  # the binary, not the library
    rel = path.relative_to(src)
    module = rel.parts[0].removesuffix(".rs")
    text = re.sub(r"//.*", "", path.read_text())
    targets = set(re.findall(r"crate::(\w+)", text))
    # `use crate::{a, b::c}` groups
    for group in re.findall(r"crate::\{([^}]*)\}", text, re.S):
        targets |= set(re.findall(r"(?:^|,)\s*(\w+)", group))
    uses.setdefault(module, set()).update(t for t in targets if t != module)
cycles = sorted({tuple(sorted((a, b))) for a, bs in uses.items() for b in bs if a in uses.get(b, ())})
for a, b in cycles:
    print(f"{a} <-> {b}")
print(f"{len(cycles)} pair(s) of modules that use each other, over {len(uses)} modules")
sys.exit(1 if cycles else 0)
