# medrecon developer tasks.
#
#   make demo    set up .venv if needed, then run the demo (writes ./out)
#   make test    lint (ruff, ruff format, mypy, import-linter), then pytest
#   make lint    only the static checks
#   make format  apply ruff's formatting and safe fixes
#   make clean   remove caches and build outputs (keeps .venv); distclean also removes .venv
#
# Installs are remembered by stamp files inside .venv and redone when
# pyproject.toml changes. torch is installed first with `pip install
# torch==2.13.0` (the CPU build this machine has on disk), so installing
# medrecon never pulls a multi-GB CUDA build of torch.

PYTHON ?= python3
VENV ?= .venv
TORCH_VERSION ?= 2.13.0
DEMO_OUT ?= out
PYTEST_ARGS ?=

BIN = $(VENV)/bin
PY = $(BIN)/python
PIP = $(PY) -m pip
INSTALL_STAMP = $(VENV)/.medrecon-install.stamp
TEST_STAMP = $(VENV)/.medrecon-test.stamp
# Directories that exist are linted; missing ones are skipped (git keeps no empty folders).
LINT_DIRS = src tests benchmarks examples

.PHONY: all venv demo test lint pytest format versions kernels-check clean distclean

all: test

venv: $(INSTALL_STAMP)

$(INSTALL_STAMP): pyproject.toml
	@test -x $(PY) || { echo "creating $(VENV) with $(PYTHON)"; $(PYTHON) -m venv $(VENV); }
	$(PIP) install --upgrade pip
	# the CPU build of torch that this machine keeps on disk; never a CUDA build
	$(PIP) install "torch==$(TORCH_VERSION)"
	$(PIP) install -e .
	@touch $@

$(TEST_STAMP): $(INSTALL_STAMP) pyproject.toml
	$(PIP) install -e ".[test]"
	@touch $@

demo: venv
	$(BIN)/medrecon demo --out $(DEMO_OUT)

versions: $(TEST_STAMP)
	@$(PY) -c "import sys; print('python', sys.version.split()[0], 'at', sys.executable)"
	@$(PY) -c "from importlib.metadata import version; \
		names = 'pip numpy scipy numba torch odl astra-toolbox pytest ruff mypy import-linter'; \
		print(' | '.join(n + ' ' + version(n) for n in names.split()))"
	@$(PY) -c "import torch; print('torch CUDA build:', torch.version.cuda)"

lint: $(TEST_STAMP)
	@dirs=""; for d in $(LINT_DIRS); do if [ -d "$$d" ]; then dirs="$$dirs $$d"; fi; done; \
	set -x; \
	$(BIN)/ruff check $$dirs && \
	$(BIN)/ruff format --check $$dirs
	$(BIN)/mypy
	$(BIN)/lint-imports

# pytest's exit code 5 means it collected no test: that is a failure too.
# When MEDRECON_PYTEST_RC_FILE is set (by .ci/run), pytest's exit code is written there.
# OpenBLAS runs single-threaded unless the caller says otherwise: the MR tests' small batched
# eigen/least-squares problems ran 1.5-4x slower with OpenBLAS threads fighting numba's on 2 cores.
pytest: $(TEST_STAMP)
	@rc=0; OPENBLAS_NUM_THREADS=$${OPENBLAS_NUM_THREADS:-1} $(BIN)/pytest $(PYTEST_ARGS) || rc=$$?; \
	if [ -n "$${MEDRECON_PYTEST_RC_FILE:-}" ]; then echo "$$rc" > "$$MEDRECON_PYTEST_RC_FILE"; fi; \
	if [ "$$rc" -eq 5 ]; then echo "error: pytest collected no tests (exit code 5); counting that as a failure" >&2; exit 1; fi; \
	exit $$rc

test: lint
	@$(MAKE) --no-print-directory pytest

format: $(TEST_STAMP)
	@dirs=""; for d in $(LINT_DIRS); do if [ -d "$$d" ]; then dirs="$$dirs $$d"; fi; done; \
	set -x; \
	$(BIN)/ruff check --fix $$dirs && \
	$(BIN)/ruff format $$dirs

clean:
	rm -rf build dist $(DEMO_OUT) .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
	rm -rf src/*.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +
	find . -path ./$(VENV) -prune -o -name .ipynb_checkpoints -type d -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)

# compile every CUDA kernel to PTX (syntax and type check; needs nvcc, no GPU)
kernels-check:
	for a in sm_80 sm_90; do for f in kernels/*.cu; do \
		nvcc --ptx -I kernels -arch=$$a $$f -o /dev/null || exit 1; done; done
