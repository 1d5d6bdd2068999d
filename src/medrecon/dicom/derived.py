"""Derived image series with full lineage: what an algorithm made from a source series.

:func:`write_derived_series` writes a volume computed from a :class:`~medrecon.dicom.Series`
(denoised, super-resolved, metal-corrected, or reconstructed from the same raw data) as a new
series of classic CT or MR Image objects (or, with ``enhanced=True``, one Enhanced CT or MR
multi-frame object: :mod:`medrecon.dicom.enhanced`) in the source's study and frame of
reference, saying which algorithm, model version and weights made it, from which source images,
for what purpose:

* ImageType ``DERIVED\\SECONDARY\\AXIAL`` (``ORIGINAL\\PRIMARY\\AXIAL`` for reconstructions from
  raw data); SeriesDescription ``"AI-Denoised <source description>"`` and the like (64 chars);
* DerivationDescription (algorithm, model, weights SHA-256, key parameters) and
  DerivationCodeSequence (CID 7203: 113087 Smoothing for denoising, 113085 Spatial resampling
  for super-resolution; medrecon's private code for metal artifact reduction, declared in
  CodingSchemeIdentificationSequence);
* SourceImageSequence per image (purpose 121322, SpatialLocationsPreserved YES, or NO when the
  grid changed), RelatedSeriesSequence (121323) and ReferencedSeriesSequence naming the source;
* ContributingEquipmentSequence: the source scanner (109101 Acquisition Equipment) and medrecon
  (109102 Processing Equipment, SoftwareVersions, one DeviceUID per model version);
* ContentQualification ``RESEARCH`` until a model is marked clinical; LossyImageCompression
  propagated; the source's window settings; patient and study attributes copied.

Pixel data are re-quantised without clipping: CT as int16 with a RescaleSlope of 1 (and an
integer intercept when needed) while the rounded HU span at most 65536 values, a larger slope
when they do not; MR as uint16 with a Real World Value Mapping that gives the floats back, the
window settings converted to stored values (MR Image has no Modality LUT). On an unchanged
grid every slice keeps its source slice's ImagePositionPatient and SliceLocation as written; a
source without a FrameOfReferenceUID gets one UID per source series. The source and its files
are never modified; files are written atomically, all or nothing.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as _dt
import enum
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from importlib import metadata
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sr.coding import Code
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from medrecon._array import check_dtype, check_finite, to_numpy
from medrecon._enum import parse_enum
from medrecon.dicom import codes as mcodes
from medrecon.dicom._io import deliver
from medrecon.dicom.audit import AuditLog
from medrecon.dicom.series import (
    PATIENT_KEYWORDS,
    STUDY_KEYWORDS,
    Series,
    affine_from_geometry,
    index_to_patient,
)
from medrecon.errors import DicomError, ShapeError

__all__ = [
    "AlgorithmInfo",
    "DerivationKind",
    "copy_deidentification",
    "device_uid",
    "write_derived_series",
]

_HEX64 = re.compile(r"[0-9a-f]{64}")
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
SOURCE_IMAGE = Code("121322", "DCM", "Source image for image processing operation")
SOURCE_SERIES = Code("121323", "DCM", "Source series for image processing operation")
ACQUISITION_EQUIPMENT = Code("109101", "DCM", "Acquisition Equipment")
PROCESSING_EQUIPMENT = Code("109102", "DCM", "Processing Equipment")
# acquisition attributes of the CT and MR Image modules copied from the source when present
_CT_COPY = ("KVP", "AcquisitionNumber", "ConvolutionKernel", "XRayTubeCurrent", "Exposure")
_MR_COPY = (
    "ScanningSequence",
    "SequenceVariant",
    "ScanOptions",
    "MRAcquisitionType",
    "RepetitionTime",
    "EchoTime",
    "EchoTrainLength",
    "InversionTime",
    "ImagedNucleus",
    "MagneticFieldStrength",
    "FlipAngle",
    "AcquisitionNumber",
)
_OTHER_COPY = ("BodyPartExamined", "PatientPosition", "PositionReferenceIndicator", "Laterality")


class DerivationKind(enum.StrEnum):
    """What the algorithm did; sets the derivation code, ImageType and SeriesDescription."""

    DENOISING = "denoising"
    SUPER_RESOLUTION = "super_resolution"
    METAL_ARTIFACT_REDUCTION = "metal_artifact_reduction"
    RECONSTRUCTION = "reconstruction"

    @property
    def code(self) -> Code | None:
        """The DerivationCodeSequence concept (None for reconstructions from raw data)."""
        return {
            DerivationKind.DENOISING: Code("113087", "DCM", "Smoothing"),
            DerivationKind.SUPER_RESOLUTION: Code("113085", "DCM", "Spatial resampling"),
            DerivationKind.METAL_ARTIFACT_REDUCTION: mcodes.METAL_ARTIFACT_REDUCTION,
            DerivationKind.RECONSTRUCTION: None,
        }[self]

    @property
    def prefix(self) -> str:
        """SeriesDescription prefix."""
        return {
            DerivationKind.DENOISING: "AI-Denoised",
            DerivationKind.SUPER_RESOLUTION: "AI-SuperRes",
            DerivationKind.METAL_ARTIFACT_REDUCTION: "MAR",
            DerivationKind.RECONSTRUCTION: "Recon",
        }[self]


@dataclasses.dataclass(frozen=True)
class AlgorithmInfo:
    """The algorithm (and model) that made a derived series.

    Attributes
    ----------
    name, version : str
        Algorithm name and version (non-empty).
    kind : DerivationKind or str
    model_name, model_version : str, optional
        The trained model, when there is one.
    weights_sha256 : str, optional
        SHA-256 of the model's weights file (64 lowercase hex digits).
    parameters : mapping of str to JSON-like values
        Key parameters (kept in DerivationDescription and the audit log).
    manufacturer : str
        Who makes the software (General Equipment of the derived series).
    clinical : bool
        True once the site has validated the model for clinical use: ContentQualification
        ``PRODUCT`` instead of ``RESEARCH``.
    description : str, optional
        Free text added to DerivationDescription.
    """

    name: str
    version: str
    kind: DerivationKind | str
    model_name: str | None = None
    model_version: str | None = None
    weights_sha256: str | None = None
    parameters: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    manufacturer: str = "medrecon project"
    clinical: bool = False
    description: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", parse_enum(DerivationKind, self.kind, "kind"))
        for field in ("name", "version", "manufacturer"):
            value = getattr(self, field)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(
                    f"AlgorithmInfo.{field}: expected a non-empty string, got {value!r}"
                )
        if self.weights_sha256 is not None and not _HEX64.fullmatch(self.weights_sha256):
            raise ValueError(
                "AlgorithmInfo.weights_sha256: expected 64 lowercase hex digits, got "
                f"{self.weights_sha256!r}"
            )
        if not isinstance(self.parameters, Mapping):
            raise TypeError(
                f"AlgorithmInfo.parameters: expected a mapping, got {self.parameters!r}"
            )
        object.__setattr__(self, "parameters", dict(self.parameters))
        if not isinstance(self.clinical, bool):
            raise TypeError(f"AlgorithmInfo.clinical: expected a bool, got {self.clinical!r}")

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready description (for the audit log)."""
        d = dataclasses.asdict(self)
        d["kind"] = str(self.kind)
        return d


def device_uid(algorithm: AlgorithmInfo) -> str:
    """One DeviceUID per model version, derived from name, versions and weights (deterministic)."""
    parts = [
        algorithm.name,
        algorithm.version,
        str(algorithm.model_name or ""),
        str(algorithm.model_version or ""),
        str(algorithm.weights_sha256 or ""),
    ]
    return str(generate_uid(entropy_srcs=parts))


def _version() -> str:
    try:
        return metadata.version("medrecon")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "unknown"


def _code_item(code: Code) -> Dataset:
    item = Dataset()
    item.CodeValue = code.value
    item.CodingSchemeDesignator = code.scheme_designator
    item.CodeMeaning = code.meaning
    return item


def _derivation_description(algorithm: AlgorithmInfo) -> str:
    parts = [f"{algorithm.name} {algorithm.version}"]
    if algorithm.model_name:
        parts.append(f"model {algorithm.model_name} {algorithm.model_version or ''}".strip())
    if algorithm.weights_sha256:
        parts.append(f"weights sha256 {algorithm.weights_sha256}")
    if algorithm.parameters:
        parts.append(
            "parameters " + ", ".join(f"{k}={v}" for k, v in sorted(algorithm.parameters.items()))
        )
    if algorithm.description:
        parts.append(algorithm.description)
    text = "; ".join(parts)
    return text if len(text) <= 1024 else text[:1021] + "..."


# --------------------------------------------------------------------------- quantisation


@dataclasses.dataclass(frozen=True)
class _Quantised:
    stored: np.ndarray
    slope: float
    intercept: float
    signed: bool


def _quantise(values: np.ndarray, modality: str) -> _Quantised:
    """Integers for PixelData: never clipped (a slope > 1 when the range needs it)."""
    lo, hi = float(values.min()), float(values.max())
    if modality == "CT":
        rounded = np.rint(values)
        rlo, rhi = float(rounded.min()), float(rounded.max())
        if rhi - rlo <= 65535.0:  # whole HU (slope 1); shift by an integer intercept if needed
            intercept = 0.0 if (rlo >= -32768.0 and rhi <= 32767.0) else rlo + 32768.0
            return _Quantised((rounded - intercept).astype(np.int16), 1.0, intercept, True)
        # the slope as written (10 significant digits), so the stored values use exactly it
        slope = float(f"{max(abs(lo), abs(hi)) / 32767.0 * (1 + 1e-9):.10g}")
        stored = np.rint(values / slope)
        if stored.min() < -32768 or stored.max() > 32767:  # pragma: no cover - by construction
            raise DicomError(f"CT values in [{lo}, {hi}] HU do not fit int16 without clipping")
        return _Quantised(stored.astype(np.int16), slope, 0.0, True)
    # MR (and anything else): uint16 over [lo, hi]; integer data in range stay as they are
    integral = bool(np.all(values == np.rint(values)))
    if integral and lo >= 0.0 and hi <= 65535.0:
        return _Quantised(values.astype(np.uint16), 1.0, 0.0, False)
    slope = (hi - lo) / 65535.0 if hi > lo else 1.0
    stored = np.clip(np.rint((values - lo) / slope), 0, 65535).astype(np.uint16)
    return _Quantised(stored, slope, lo, False)


# --------------------------------------------------------------------------- geometry


def _new_grid(
    source: Series, shape: tuple[int, int, int], spacing: Sequence[float] | None
) -> tuple[np.ndarray, tuple[float, float, float], bool]:
    """Affine and spacing of the derived grid; whether spatial locations are preserved."""
    if spacing is None:
        if shape != source.shape:
            raise ShapeError(
                f"volume: expected the source's shape {source.shape}, got {shape} (give "
                "spacing= for a resampled grid)"
            )
        return source.affine, source.spacing, True
    sp = tuple(float(s) for s in spacing)
    if len(sp) != 3 or not all(math.isfinite(s) and s > 0 for s in sp):
        raise ValueError(f"spacing: expected three finite values > 0 mm, got {spacing!r}")
    new = np.asarray(shape, dtype=np.float64) * np.asarray(sp)
    old = np.asarray(source.shape, dtype=np.float64) * np.asarray(source.spacing)
    check = slice(0, 3) if source.shape[0] > 1 or shape[0] > 1 else slice(1, 3)
    if not np.allclose(new[check], old[check], rtol=0.01):
        raise ShapeError(
            f"volume: shape {shape} x spacing {sp} mm covers {new.round(2).tolist()} mm; the "
            f"source covers {old.round(2).tolist()} mm (a resampled grid must cover the same "
            "field of view)"
        )
    # the field of view's corner stays put: first voxel centre = corner + half a new voxel
    corner = index_to_patient(source.affine, [-0.5, -0.5, -0.5])
    o = np.asarray(source.orientation, dtype=np.float64)
    axes = np.stack([source.normal, o[3:], o[:3]])  # k, i, j directions
    first = corner + 0.5 * np.asarray(sp) @ axes
    if source.shape[0] == 1 and shape[0] == 1:
        first = first - 0.5 * sp[0] * axes[0] + 0.5 * source.spacing[0] * axes[0]
    affine = affine_from_geometry(first, o, sp)
    same = sp == tuple(source.spacing) and shape == source.shape
    return affine, (sp[0], sp[1], sp[2]), same


# --------------------------------------------------------------------------- writer


def copy_deidentification(source: Dataset, target: Dataset) -> None:
    """Carry PatientIdentityRemoved and the de-identification method over from the source.

    A source marked ``YES`` without a method (not conformant, but seen in public data sets)
    gets a method text saying so, so the derived object stays valid.
    """
    removed = source.get("PatientIdentityRemoved")
    if removed is None:
        return
    target.PatientIdentityRemoved = removed
    for kw in ("DeidentificationMethod", "DeidentificationMethodCodeSequence"):
        if kw in source:
            setattr(target, kw, copy.deepcopy(source.get(kw)))
    if str(removed).upper() == "YES" and not (
        "DeidentificationMethod" in target or "DeidentificationMethodCodeSequence" in target
    ):
        target.DeidentificationMethod = "Not recorded in the source series"


def file_meta(ds: Dataset) -> FileMetaDataset:
    """File meta information for ``ds`` (explicit VR little endian), validated."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationVersionName = "MEDRECON"
    pydicom.dataset.validate_file_meta(meta, enforce_standard=True)
    return meta


def _check_volume(volume: Any) -> np.ndarray:
    arr = to_numpy(volume)
    check_dtype(arr, "volume")
    check_finite(arr, "volume")
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ShapeError(f"volume: expected (slices, rows, columns), got shape {arr.shape}")
    return np.asarray(arr, dtype=np.float64)


def _audit_inputs(source: Series) -> list[dict[str, str]]:
    """The source instances with their pixel SHA-256, each once (multi-frame sources too)."""
    out: dict[str, str] = {}
    for sl in source.slices:
        out.setdefault(sl.sop_instance_uid, sl.pixel_sha256)
    return [{"uid": uid, "sha256": sha} for uid, sha in out.items()]


def write_derived_series(
    volume: Any,
    source: Series,
    algorithm: AlgorithmInfo,
    out: str | os.PathLike[str] | Callable[[Dataset], object] | None = None,
    *,
    series_description: str | None = None,
    series_number: int | None = None,
    spacing: Sequence[float] | None = None,
    enhanced: bool = False,
    uid_root: str | None = None,
    audit: AuditLog | None = None,
) -> list[Dataset]:
    """Write ``volume``, computed from ``source`` by ``algorithm``, as a derived series.

    Parameters
    ----------
    volume : ndarray or torch.Tensor of shape (slices, rows, columns)
        In the source's units (HU for CT). The source's shape, or any shape with ``spacing``
        covering the same field of view (super-resolution).
    source : Series
    algorithm : AlgorithmInfo
    out : folder, callable or None
        A folder gets one ``<SOPInstanceUID>.dcm`` per image (one file with ``enhanced=True``),
        written atomically and all or nothing; a callable is called with each dataset; None
        only returns them.
    series_description : str, optional
        Default ``"<prefix> <source description>"`` (prefix by kind), cut to 64 characters.
    series_number : int, optional
        Default: the source's number + 1000.
    spacing : (dz, row, column) in mm, optional
        The derived grid's spacing when it differs from the source's.
    enhanced : bool
        Write ONE Enhanced CT Image (CT source) or Enhanced MR Image (MR source) object
        holding every slice as a frame (:mod:`medrecon.dicom.enhanced`), with the same
        lineage: per-frame Plane Position and Derivation Image functional groups (source
        image per frame, 121322), shared Pixel Measures, Plane Orientation, Frame VOI LUT and
        the pixel value transform (CT rescale to HU; MR Real World Value Mapping), and a
        Multi-frame Dimension indexed by ImagePositionPatient. ImageType and FrameType are
        ``DERIVED\\PRIMARY\\VOLUME\\NONE`` (Enhanced IODs allow only PRIMARY as value 2).
        :func:`~medrecon.dicom.read_series` reads the object back. Reconstructions from raw
        data (ORIGINAL images) are refused with :class:`~medrecon.errors.DicomError`.
    uid_root : str, optional
        UID prefix for the new series and instances (pydicom's by default).
    audit : AuditLog, optional
        Record the write (inputs with their pixel SHA-256, outputs, algorithm), or its failure.

    Returns
    -------
    list of pydicom Dataset
        The derived instances, in slice order (one multi-frame instance with ``enhanced``).

    Raises
    ------
    ShapeError
        A volume that does not fit the source's grid (or field of view with ``spacing``).
    NonFiniteError, DtypeError
        NaN/infinite values; a dtype other than float32/float64.
    DicomError
        A source that is not CT or MR; ``enhanced=True`` for a reconstruction from raw data,
        or for more pixel data than one object holds (4 GiB).
    """
    try:
        plan = _plan(
            volume, source, algorithm, series_description, series_number, spacing, uid_root
        )
        if enhanced:
            from medrecon.dicom.enhanced import build_enhanced  # it builds on this module

            datasets = [build_enhanced(plan)]
        else:
            datasets = _build_series(plan)
        paths = deliver(datasets, out)
    except BaseException as exc:
        if audit is not None:
            audit.append(
                "write_derived_series",
                inputs=_audit_inputs(source),
                algorithm=algorithm.as_dict(),
                parameters={"series_description": series_description, "spacing": spacing},
                status="failed",
                error=f"{type(exc).__name__}: {exc}",
            )
        raise
    if audit is not None:
        audit.append(
            "write_derived_series",
            inputs=_audit_inputs(source),
            outputs=[str(ds.SOPInstanceUID) for ds in datasets] + [str(p) for p in paths],
            algorithm=algorithm.as_dict(),
            parameters={
                "series_instance_uid": str(datasets[0].SeriesInstanceUID),
                "series_description": str(datasets[0].SeriesDescription),
                "spacing": list(spacing) if spacing is not None else None,
            },
        )
    return datasets


@dataclasses.dataclass(frozen=True, eq=False)
class _Plan:
    """What every object of one derived series shares, computed and validated once."""

    source: Series
    algorithm: AlgorithmInfo
    kind: DerivationKind
    shape: tuple[int, int, int]
    affine: np.ndarray
    spacing: tuple[float, float, float]
    preserved: bool
    q: _Quantised
    now: _dt.datetime
    series_uid: str
    description: str
    number: int
    frame_uid: str
    #: window settings as written: volume units for CT, stored values for MR
    windows: tuple[tuple[float, float], ...]
    uid_root: str | None

    @property
    def date(self) -> str:
        return self.now.strftime("%Y%m%d")

    @property
    def time(self) -> str:
        return self.now.strftime("%H%M%S.%f")

    def position(self, k: int) -> np.ndarray:
        """LPS position of slice ``k``: the source slice's own on the same grid."""
        if self.preserved:  # not the regularised affine's
            return np.asarray(self.source.positions[k], dtype=np.float64)
        return index_to_patient(self.affine, [k, 0, 0])

    def position_value(self, k: int) -> list[Any]:
        """ImagePositionPatient of slice ``k`` as written (the source's values on its grid)."""
        if self.preserved:
            written = self.source.headers[k].get("ImagePositionPatient")
            if written is not None and len(written) == 3:
                return list(written)
        return [f"{v:.6f}" for v in self.position(k)]

    @property
    def slice_thickness(self) -> str:
        thickness = self.source.slice_thickness if self.preserved else self.spacing[0]
        return f"{thickness if thickness is not None else self.spacing[0]:.6f}"

    def slice_location(self, k: int) -> Any:
        location = self.source.headers[k].get("SliceLocation") if self.preserved else None
        if location not in (None, ""):
            return location
        return f"{float(self.position(k) @ self.source.normal):.6f}"

    @property
    def image_type(self) -> list[str]:
        """Values 1 and 2 of ImageType / FrameType."""
        if self.kind is DerivationKind.RECONSTRUCTION:
            return ["ORIGINAL", "PRIMARY"]
        return ["DERIVED", "SECONDARY"]


def _plan(
    volume: Any,
    source: Series,
    algorithm: AlgorithmInfo,
    series_description: str | None,
    series_number: int | None,
    spacing: Sequence[float] | None,
    uid_root: str | None,
) -> _Plan:
    if not isinstance(source, Series):
        raise TypeError(f"source: expected a Series, got {type(source).__name__}")
    if not isinstance(algorithm, AlgorithmInfo):
        raise TypeError(f"algorithm: expected an AlgorithmInfo, got {type(algorithm).__name__}")
    if source.modality not in ("CT", "MR"):
        raise DicomError(f"source: CT or MR expected, got modality {source.modality!r}")
    values = _check_volume(volume)
    shape = (int(values.shape[0]), int(values.shape[1]), int(values.shape[2]))
    affine, sp, preserved = _new_grid(source, shape, spacing)
    kind = DerivationKind(algorithm.kind)
    q = _quantise(values, source.modality)
    description = series_description or f"{kind.prefix} {source.series_description}".strip()
    number = series_number if series_number is not None else (source.series_number or 0) + 1000
    # one frame of reference for the whole series; a source without one gets a UID fixed by
    # the source series, so every series derived from it shares the frame
    frame_uid = source.frame_of_reference_uid or generate_uid(
        prefix=uid_root or pydicom.uid.PYDICOM_ROOT_UID,
        entropy_srcs=[
            "medrecon FrameOfReferenceUID",
            source.study_instance_uid,
            source.series_instance_uid,
        ],
    )
    windows = list(source.windows or ())
    if source.modality != "CT":  # no Modality LUT in MR images: windows apply to stored values
        windows = [((c - q.intercept) / q.slope, w / q.slope) for c, w in windows]
    return _Plan(
        source=source,
        algorithm=algorithm,
        kind=kind,
        shape=shape,
        affine=affine,
        spacing=sp,
        preserved=preserved,
        q=q,
        # local time: DA/TM values without TimezoneOffsetFromUTC are local (like the study's)
        now=_dt.datetime.now().astimezone(),
        series_uid=str(generate_uid(prefix=uid_root)),
        description=description[:64],
        number=number,
        frame_uid=str(frame_uid),
        windows=tuple(windows),
        uid_root=uid_root,
    )


def _set_identity(ds: Dataset, plan: _Plan) -> None:
    """Patient, study, frame of reference, series, equipment and creation attributes."""
    source, algorithm = plan.source, plan.algorithm
    first = source.headers[0]
    ds.SpecificCharacterSet = "ISO_IR 192"
    for kw in (*PATIENT_KEYWORDS, *STUDY_KEYWORDS, *_OTHER_COPY):
        if kw in first:
            setattr(ds, kw, first.get(kw))
    ds.StudyInstanceUID = source.study_instance_uid
    ds.FrameOfReferenceUID = plan.frame_uid
    if "PositionReferenceIndicator" not in ds:
        ds.PositionReferenceIndicator = ""
    for kw in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex"):
        if kw not in ds:
            setattr(ds, kw, "")
    for kw in ("StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber"):
        if kw not in ds:
            setattr(ds, kw, "")
    copy_deidentification(first, ds)
    if "Laterality" not in ds:
        ds.Laterality = ""  # type 2C: empty = unknown (the source does not say)
    if "PatientPosition" not in ds:
        ds.PatientPosition = ""  # type 2C for CT/MR: unknown when the source does not say
    ds.Modality = source.modality
    ds.SeriesInstanceUID = plan.series_uid
    ds.SeriesNumber = plan.number
    ds.SeriesDescription = plan.description
    ds.SeriesDate, ds.SeriesTime = plan.date, plan.time
    ds.ContentDate, ds.ContentTime = plan.date, plan.time
    ds.InstanceCreationDate, ds.InstanceCreationTime = plan.date, plan.time
    ds.SOPInstanceUID = generate_uid(prefix=plan.uid_root)
    # general equipment: the software that made these images
    ds.Manufacturer = algorithm.manufacturer[:64]
    ds.ManufacturerModelName = (algorithm.model_name or algorithm.name)[:64]
    ds.SoftwareVersions = [f"medrecon {_version()}", f"{algorithm.name} {algorithm.version}"]
    if "InstitutionName" in source.equipment:
        ds.InstitutionName = source.equipment["InstitutionName"]


def _derivation_codes(plan: _Plan) -> list[Dataset]:
    """DerivationCodeSequence items (none for reconstructions from raw data)."""
    code = plan.kind.code
    return [] if code is None else [_code_item(code)]


def _source_image_items(plan: _Plan, k: int) -> list[Dataset]:
    """SourceImageSequence of slice ``k``: the source slice it was made from (121322)."""
    source = plan.source
    if plan.preserved:
        refs = [k]
    else:  # the source slice nearest along the normal
        along = float(plan.position(k) @ source.normal)
        refs = [int(np.argmin(np.abs(source.positions @ source.normal - along)))]
    items = []
    for r in refs:
        sl = source.slices[r]
        item = Dataset()
        item.ReferencedSOPClassUID = sl.sop_class_uid
        item.ReferencedSOPInstanceUID = sl.sop_instance_uid
        if sl.frame_number is not None:  # a frame of a multi-frame source
            item.ReferencedFrameNumber = sl.frame_number
        item.PurposeOfReferenceCodeSequence = [_code_item(SOURCE_IMAGE)]
        item.SpatialLocationsPreserved = "YES" if plan.preserved else "NO"
        items.append(item)
    return items


def _real_world_value_mapping(plan: _Plan) -> Dataset:
    """The linear mapping from stored MR values back to the algorithm's floats."""
    if plan.q.signed:  # pragma: no cover - MR is stored unsigned
        raise AssertionError("MR output is stored unsigned")
    rwvm = Dataset()
    rwvm.LUTLabel = "MEDRECON"
    rwvm.LUTExplanation = f"{plan.algorithm.name} output values"[:64]
    rwvm.MeasurementUnitsCodeSequence = [_code_item(mcodes.UCUM_NO_UNITS)]
    rwvm.RealWorldValueFirstValueMapped = 0
    rwvm.RealWorldValueLastValueMapped = 65535
    rwvm.RealWorldValueSlope = plan.q.slope
    rwvm.RealWorldValueIntercept = plan.q.intercept
    return rwvm


def _set_lineage(ds: Dataset, plan: _Plan) -> None:
    """Series references, contributing equipment, qualification and lossy-compression flags.

    (The per-image DerivationDescription, codes and source images are placed by the caller:
    top level in classic images, the Derivation Image functional group in enhanced ones.)
    """
    source, algorithm = plan.source, plan.algorithm
    first = source.headers[0]
    ds.LossyImageCompression = "01" if source.lossy else "00"
    if source.lossy:
        for kw in ("LossyImageCompressionRatio", "LossyImageCompressionMethod"):
            if kw in first:
                setattr(ds, kw, first.get(kw))
    code = plan.kind.code
    if code is not None and code.scheme_designator == mcodes.PRIVATE_SCHEME:
        ds.CodingSchemeIdentificationSequence = [mcodes.private_scheme_item()]
    related = Dataset()
    related.StudyInstanceUID = source.study_instance_uid
    related.SeriesInstanceUID = source.series_instance_uid
    related.PurposeOfReferenceCodeSequence = [_code_item(SOURCE_SERIES)]
    ds.RelatedSeriesSequence = [related]
    ref_series = Dataset()
    ref_series.SeriesInstanceUID = source.series_instance_uid
    inst = []
    seen: set[str] = set()
    for sl in source.slices:  # one item per instance (a multi-frame source has one for all)
        if sl.sop_instance_uid in seen:
            continue
        seen.add(sl.sop_instance_uid)
        i = Dataset()
        i.ReferencedSOPClassUID = sl.sop_class_uid
        i.ReferencedSOPInstanceUID = sl.sop_instance_uid
        inst.append(i)
    ref_series.ReferencedInstanceSequence = inst
    ds.ReferencedSeriesSequence = [ref_series]
    equipment = []
    scanner = Dataset()
    scanner.PurposeOfReferenceCodeSequence = [_code_item(ACQUISITION_EQUIPMENT)]
    # type 1 in a Contributing Equipment item: say UNKNOWN when the source leaves it empty
    scanner.Manufacturer = source.equipment.get("Manufacturer") or "UNKNOWN"
    for kw in (
        "ManufacturerModelName",
        "DeviceSerialNumber",
        "SoftwareVersions",
        "InstitutionName",
        "StationName",
    ):
        if source.equipment.get(kw):
            setattr(scanner, kw, source.equipment[kw])
    equipment.append(scanner)
    proc = Dataset()
    proc.PurposeOfReferenceCodeSequence = [_code_item(PROCESSING_EQUIPMENT)]
    proc.Manufacturer = algorithm.manufacturer[:64]
    proc.ManufacturerModelName = (algorithm.model_name or algorithm.name)[:64]
    proc.SoftwareVersions = [f"medrecon {_version()}", f"{algorithm.name} {algorithm.version}"]
    proc.DeviceUID = device_uid(algorithm)
    proc.ContributionDateTime = plan.now.strftime("%Y%m%d%H%M%S.%f%z")
    proc.ContributionDescription = f"{plan.kind.prefix}: {algorithm.name} {algorithm.version}"[:64]
    equipment.append(proc)
    ds.ContributingEquipmentSequence = equipment
    ds.ContentQualification = "PRODUCT" if algorithm.clinical else "RESEARCH"


def _build_series(plan: _Plan) -> list[Dataset]:
    """Classic single-frame CT or MR Image objects, one per slice."""
    source = plan.source
    first = source.headers[0]
    shape, sp, q = plan.shape, plan.spacing, plan.q
    sop_class = CT_IMAGE_STORAGE if source.modality == "CT" else MR_IMAGE_STORAGE
    o = np.asarray(source.orientation, dtype=np.float64)
    out: list[Dataset] = []
    for k in range(shape[0]):
        ds = Dataset()
        _set_identity(ds, plan)
        ds.SOPClassUID = sop_class
        ds.InstanceNumber = k + 1
        ds.ImageType = [*plan.image_type, "AXIAL"]
        # acquisition attributes of the image module
        for kw in _CT_COPY if source.modality == "CT" else _MR_COPY:
            if kw in first:
                setattr(ds, kw, first.get(kw))
        if source.modality == "CT":
            if "KVP" not in ds:
                ds.KVP = ""
            if "AcquisitionNumber" not in ds:
                ds.AcquisitionNumber = ""
        else:
            for kw, default in (
                ("ScanningSequence", "RM"),
                ("SequenceVariant", "NONE"),
                ("ScanOptions", ""),
                ("MRAcquisitionType", ""),
                ("EchoTime", ""),
                ("EchoTrainLength", ""),
                ("RepetitionTime", ""),
            ):
                if kw not in ds:
                    setattr(ds, kw, default)
        # geometry
        ds.ImagePositionPatient = plan.position_value(k)
        ds.ImageOrientationPatient = [f"{v:.6f}" for v in o]
        ds.PixelSpacing = [f"{sp[1]:.6f}", f"{sp[2]:.6f}"]
        ds.SliceThickness = plan.slice_thickness
        ds.SliceLocation = plan.slice_location(k)
        # pixels
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = shape[1], shape[2]
        ds.BitsAllocated = ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1 if q.signed else 0
        ds.PixelData = np.ascontiguousarray(q.stored[k]).tobytes()
        if source.modality == "CT":
            ds.RescaleSlope = f"{q.slope:.10g}"
            ds.RescaleIntercept = f"{q.intercept:.10g}"
            ds.RescaleType = "HU"
        else:
            ds.RealWorldValueMappingSequence = [_real_world_value_mapping(plan)]
        if plan.windows:
            ds.WindowCenter = [f"{c:.6g}" for c, _ in plan.windows]
            ds.WindowWidth = [f"{w:.6g}" for _, w in plan.windows]
        # lineage
        ds.DerivationDescription = _derivation_description(plan.algorithm)
        codes = _derivation_codes(plan)
        if codes:
            ds.DerivationCodeSequence = codes
        ds.SourceImageSequence = _source_image_items(plan, k)
        _set_lineage(ds, plan)
        ds.file_meta = file_meta(ds)
        out.append(ds)
    return out
