"""Smoke test of ``benchmarks/mar.py --quick`` (the script runs and writes its table and figure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from _bench import BENCHMARKS, PNG_MAGIC, run_quick

SCRIPT = BENCHMARKS / "mar.py"
HEADER = "| method | PSNR [dB] | SSIM | streak index [HU] |"


@pytest.mark.slow
def test_quick_mar_benchmark_writes_table_and_figure(tmp_path: Path) -> None:
    out = tmp_path / "mar.md"
    proc = run_quick(SCRIPT, "--n-slices", "2", "--out", str(out), timeout=300)
    text = out.read_text()
    assert text.strip() == proc.stdout.strip()
    assert "quick smoke run" in text and "## Machine" in text
    table = [ln for ln in text.splitlines() if ln.startswith(HEADER)]
    assert len(table) == 1
    rows = text.splitlines()[text.splitlines().index(table[0]) + 2 :][:5]
    labels = [r.split("|")[1].strip() for r in rows]
    assert labels == [
        "uncorrected (FBP)",
        "LI-MAR",
        "NMAR",
        "NMAR + frequency split",
        "no implants (same scan, reference)",
    ]
    psnr = [float(r.split("|")[2].split("±")[0]) for r in rows]
    assert all(10.0 < v < 60.0 for v in psnr)
    assert "quoted, not measured here" in text
    assert (tmp_path / "mar.png").read_bytes()[:8] == PNG_MAGIC
    # two per-slice rows
    per_slice = text.split("## Per slice")[1]
    assert (
        sum(1 for ln in per_slice.splitlines() if ln.startswith("| 0 ") or ln.startswith("| 1 "))
        == 2
    )
