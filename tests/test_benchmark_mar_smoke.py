"""Smoke test of ``benchmarks/mar.py --quick`` (the script runs and writes its table and figure)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "mar.py"
HEADER = "| method | PSNR [dB] | SSIM | streak index [HU] |"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_quick_mar_benchmark_writes_table_and_figure(tmp_path: Path) -> None:
    out = tmp_path / "mar.md"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--n-slices", "2", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
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
