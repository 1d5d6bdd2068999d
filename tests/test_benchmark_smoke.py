"""Smoke test of ``benchmarks/projectors_cpu.py --quick`` (no timing is checked)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from _bench import BENCHMARKS, run_quick, table_rows

SCRIPT = BENCHMARKS / "projectors_cpu.py"
COMPARISON = (
    "| workload | operation | medrecon [s] | medrecon 1 thread [s] | ASTRA projector | ASTRA [s] "
    "| speed-up | speed-up vs 1 thread | rel. L2 difference | cores busy (medrecon / ASTRA) |"
)
DETAILS = (
    "| workload | operation | median [s] (min-max) | first call [s] | cores busy "
    "| peak RSS growth [MiB] |"
)
HAS_ASTRA = importlib.util.find_spec("astra") is not None


# Hide astra from the script: ``import astra`` raises ImportError when sys.modules holds None.
WITHOUT_ASTRA = (
    "import os, runpy, sys; sys.modules['astra'] = None; sys.argv = sys.argv[1:]; "
    "sys.path.insert(0, os.path.dirname(sys.argv[0])); "
    "runpy.run_path(sys.argv[0], run_name='__main__')"
)


@pytest.fixture(scope="module")
def numba_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One numba cache for this module: the first run compiles, the next ones load."""
    return tmp_path_factory.mktemp("numba-cache")


def _run(numba_cache: Path, *args: str, hide_astra: bool = False) -> str:
    proc = run_quick(
        SCRIPT,
        "--numba-cache",
        "default",
        *args,
        timeout=120,
        python_args=["-c", WITHOUT_ASTRA] if hide_astra else [],
        env={**os.environ, "NUMBA_CACHE_DIR": str(numba_cache)},
    )
    return proc.stdout


@pytest.mark.slow
def test_quick_benchmark_writes_table(tmp_path: Path, numba_cache: Path) -> None:
    out = tmp_path / "results" / "projectors_cpu.md"
    stdout = _run(numba_cache, "--out", str(out))
    text = out.read_text()
    assert text.strip() == stdout.strip()
    assert "## Machine" in text and "| CPU |" in text and "numba threads" in text
    details = table_rows(text, DETAILS)
    ops = {(r[0], r[1]) for r in details}
    assert {op for _, op in ops} == {"forward", "adjoint", 'backproject(weighting="fdk")'}
    assert len(details) == 7
    comparison = table_rows(text, COMPARISON)
    if HAS_ASTRA:
        assert "ASTRA not available" not in text
        assert {r[4] for r in comparison} == {"linear", "line", "line_fanflat"}
        for row in comparison:
            if row[4] == "linear":  # the same Joseph model: agreement to float32 rounding
                assert float(row[8]) < 1e-3
    else:
        assert "ASTRA not available" in text
    assert all(len(r) == 10 for r in comparison) and comparison


@pytest.mark.slow
@pytest.mark.parametrize("how", ["flag", "not installed"])
def test_quick_benchmark_without_astra(tmp_path: Path, numba_cache: Path, how: str) -> None:
    out = tmp_path / "ours.md"
    flags = ["--no-astra"] if how == "flag" else []
    _run(numba_cache, *flags, "--repeats", "1", "--out", str(out), hide_astra=how != "flag")
    text = out.read_text()
    reason = "disabled with --no-astra" if how == "flag" else "astra-toolbox is not installed"
    assert f"ASTRA not available ({reason}" in text
    rows = table_rows(text, COMPARISON)
    assert rows and all(r[4] == "n/a" for r in rows)
