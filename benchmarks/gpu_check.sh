#!/usr/bin/env bash
# One-shot GPU check of the CUDA projector backend, for a machine with an NVIDIA GPU and no
# network: runs the GPU tests (pytest -m gpu) and the GPU benchmark against ASTRA, and writes
# benchmarks/results/projectors_gpu_<card>.md. Finishes in about 5 minutes on an H100/H200
# (hard limits: tests 180 s, benchmark 300 s).
#
# Usage, from anywhere:   bash benchmarks/gpu_check.sh
#
# What the machine must already have (the device image used here has all of it): Python >= 3.11
# with numpy, scipy, numba, torch (CUDA build), CuPy (cupy-cuda12x or cupy-cuda13x) and pytest;
# an NVIDIA driver; a C compiler (cc/gcc) for the optional cuFFT stub below.
#
# Wheels placed beside the checkout (first existing folder of: $MEDRECON_WHEELS, <repo>/wheels,
# <repo>/.whl, <repo>/shared/wheels), installed with pip --no-index --no-deps. All optional:
#   * astra_toolbox-2.5.0-cp312-cp312-manylinux*.whl   (ASTRA, for the comparison; Python 3.12)
#   * nvidia_cuda_runtime_cu12-12.*-py3-none-manylinux*.whl   (libcudart.so.12 for ASTRA)
#   * any missing pure dependency of medrecon's test path (none on the device image).
# Without the two ASTRA wheels the benchmark reports medrecon only. ASTRA's library also links
# libcufft.so.11, which the device image lacks: this script compiles a stub library that exports
# the cuFFT symbols ASTRA imports under the version node libcufft.so.11 (each returns an error);
# projections work, ASTRA's FBP/FDK would fail (not used here).
#
# Environment: PYTHON (interpreter, default python3), MEDRECON_WHEELS, MEDRECON_GPU_VENV (venv
# folder, default /tmp/medrecon-gpu-venv), BENCH_ARGS (extra arguments of projectors_gpu.py),
# OUT (if set, logs and the report are copied there).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BASE_PY="${PYTHON:-python3}"
VENV="${MEDRECON_GPU_VENV:-/tmp/medrecon-gpu-venv}"
WORK="$(mktemp -d /tmp/medrecon-gpu-check.XXXXXX)"
TEST_LIMIT=180
BENCH_LIMIT=300
T0=$SECONDS

say() { printf '[gpu_check %3ds] %s\n' "$((SECONDS - T0))" "$*"; }
die() { say "ERROR: $*" >&2; exit 1; }

copy_out() {
    if [[ -n "${OUT:-}" ]]; then
        mkdir -p "$OUT"
        for f in "$WORK/pytest_gpu.log" "$WORK/benchmark.log" "$WORK/setup.log"; do
            [[ -f "$f" ]] && cp "$f" "$OUT/" || true
        done
        for f in "$REPO"/benchmarks/results/projectors_gpu_*.md; do
            [[ -f "$f" ]] && cp "$f" "$OUT/" || true
        done
    fi
}
trap copy_out EXIT

command -v "$BASE_PY" >/dev/null 2>&1 || die "no Python interpreter '$BASE_PY' (set PYTHON)"
"$BASE_PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "$BASE_PY is older than Python 3.11"
command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L || say "nvidia-smi not found (continuing)"

# ------------------------------------------------------------------ environment
# A venv that sees the machine's packages (torch, cupy, numba: nothing to download), into
# which the wheels are installed with the base interpreter's pip (works without ensurepip).
if [[ ! -x "$VENV/bin/python" ]]; then
    "$BASE_PY" -m venv --system-site-packages --without-pip "$VENV" \
        || die "could not create the virtual environment $VENV"
fi
PY="$VENV/bin/python"
SITE="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
say "python: $("$PY" -c 'import sys; print(sys.version.split()[0])') in $VENV"

WHEELS=""
for d in "${MEDRECON_WHEELS:-}" "$REPO/wheels" "$REPO/.whl" "$REPO/shared/wheels"; do
    if [[ -n "$d" && -d "$d" ]] && compgen -G "$d/*.whl" >/dev/null; then
        WHEELS="$d"
        break
    fi
done
if [[ -n "$WHEELS" ]]; then
    say "installing wheels from $WHEELS: $(cd "$WHEELS" && echo *.whl)"
    "$BASE_PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$SITE" "$WHEELS"/*.whl >"$WORK/setup.log" 2>&1 \
        || { cat "$WORK/setup.log" >&2; die "pip could not install the wheels in $WHEELS"; }
else
    say "no wheel folder found (optional: ASTRA is then left out of the benchmark)"
fi

# medrecon from the checkout, no build: the sources and the kernels folder
export PYTHONPATH="$REPO/src${PYTHONPATH:+:$PYTHONPATH}"
export MEDRECON_KERNEL_DIR="$REPO/kernels"
export PYTHONUNBUFFERED=1
export CUPY_CACHE_DIR="${CUPY_CACHE_DIR:-$WORK/cupy-cache}"
export NUMBA_CACHE_DIR="${NUMBA_CACHE_DIR:-$WORK/numba-cache}"

missing="$("$PY" - <<'EOF'
import importlib
bad = []
for name in ("numpy", "scipy", "numba", "torch", "cupy", "pytest", "medrecon"):
    try:
        importlib.import_module(name)
    except Exception as exc:
        bad.append(f"{name} ({type(exc).__name__}: {exc})")
print("; ".join(bad))
EOF
)"
[[ -z "$missing" ]] || die "missing Python packages: $missing -- place their wheels in wheels/"
"$PY" -c 'import cupy; n = cupy.cuda.runtime.getDeviceCount(); assert n > 0; print("cupy", cupy.__version__, "sees", n, "GPU(s)")' \
    || die "CuPy cannot use a CUDA device"

# ------------------------------------------------------------------ ASTRA (optional)
BENCH_EXTRA=()
LIB_ASTRA="$(find "$SITE" -name 'libastra*.so*' -print -quit 2>/dev/null || true)"
if [[ -n "$LIB_ASTRA" ]]; then
    CUDART_DIR="$(dirname "$(find "$SITE" -name 'libcudart.so.12*' -print -quit 2>/dev/null)" 2>/dev/null || true)"
    [[ -n "$CUDART_DIR" && "$CUDART_DIR" != "." ]] \
        || say "libcudart.so.12 not found: place the nvidia_cuda_runtime_cu12 wheel in $WHEELS"
    STUB="$WORK/cufft-stub"
    mkdir -p "$STUB"
    syms=""
    if command -v nm >/dev/null 2>&1; then
        syms="$(nm -D --undefined-only "$LIB_ASTRA" | awk '{print $NF}' | grep '^cufft' | sed 's/@.*//' | sort -u || true)"
    elif command -v objdump >/dev/null 2>&1; then
        syms="$(objdump -T "$LIB_ASTRA" | awk '{print $NF}' | grep '^cufft' | sort -u || true)"
    fi
    if [[ -z "$syms" ]]; then  # the usual five when the symbols cannot be listed
        syms=$'cufftDestroy\ncufftExecC2R\ncufftExecR2C\ncufftPlan1d\ncufftSetStream'
    fi
    CC="$(command -v cc || command -v gcc || true)"
    if [[ -n "$CC" ]]; then
        {
            echo '/* stub: every cuFFT entry point fails with CUFFT_NOT_SUPPORTED (16) */'
            while read -r s; do [[ -n "$s" ]] && echo "int $s(void) { return 16; }"; done <<<"$syms"
        } >"$STUB/stub.c"
        { echo 'libcufft.so.11 { global:'; while read -r s; do [[ -n "$s" ]] && echo "  $s;"; done <<<"$syms"; echo 'local: *; };'; } >"$STUB/stub.map"
        if "$CC" -shared -fPIC -o "$STUB/libcufft.so.11" "$STUB/stub.c" \
            -Wl,--version-script="$STUB/stub.map" -Wl,-soname,libcufft.so.11 2>>"$WORK/setup.log"; then
            say "cuFFT stub with $(wc -l <<<"$syms") symbols: $STUB/libcufft.so.11"
        else
            say "could not build the cuFFT stub (see setup.log)"
        fi
    else
        say "no C compiler for the cuFFT stub"
    fi
    export LD_LIBRARY_PATH="$STUB${CUDART_DIR:+:$CUDART_DIR}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    if "$PY" -c 'import astra, astra.experimental; assert astra.use_cuda(); print("astra", astra.__version__, "with CUDA")' 2>>"$WORK/setup.log"; then
        :
    else
        say "ASTRA does not load (see setup.log); the benchmark runs without it"
        BENCH_EXTRA+=(--no-astra)
    fi
else
    say "ASTRA not installed; the benchmark reports medrecon only"
    BENCH_EXTRA+=(--no-astra)
fi

# ------------------------------------------------------------------ tests
cd "$REPO"
say "pytest -m gpu (limit ${TEST_LIMIT}s)"
set +e
timeout --kill-after=10 "$TEST_LIMIT" "$PY" -m pytest -m gpu -q -p no:cacheprovider \
    -o addopts="" --strict-markers tests/test_projector_cuda_backend.py 2>&1 | tee "$WORK/pytest_gpu.log"
TEST_RC=${PIPESTATUS[0]}
set -e
case "$TEST_RC" in
    0) say "GPU tests passed" ;;
    124|137) say "GPU tests hit the ${TEST_LIMIT}s limit" ;;
    5) say "no GPU test ran (all skipped?)" ;;
    *) say "GPU tests FAILED (exit $TEST_RC)" ;;
esac

# ------------------------------------------------------------------ benchmark
say "benchmark (limit ${BENCH_LIMIT}s)"
read -r -a USER_ARGS <<<"${BENCH_ARGS:-}"
set +e
timeout --kill-after=10 "$BENCH_LIMIT" "$PY" benchmarks/projectors_gpu.py \
    --budget-s $((BENCH_LIMIT - 90)) --repeats 5 "${BENCH_EXTRA[@]}" "${USER_ARGS[@]}" \
    2>&1 | tee "$WORK/benchmark.log"
BENCH_RC=${PIPESTATUS[0]}
set -e
[[ "$BENCH_RC" == 0 ]] && say "benchmark done" || say "benchmark FAILED or timed out (exit $BENCH_RC)"

say "finished: tests exit $TEST_RC, benchmark exit $BENCH_RC; logs in $WORK"
[[ "$TEST_RC" == 0 && "$BENCH_RC" == 0 ]]
