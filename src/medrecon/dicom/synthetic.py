"""Original CT series for simulated data: the "scanner" side of the demo and of tests.

:func:`write_original_series` writes a volume (HU) as a new ``ORIGINAL\\PRIMARY\\AXIAL`` CT series
in a new (or given) study, for a simulated patient. It is what a scanner would have sent to the
PACS, so that derived series and QC reports can be made from it with
:func:`~medrecon.dicom.write_derived_series` and :func:`~medrecon.dicom.write_qc_report`.
Never use it for real patients' data: it invents the patient and study identity it is given.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from medrecon.dicom._io import deliver
from medrecon.dicom.derived import CT_IMAGE_STORAGE, _check_volume, _quantise, file_meta
from medrecon.dicom.series import affine_from_geometry, index_to_patient

__all__ = ["write_original_series"]


def write_original_series(
    volume_hu: Any,
    *,
    spacing: Sequence[float],
    out: str | os.PathLike[str] | Callable[[Dataset], object] | None = None,
    patient_name: str = "MEDRECON^SIMULATED",
    patient_id: str = "SIM-0001",
    study_instance_uid: str | None = None,
    study_description: str = "Simulated study",
    series_description: str = "Simulated CT",
    series_number: int = 1,
    first_position: Sequence[float] | None = None,
    manufacturer: str = "medrecon simulator",
    kvp: float | None = 120.0,
    uid_root: str | None = None,
) -> list[Dataset]:
    """Write a simulated CT volume (HU) as an original axial CT series.

    Parameters
    ----------
    volume_hu : array of shape (slices, rows, columns) or (rows, columns)
    spacing : (dz, row, column) in mm
    out : folder, callable or None
        As for :func:`~medrecon.dicom.write_derived_series`.
    patient_name, patient_id, study_instance_uid, study_description : identity to invent
        A new StudyInstanceUID when None.
    first_position : 3 floats, optional
        LPS position of the first voxel (default: the volume centred on the origin).

    Returns
    -------
    list of pydicom Dataset
        Identity orientation (rows along +y/posterior, columns along +x/left), one per slice.
    """
    values = _check_volume(volume_hu)
    sp = tuple(float(s) for s in spacing)
    if len(sp) != 3 or not all(s > 0 for s in sp):
        raise ValueError(f"spacing: expected three values > 0 mm, got {spacing!r}")
    k, i, j = values.shape
    orientation = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    if first_position is None:
        # centre the volume on the origin: (x, y, z) of voxel (0, 0, 0)
        first_position = (-(j - 1) / 2 * sp[2], -(i - 1) / 2 * sp[1], -(k - 1) / 2 * sp[0])
    affine = affine_from_geometry(first_position, orientation, sp)
    q = _quantise(values, "CT")
    now = _dt.datetime.now(_dt.UTC)
    date, time = now.strftime("%Y%m%d"), now.strftime("%H%M%S.%f")
    study = study_instance_uid or generate_uid(prefix=uid_root)
    series = generate_uid(prefix=uid_root)
    frame = generate_uid(prefix=uid_root)
    out_ds: list[Dataset] = []
    for n in range(k):
        ds = Dataset()
        ds.SpecificCharacterSet = "ISO_IR 192"
        ds.PatientName, ds.PatientID = patient_name, patient_id
        ds.PatientBirthDate, ds.PatientSex = "", "O"
        ds.StudyInstanceUID, ds.StudyID = study, "1"
        ds.StudyDate, ds.StudyTime, ds.AccessionNumber = date, time, ""
        ds.ReferringPhysicianName, ds.StudyDescription = "", study_description
        ds.Modality, ds.SeriesInstanceUID, ds.SeriesNumber = "CT", series, series_number
        ds.SeriesDescription = series_description[:64]
        ds.SeriesDate, ds.SeriesTime = date, time
        ds.FrameOfReferenceUID, ds.PositionReferenceIndicator = frame, ""
        ds.Laterality = ""
        ds.PatientPosition = "HFS"  # head first supine, as docs/conventions.md assumes
        ds.Manufacturer = manufacturer[:64]
        ds.SOPClassUID = CT_IMAGE_STORAGE
        ds.SOPInstanceUID = generate_uid(prefix=uid_root)
        ds.InstanceNumber = n + 1
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.ContentDate, ds.ContentTime = date, time
        ds.AcquisitionNumber = 1
        ds.KVP = f"{kvp:g}" if kvp is not None else ""
        pos = index_to_patient(affine, [n, 0, 0])
        ds.ImagePositionPatient = [f"{v:.6f}" for v in pos]
        ds.ImageOrientationPatient = [f"{v:.6f}" for v in orientation]
        ds.PixelSpacing = [f"{sp[1]:.6f}", f"{sp[2]:.6f}"]
        ds.SliceThickness = f"{sp[0]:.6f}"
        ds.SliceLocation = f"{float(pos[2]):.6f}"
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows, ds.Columns = i, j
        ds.BitsAllocated = ds.BitsStored = 16
        ds.HighBit, ds.PixelRepresentation = 15, 1
        ds.RescaleSlope, ds.RescaleIntercept = f"{q.slope:.10g}", f"{q.intercept:.10g}"
        ds.RescaleType = "HU"
        ds.WindowCenter, ds.WindowWidth = "40", "400"
        ds.LossyImageCompression = "00"
        ds.PixelData = np.ascontiguousarray(q.stored[n]).tobytes()
        ds.file_meta = file_meta(ds)
        out_ds.append(ds)
    deliver(out_ds, out)
    return out_ds
