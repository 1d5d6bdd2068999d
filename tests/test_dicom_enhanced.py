"""write_derived_series(enhanced=True): one Enhanced CT/MR multi-frame object, read back.

The objects are validated with dciodvfy and dcmdump, read back with read_series (lossless for
CT, within half a stored step for MR, geometry to 1e-5 mm), checked for their lineage frame by
frame, and written atomically; bad multi-frame input raises typed errors naming the file.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from typer.testing import CliRunner

from _dicom_data import CT_SERIES, DCIODVFY, MR_SMALL, algo, dciodvfy_folder_problems
from medrecon.cli import app
from medrecon.dicom import read_all_series, read_series
from medrecon.dicom.audit import AuditLog
from medrecon.dicom.derived import device_uid, write_derived_series
from medrecon.dicom.enhanced import ENHANCED_CT_IMAGE_STORAGE, ENHANCED_MR_IMAGE_STORAGE
from medrecon.errors import DicomError, InconsistentSeriesError, MissingPixelDataError

DCMDUMP = shutil.which("dcmdump")
#: every dciodvfy (dicom3tools 2022) warning our enhanced objects give, with the reason it is
#: accepted (also in _dicom_data.ACCEPTED_WARNINGS); errors are never accepted
ENHANCED_ACCEPTED_WARNINGS = (
    # DeviceUID (0018,1002) in the Contributing Equipment item: newer than dicom3tools 2022
    "(0x0018,0x1002) UI Device UID",
    # dciodvfy's conclusion from that same DeviceUID
    "Standard Extended SOP Class",
)


def _validate(path: Path) -> None:
    """dciodvfy: no error, only the accepted warnings; dcmdump reads it cleanly."""
    assert dciodvfy_folder_problems(path.parent) == []  # errors (and unaccepted warnings): none
    assert DCIODVFY is not None
    run = subprocess.run([DCIODVFY, str(path)], capture_output=True, text=True, check=False)
    warnings = [ln for ln in (run.stdout + run.stderr).splitlines() if ln.startswith("Warning")]
    assert all(any(a in w for a in ENHANCED_ACCEPTED_WARNINGS) for w in warnings), warnings
    if DCMDUMP is not None:
        dump = subprocess.run([DCMDUMP, "-q", str(path)], capture_output=True, text=True)
        assert dump.returncode == 0 and dump.stderr == "", dump.stderr
        assert "PerFrameFunctionalGroupsSequence" in dump.stdout


def _only_file(folder: Path) -> Path:
    (path,) = list(folder.iterdir())  # one object, no temporary file left
    assert path.name.endswith(".dcm") and not path.name.startswith(".")
    return path


def test_ct_one_enhanced_object_valid_lossless_with_lineage_per_frame(tmp_path: Path) -> None:
    src = read_series(CT_SERIES)
    vol = src.volume.astype(np.float64) - 7.0  # "denoised", whole HU
    (ds,) = write_derived_series(vol, src, algo(), tmp_path / "out", enhanced=True)
    path = _only_file(tmp_path / "out")
    assert path.name == f"{ds.SOPInstanceUID}.dcm"
    _validate(path)
    f = pydicom.dcmread(path)
    assert f.SOPClassUID == ENHANCED_CT_IMAGE_STORAGE and int(f.NumberOfFrames) == 5
    assert f.SeriesInstanceUID != src.series_instance_uid
    assert f.StudyInstanceUID == src.study_instance_uid
    assert f.FrameOfReferenceUID == src.frame_of_reference_uid
    assert list(f.ImageType) == ["DERIVED", "PRIMARY", "VOLUME", "NONE"]
    assert f.ContentQualification == "RESEARCH" and f.LossyImageCompression == "00"
    shared = f.SharedFunctionalGroupsSequence[0]
    assert list(shared.CTImageFrameTypeSequence[0].FrameType) == list(f.ImageType)
    pvt = shared.PixelValueTransformationSequence[0]
    assert pvt.RescaleType == "HU" and float(pvt.RescaleSlope) == 1.0
    measures = shared.PixelMeasuresSequence[0]
    assert [float(v) for v in measures.PixelSpacing] == pytest.approx(src.spacing[1:])
    assert float(measures.SpacingBetweenSlices) == pytest.approx(src.spacing[0])
    assert float(shared.FrameVOILUTSequence[0].WindowCenter) == 40.0
    index = f.DimensionIndexSequence[0]
    assert (index.DimensionIndexPointer, index.FunctionalGroupPointer) == (0x00200032, 0x00209113)
    for k, frame in enumerate(f.PerFrameFunctionalGroupsSequence):
        position = frame.PlanePositionSequence[0].ImagePositionPatient
        assert list(position) == list(src.headers[k].ImagePositionPatient)  # as written
        assert frame.FrameContentSequence[0].DimensionIndexValues == k + 1
        derivation = frame.DerivationImageSequence[0]
        assert derivation.DerivationCodeSequence[0].CodeValue == "113087"
        assert "cd" * 32 in derivation.DerivationDescription
        (ref,) = derivation.SourceImageSequence
        assert ref.ReferencedSOPInstanceUID == src.slices[k].sop_instance_uid
        assert ref.PurposeOfReferenceCodeSequence[0].CodeValue == "121322"
        assert ref.SpatialLocationsPreserved == "YES"
    refs = f.ReferencedSeriesSequence[0].ReferencedInstanceSequence
    assert [r.ReferencedSOPInstanceUID for r in refs] == [s.sop_instance_uid for s in src.slices]
    assert f.RelatedSeriesSequence[0].SeriesInstanceUID == src.series_instance_uid
    evidence = f.SourceImageEvidenceSequence[0].ReferencedSeriesSequence[0]
    assert len(evidence.ReferencedSOPSequence) == 5
    proc = f.ContributingEquipmentSequence[1]
    assert proc.DeviceUID == device_uid(algo())
    # read back: lossless HU, the source's geometry, windows and this instance's hash
    back = read_series(tmp_path / "out")
    assert back.shape == src.shape and back.units == "HU"
    np.testing.assert_array_equal(back.volume, vol.astype(np.float32))
    np.testing.assert_allclose(back.affine, src.affine, atol=1e-5, rtol=0)
    np.testing.assert_allclose(back.positions, src.positions, atol=1e-5, rtol=0)
    assert back.orientation == pytest.approx(src.orientation)
    assert back.spacing == pytest.approx(src.spacing, rel=1e-6)
    assert back.windows == ((40.0, 400.0),)
    assert back.series_instance_uid == f.SeriesInstanceUID
    assert [s.frame_number for s in back.slices] == [1, 2, 3, 4, 5]
    assert {s.sop_instance_uid for s in back.slices} == {f.SOPInstanceUID}
    assert {s.pixel_sha256 for s in back.slices} == {hashlib.sha256(f.PixelData).hexdigest()}


def test_mr_enhanced_real_world_values_within_half_a_step(tmp_path: Path) -> None:
    src = read_series(MR_SMALL)
    vol = src.volume.astype(np.float64) * 1.0007 + 0.25  # floats: stored scaled
    write_derived_series(vol, src, algo(), tmp_path, enhanced=True)
    path = _only_file(tmp_path)
    _validate(path)
    f = pydicom.dcmread(path)
    assert f.SOPClassUID == ENHANCED_MR_IMAGE_STORAGE and int(f.NumberOfFrames) == 1
    shared = f.SharedFunctionalGroupsSequence[0]
    rw = shared.RealWorldValueMappingSequence[0]
    slope, intercept = float(rw.RealWorldValueSlope), float(rw.RealWorldValueIntercept)
    assert slope != 1.0
    # windows in stored values (no rescale), showing the source's real-world window
    voi = shared.FrameVOILUTSequence[0]
    assert float(voi.WindowCenter) * slope + intercept == pytest.approx(600.0, rel=1e-5)
    back = read_series(tmp_path)
    assert back.units == "real world"
    step = slope / 2 + float(np.abs(vol).max()) * np.finfo(np.float32).eps  # + float32 rounding
    np.testing.assert_allclose(back.volume, vol, atol=step, rtol=0)
    assert float(np.abs(back.volume - vol).max()) > 0.0  # really quantised, really compared
    np.testing.assert_allclose(back.affine, src.affine, atol=1e-5, rtol=0)
    assert back.windows is not None
    assert back.windows[0] == pytest.approx((600.0, 1600.0), rel=1e-5)


def test_super_resolution_references_the_nearest_source_slice(tmp_path: Path) -> None:
    src = read_series(CT_SERIES)
    up = np.repeat(src.volume, 2, axis=0).astype(np.float64)
    sp = (src.spacing[0] / 2, src.spacing[1], src.spacing[2])
    write_derived_series(up, src, algo("super_resolution"), tmp_path, spacing=sp, enhanced=True)
    path = _only_file(tmp_path)
    _validate(path)
    frames = pydicom.dcmread(path).PerFrameFunctionalGroupsSequence
    for n, frame in enumerate(frames):
        (ref,) = frame.DerivationImageSequence[0].SourceImageSequence
        assert ref.ReferencedSOPInstanceUID == src.slices[n // 2].sop_instance_uid
        assert ref.SpatialLocationsPreserved == "NO"
    back = read_series(tmp_path)
    assert back.shape == (10, 16, 16)
    assert back.spacing == pytest.approx(sp, rel=1e-5)
    np.testing.assert_array_equal(back.volume, up)


def test_mixed_folder_splits_and_enhanced_sources_are_referenced_by_frame(
    tmp_path: Path,
) -> None:
    src = read_series(CT_SERIES)
    folder = tmp_path / "mixed"
    shutil.copytree(CT_SERIES, folder)
    classic = write_derived_series(src.volume, src, algo(), folder)
    (enh,) = write_derived_series(src.volume + 1.0, src, algo(), folder, enhanced=True)
    found = read_all_series(folder)
    assert set(found) == {
        src.series_instance_uid,
        str(classic[0].SeriesInstanceUID),
        str(enh.SeriesInstanceUID),
    }
    again = found[str(enh.SeriesInstanceUID)]
    np.testing.assert_array_equal(again.volume, src.volume + 1.0)
    assert len(found[str(classic[0].SeriesInstanceUID)].slices) == 5
    # a series derived from the enhanced one names its frames
    dss = write_derived_series(again.volume, again, algo(), tmp_path / "next")
    for k, ds in enumerate(dss):
        (ref,) = ds.SourceImageSequence
        assert ref.ReferencedSOPInstanceUID == enh.SOPInstanceUID
        assert ref.ReferencedFrameNumber == k + 1
    (ref_series,) = dss[0].ReferencedSeriesSequence
    assert len(ref_series.ReferencedInstanceSequence) == 1  # one instance, five frames
    np.testing.assert_array_equal(read_series(tmp_path / "next").volume, src.volume + 1.0)


def test_bad_multiframe_input_raises_naming_the_file(tmp_path: Path) -> None:
    src = read_series(CT_SERIES)
    (ds,) = write_derived_series(src.volume, src, algo(), enhanced=True)

    def save(name: str, edit: Callable[[pydicom.Dataset], object]) -> Path:
        bad = copy.deepcopy(ds)
        edit(bad)
        path = tmp_path / name
        bad.save_as(path, enforce_file_format=True)
        return path

    def drop_position(d: pydicom.Dataset) -> None:
        del d.PerFrameFunctionalGroupsSequence[2].PlanePositionSequence

    def repeat_position(d: pydicom.Dataset) -> None:
        frames = d.PerFrameFunctionalGroupsSequence
        first = frames[0].PlanePositionSequence[0].ImagePositionPatient
        frames[1].PlanePositionSequence[0].ImagePositionPatient = first

    def halve_pixels(d: pydicom.Dataset) -> None:
        d.PixelData = d.PixelData[: len(d.PixelData) // 2]

    with pytest.raises(InconsistentSeriesError, match=r"nopos\.dcm frame 3: ImagePositionPatient"):
        read_series(save("nopos.dcm", drop_position))
    with pytest.raises(InconsistentSeriesError, match=r"count\.dcm: NumberOfFrames is 4, but"):
        read_series(save("count.dcm", lambda d: setattr(d, "NumberOfFrames", 4)))
    with pytest.raises(MissingPixelDataError, match=r"short\.dcm"):
        read_series(save("short.dcm", halve_pixels))
    with pytest.raises(InconsistentSeriesError, match=r"same\.dcm frame \d.*duplicate slice"):
        read_series(save("same.dcm", repeat_position))
    assert read_series(save("ok.dcm", lambda d: None)).shape == (5, 16, 16)


def test_atomic_all_or_nothing_audited_and_callback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = read_series(CT_SERIES)
    log = AuditLog(tmp_path / "audit.jsonl")
    real = os.replace

    def failing(a: str, b: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing)
    with pytest.raises(OSError, match="disk full"):
        write_derived_series(src.volume, src, algo(), tmp_path / "a", enhanced=True, audit=log)
    monkeypatch.setattr(os, "replace", real)
    assert list((tmp_path / "a").iterdir()) == []  # no partial file, no temporary file
    with pytest.raises(DicomError, match="ORIGINAL"):  # reconstructions: classic only
        write_derived_series(src.volume, src, algo("reconstruction"), tmp_path / "r", enhanced=True)
    assert not (tmp_path / "r").exists()
    (ds,) = write_derived_series(src.volume, src, algo(), tmp_path / "b", enhanced=True, audit=log)
    entries = log.read()
    assert [e["status"] for e in entries] == ["failed", "ok"]
    assert "disk full" in entries[0]["error"]
    path = _only_file(tmp_path / "b")
    assert entries[1]["outputs"] == [str(ds.SOPInstanceUID), str(path)]
    assert [i["sha256"] for i in entries[1]["inputs"]] == [s.pixel_sha256 for s in src.slices]
    got: list[pydicom.Dataset] = []
    returned = write_derived_series(src.volume, src, algo(), got.append, enhanced=True)
    assert len(got) == 1 and got[0] is returned[0] and int(got[0].NumberOfFrames) == 5


def test_cli_export_enhanced(tmp_path: Path) -> None:
    src = read_series(CT_SERIES)
    np.save(tmp_path / "r.npy", src.volume)
    log = tmp_path / "audit.jsonl"
    args = ["dicom", "export", str(CT_SERIES), str(tmp_path / "r.npy"), "--out"]
    args += [str(tmp_path / "out"), "--algorithm", "dn", "--version", "2", "--enhanced"]
    result = CliRunner().invoke(app, [*args, "--audit", str(log)])
    assert result.exit_code == 0, result.output
    assert "wrote 1 instances" in result.output
    f = pydicom.dcmread(_only_file(tmp_path / "out"))
    assert f.SOPClassUID == ENHANCED_CT_IMAGE_STORAGE and int(f.NumberOfFrames) == 5
    (entry,) = [json.loads(line) for line in log.read_text().splitlines()]
    assert entry["status"] == "ok"
