"""Smoke test of ``benchmarks/mr_recon.py --quick`` (the script runs and writes its tables and
figure)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from _bench import BENCHMARKS, PNG_MAGIC, run_quick, table_rows

SCRIPT = BENCHMARKS / "mr_recon.py"
HEADER = "| step | tool | setting | NRMSE | NRMSE magnitude |"
NUFFT_HEADER = "| tool | coils | forward 1 thread |"


@pytest.mark.slow
def test_quick_mr_benchmark_writes_tables_and_figure(tmp_path: Path) -> None:
    if shutil.which("bart") is None:
        pytest.skip("needs BART (/usr/bin/bart, Debian package 'bart')")
    for mod in ("sigpy", "finufft", "torchkbnufft"):
        pytest.importorskip(mod)
    out = tmp_path / "mr.md"
    proc = run_quick(SCRIPT, "--out", str(out), timeout=300)
    text = out.read_text()
    assert text.strip() == proc.stdout.strip()
    assert "quick smoke run" in text and "## Machine" in text and "BART" in text
    n_tables = sum(1 for ln in text.splitlines() if ln.startswith(HEADER))
    expected = 3 if shutil.which("ismrmrd_generate_cartesian_shepp_logan") else 2
    assert n_tables == expected
    rows = table_rows(text, HEADER, prefix=True)
    tools = {(r[0], r[1]) for r in rows}
    for step, tool in [
        ("ESPIRiT maps", "BART ecalib"),
        ("CG-SENSE", "medrecon"),
        ("CG-SENSE", "BART pics -l2"),
        ("CG-SENSE", "SigPy SenseRecon"),
        ("l1-wavelet", "medrecon"),
        ("l1-wavelet", "BART pics -R W"),
        ("l1-wavelet", "SigPy L1WaveletRecon"),
        ("TV", "medrecon"),
        ("TV", "BART pics -R T"),
    ]:
        assert (step, tool) in tools, (step, tool)
    by = {(r[0], r[1]): r for r in rows if not r[2].startswith("at our best")}
    # the same CG-SENSE problem, the same maps and iterations: the same image
    cg = [float(by[("CG-SENSE", t)][3]) for t in ("medrecon", "BART pics -l2")]
    assert abs(cg[0] - cg[1]) < 1e-3, cg
    zf = float(by[("zero-filled", "medrecon")][3])
    assert float(by[("l1-wavelet", "medrecon")][3]) < zf
    nufft = table_rows(text, NUFFT_HEADER, prefix=True)
    assert [r[0] for r in nufft[:4]] == [
        "medrecon NufftOperator",
        "FINUFFT direct",
        "torchkbnufft",
        "SigPy nufft",
    ]
    assert float(nufft[0][6]) < 1e-4  # medrecon at eps 1e-6
    assert "ToeplitzNormal vs explicit" in text
    assert (tmp_path / "mr.png").read_bytes()[:8] == PNG_MAGIC
