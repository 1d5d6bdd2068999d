"""The ``medrecon`` command line: ``demo`` runs the CT job and writes its files, ``info`` runs."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import matplotlib.image as mpimg
import pytest
from typer.testing import CliRunner

from medrecon.cli import app
from medrecon.demo import demo_lambda, run_demo

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FILES = ["ct_panel.png", "mar_panel.png", "metrics.json", "mr_panel.png", "report.md"]
RECONS = ("fbp_normal_dose", "fbp_low_dose", "tv_low_dose")
SMALL = ["--size", "64", "--views", "90", "--iters", "20"]


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One small CLI run shared by the tests that read its files (folder, CLI output)."""
    root = tmp_path_factory.mktemp("demo")
    (root / "keep.txt").write_text("untouched")
    out = root / "nested" / "out"
    result = CliRunner().invoke(app, ["demo", "--out", str(out), *SMALL, "--no-progress"])
    assert result.exit_code == 0, result.output
    return out, result.output


def test_demo_writes_only_its_files(cli_run: tuple[Path, str]) -> None:
    out, output = cli_run
    root = out.parent.parent
    written = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    dicom = [p for p in written if p.startswith("nested/out/dicom/")]
    assert [p for p in written if p not in dicom] == [
        "keep.txt",
        *(f"nested/out/{name}" for name in FILES),
    ]
    # 2 original series, 2 derived series, 2 QC reports, 1 audit log; no temporary folders
    assert len([p for p in dicom if p.endswith(".dcm")]) == 6
    assert "nested/out/dicom/audit.jsonl" in dicom
    assert not [p for p in root.rglob(".dicom*")]
    for name in FILES:
        assert str((out / name).resolve()) in output
    assert "PSNR" in output and "SSIM" in output


@pytest.mark.parametrize("name", ["ct_panel.png", "mar_panel.png", "mr_panel.png"])
def test_panels_are_valid_pngs(cli_run: tuple[Path, str], name: str) -> None:
    png = cli_run[0] / name
    assert png.read_bytes()[:8] == PNG_SIGNATURE
    image = mpimg.imread(png)
    assert image.ndim == 3 and image.shape[0] > 300 and image.shape[1] > 4 * image.shape[0] / 2


def test_metal_case_is_measured_and_ordered(cli_run: tuple[Path, str]) -> None:
    mar = json.loads((cli_run[0] / "metrics.json").read_text())["mar"]
    assert [i["material"] for i in mar["phantom"]["implants"]] == ["titanium", "titanium"]
    assert "120 kVp" in mar["scan"]["spectrum"] and 50.0 < mar["scan"]["mean_energy_kev"] < 75.0
    assert mar["metrics_definition"]["window_hu"] == [-175.0, 275.0]
    assert mar["metal"]["segmented_voxels"] > 0 and 0.0 < mar["metal"]["trace_fraction"] < 0.5
    rec = mar["reconstructions"]
    assert set(rec) == {"uncorrected", "li", "nmar", "no_metal"}
    unc, li, nm = rec["uncorrected"], rec["li"], rec["nmar"]
    # metal streaks dominate the uncorrected image; both corrections remove most of them (on
    # this coarse 64 x 64 grid LI's secondary streaks between the hips eat most of its gain)
    assert nm["psnr_db"] > li["psnr_db"] > unc["psnr_db"] and nm["psnr_db"] > unc["psnr_db"] + 2
    assert nm["streak_index_hu"] < 0.5 * unc["streak_index_hu"]
    assert li["streak_index_hu"] < 0.5 * unc["streak_index_hu"]


def test_mr_case_is_measured_and_ordered(cli_run: tuple[Path, str]) -> None:
    mr = json.loads((cli_run[0] / "metrics.json").read_text())["mr"]
    acq = mr["acquisition"]
    assert acq["coils"] == 8 and acq["acceleration"] == 4
    # 64 x 64: 12 calibration lines plus random lines, about a quarter of all lines
    assert mr["phantom"]["shape"] == [64, 64] and mr["calibration"]["calib"] == [24, 12]
    assert 0.2 <= acq["sampled_fraction"] <= 0.3
    rec = mr["reconstructions"]
    assert set(rec) == {"zero_filled", "sense", "cs_wavelet"}
    zf, sense, cs = rec["zero_filled"], rec["sense"], rec["cs_wavelet"]
    # compressed sensing beats SENSE, which beats zero-filling, in NRMSE and SSIM
    assert cs["nrmse"] < 0.8 * sense["nrmse"] and sense["nrmse"] < zf["nrmse"]
    assert cs["ssim"] > sense["ssim"] > zf["ssim"]
    # SENSE and CS fit the acquired lines down to the noise; zero-filling does not
    floor = mr["noise_floor"]
    assert 0.0 < floor < 0.1
    assert sense["data_consistency"] < 1.1 * floor and cs["data_consistency"] < 1.1 * floor
    assert zf["data_consistency"] > 1.2 * floor


def test_metrics_json_is_complete_and_sane(cli_run: tuple[Path, str]) -> None:
    m = json.loads((cli_run[0] / "metrics.json").read_text())
    for key in ("phantom", "volume", "geometry", "dose", "fbp", "tv", "reconstructions"):
        assert key in m
    for key in ("metrics_definition", "dot_test", "timings_s", "total_time_s", "files"):
        assert key in m
    geo = m["geometry"]
    assert geo["type"] == "FanBeam2D" and geo["detector"] == "flat" and geo["n_views"] == 90
    assert (geo["src_iso_mm"], geo["iso_det_mm"]) == (595.0, 490.0)
    # the fan covers the 400 mm field of view: detector width at the isocentre >= 400 mm
    iso_width = geo["n_det"] * geo["det_spacing_mm"] * 595.0 / (595.0 + 490.0)
    assert 400.0 <= iso_width < 440.0
    assert m["volume"] == {"shape": [64, 64], "voxel_size_mm": [6.25, 6.25], "fov_mm": 400.0}
    assert m["dose"]["normal"]["i0"] == 1e6 and m["dose"]["low"]["i0"] == 1e4
    assert m["fbp"]["filter"] in {"ram-lak", "shepp-logan", "cosine", "hamming", "hann"}
    assert m["tv"]["lam"] == pytest.approx(demo_lambda(90, 6.25)) and m["tv"]["lam"] > 0
    assert m["tv"]["n_iter"] == m["tv"]["iterations_run"] == 20 and m["tv"]["nonneg"] is True
    assert m["metrics_definition"]["data_range_hu"] == 2000.0
    assert m["dot_test"]["rel_error_float64"] < 1e-6
    assert m["dot_test"]["rel_error_float32"] < 1e-4
    assert {"forward", "fbp_low_dose", "tv_low_dose", "dot_test", "figure"} <= set(m["timings_s"])
    assert all(t >= 0.0 for t in m["timings_s"].values())

    rec = m["reconstructions"]
    assert set(rec) == set(RECONS)
    for r in rec.values():
        assert 10.0 < r["psnr_db"] < 60.0 and 0.0 < r["ssim"] <= 1.0
        assert r["noise_std_hu"] > 0.0 and r["roi_n_voxels"] > 10
        assert abs(r["roi_mean_hu"] - 40.0) < 50.0  # soft tissue, +40 HU
    fbp_hi, fbp_lo, tv = (rec[k] for k in RECONS)
    assert tv["psnr_db"] > fbp_lo["psnr_db"]
    assert fbp_hi["psnr_db"] > fbp_lo["psnr_db"]
    assert tv["noise_std_hu"] < fbp_lo["noise_std_hu"]
    assert fbp_hi["noise_std_hu"] < fbp_lo["noise_std_hu"]
    assert tv["ssim"] > fbp_lo["ssim"]


def test_report_states_the_metrics(cli_run: tuple[Path, str]) -> None:
    out = cli_run[0]
    report = (out / "report.md").read_text()
    m = json.loads((out / "metrics.json").read_text())
    assert "simulated" in report.lower() and "ct_panel.png" in report
    for r in m["reconstructions"].values():
        assert r["label"] in report
        assert f"{r['psnr_db']:.2f}" in report and f"{r['ssim']:.4f}" in report
        assert f"{r['noise_std_hu']:.1f}" in report
    assert "Metal artifact reduction" in report and "mar_panel.png" in report
    for r in m["mar"]["reconstructions"].values():
        assert f"| {r['label']} | {r['psnr_db']:.2f} | {r['ssim']:.4f} |" in report
        assert f"{r['streak_index_hu']:.1f}" in report
    assert "Accelerated multi-coil MR" in report and "mr_panel.png" in report
    for r in m["mr"]["reconstructions"].values():
        row = f"| {r['label']} | {r['nrmse']:.4f} | {r['psnr_db']:.2f} | {r['ssim']:.4f} |"
        assert row in report


def test_run_demo_is_reproducible_and_replaces_files(tmp_path: Path) -> None:
    kw = {"size": 32, "n_views": 16, "n_iter": 2, "progress": False}
    a = run_demo(tmp_path, **kw)  # type: ignore[arg-type]
    assert a["files"]["metrics"] == str((tmp_path / "metrics.json").resolve())
    b = run_demo(tmp_path, **kw)  # type: ignore[arg-type]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*FILES, "dicom"])
    # the second run replaced the DICOM folder: still six objects, one study
    assert len(list((tmp_path / "dicom").rglob("*.dcm"))) == 6
    assert b["dicom"]["study_instance_uid"] != a["dicom"]["study_instance_uid"]
    for k in RECONS:
        assert a["reconstructions"][k]["psnr_db"] == b["reconstructions"][k]["psnr_db"]
    c = run_demo(tmp_path, seed=1, **kw)  # type: ignore[arg-type]
    assert c["reconstructions"]["fbp_low_dose"]["psnr_db"] != pytest.approx(
        a["reconstructions"]["fbp_low_dose"]["psnr_db"], abs=1e-9
    )
    assert math.isfinite(c["total_time_s"])


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"size": 16}, ValueError),
        ({"size": 64.0}, TypeError),
        ({"n_views": 8}, ValueError),
        ({"n_iter": 0}, ValueError),
        ({"seed": -1}, ValueError),
        ({"n_iter": True}, TypeError),
    ],
)
def test_run_demo_rejects_bad_arguments(
    tmp_path: Path, kwargs: dict[str, object], error: type[Exception]
) -> None:
    with pytest.raises(error):
        run_demo(tmp_path / "out", progress=False, **kwargs)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "bad", [["--size", "8"], ["--views", "4"], ["--iters", "0"], ["--seed", "-2"], ["--bogus"]]
)
def test_cli_rejects_bad_options(tmp_path: Path, bad: list[str]) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["demo", "--out", str(out), "--no-progress", *bad])
    assert result.exit_code == 2, result.output
    assert not out.exists()


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


def test_demo_dicom_is_linked_and_verifiable(cli_run: tuple[Path, str]) -> None:
    from medrecon.dicom import read_all_series

    out = cli_run[0]
    m = json.loads((out / "metrics.json").read_text())
    series = read_all_series(out / "dicom")
    assert {s.series_instance_uid for s in series.values()} == {
        m["dicom"]["series"][k] for k in ("chest_fbp", "chest_tv", "pelvis_fbp", "pelvis_nmar")
    }
    assert {s.study_instance_uid for s in series.values()} == {m["dicom"]["study_instance_uid"]}
    tv = series[m["dicom"]["series"]["chest_tv"]]
    assert (
        tv.headers[0].RelatedSeriesSequence[0].SeriesInstanceUID
        == m["dicom"]["series"]["chest_fbp"]
    )
    assert m["dicom"]["qc"]["chest_tv"]["noise_std"] > 0.0
    result = CliRunner().invoke(app, ["audit", "verify", str(out / "dicom" / "audit.jsonl")])
    assert result.exit_code == 0, result.output
    assert "4 entries, hash chain intact" in result.output
