"""Derived series and QC reports on real files: round trip, lineage attributes, dciodvfy, errors."""

from __future__ import annotations

import os
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

from _dicom_data import CT_512, CT_SERIES, CT_SMALL, MR_SMALL, dciodvfy_problems, sha256
from medrecon.dicom import index_to_patient, read_series
from medrecon.dicom.audit import AuditLog
from medrecon.dicom.codes import PRIVATE_SCHEME
from medrecon.dicom.derived import AlgorithmInfo, device_uid, write_derived_series
from medrecon.dicom.report import write_qc_report
from medrecon.errors import DicomError, DtypeError, NonFiniteError, ShapeError


def _algo(kind: str = "denoising", **kw: object) -> AlgorithmInfo:
    return AlgorithmInfo(
        name="medrecon-dn",
        version="0.3",
        kind=kind,
        model_name="unet-ldct",
        model_version="2026.11",
        weights_sha256="ab" * 32,
        parameters={"sigma": 1.5, "iterations": 4},
        **kw,  # type: ignore[arg-type]
    )


def _codes(seq: pydicom.Sequence) -> list[tuple[str, str]]:
    return [(str(i.CodeValue), str(i.CodingSchemeDesignator)) for i in seq]


@pytest.mark.parametrize("name", [CT_SMALL, MR_SMALL, CT_512])
def test_round_trip_same_pixels_geometry_and_lineage(name: str, tmp_path: Path) -> None:
    before = sha256(name)
    src = read_series(name)
    vol = src.volume.astype(np.float64) * 0.5 + 3.0  # "the algorithm's output"
    dss = write_derived_series(vol, src, _algo(), tmp_path)
    back = read_series(tmp_path)
    tol = 0.5 if src.modality == "CT" else (vol.max() - vol.min()) / 65535 * 0.51 + 1e-3
    np.testing.assert_allclose(back.volume, vol, atol=tol, rtol=0)
    np.testing.assert_allclose(back.affine, src.affine, atol=1e-5)
    assert back.spacing == pytest.approx(src.spacing)
    assert back.study_instance_uid == src.study_instance_uid
    if src.frame_of_reference_uid:  # kept; a source without one gets a new one
        assert back.frame_of_reference_uid == src.frame_of_reference_uid
    else:
        assert back.frame_of_reference_uid
    assert back.series_instance_uid != src.series_instance_uid
    assert back.patient == {k: v for k, v in src.patient.items() if k in back.patient}
    ds = pydicom.dcmread(next(tmp_path.iterdir()))
    assert list(ds.ImageType) == ["DERIVED", "SECONDARY", "AXIAL"]
    assert ds.SeriesDescription.startswith("AI-Denoised") and len(ds.SeriesDescription) <= 64
    assert "unet-ldct 2026.11" in ds.DerivationDescription and "ab" * 32 in ds.DerivationDescription
    assert _codes(ds.DerivationCodeSequence) == [("113087", "DCM")]
    (ref,) = ds.SourceImageSequence
    assert ref.ReferencedSOPInstanceUID == src.slices[0].sop_instance_uid
    assert _codes(ref.PurposeOfReferenceCodeSequence) == [("121322", "DCM")]
    assert ref.SpatialLocationsPreserved == "YES"
    (rel,) = ds.RelatedSeriesSequence
    assert rel.SeriesInstanceUID == src.series_instance_uid
    assert _codes(rel.PurposeOfReferenceCodeSequence) == [("121323", "DCM")]
    assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == src.series_instance_uid
    scanner, proc = ds.ContributingEquipmentSequence
    assert _codes(scanner.PurposeOfReferenceCodeSequence) == [("109101", "DCM")]
    assert _codes(proc.PurposeOfReferenceCodeSequence) == [("109102", "DCM")]
    assert proc.DeviceUID == device_uid(_algo()) and any(
        "medrecon" in v for v in proc.SoftwareVersions
    )
    assert ds.ContentQualification == "RESEARCH"
    assert ds.LossyImageCompression == ("01" if src.lossy else "00")
    if src.windows:  # in the volume's units (MR: through the Real World Value Mapping)
        assert back.windows is not None
        assert back.windows[0] == pytest.approx(src.windows[0], rel=1e-5)
    assert len(dss) == src.shape[0] and sha256(name) == before
    assert dciodvfy_problems(next(tmp_path.iterdir())) == []


def test_multi_slice_series_keeps_every_slice_reference(tmp_path: Path) -> None:
    src = read_series(CT_SERIES)
    assert src.shape[0] == 5
    dss = write_derived_series(src.volume, src, _algo(clinical=True), tmp_path)
    back = read_series(tmp_path)
    np.testing.assert_array_equal(back.volume, src.volume)
    np.testing.assert_allclose(back.positions, src.positions, atol=1e-5)
    for ds, sl in zip(dss, src.slices, strict=True):
        assert ds.SourceImageSequence[0].ReferencedSOPInstanceUID == sl.sop_instance_uid
        assert ds.ContentQualification == "PRODUCT"
    assert len(dss[0].ReferencedSeriesSequence[0].ReferencedInstanceSequence) == 5


def test_super_resolution_recomputes_the_grid(tmp_path: Path) -> None:
    src = read_series(CT_SMALL)
    up = np.repeat(np.repeat(src.volume, 2, axis=1), 2, axis=2)
    sp = (src.spacing[0], src.spacing[1] / 2, src.spacing[2] / 2)
    (ds,) = write_derived_series(up, src, _algo("super_resolution"), tmp_path, spacing=sp)
    assert (ds.Rows, ds.Columns) == (256, 256)
    assert [float(v) for v in ds.PixelSpacing] == pytest.approx(sp[1:])
    assert ds.SourceImageSequence[0].SpatialLocationsPreserved == "NO"
    assert _codes(ds.DerivationCodeSequence) == [("113085", "DCM")]
    back = read_series(tmp_path)
    # the same field of view: the new voxel (0, 0.5, 0.5) sits where the old (0, 0.25, 0.25) did
    old_corner = index_to_patient(src.affine, [0, -0.5, -0.5])
    np.testing.assert_allclose(
        index_to_patient(back.affine, [0, -0.5, -0.5]), old_corner, atol=1e-5
    )
    np.testing.assert_allclose(
        index_to_patient(back.affine, [0, 255.5, 255.5]),
        index_to_patient(src.affine, [0, 127.5, 127.5]),
        atol=1e-5,
    )
    assert dciodvfy_problems(next(tmp_path.iterdir())) == []
    with pytest.raises(ShapeError, match="field of view"):
        write_derived_series(up, src, _algo("super_resolution"), spacing=src.spacing)


def test_mr_float_output_through_real_world_value_mapping(tmp_path: Path) -> None:
    src = read_series(MR_SMALL)
    vol = np.sqrt(src.volume.astype(np.float64) + 1.0) / 7.0  # small floats
    (ds,) = write_derived_series(vol, src, _algo(), tmp_path)
    rwvm = ds.RealWorldValueMappingSequence[0]
    assert _codes(rwvm.MeasurementUnitsCodeSequence) == [("1", "UCUM")]
    back = read_series(tmp_path)
    assert back.units == "real world"
    step = (vol.max() - vol.min()) / 65535
    np.testing.assert_allclose(back.volume, vol, atol=0.51 * step + 1e-6)


def test_ct_values_beyond_int16_get_a_slope_never_clipped(tmp_path: Path) -> None:
    src = read_series(CT_SMALL)
    vol = src.volume.astype(np.float64)
    vol[0, 0, 0] = 60000.0  # dense metal beyond int16 in HU ...
    vol[0, 0, 1] = -8000.0  # ... and a range wider than 16 bits hold with slope 1
    (ds,) = write_derived_series(vol, src, _algo("metal_artifact_reduction"), tmp_path)
    assert float(ds.RescaleSlope) > 1.0
    back = read_series(tmp_path)
    assert back.volume[0, 0, 0] == pytest.approx(60000.0, abs=float(ds.RescaleSlope))
    assert _codes(ds.DerivationCodeSequence) == [("MAR001", PRIVATE_SCHEME)]
    assert ds.CodingSchemeIdentificationSequence[0].CodingSchemeDesignator == PRIVATE_SCHEME
    assert ds.SeriesDescription.startswith("MAR")


def test_reconstruction_is_original_primary(tmp_path: Path) -> None:
    src = read_series(CT_SMALL)
    (ds,) = write_derived_series(src.volume, src, _algo("reconstruction"), tmp_path)
    assert list(ds.ImageType) == ["ORIGINAL", "PRIMARY", "AXIAL"]
    assert "DerivationCodeSequence" not in ds
    assert dciodvfy_problems(next(tmp_path.iterdir())) == []


def test_bad_input_typed_errors_no_partial_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = read_series(CT_SERIES)
    log = AuditLog(tmp_path / "audit.jsonl")
    with pytest.raises(ShapeError):
        write_derived_series(src.volume[:, :-1], src, _algo(), tmp_path / "a", audit=log)
    bad = src.volume.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(NonFiniteError):
        write_derived_series(bad, src, _algo(), tmp_path / "b")
    with pytest.raises(DtypeError):
        write_derived_series(src.volume.astype(np.int32), src, _algo(), tmp_path / "c")
    with pytest.raises(ValueError, match="weights_sha256"):
        AlgorithmInfo(name="x", version="1", kind="denoising", weights_sha256="xyz")
    with pytest.raises(ValueError, match="kind"):
        AlgorithmInfo(name="x", version="1", kind="sharpening")
    # an Enhanced object for a reconstruction from raw data would need the scan's acquisition
    # attributes, which a source series does not carry: refused, nothing written
    recon = AlgorithmInfo(name="x", version="1", kind="reconstruction")
    with pytest.raises(DicomError, match="ORIGINAL"):
        write_derived_series(src.volume, src, recon, tmp_path / "e", enhanced=True)
    assert not (tmp_path / "e").exists() or not any((tmp_path / "e").iterdir())
    # a failing write on the third file leaves nothing behind, and the log says so
    real = os.replace
    calls = {"n": 0}

    def flaky(a: str, b: str) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full")
        real(a, b)

    monkeypatch.setattr(os, "replace", flaky)
    with pytest.raises(OSError, match="disk full"):
        write_derived_series(src.volume, src, _algo(), tmp_path / "d", audit=log)
    monkeypatch.setattr(os, "replace", real)
    assert list((tmp_path / "d").iterdir()) == []
    entries = log.read()
    assert [e["status"] for e in entries] == ["failed", "failed"]
    assert "disk full" in entries[-1]["error"]
    assert log.verify() == 2
    dss = write_derived_series(src.volume, src, _algo(), tmp_path / "e", audit=log)
    last = log.read()[-1]
    assert last["status"] == "ok" and str(dss[0].SOPInstanceUID) in last["outputs"]
    assert [i["sha256"] for i in last["inputs"]] == [s.pixel_sha256 for s in src.slices]


def test_qc_report_tid1500(tmp_path: Path) -> None:
    src = read_series(CT_SERIES)
    dss = write_derived_series(src.volume, src, _algo(), tmp_path / "img")
    metrics = {"snr": 21.5, "cnr": 3.25, "noise_std": 11.0, "data_consistency_residual": 0.012}
    sr = write_qc_report(src, dss, _algo(), metrics, confidence=0.87, out=tmp_path / "sr")
    (path,) = (tmp_path / "sr").iterdir()
    assert dciodvfy_problems(path) == []
    back = hd.sr.srread(path)
    assert back.StudyInstanceUID == src.study_instance_uid
    assert back.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    text = "\n".join(str(el.value) for el in back.iterall() if el.keyword == "TextValue")
    text += str(back)
    for value in ("113060", "113061", "QC001", "QC002", "QC003", "QC004"):
        assert value in text
    for sl in src.slices:
        assert f"{sl.sop_instance_uid} {sl.pixel_sha256}" in text
    evidence = {
        i.ReferencedSOPInstanceUID
        for s in back.CurrentRequestedProcedureEvidenceSequence
        for r in s.ReferencedSeriesSequence
        for i in r.ReferencedSOPSequence
    }
    assert {s.sop_instance_uid for s in src.slices} <= evidence
    assert {str(d.SOPInstanceUID) for d in dss} <= evidence
    assert back.CodingSchemeIdentificationSequence[0].CodingSchemeDesignator == PRIVATE_SCHEME
    assert sr.SOPInstanceUID == back.SOPInstanceUID
    with pytest.raises(ValueError, match="unknown key"):
        write_qc_report(src, dss, _algo(), {"psnr": 30.0})
    with pytest.raises(ValueError, match="confidence"):
        write_qc_report(src, dss, _algo(), metrics, confidence=1.5)
    other = read_series(CT_SMALL)
    with pytest.raises(DicomError, match="belongs to study"):
        write_qc_report(other, dss, _algo(), metrics)
