"""bcl: Balanced Contrastive Learning for long-tailed image recognition, on libtorch.

This package holds the `bcl` command (a native binary) and the launcher that finds the
libtorch of the torch installed beside it. Use it from the shell: `bcl --help`.
"""
