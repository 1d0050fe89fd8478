#!/usr/bin/env python3
"""Lists the longest Rust functions under the given folders (default: src), longest first.

A function's length is its lines from `fn` to the closing brace, comments included. Braces
inside strings, chars and comments are skipped; good enough for this project's code.
Usage: scripts/fn_lengths.py [--top N] [DIR...]
       scripts/fn_lengths.py --max N [DIR...]   fails (exit 1) on a longer function outside ALLOWED
"""
import pathlib
import re
import sys

FN = re.compile(r"^\s*(pub(\([^)]*\))?\s+)?(const\s+)?(unsafe\s+)?(extern\s+\"C\"\s+)?fn\s+(\w+)")


def code_only(line, in_block):
    """The line without strings, chars and comments; whether a block comment is still open."""
    out, i = [], 0
    while i < len(line):
        if in_block:
            end = line.find("*/", i)
            if end < 0:
                return "".join(out), True
            i, in_block = end + 2, False
        elif line.startswith("//", i):
            break
        elif line.startswith("/*", i):
            in_block, i = True, i + 2
        elif line[i] == '"':
            i += 1
            while i < len(line) and line[i] != '"':
                i += 2 if line[i] == "\\" else 1
            i += 1
        elif line[i] == "'" and re.match(r"'(\\.|[^\\'])'", line[i:]):
            i += len(re.match(r"'(\\.|[^\\'])'", line[i:]).group(0))
        else:
            out.append(line[i])
            i += 1
    return "".join(out), in_block


def functions(path):
    lines = path.read_text().splitlines()
    in_block, open_fns, depth = False, [], 0
    for number, line in enumerate(lines, 1):
        match = FN.match(line)
        code, in_block = code_only(line, in_block)
        if match:
            open_fns.append((match.group(6), number, depth))
        for ch in code:
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if open_fns and depth == open_fns[-1][2]:
                    name, start, _ = open_fns.pop()
                    yield number - start + 1, f"{path}:{start}", name
        # A declaration without a body (trait item, extern): drop it at its `;`.
        if open_fns and open_fns[-1][1] == number and code.rstrip().endswith(";") and "{" not in code:
            open_fns.pop()


# Long by nature: an interpreter's opcode loop, and a SIMD kernel kept in one piece so that
# its registers stay visible at a glance. (file, function)
ALLOWED = {("src/data/pickle.rs", "run"), ("src/augment/affine_avx2.rs", "sample_row")}


def main(args):
    top, limit = 15, None
    if args[:1] == ["--top"]:
        top, args = int(args[1]), args[2:]
    if args[:1] == ["--max"]:
        limit, args = int(args[1]), args[2:]
    found = []
    for root in args or ["src"]:
        for path in sorted(pathlib.Path(root).rglob("*.rs")):
            found.extend(functions(path))
    if limit is None:
        for length, where, name in sorted(found, reverse=True)[:top]:
            print(f"{length:5}  {name:32} {where}")
        return 0
    over = [(n, w, f) for n, w, f in sorted(found, reverse=True) if n > limit and (w.split(":")[0], f) not in ALLOWED]
    for length, where, name in over:
        print(f"{where}: fn {name} is {length} lines, over {limit}: split it (or, for a kernel, add it to ALLOWED)")
    print(f"{len(over)} function(s) over {limit} lines outside the allow-list, {len(found)} functions")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
