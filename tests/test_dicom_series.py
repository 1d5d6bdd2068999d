"""read_series on real DICOM files: values in HU, geometry, sorting, splitting, typed errors."""

from __future__ import annotations

import hashlib
import random
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from medrecon.dicom import index_to_patient, read_all_series, read_series
from medrecon.errors import DicomError, InconsistentSeriesError, MissingPixelDataError

CT_SMALL = get_testdata_file("CT_small.dcm")
MR_SMALL = get_testdata_file("MR_small.dcm")
CT_512 = get_testdata_file("693_UNCI.dcm")  # pydicom-data
CT_J2K = get_testdata_file("693_J2KI.dcm")
DICOMDIR_TESTS = Path(get_testdata_file("17106")).parents[2]
CT_SERIES = DICOMDIR_TESTS / "98892001"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _five_slice_files() -> list[Path]:
    """The 5-slice CT series (16 x 16) of pydicom's dicomdirtests."""
    with pytest.warns(UserWarning, match="left out"):
        s = read_all_series(CT_SERIES, skip_invalid=True)
    (five,) = [v for v in s.values() if v.modality == "CT" and v.shape[0] == 5]
    return [Path(sl.path) for sl in five.slices if sl.path]


@pytest.fixture(scope="module")
def five_files() -> list[Path]:
    files = _five_slice_files()
    assert len(files) == 5
    return files


def test_ct_small_in_hu_with_geometry() -> None:
    ds = pydicom.dcmread(CT_SMALL)
    s = read_series(CT_SMALL)
    assert (s.modality, s.units, s.shape) == ("CT", "HU", (1, 128, 128))
    hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_array_equal(s.volume[0], hu.astype(np.float32))
    assert s.volume.dtype == np.float32
    assert s.spacing == (5.0, 0.661468, 0.661468)  # one slice: the SliceThickness
    np.testing.assert_allclose(s.positions[0], [float(v) for v in ds.ImagePositionPatient])
    # the affine: (k, i, j) -> position + j * col_spacing * row_dir + i * row_spacing * col_dir
    o = np.array([float(v) for v in ds.ImageOrientationPatient])
    expected = s.positions[0] + 7 * 0.661468 * o[:3] + 3 * 0.661468 * o[3:]
    np.testing.assert_allclose(index_to_patient(s.affine, [0, 3, 7]), expected)
    assert s.study_instance_uid == ds.StudyInstanceUID
    assert s.frame_of_reference_uid == ds.FrameOfReferenceUID
    assert s.patient["PatientID"] == ds.PatientID
    assert s.slices[0].pixel_sha256 == hashlib.sha256(ds.PixelData).hexdigest()
    assert "PixelData" not in s.headers[0] and s.headers[0].SOPInstanceUID == ds.SOPInstanceUID


def test_mr_as_stored() -> None:
    ds = pydicom.dcmread(MR_SMALL)
    s = read_series(MR_SMALL)
    assert (s.modality, s.units) == ("MR", "stored")
    np.testing.assert_array_equal(s.volume[0], ds.pixel_array.astype(np.float32))
    assert s.windows == ((600.0, 1600.0),)


def test_512_ct_of_pydicom_data_is_lossy_flagged() -> None:
    s = read_series(CT_512)
    assert s.shape == (1, 512, 512)
    assert s.lossy  # LossyImageCompression "01" in the file
    assert s.windows is not None and s.windows[0][0] == 40.0
    centre = s.volume[0, 156:356, 156:356]  # inside the field of view (padding is -3040 HU)
    assert -1100.0 < float(np.median(centre)) < 3000.0


def test_slices_sorted_along_the_normal_whatever_the_order(five_files: list[Path]) -> None:
    shuffled = five_files[:]
    random.Random(0).shuffle(shuffled)
    a = read_series(five_files)
    b = read_series([pydicom.dcmread(f) for f in shuffled])
    np.testing.assert_array_equal(a.volume, b.volume)
    assert [x.sop_instance_uid for x in a.slices] == [x.sop_instance_uid for x in b.slices]
    along = a.positions @ a.normal
    assert np.all(np.diff(along) > 0)
    np.testing.assert_allclose(np.diff(along), a.spacing[0])
    # every slice's position is the affine's image of (k, 0, 0)
    k = np.arange(a.shape[0])
    idx = np.stack([k, 0 * k, 0 * k], axis=1)
    np.testing.assert_allclose(index_to_patient(a.affine, idx), a.positions, atol=1e-6)


def test_folder_with_several_series_is_split(five_files: list[Path], tmp_path: Path) -> None:
    for f in five_files:
        shutil.copy(f, tmp_path / f"ct5_{f.name}")
    shutil.copy(CT_SMALL, tmp_path / "ct_small.dcm")
    shutil.copy(MR_SMALL, tmp_path / "mr_small.dcm")
    all_series = read_all_series(tmp_path)
    assert sorted(v.shape[0] for v in all_series.values()) == [1, 1, 5]
    assert sorted(v.modality for v in all_series.values()) == ["CT", "CT", "MR"]
    with pytest.raises(DicomError, match="choose one with series_uid"):
        read_series(tmp_path)
    uid = pydicom.dcmread(five_files[0]).SeriesInstanceUID
    assert read_series(tmp_path, series_uid=uid).shape[0] == 5
    with pytest.raises(DicomError, match="not found"):
        read_series(tmp_path, series_uid="1.2.3")
    # a folder that also holds a broken series: raise, or leave it out with a warning
    with pytest.raises(InconsistentSeriesError):
        read_all_series(CT_SERIES)
    with pytest.warns(UserWarning, match="left out"):
        assert uid in read_all_series(CT_SERIES, skip_invalid=True)


def test_missing_slice_is_named(five_files: list[Path], tmp_path: Path) -> None:
    for f in five_files[:2] + five_files[3:]:
        shutil.copy(f, tmp_path / f.name)
    with pytest.raises(InconsistentSeriesError, match="missing slice"):
        read_series(tmp_path)


def test_duplicate_slice(five_files: list[Path]) -> None:
    dss = [pydicom.dcmread(f) for f in five_files]
    dup = pydicom.dcmread(five_files[1])
    dup.SOPInstanceUID = pydicom.uid.generate_uid()
    with pytest.raises(InconsistentSeriesError, match="duplicate"):
        read_series([*dss, dup])


def test_mixed_modalities_sizes_and_orientations(five_files: list[Path]) -> None:
    dss = [pydicom.dcmread(f) for f in five_files]
    dss[2].Modality = "MR"
    with pytest.raises(InconsistentSeriesError, match="mixed modalities"):
        read_series(dss)
    dss = [pydicom.dcmread(f) for f in five_files]
    dss[3].ImageOrientationPatient = [0, 1, 0, 0, 0, -1]
    with pytest.raises(InconsistentSeriesError, match="ImageOrientationPatient"):
        read_series(dss)
    dss = [pydicom.dcmread(f) for f in five_files]
    dss[1].Rows = 8
    with pytest.raises(InconsistentSeriesError, match="pixels"):
        read_series(dss)


def test_missing_or_undecodable_pixel_data_is_named(tmp_path: Path) -> None:
    ds = pydicom.dcmread(CT_SMALL)
    del ds.PixelData
    path = tmp_path / "nopixels.dcm"
    ds.save_as(path)
    with pytest.raises(MissingPixelDataError, match=r"nopixels\.dcm"):
        read_series(path)
    try:
        _ = pydicom.dcmread(CT_J2K).pixel_array
    except Exception:
        with pytest.raises(MissingPixelDataError, match="cannot be decoded"):
            read_series(CT_J2K)
    else:  # a JPEG 2000 decoder is installed here: the file reads
        assert read_series(CT_J2K).shape == (1, 512, 512)


def test_truncated_file_raises_a_typed_error(tmp_path: Path) -> None:
    data = Path(CT_SMALL).read_bytes()
    path = tmp_path / "truncated.dcm"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DicomError, match=r"truncated\.dcm"):
        read_series(path)


def test_non_dicom_files_are_skipped_and_empty_sources_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not dicom")
    with pytest.raises(DicomError, match="no DICOM image series"):
        read_series(tmp_path)
    shutil.copy(CT_SMALL, tmp_path / "ct.dcm")
    assert read_series(tmp_path).shape == (1, 128, 128)
    with pytest.raises(FileNotFoundError):
        read_series(tmp_path / "missing")


def test_originals_are_never_modified(five_files: list[Path]) -> None:
    files = [*five_files, Path(CT_SMALL), Path(CT_512)]
    before = [_sha(f) for f in files]
    s = read_series(five_files)
    s.headers[0].PatientName = "CHANGED"
    s.volume[...] = 0
    read_series(CT_SMALL)
    read_series(CT_512)
    assert [_sha(f) for f in files] == before
    assert str(read_series(five_files).headers[0].PatientName) != "CHANGED"
