"""Smoke test of ``benchmarks/recon_cpu.py --quick`` (no timing and no quality is checked)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from _bench import BENCHMARKS, PNG_MAGIC, run_quick, table_rows

SCRIPT = BENCHMARKS / "recon_cpu.py"
QUALITY = (
    "| method | PSNR [dB] | SSIM | time per slice [s] | LoDoPaB-CT PSNR [dB] (published) "
    "| LoDoPaB-CT SSIM (published) |"
)
SLICES = "| slice | phantom | FBP PSNR / SSIM | SIRT PSNR / SSIM | TV PSNR / SSIM |"
ASTRA = (
    "| reconstruction | medrecon [s] | ASTRA [s] | speed-up (ASTRA / medrecon) "
    "| cores busy (medrecon / ASTRA) | agreement |"
)
HAS_ASTRA = importlib.util.find_spec("astra") is not None


@pytest.mark.slow
def test_quick_recon_benchmark_writes_table_and_figure(tmp_path: Path) -> None:
    out = tmp_path / "x.md"
    proc = run_quick(SCRIPT, "--n-slices", "2", "--out", str(out), timeout=180)
    assert "estimated duration of the quick run" in proc.stderr
    text = out.read_text()
    assert text.strip() == proc.stdout.strip()
    assert "(quick smoke run)" in text.splitlines()[0]
    assert "## Machine" in text and "| CPU |" in text and "numba threads" in text

    quality = table_rows(text, QUALITY)
    assert [r[0] for r in quality] == ["FBP", "SIRT", "TV"]
    assert all(len(r) == 6 for r in quality)
    for row in quality:  # "mean ± std" of PSNR (dB) and SSIM
        psnr, ssim = (float(cell.split("±")[0]) for cell in row[1:3])
        assert 10.0 < psnr < 60.0 and 0.0 < ssim <= 1.0
    assert [r[4] for r in quality] == ["30.37", "—", "33.36"]
    slices = table_rows(text, SLICES)
    assert [r[0] for r in slices] == ["0", "1"] and all(len(r) == 5 for r in slices)

    png = out.with_suffix(".png")
    assert png.read_bytes()[:8] == PNG_MAGIC
    assert f"]({png.name})" in text

    comparison = table_rows(text, ASTRA)
    assert [r[0] for r in comparison] == [
        "FBP, ram-lak",
        "FBP, ram-lak (medrecon on 1 thread)",
        "SIRT, nonneg",
    ]
    assert all(len(r) == 6 for r in comparison)
    if HAS_ASTRA:
        assert "ASTRA not available" not in text
        # same algorithm, same weights, same Joseph projector: agreement to float32 rounding
        sirt_l2 = float(comparison[2][5].split("rel. L2 difference ")[1].split(";")[0])
        assert sirt_l2 < 1e-3
    else:
        assert "ASTRA not available" in text
        assert all(r[2] == "n/a" for r in comparison)


@pytest.mark.slow
def test_quick_recon_benchmark_without_astra(tmp_path: Path) -> None:
    out = tmp_path / "ours.md"
    run_quick(SCRIPT, "--n-slices", "1", "--no-astra", "--out", str(out), timeout=180)
    text = out.read_text()
    assert "ASTRA not available (disabled with --no-astra" in text
    comparison = table_rows(text, ASTRA)
    assert comparison and all(r[2] == "n/a" for r in comparison)
