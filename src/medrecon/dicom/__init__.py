"""DICOM in and out: series to volumes with geometry, derived series with lineage, QC reports.

``medrecon.dicom`` needs only arrays and metadata, never a projector (the import-linter contract
enforces it).

* :func:`read_series` / :func:`read_all_series` -> :class:`Series` (:mod:`~medrecon.dicom.series`).
* :func:`write_derived_series` with :class:`AlgorithmInfo` (:mod:`~medrecon.dicom.derived`):
  a derived CT/MR series in the source's study with full lineage.
* :func:`write_qc_report` (:mod:`~medrecon.dicom.report`): TID 1500 Comprehensive 3D SR of
  QC measurements, with the source pixel data's SHA-256.
* :func:`send_cstore`, :func:`send_stow`, :func:`c_echo` -> :class:`StoreReport`
  (:mod:`~medrecon.dicom.send`): nothing local is deleted before the peer confirmed storage.
* :class:`AuditLog` (:mod:`~medrecon.dicom.audit`): an append-only, hash-chained JSON-lines log.
"""

from __future__ import annotations

from medrecon.dicom.audit import GENESIS_SHA256, AuditLog, AuditStatus
from medrecon.dicom.derived import (
    AlgorithmInfo,
    DerivationKind,
    device_uid,
    write_derived_series,
)
from medrecon.dicom.report import QC_METRICS, write_qc_report
from medrecon.dicom.send import StoreReport, c_echo, send_cstore, send_stow
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
    "GENESIS_SHA256",
    "QC_METRICS",
    "AlgorithmInfo",
    "AuditLog",
    "AuditStatus",
    "DerivationKind",
    "Series",
    "SliceInfo",
    "StoreReport",
    "affine_from_geometry",
    "c_echo",
    "device_uid",
    "index_to_patient",
    "pixel_data_sha256",
    "read_all_series",
    "read_series",
    "send_cstore",
    "send_stow",
    "write_derived_series",
    "write_qc_report",
]
