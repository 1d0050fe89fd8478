#!/usr/bin/env bash
# What the PyTorch side of the benchmarks needs besides torch (which scripts/setup.sh puts
# in .venv): torchvision (the version paired with torch 2.11), PIL and numpy; installed into
# .venv once. Used by bench/pipeline.sh and bench/compare.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -c 'import torchvision, PIL, numpy' 2>/dev/null ||
  .venv/bin/pip install --quiet --disable-pip-version-check torchvision==0.26.0 pillow numpy
