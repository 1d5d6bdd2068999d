"""DICOM in and out: series to volumes with geometry, derived series with lineage, QC reports.

``medrecon.dicom`` needs only arrays and metadata, never a projector (the import-linter contract
enforces it).

* :func:`read_series` / :func:`read_all_series` -> :class:`Series` (:mod:`~medrecon.dicom.series`).
"""

from __future__ import annotations

from medrecon.dicom.series import (
    Series,
    SliceInfo,
    affine_from_geometry,
    index_to_patient,
    pixel_data_sha256,
    read_all_series,
    read_series,
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
