"""Reading DICOM image series into volumes with their geometry and identifying metadata.

:func:`read_series` turns one series of CT or MR images (files, folders or pydicom datasets:
classic single-frame objects, or Enhanced CT/MR multi-frame objects whose frames are read
through their functional groups) into a :class:`Series`: a float32 volume
``(slices, rows, columns)`` in physical units (CT in HU through RescaleSlope/RescaleIntercept;
MR as stored, rescaled when a slope is given), slices (frames) sorted by their position along
the slice normal, the spacing, the orientation, and the affine from voxel indices to the patient
frame (LPS, mm). The source datasets' headers (without pixel data) and the SHA-256 of every
source instance's pixel data travel with the volume, so derived series can name exactly what
they came from.

Reading is tolerant: a folder holding several series is split by SeriesInstanceUID
(:func:`read_all_series`); files that are not DICOM are skipped there. What cannot be read into a
correct volume raises a typed error naming the file: missing pixel data, mixed modalities or
orientations, unequal slice spacing (a missing slice), different image sizes.

Axis conventions (docs/conventions.md): ``volume[k, i, j]`` is slice ``k`` (along the normal
``row_dir x col_dir``, increasing), row ``i`` and column ``j``. DICOM's ImageOrientationPatient
holds the direction of increasing column index (first triplet) and of increasing row index
(second); PixelSpacing is (row spacing = distance between rows, column spacing).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from medrecon.errors import (
    DicomError,
    InconsistentSeriesError,
    MissingPixelDataError,
)

__all__ = [
    "Series",
    "SliceInfo",
    "affine_from_geometry",
    "index_to_patient",
    "pixel_data_sha256",
    "read_all_series",
    "read_series",
]

#: relative tolerance on slice spacing and orientation before a series is called inconsistent
_SPACING_RTOL = 0.01
_ORIENT_ATOL = 1e-4

#: identifying attributes copied from the source (patient, study, equipment)
PATIENT_KEYWORDS = (
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "PatientBirthDate",
    "PatientSex",
    "PatientAge",
)
STUDY_KEYWORDS = (
    "StudyInstanceUID",
    "StudyID",
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "ReferringPhysicianName",
    "StudyDescription",
)
EQUIPMENT_KEYWORDS = (
    "Manufacturer",
    "ManufacturerModelName",
    "DeviceSerialNumber",
    "SoftwareVersions",
    "StationName",
    "InstitutionName",
)


@dataclasses.dataclass(frozen=True)
class SliceInfo:
    """One source instance (one slice) of a series.

    Attributes
    ----------
    path : str or None
        File it was read from (None for an in-memory dataset).
    sop_instance_uid, sop_class_uid : str
    instance_number : int or None
    position : tuple of 3 float
        ImagePositionPatient (LPS, mm): the centre of the first transmitted pixel.
    pixel_sha256 : str
        SHA-256 (hex) of the instance's PixelData bytes as stored (of the whole instance for
        a frame of a multi-frame object).
    frame_number : int or None
        The frame (from 1) in a multi-frame instance; None for a single-frame instance.
    """

    path: str | None
    sop_instance_uid: str
    sop_class_uid: str
    instance_number: int | None
    position: tuple[float, float, float]
    pixel_sha256: str
    frame_number: int | None = None


@dataclasses.dataclass(frozen=True, eq=False)
class Series:
    """A DICOM image series as a volume with geometry and identity.

    Attributes
    ----------
    volume : ndarray of float32, shape (n_slices, rows, columns)
        HU for CT (``units == "HU"``); MR as stored, or rescaled when the files give a slope
        (``units == "stored"``), or through a linear Real World Value Mapping
        (``units == "real world"``, as medrecon writes float MR output).
    modality : str
    units : str
    spacing : tuple of 3 float
        (slice spacing along the normal, row spacing, column spacing) in mm. With one slice
        the slice spacing is the SliceThickness (or 1 mm without one).
    orientation : tuple of 6 float
        ImageOrientationPatient: row direction (increasing column index) then column direction.
    positions : ndarray of shape (n_slices, 3)
        ImagePositionPatient of every slice, in volume order (LPS, mm).
    affine : ndarray of shape (4, 4)
        Maps ``(k, i, j, 1)`` (slice, row, column) to ``(L, P, S, 1)`` in mm.
    slice_thickness : float or None
    study_instance_uid, series_instance_uid, frame_of_reference_uid : str
    series_description : str
    series_number : int or None
    patient, study, equipment : dict of str to object
        Identifying attributes of the source (keywords to values), copied to derived series.
    windows : tuple of (center, width) or None
        The first slice's window setting(s).
    lossy : bool
        LossyImageCompression was "01" in any source instance.
    slices : tuple of SliceInfo
        The source instances in volume order (one per frame of a multi-frame instance).
    headers : tuple of pydicom Dataset
        The source datasets without pixel data, in volume order (copies: changing them does
        not change the files). For a frame of a multi-frame instance: the instance's
        attributes without the functional group sequences, with the frame's geometry, pixel
        value transformation, window and real world value mapping at the top level, as a
        single-frame image would hold them.
    """

    volume: np.ndarray
    modality: str
    units: str
    spacing: tuple[float, float, float]
    orientation: tuple[float, float, float, float, float, float]
    positions: np.ndarray
    affine: np.ndarray
    slice_thickness: float | None
    study_instance_uid: str
    series_instance_uid: str
    frame_of_reference_uid: str
    series_description: str
    series_number: int | None
    patient: dict[str, Any]
    study: dict[str, Any]
    equipment: dict[str, Any]
    windows: tuple[tuple[float, float], ...] | None
    lossy: bool
    slices: tuple[SliceInfo, ...]
    headers: tuple[Dataset, ...]

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(n_slices, rows, columns)``."""
        k, i, j = self.volume.shape
        return int(k), int(i), int(j)

    @property
    def normal(self) -> np.ndarray:
        """Unit slice normal ``row_dir x col_dir`` (the direction of increasing k)."""
        o = np.asarray(self.orientation, dtype=np.float64)
        n = np.cross(o[:3], o[3:])
        return np.asarray(n / np.linalg.norm(n))

    def __repr__(self) -> str:
        return (
            f"Series({self.modality}, shape {self.shape}, spacing "
            f"{tuple(round(s, 4) for s in self.spacing)} mm, "
            f"{self.series_description!r}, uid {self.series_instance_uid})"
        )


# --------------------------------------------------------------------------- geometry


def affine_from_geometry(
    first_position: npt.ArrayLike,
    orientation: npt.ArrayLike,
    spacing: npt.ArrayLike,
) -> np.ndarray:
    """The 4x4 affine from ``(k, i, j)`` voxel indices to LPS millimetres.

    Column ``j`` moves along the row direction (orientation[:3]) by the column spacing, row
    ``i`` along the column direction (orientation[3:]) by the row spacing, slice ``k`` along
    the normal by the slice spacing.

    Examples
    --------
    >>> a = affine_from_geometry((-10.0, -20.0, 5.0), (1, 0, 0, 0, 1, 0), (2.5, 0.5, 0.75))
    >>> index_to_patient(a, [[1, 2, 3]]).tolist()
    [[-7.75, -19.0, 7.5]]
    """
    o = np.asarray(orientation, dtype=np.float64)
    if o.shape != (6,):
        raise DicomError(f"orientation: expected 6 direction cosines, got {o.shape}")
    row_dir, col_dir = o[:3], o[3:]
    normal = np.cross(row_dir, col_dir)
    dz, dy, dx = (float(s) for s in np.asarray(spacing, dtype=np.float64).ravel())
    a = np.eye(4)
    a[:3, 0] = normal / np.linalg.norm(normal) * dz
    a[:3, 1] = col_dir * dy
    a[:3, 2] = row_dir * dx
    a[:3, 3] = np.asarray(first_position, dtype=np.float64)
    return a


def index_to_patient(affine: np.ndarray, indices: Any) -> np.ndarray:
    """Map ``(k, i, j)`` indices (shape (..., 3)) to LPS positions (mm) with ``affine``."""
    idx = np.asarray(indices, dtype=np.float64)
    return np.asarray(idx @ affine[:3, :3].T + affine[:3, 3])


def pixel_data_sha256(ds: Dataset) -> str:
    """SHA-256 (hex) of a dataset's PixelData bytes as stored (encapsulated or not).

    Raises
    ------
    MissingPixelDataError
        The dataset has no PixelData.
    """
    if "PixelData" not in ds:
        raise MissingPixelDataError(f"{_name(ds)}: no PixelData")
    return hashlib.sha256(bytes(ds.PixelData)).hexdigest()


# --------------------------------------------------------------------------- reading


def _name(ds: Dataset) -> str:
    return str(getattr(ds, "filename", None) or f"dataset {ds.get('SOPInstanceUID', '?')}")


def _iter_files(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            out += sorted(f for f in path.rglob("*") if f.is_file())
        elif path.is_file():
            out.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    return out


def _load(source: Any, *, tolerant: bool) -> list[Dataset]:
    """Datasets from a path, a folder, a dataset, or a sequence of those."""
    single = isinstance(source, Dataset | str | os.PathLike)
    items: list[Any] = [source] if single else list(source)
    datasets: list[Dataset] = []
    paths: list[str | os.PathLike[str]] = []
    for item in items:
        if isinstance(item, Dataset):
            datasets.append(item)
        elif isinstance(item, str | os.PathLike):
            paths.append(item)
        else:
            raise TypeError(f"expected paths or pydicom datasets, got {type(item).__name__}")
    for f in _iter_files(paths):
        try:
            datasets.append(pydicom.dcmread(f))
        except InvalidDicomError as exc:
            if tolerant:
                continue
            raise DicomError(f"{f}: not a DICOM file ({exc})") from exc
        except Exception as exc:  # truncated or corrupt files
            raise DicomError(f"{f}: cannot be read as DICOM ({type(exc).__name__}: {exc})") from exc
    return datasets


def _is_image(ds: Dataset) -> bool:
    return "SeriesInstanceUID" in ds and "Rows" in ds and "Columns" in ds


def _float_tuple(ds: Dataset, keyword: str, n: int, name: str | None = None) -> tuple[float, ...]:
    name = name or _name(ds)
    value = ds.get(keyword)
    if value is None:
        raise InconsistentSeriesError(f"{name}: {keyword} is missing")
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise InconsistentSeriesError(f"{name}: {keyword} is not numeric: {value!r}") from exc
    if len(out) != n:
        raise InconsistentSeriesError(f"{name}: {keyword} has {len(out)} values, not {n}")
    return out


#: functional groups (PS3.3 C.7.6.16) whose one item's attributes a frame's header holds at the
#: top level, as a single-frame image would
_FLATTENED_GROUPS = (
    "PlanePositionSequence",
    "PlaneOrientationSequence",
    "PixelMeasuresSequence",
    "PixelValueTransformationSequence",
    "FrameVOILUTSequence",
)
#: SharedFunctionalGroupsSequence, PerFrameFunctionalGroupsSequence, PixelData
_NOT_IN_FRAME_HEADERS = (0x52009229, 0x52009230, 0x7FE00010)


def _is_multiframe(ds: Dataset) -> bool:
    return "PerFrameFunctionalGroupsSequence" in ds or str(ds.get("NumberOfFrames", "1")) not in (
        "1",
        "",
        "None",
    )


@dataclasses.dataclass(frozen=True, eq=False)
class _Frame:
    """One slice to read: a single-frame instance, or one frame of a multi-frame instance."""

    ds: Dataset  # the instance
    header: Dataset  # the instance itself, or the frame's flattened header (a copy)
    number: int | None  # the frame (from 1) of a multi-frame instance

    @property
    def name(self) -> str:
        return _name(self.ds) if self.number is None else f"{_name(self.ds)} frame {self.number}"


def _frames(ds: Dataset) -> list[_Frame]:
    """The slices of one instance: itself, or every frame through its functional groups."""
    if not _is_multiframe(ds):
        return [_Frame(ds, ds, None)]
    value = ds.get("NumberOfFrames")
    try:
        n = int(value)
    except (TypeError, ValueError) as exc:
        raise InconsistentSeriesError(
            f"{_name(ds)}: NumberOfFrames is missing or not a number ({value!r})"
        ) from exc
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame is None:
        raise DicomError(
            f"{_name(ds)}: multi-frame image ({n} frames) without functional groups; "
            "read_series reads single-frame and Enhanced (functional group) multi-frame images"
        )
    if n < 1 or len(per_frame) != n:
        raise InconsistentSeriesError(
            f"{_name(ds)}: NumberOfFrames is {n}, but PerFrameFunctionalGroupsSequence has "
            f"{len(per_frame)} items"
        )
    shared_seq = ds.get("SharedFunctionalGroupsSequence")
    shared = shared_seq[0] if shared_seq else Dataset()
    base = [copy.deepcopy(e) for e in ds if e.tag not in _NOT_IN_FRAME_HEADERS]
    frames = []
    for number, item in enumerate(per_frame, start=1):
        header = Dataset()
        for elem in base:  # shared by the frames' headers (copies of the file's)
            header.add(elem)
        header.NumberOfFrames = 1
        for keyword in _FLATTENED_GROUPS:
            seq = item.get(keyword) or shared.get(keyword)  # per-frame first, then shared
            if seq:
                for elem in seq[0]:
                    header.add(copy.deepcopy(elem))
        rwvm = item.get("RealWorldValueMappingSequence") or shared.get(
            "RealWorldValueMappingSequence"
        )
        if rwvm:
            header.RealWorldValueMappingSequence = copy.deepcopy(rwvm)
        frames.append(_Frame(ds, header, number))
    return frames


def _instance_pixels(ds: Dataset) -> np.ndarray:
    """The instance's stored values, shape (frames, rows, columns)."""
    if "PixelData" not in ds:
        raise MissingPixelDataError(f"{_name(ds)}: no PixelData")
    try:
        arr = ds.pixel_array
    except Exception as exc:  # decoder missing, truncated pixel data
        raise MissingPixelDataError(
            f"{_name(ds)}: pixel data cannot be decoded ({type(exc).__name__}: {exc})"
        ) from exc
    n = int(ds.get("NumberOfFrames", 1) or 1)
    size = (int(ds.Rows), int(ds.Columns))
    if arr.shape == size and n == 1:
        return np.asarray(arr)[None]
    if arr.shape != (n, *size):
        raise DicomError(
            f"{_name(ds)}: pixel array {arr.shape} is not NumberOfFrames x Rows x Columns "
            f"{(n, *size)}"
        )
    return np.asarray(arr)


def _pixels(frame: _Frame, stored: np.ndarray) -> np.ndarray:
    """The slice's values in physical units (float64) from its stored values."""
    h = frame.header
    rwvm = _real_world_mapping(h)
    if rwvm is not None:
        slope, intercept = rwvm
    else:
        slope = float(h.get("RescaleSlope", 1.0) or 1.0)
        intercept = float(h.get("RescaleIntercept", 0.0) or 0.0)
    return np.asarray(stored, dtype=np.float64) * slope + intercept


def _real_world_mapping(ds: Dataset) -> tuple[float, float] | None:
    """(slope, intercept) of a linear Real World Value Mapping of an MR image, if any.

    Not where a (non-identity) rescale is given: the rescaled values are the volume's then.
    """
    if str(ds.get("Modality", "")) != "MR":
        return None
    if "RescaleSlope" in ds and (
        float(ds.get("RescaleSlope") or 1.0),
        float(ds.get("RescaleIntercept") or 0.0),
    ) != (1.0, 0.0):
        return None
    seq = ds.get("RealWorldValueMappingSequence")
    if not seq or "RealWorldValueSlope" not in seq[0]:
        return None
    item = seq[0]
    return float(item.RealWorldValueSlope), float(item.get("RealWorldValueIntercept", 0.0))


def _header(ds: Dataset) -> Dataset:
    """A deep copy of ``ds`` without its pixel data."""
    h = Dataset()
    for elem in ds:
        if elem.tag != 0x7FE00010:  # PixelData
            h.add(copy.deepcopy(elem))
    if hasattr(ds, "file_meta"):
        h.file_meta = copy.deepcopy(ds.file_meta)
    return h


def _common(datasets: Sequence[Dataset], keywords: Sequence[str]) -> dict[str, Any]:
    first = datasets[0]
    return {k: first.get(k) for k in keywords if k in first}


def _windows(ds: Dataset) -> tuple[tuple[float, float], ...] | None:
    """Window settings in the volume's units.

    Without a Modality LUT (MR), windows apply to stored values; when the volume is read
    through a Real World Value Mapping, they are mapped the same way.
    """
    c, w = ds.get("WindowCenter"), ds.get("WindowWidth")
    if c is None or w is None:
        return None
    cs = list(c) if isinstance(c, pydicom.multival.MultiValue) else [c]
    ws = list(w) if isinstance(w, pydicom.multival.MultiValue) else [w]
    slope, intercept = _real_world_mapping(ds) or (1.0, 0.0)
    return tuple(
        (float(a) * slope + intercept, float(b) * abs(slope)) for a, b in zip(cs, ws, strict=False)
    )


def _build(datasets: list[Dataset]) -> Series:
    """One series from its instances (already grouped by SeriesInstanceUID)."""
    frames = [frame for ds in datasets for frame in _frames(ds)]
    first = frames[0].header
    modalities = {str(ds.get("Modality", "")) for ds in datasets}
    if len(modalities) != 1:
        raise InconsistentSeriesError(
            f"series {first.SeriesInstanceUID}: mixed modalities {sorted(modalities)}"
        )
    modality = modalities.pop()
    orient = np.array(_float_tuple(first, "ImageOrientationPatient", 6, frames[0].name))
    for fr in frames[1:]:
        o = np.array(_float_tuple(fr.header, "ImageOrientationPatient", 6, fr.name))
        if not np.allclose(o, orient, atol=_ORIENT_ATOL):
            raise InconsistentSeriesError(
                f"{fr.name}: ImageOrientationPatient {o.tolist()} differs from the series' "
                f"{orient.tolist()}"
            )
    size = (int(first.Rows), int(first.Columns))
    for ds in datasets:
        if (int(ds.Rows), int(ds.Columns)) != size:
            raise InconsistentSeriesError(
                f"{_name(ds)}: {ds.Rows} x {ds.Columns} pixels, the series has "
                f"{size[0]} x {size[1]}"
            )
    row_sp, col_sp = _float_tuple(first, "PixelSpacing", 2, frames[0].name)
    for fr in frames[1:]:
        spacing_ = _float_tuple(fr.header, "PixelSpacing", 2, fr.name)
        if not np.allclose(spacing_, (row_sp, col_sp), rtol=1e-4):
            raise InconsistentSeriesError(f"{fr.name}: PixelSpacing differs within the series")
    normal = np.cross(orient[:3], orient[3:])
    pos = np.array([_float_tuple(fr.header, "ImagePositionPatient", 3, fr.name) for fr in frames])
    along = pos @ normal
    order = np.argsort(along, kind="stable")
    frames = [frames[i] for i in order]
    pos, along = pos[order], along[order]
    thickness = first.get("SliceThickness")
    thickness_f = float(thickness) if thickness not in (None, "") else None
    if len(frames) > 1:
        steps = np.diff(along)
        if np.any(steps <= 1e-6):
            k = int(np.argmin(steps))
            raise InconsistentSeriesError(
                f"{frames[k + 1].name}: same position along the normal as "
                f"{frames[k].name} (duplicate slice)"
            )
        dz = float(np.median(steps))
        bad = np.flatnonzero(np.abs(steps - dz) > _SPACING_RTOL * dz)
        if bad.size:
            k = int(bad[0])
            raise InconsistentSeriesError(
                f"uneven slice spacing: {steps[k]:.4g} mm between {frames[k].name} and "
                f"{frames[k + 1].name}, {dz:.4g} mm elsewhere (a missing slice?)"
            )
        # positions must lie on the line through the first one along the normal
        off = pos - pos[0] - np.outer(along - along[0], normal)
        if np.abs(off).max() > max(0.01 * min(row_sp, col_sp), 1e-3):
            raise InconsistentSeriesError(
                f"series {first.SeriesInstanceUID}: slices are shifted in-plane (not one volume)"
            )
    else:
        dz = thickness_f if thickness_f else 1.0
    # each instance decoded and hashed once, however many frames it holds
    stored = {id(ds): _instance_pixels(ds) for ds in datasets}
    hashes = {id(ds): pixel_data_sha256(ds) for ds in datasets}
    volume = np.stack(
        [_pixels(fr, stored[id(fr.ds)][(fr.number or 1) - 1]) for fr in frames]
    ).astype(np.float32)
    slices = tuple(
        SliceInfo(
            path=str(fr.ds.filename) if getattr(fr.ds, "filename", None) else None,
            sop_instance_uid=str(fr.ds.SOPInstanceUID),
            sop_class_uid=str(fr.ds.SOPClassUID),
            instance_number=int(fr.ds.InstanceNumber) if fr.ds.get("InstanceNumber") else None,
            position=(float(p[0]), float(p[1]), float(p[2])),
            pixel_sha256=hashes[id(fr.ds)],
            frame_number=fr.number,
        )
        for fr, p in zip(frames, pos, strict=True)
    )
    spacing = (dz, float(row_sp), float(col_sp))
    number = first.get("SeriesNumber")
    sorted_first = [frames[0].header]
    return Series(
        volume=volume,
        modality=modality,
        units="HU"
        if modality == "CT"
        else ("real world" if _real_world_mapping(first) is not None else "stored"),
        spacing=spacing,
        orientation=tuple(float(v) for v in orient),  # type: ignore[arg-type]
        positions=pos,
        affine=affine_from_geometry(pos[0], orient, spacing),
        slice_thickness=thickness_f,
        study_instance_uid=str(first.StudyInstanceUID),
        series_instance_uid=str(first.SeriesInstanceUID),
        frame_of_reference_uid=str(first.get("FrameOfReferenceUID", "")),
        series_description=str(first.get("SeriesDescription", "")),
        series_number=int(number) if number not in (None, "") else None,
        patient=_common(sorted_first, PATIENT_KEYWORDS),
        study=_common(sorted_first, STUDY_KEYWORDS),
        equipment=_common(sorted_first, EQUIPMENT_KEYWORDS),
        windows=_windows(first),
        lossy=any(str(ds.get("LossyImageCompression", "00")) == "01" for ds in datasets),
        slices=slices,
        headers=tuple(_header(fr.ds) if fr.number is None else fr.header for fr in frames),
    )


def _group(datasets: list[Dataset]) -> dict[str, list[Dataset]]:
    groups: dict[str, list[Dataset]] = {}
    for ds in datasets:
        if _is_image(ds):
            groups.setdefault(str(ds.SeriesInstanceUID), []).append(ds)
    return groups


def read_all_series(source: Any, *, skip_invalid: bool = False) -> dict[str, Series]:
    """Every image series found in files, folders or datasets, by SeriesInstanceUID.

    Non-DICOM files and DICOM objects without an image (SR, presentation states, DICOMDIR)
    are skipped. A series that cannot be read into one volume raises its typed error, or, with
    ``skip_invalid=True``, is left out with a :class:`UserWarning` naming it and the reason.
    """
    out: dict[str, Series] = {}
    for uid, group in _group(_load(source, tolerant=True)).items():
        try:
            out[uid] = _build(group)
        except DicomError as exc:
            if not skip_invalid:
                raise
            warnings.warn(f"series {uid} left out: {exc}", UserWarning, stacklevel=2)
    return out


def read_series(source: Any, *, series_uid: str | None = None) -> Series:
    """Read one image series into a :class:`Series`.

    Parameters
    ----------
    source : path, folder, pydicom Dataset, or a sequence of them
        Folders are searched recursively. The originals are only read, never modified.
    series_uid : str, optional
        Which series to read when the source holds several (required then).

    Raises
    ------
    DicomError
        No image series found; several and no ``series_uid``; an unreadable file.
    MissingPixelDataError
        An instance without (decodable) pixel data.
    InconsistentSeriesError
        Mixed modalities, orientations, image sizes or pixel spacings; duplicate or missing
        slices (uneven spacing); the message names the file.

    Examples
    --------
    >>> from pydicom.data import get_testdata_file
    >>> s = read_series(get_testdata_file("CT_small.dcm"))
    >>> s.modality, s.shape, s.units
    ('CT', (1, 128, 128), 'HU')
    """
    groups = _group(_load(source, tolerant=True))
    if not groups:
        raise DicomError("no DICOM image series found in the given source")
    if series_uid is not None:
        if series_uid not in groups:
            raise DicomError(f"series {series_uid} not found; the source holds {sorted(groups)}")
        return _build(groups[series_uid])
    if len(groups) > 1:
        listing = ", ".join(f"{uid} ({len(g)} images)" for uid, g in groups.items())
        raise DicomError(
            f"the source holds {len(groups)} series ({listing}); choose one with series_uid="
        )
    return _build(next(iter(groups.values())))
