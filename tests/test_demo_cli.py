"""The ``medrecon`` command line: ``demo`` writes its files, ``info`` runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest
from typer.testing import CliRunner

from medrecon.cli import app
from medrecon.demo import run_demo, shepp_logan_2d
from medrecon.geometry import VolumeGeometry

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_demo_writes_figure_and_summary(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = CliRunner().invoke(
        app, ["demo", "--out", str(out), "--size", "64", "--views", "60", "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    png = out / "overview.png"
    summary_path = out / "summary.json"
    assert str(png.resolve()) in result.output
    assert sorted(p.name for p in out.iterdir()) == ["overview.png", "summary.json"]

    data = png.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    image = mpimg.imread(png)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 400

    summary = json.loads(summary_path.read_text())
    for key in ("phantom", "volume", "geometry", "sinogram", "dot_test", "timings_s", "files"):
        assert key in summary
    geom = summary["geometry"]
    assert geom["type"] == "FanBeam2D" and geom["detector"] == "flat"
    assert geom["n_views"] == 60 and geom["n_det"] == 96
    assert geom["src_iso_mm"] > 0 and geom["iso_det_mm"] > 0 and geom["det_spacing_mm"] > 0
    assert summary["volume"]["shape"] == [64, 64]
    assert summary["sinogram"]["shape"] == [60, 96]
    assert 0.0 <= summary["sinogram"]["min"] < summary["sinogram"]["max"]
    assert summary["dot_test"]["rel_error_float64"] < 1e-4
    assert summary["dot_test"]["rel_error_float32"] < 1e-4
    assert {"forward", "adjoint", "backproject"} <= set(summary["timings_s"])


def test_run_demo_returns_summary_and_stays_in_out_dir(tmp_path: Path) -> None:
    out = tmp_path / "nested" / "out"
    (tmp_path / "keep.txt").write_text("untouched")
    summary = run_demo(out, size=32, n_views=24, progress=False)
    assert Path(summary["files"]["overview"]) == (out / "overview.png").resolve()
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [
        "keep.txt",
        "overview.png",
        "summary.json",
    ]
    # a second run replaces the files in place
    run_demo(out, size=32, n_views=24, progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["overview.png", "summary.json"]


@pytest.mark.parametrize(
    ("size", "n_views", "error"), [(8, 10, ValueError), (2.5, 10, TypeError), (32, 1, ValueError)]
)
def test_run_demo_rejects_bad_sizes(
    tmp_path: Path, size: object, n_views: int, error: type[Exception]
) -> None:
    with pytest.raises(error):
        run_demo(tmp_path, size=size, n_views=n_views, progress=False)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_phantom_is_upright_and_in_attenuation_units() -> None:
    vol = VolumeGeometry(shape=(128, 128), voxel_size=2.0)
    img = shepp_logan_2d(vol, mu_water=0.019)
    assert img[64, 64] == pytest.approx(0.019, abs=1e-6)  # brain
    assert img.max() == pytest.approx(0.095, rel=1e-3)  # skull = 5x brain
    assert img.min() >= 0.0
    # the large lesion (unit-frame y = +0.35) is in the upper half (small row index), the
    # small ones (unit-frame y = -0.605) in the lower half; unit frame = 128 mm, "up" = -y
    ys = vol.coords(0)
    row_top = int(np.argmin(np.abs(ys - (-0.35 * 128.0))))
    row_bottom = int(np.argmin(np.abs(ys - 0.606 * 128.0)))
    assert row_top < 64 < row_bottom
    assert img[row_top, 64] == pytest.approx(0.0285, abs=1e-4)
    assert img[row_bottom, 64] == pytest.approx(0.0285, abs=1e-4)
    assert img[127 - row_top, 64] == pytest.approx(0.019, abs=1e-4)  # not upside down
    assert np.allclose(img, img[:, ::-1], atol=0.03)  # nearly left-right symmetric


def test_info_lists_backends() -> None:
    result = CliRunner().invoke(app, ["info"])
    assert result.exit_code == 0, result.output
    assert "medrecon" in result.output
    assert "cpu" in result.output and "available" in result.output
    assert "threads" in result.output


def test_python_dash_m_medrecon() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "medrecon", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "demo" in proc.stdout and "info" in proc.stdout
