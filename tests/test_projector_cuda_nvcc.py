"""Every ``kernels/*.cu`` file compiles for the GPU with the machine's ``nvcc``.

``nvcc --ptx -I kernels -arch=sm_80|sm_90 kernels/<file>.cu`` must succeed and the PTX must hold
every ``extern "C"`` kernel the file promises (``medrecon.projectors.cuda._sources.KERNELS``), so
a syntax or type error in device code fails the tests on machines without a GPU. Skipped only
when ``nvcc`` is not installed (``$NVCC`` names another compiler binary).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from medrecon.projectors.cuda import _sources

NVCC = shutil.which(os.environ.get("NVCC", "nvcc"))

pytestmark = pytest.mark.skipif(NVCC is None, reason="needs nvcc (the CUDA toolkit's compiler)")


@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
@pytest.mark.parametrize("name", _sources.CUDA_FILES)
def test_kernel_file_compiles_to_ptx(name: str, arch: str, tmp_path: Path) -> None:
    assert NVCC is not None
    folder = _sources.kernel_dir()
    out = tmp_path / f"{Path(name).stem}.{arch}.ptx"
    cmd = [NVCC, "--ptx", "-I", str(folder), f"-arch={arch}", str(folder / name), "-o", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}{proc.stderr}"
    entries = set(re.findall(r"\.entry\s+(\w+)\(", out.read_text()))
    missing = set(_sources.KERNELS[name]) - entries
    assert not missing, f"{name} ({arch}): kernels missing from the PTX: {sorted(missing)}"


def test_a_device_code_error_fails_the_compile(tmp_path: Path) -> None:
    """The check can fail: a type error that only the device pass sees."""
    assert NVCC is not None
    folder = _sources.kernel_dir()
    src = tmp_path / "broken.cu"
    src.write_text(
        '#include "common.cuh"\n'
        'extern "C" __global__ void medrecon_broken(float* out) {\n'
        "    out[mr_thread_index()] = mr_no_such_helper(out);\n"
        "}\n"
    )
    cmd = [NVCC, "--ptx", "-I", str(folder), "-arch=sm_90", str(src), "-o", str(tmp_path / "b")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode != 0
    assert "mr_no_such_helper" in proc.stdout + proc.stderr
