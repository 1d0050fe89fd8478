#!/usr/bin/env bash
# Idempotent set-up for a fresh machine, run by `make demo` and `make test`:
#   1. a project-local venv (.venv) with PyPI's torch==2.11.0, whose libtorch tch links,
#      and tensorboard (to view runs; the tests read bcl's event files with its reader);
#   2. PyPI's CUDA 13.0 headers (nvcc, cccl), which build.rs compiles the NCCL part of the
#      c10d shim (src/c10d_shim.cpp) against; the CUDA libraries themselves came with torch;
#   3. torchvision, timm and safetensors beside it, for the tests that compare bcl's models
#      with torchvision's and timm's own;
#   4. Fashion-MNIST, the embedded default data set, from Debian's `dataset-fashion-mnist`.
# A second run does nothing but check.
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH_VERSION=2.11.0
TENSORBOARD_VERSION=2.21.0
# cuda-toolkit's nvcc extra would pull the newest crt/nvvm; these match CUDA 13.0.
CUDA_HEADERS="cuda-toolkit[nvcc,cccl]==13.0.2 nvidia-cuda-crt==13.0.88 nvidia-nvvm==13.0.88"
VENV=.venv
FASHION_MNIST_DIR=${BCL_FASHION_MNIST:-/usr/share/datasets/fashion-mnist}
FASHION_MNIST_FILES="train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz"

say() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

# Runs a command as root: directly when we are root, through non-interactive sudo otherwise.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo -n "$@"
  else return 1
  fi
}

apt_install() {
  command -v apt-get >/dev/null || return 1
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1 && return 0
  as_root apt-get update -qq >/dev/null 2>&1 || return 1
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1
}

torch_ok() {
  [ -x "$VENV/bin/python" ] &&
    "$VENV/bin/python" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null
}

setup_venv() {
  if torch_ok; then return; fi
  if ! "$VENV/bin/python" -c '' 2>/dev/null; then
    command -v python3 >/dev/null || apt_install python3 python3-venv ||
      die "python3 is needed to install torch==$TORCH_VERSION; install it (e.g. apt-get install python3 python3-venv)"
    if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
      apt_install python3-venv || die "python3's venv module is missing: install python3-venv (as root: apt-get install python3-venv)"
    fi
    say "creating $VENV"
    python3 -m venv --clear "$VENV"
  fi
  say "installing torch==$TORCH_VERSION from PyPI into $VENV (about 4.6 GB with its CUDA libraries; once)"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "torch==$TORCH_VERSION"
  torch_ok || die "torch==$TORCH_VERSION did not import from $VENV after installing it"
}

setup_tensorboard() {
  "$VENV/bin/python" -c "import tensorboard, sys; sys.exit(tensorboard.__version__ != '$TENSORBOARD_VERSION')" 2>/dev/null && return
  say "installing tensorboard==$TENSORBOARD_VERSION into $VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "tensorboard==$TENSORBOARD_VERSION"
}

# The reference models the equality tests build with seeded random weights (no weights are
# downloaded): torchvision's ResNets, timm's ViTs, open_clip's CLIP tower. --no-deps keeps
# the venv's torch as it is.
REFERENCE_PACKAGES="torchvision==0.26.0 pillow==12.0.0 safetensors==0.8.0 timm==1.0.22 pyyaml==6.0.3
  open_clip_torch==3.2.0 ftfy==6.3.1 regex==2024.11.6 tqdm==4.67.1 wcwidth==0.2.13"
setup_reference_models() {
  "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('torchvision') != '0.26.0')" \
    2>/dev/null && "$VENV/bin/python" -c "import safetensors.torch, PIL, timm, open_clip" 2>/dev/null && return
  say "installing the reference models' packages into $VENV ($REFERENCE_PACKAGES; once)"
  # shellcheck disable=SC2086  # a list of requirements
  "$VENV/bin/pip" install --quiet --disable-pip-version-check --no-deps $REFERENCE_PACKAGES
}

# What the export tests check bcl's deployment files with: tritonclient's model-config
# protobuf parses config.pbtxt as Triton would (no server here); onnx (with ml_dtypes) is what
# PyTorch's exporter writes through, onnxruntime runs the result. --no-deps: the rest of
# their requirements (gRPC and HTTP clients, sympy, coloredlogs) is not needed.
DEPLOYMENT_PACKAGES="tritonclient==2.73.0 protobuf==7.36.2 onnx==1.23.2 ml_dtypes==0.7.0 onnxruntime==1.32.0
  flatbuffers==25.12.19"
setup_deployment_checkers() {
  "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('onnxruntime') != '1.32.0')" \
    2>/dev/null && return
  say "installing the deployment checkers into $VENV ($DEPLOYMENT_PACKAGES; once)"
  # shellcheck disable=SC2086  # a list of requirements
  "$VENV/bin/pip" install --quiet --disable-pip-version-check --no-deps $DEPLOYMENT_PACKAGES
}

setup_cuda_headers() {
  "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('nvidia-cuda-crt') != '13.0.88')" \
    2>/dev/null && return
  say "installing the CUDA 13.0 headers into $VENV (to build the NCCL process group; once)"
  # shellcheck disable=SC2086  # a list of requirements
  "$VENV/bin/pip" install --quiet --disable-pip-version-check $CUDA_HEADERS
}

link_libtorch() {
  # .cargo/config.toml points LIBTORCH at this link, whatever the venv's python version.
  local torch_dir
  torch_dir=$("$VENV/bin/python" -c 'import torch, os; print(os.path.dirname(torch.__file__))')
  [ "$(readlink "$VENV/libtorch" 2>/dev/null)" = "$torch_dir" ] || ln -sfn "$torch_dir" "$VENV/libtorch"
}

fashion_mnist_ok() {
  local f
  for f in $FASHION_MNIST_FILES; do [ -s "$FASHION_MNIST_DIR/$f" ] || return 1; done
}

setup_fashion_mnist() {
  if fashion_mnist_ok; then return; fi
  if [ -n "${BCL_FASHION_MNIST:-}" ]; then
    die "BCL_FASHION_MNIST=$BCL_FASHION_MNIST does not hold the four Fashion-MNIST files ($FASHION_MNIST_FILES)"
  fi
  say "installing Debian's dataset-fashion-mnist (Fashion-MNIST IDX files into $FASHION_MNIST_DIR)"
  apt_install dataset-fashion-mnist && fashion_mnist_ok && return
  die "Fashion-MNIST is missing from $FASHION_MNIST_DIR and could not be installed here.
  As root (or with sudo):   apt-get install dataset-fashion-mnist
  Without root: put the four files ($FASHION_MNIST_FILES)
  in a folder and run again with BCL_FASHION_MNIST=/that/folder"
}

setup_venv
setup_tensorboard
setup_reference_models
setup_deployment_checkers
setup_cuda_headers
link_libtorch
setup_fashion_mnist
