"""Derived series: geometry, frame of reference, windows and quantisation details on real files.

Complements test_dicom_lineage.py (lineage attributes, errors, atomic writes, QC reports) with
the cases that decide whether a viewer shows the derived images in the right place and with the
right contrast: positions copied exactly on an unchanged grid, one frame of reference per series
when the source names none, MR window settings in stored-value units, CT quantisation that keeps
whole HU exact, and super-resolution along the slice axis of a 5-slice CT series.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pydicom
import pytest

from _dicom_data import CT_SERIES, CT_SMALL, MR_SMALL, algo, dciodvfy_folder_problems, sha256
from medrecon.dicom import index_to_patient, read_series
from medrecon.dicom.derived import write_derived_series


def _copy_series(tmp_path: Path, name: str, edit: object) -> Path:
    """CT5N's files, each passed through ``edit(dataset, filename)``, in a new folder."""
    folder = tmp_path / name
    folder.mkdir()
    for f in sorted(CT_SERIES.iterdir()):
        ds = pydicom.dcmread(f)
        edit(ds, f.name)  # type: ignore[operator]
        ds.save_as(folder / f.name)
    return folder


def test_unchanged_grid_copies_each_source_position_exactly(tmp_path: Path) -> None:
    def shift(ds: pydicom.Dataset, name: str) -> None:
        if name == "2693":  # 0.02 mm along z: within read_series' 1 % spacing tolerance
            x, y, z = (float(v) for v in ds.ImagePositionPatient)
            ds.ImagePositionPatient = [f"{x:.6f}", f"{y:.6f}", f"{z + 0.02:.6f}"]

    src = read_series(_copy_series(tmp_path, "src", shift))
    dss = write_derived_series(src.volume, src, algo(), tmp_path / "out")
    for ds, header in zip(dss, src.headers, strict=True):
        assert ds.SourceImageSequence[0].SpatialLocationsPreserved == "YES"
        assert list(ds.ImagePositionPatient) == list(header.ImagePositionPatient)
        assert float(ds.SliceLocation) == float(header.SliceLocation)
    back = read_series(tmp_path / "out")
    np.testing.assert_array_equal(back.positions, src.positions)
    np.testing.assert_array_equal(back.volume, src.volume)
    assert dciodvfy_folder_problems(tmp_path / "out") == []


def test_source_without_frame_of_reference_gets_one_per_series(tmp_path: Path) -> None:
    src = read_series(
        _copy_series(tmp_path, "src", lambda ds, _: delattr(ds, "FrameOfReferenceUID"))
    )
    assert src.frame_of_reference_uid == ""
    first = write_derived_series(src.volume, src, algo(), tmp_path / "a")
    second = write_derived_series(src.volume + 1.0, src, algo("super_resolution"), tmp_path / "b")
    uids = {str(ds.FrameOfReferenceUID) for ds in first}
    assert len(uids) == 1  # every slice of one series in one frame
    assert uids == {str(ds.FrameOfReferenceUID) for ds in second}  # same grid, same frame
    assert read_series(tmp_path / "a").frame_of_reference_uid == uids.pop()
    assert dciodvfy_folder_problems(tmp_path / "a") == []


def test_mr_window_is_in_stored_units_and_reads_back_in_volume_units(tmp_path: Path) -> None:
    src = read_series(MR_SMALL)
    assert src.windows == ((600.0, 1600.0),)
    vol = src.volume.astype(np.float64) * 1.0007 + 0.25  # "denoised": floats, source units
    (ds,) = write_derived_series(vol, src, algo(), tmp_path)
    rw = ds.RealWorldValueMappingSequence[0]
    slope, intercept = float(rw.RealWorldValueSlope), float(rw.RealWorldValueIntercept)
    assert (slope, intercept) != (1.0, 0.0)  # the floats are stored scaled
    # MR Image has no Modality LUT: a viewer applies the window to the stored values, so the
    # stored-unit window must show the same real-world range as the source's window
    centre, width = float(ds.WindowCenter), float(ds.WindowWidth)
    assert centre * slope + intercept == pytest.approx(600.0, rel=1e-5)
    assert width * slope == pytest.approx(1600.0, rel=1e-5)
    back = read_series(tmp_path)
    assert back.units == "real world"
    assert back.windows is not None
    assert back.windows[0] == pytest.approx((600.0, 1600.0), rel=1e-5)
    np.testing.assert_allclose(back.volume, vol, atol=0.51 * slope + 1e-6, rtol=0)
    assert dciodvfy_folder_problems(tmp_path) == []


def test_ct_wide_integer_range_keeps_whole_hu_exact(tmp_path: Path) -> None:
    src = read_series(CT_SMALL)
    vol = src.volume.astype(np.float64)
    vol[0, 0, :3] = [-1024.0, 30000.0, 40000.0]  # fits 16 bits with an intercept, not int16
    (ds,) = write_derived_series(vol, src, algo("metal_artifact_reduction"), tmp_path)
    assert float(ds.RescaleSlope) == 1.0
    assert float(ds.RescaleIntercept) != 0.0
    np.testing.assert_array_equal(read_series(tmp_path).volume, vol)
    assert dciodvfy_folder_problems(tmp_path) == []


def test_ct_range_beyond_16_bits_is_never_clipped(tmp_path: Path) -> None:
    src = read_series(CT_SMALL)
    vol = src.volume.astype(np.float64)
    vol[0, 0, 0], vol[0, 0, 1] = -70000.0, 90000.0
    (ds,) = write_derived_series(vol, src, algo(), tmp_path)
    slope = float(ds.RescaleSlope)
    assert slope > 1.0
    back = read_series(tmp_path).volume
    np.testing.assert_allclose(back, vol, atol=slope / 2 + 1e-6, rtol=0)  # extremes included


def test_super_resolution_along_slices_and_in_plane(tmp_path: Path) -> None:
    src = read_series(CT_SERIES)
    headers_before = copy.deepcopy(src.headers)
    volume_before = src.volume.copy()
    hashes = {f: sha256(f) for f in CT_SERIES.iterdir()}
    up = np.repeat(np.repeat(np.repeat(src.volume, 2, axis=0), 2, axis=1), 2, axis=2)
    sp = (src.spacing[0] / 2, src.spacing[1] / 2, src.spacing[2] / 2)
    dss = write_derived_series(up, src, algo("super_resolution"), tmp_path, spacing=sp)
    assert len(dss) == 10 and (dss[0].Rows, dss[0].Columns) == (32, 32)
    assert float(dss[0].SliceThickness) == pytest.approx(sp[0])
    back = read_series(tmp_path)
    assert back.spacing == pytest.approx(sp, rel=1e-5)
    np.testing.assert_array_equal(back.volume, up)
    # new voxel centres on the source's continuous index grid, same field of view
    k, i, j = np.meshgrid([0, 5, 9], [0, 31], [0, 17], indexing="ij")
    new = np.stack([k, i, j], axis=-1).reshape(-1, 3).astype(np.float64)
    old = (new + 0.5) * 0.5 - 0.5
    np.testing.assert_allclose(
        index_to_patient(back.affine, new), index_to_patient(src.affine, old), atol=1e-4
    )
    for n, ds in enumerate(dss):
        assert [float(v) for v in ds.ImagePositionPatient] == pytest.approx(
            index_to_patient(src.affine, [(n + 0.5) / 2 - 0.5, -0.25, -0.25]).tolist(), abs=1e-5
        )
        (ref,) = ds.SourceImageSequence  # the source slice that holds this one
        assert ref.ReferencedSOPInstanceUID == src.slices[n // 2].sop_instance_uid
        assert ref.SpatialLocationsPreserved == "NO"
    # the source is left as it was: object, headers and files
    np.testing.assert_array_equal(src.volume, volume_before)
    assert all(a == b for a, b in zip(src.headers, headers_before, strict=True))
    assert {f: sha256(f) for f in CT_SERIES.iterdir()} == hashes
    assert dciodvfy_folder_problems(tmp_path) == []
